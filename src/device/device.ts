/**
 * Opening a device the way every command needs it: find it by UDID, connect to lockdownd, use the
 * pair record usbmuxd holds (ours or another tool's), pair when there is none or the device forgot
 * it, and start a TLS session. Pair records are saved through usbmuxd so other tools see them.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { KitError, hasCode } from '../errors.ts';
import { createLogger } from '../log.ts';
import { LockdownClient, type PairProgress } from './lockdown.ts';
import {
  generatePairRecord,
  newHostKeys,
  sharedHostKeys,
  pairRecordFromPlist,
  pairRecordToPlist,
  type PairRecord,
  type SignatureHash,
  type SupervisorCredentials,
} from './pairing.ts';
import { majorVersion } from './tls.ts';
import type { UsbmuxClient, UsbmuxDevice } from './usbmux.ts';

const log = createLogger('device/device');

/** Progress of {@link openDevice} / {@link pairDevice}. */
export type DeviceProgress =
  | PairProgress
  | { stage: 'pairing'; udid: string }
  | { stage: 'pairing-supervised'; udid: string }
  | { stage: 'paired'; udid: string; hostId: string; supervised: boolean };

export interface PairDeviceOptions {
  onProgress?: (event: DeviceProgress) => void;
  /** How long to wait for Trust (default 120 s). */
  pairTimeoutMs?: number;
  /** Certificate digest (default SHA-256; SHA-1 for iOS < 4, like libimobiledevice). */
  hash?: SignatureHash;
  /** New root and host keys for this pairing instead of the process's {@link sharedHostKeys}. */
  freshKeys?: boolean;
  signal?: AbortSignal;
  /**
   * The organization's supervision identity. With it, a device that refuses normal pairing because
   * it is supervised (`MCProtected` / `MCChallengeRequired`) is paired supervised (§3.4), without
   * a Trust dialog.
   */
  supervisor?: SupervisorCredentials;
  /**
   * `auto` (default): normal pairing, supervised only when the device demands it and a supervisor
   * is given. `supervised`: supervised pairing straight away (needs `supervisor`).
   */
  pairingMode?: 'auto' | 'supervised';
}

export interface OpenDeviceOptions extends PairDeviceOptions {
  /** `if-needed` (default) pairs when there is no usable record; `never` fails instead. */
  pair?: 'if-needed' | 'never';
  /** Per-request timeout (default 10 s). */
  timeoutMs?: number;
  /** The attachment to use, when the caller already knows it (default: {@link findDevice}). */
  device?: UsbmuxDevice;
}

/** A device with a session-ready lockdown client. Close it with {@link DeviceSession.close}. */
export interface DeviceSession {
  readonly device: UsbmuxDevice;
  readonly lockdown: LockdownClient;
  readonly record: PairRecord;
  readonly productVersion: string | undefined;
  /** True when this call paired the device (no record, or the device had forgotten it). */
  readonly pairedNow: boolean;
  /** StopSession and close; never throws. */
  close(): Promise<void>;
}

/**
 * The attached USB device with this UDID (a network entry only if there is no USB one).
 * @throws KitError `device/not-found` (exit 3) when it is not attached.
 */
export async function findDevice(usbmux: UsbmuxClient, udid: string): Promise<UsbmuxDevice> {
  const devices = (await usbmux.listDevices()).filter((d) => d.udid === udid);
  const device = devices.find((d) => d.connectionType === 'USB') ?? devices[0];
  if (device === undefined) throw new KitError('device/not-found', `no attached device has UDID ${udid}`, { udid });
  return device;
}

/**
 * The usable pair record usbmuxd holds for `udid`, or null (none stored, or stored but malformed —
 * logged, then treated as absent so pairing can replace it).
 */
export async function loadPairRecord(usbmux: UsbmuxClient, udid: string): Promise<PairRecord | null> {
  let dict;
  try {
    dict = await usbmux.readPairRecord(udid);
  } catch (err) {
    if (hasCode(err, 'pairing/invalid-record')) {
      log.warn('ignoring an unreadable pair record', { udid, error: err });
      return null;
    }
    throw err;
  }
  if (dict === null) return null;
  try {
    return pairRecordFromPlist(dict, udid);
  } catch (err) {
    log.warn('ignoring a malformed pair record', { udid, error: err });
    return null;
  }
}

/** Connects to lockdownd, retrying briefly while the device refuses (just attached or rebooting). */
export async function connectLockdown(
  usbmux: UsbmuxClient,
  device: UsbmuxDevice,
  timeoutMs?: number,
): Promise<LockdownClient> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await LockdownClient.connect(usbmux, device, timeoutMs !== undefined ? { timeoutMs } : {});
    } catch (err) {
      if (attempt >= 4 || !hasCode(err, 'usbmux/connection-refused')) throw err;
      await sleep(250 * (attempt + 1));
    }
  }
}

/**
 * Pairs over `lockdown` (§3.3): reads `DevicePublicKey`, `WiFiAddress` and the SystemBUID, makes
 * the certificates, sends `Pair` (waiting for Trust), and saves the record through usbmuxd with
 * the DeviceID so listeners get `Paired`. With `options.supervisor` a supervised device is paired
 * with the supervision identity (§3.4): when `pairingMode` is `supervised`, or when normal pairing
 * is refused with `MCProtected` / `MCChallengeRequired`. A supervised pairing the device accepts
 * without an `EscrowBag` means it is locked: the record is not saved.
 * @throws KitError `lockdown/trust-denied`, `lockdown/trust-pending`, `lockdown/password-protected`
 * (locked; also after a supervised pairing without EscrowBag), `lockdown/mc-protected` /
 * `lockdown/mc-challenge-required` (supervised device, no supervisor given),
 * `lockdown/supervisor-rejected` (wrong identity), `usage/invalid-argument` (`supervised` without a
 * supervisor), `usbmux/pair-record-failed` …
 */
export async function pairDevice(
  usbmux: UsbmuxClient,
  device: UsbmuxDevice,
  lockdown: LockdownClient,
  options: PairDeviceOptions = {},
): Promise<PairRecord> {
  options.onProgress?.({ stage: 'pairing', udid: device.udid });
  const publicKey = await lockdown.getValue(undefined, 'DevicePublicKey');
  if (!(publicKey instanceof Buffer) && typeof publicKey !== 'string') {
    throw new KitError('device/bad-reply', 'the device did not give its DevicePublicKey', { udid: device.udid });
  }
  let wifi: string | undefined;
  try {
    const v = await lockdown.getValue(undefined, 'WiFiAddress');
    wifi = typeof v === 'string' ? v : undefined;
  } catch (err) {
    if (!hasCode(err, 'lockdown/missing-value', 'lockdown/get-prohibited')) throw err;
  }
  const systemBuid = await usbmux.readBuid();
  const major = majorVersion(lockdown.productVersion);
  const hash = options.hash ?? (major !== undefined && major < 4 ? 'sha1' : 'sha256');
  const keys = options.freshKeys === true ? await newHostKeys() : await sharedHostKeys();
  const record = await generatePairRecord({
    keys,
    devicePublicKey: publicKey,
    systemBuid,
    hash,
    ...(wifi !== undefined ? { wifiMacAddress: wifi } : {}),
  });
  const waitOptions = {
    ...(options.pairTimeoutMs !== undefined ? { timeoutMs: options.pairTimeoutMs } : {}),
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
  };
  const supervisor = options.supervisor;
  if (options.pairingMode === 'supervised' && supervisor === undefined) {
    throw new KitError('usage/invalid-argument', 'supervised pairing needs a supervision identity', {
      udid: device.udid,
    });
  }
  const supervised = async (s: SupervisorCredentials): Promise<Buffer> => {
    options.onProgress?.({ stage: 'pairing-supervised', udid: device.udid });
    const bag = await lockdown.pairSupervised(record, s, waitOptions);
    if (bag === undefined) {
      throw new KitError(
        'lockdown/password-protected',
        'the device accepted the supervision identity but is locked and made no escrow bag; unlock it and pair again',
        { udid: device.udid, details: { supervised: true } },
      );
    }
    return bag;
  };
  let escrowBag: Buffer | undefined;
  let wasSupervised = false;
  if (supervisor !== undefined && options.pairingMode === 'supervised') {
    escrowBag = await supervised(supervisor);
    wasSupervised = true;
  } else {
    try {
      escrowBag = await lockdown.pair(record, {
        ...(options.onProgress !== undefined ? { onProgress: options.onProgress } : {}),
        ...waitOptions,
      });
    } catch (err) {
      if (supervisor === undefined || !hasCode(err, 'lockdown/mc-protected', 'lockdown/mc-challenge-required'))
        throw err;
      log.info('the device is supervised and refuses normal pairing; pairing with the supervision identity', {
        udid: device.udid,
        code: err.code,
      });
      escrowBag = await supervised(supervisor);
      wasSupervised = true;
    }
  }
  record.escrowBag = escrowBag;
  await usbmux.savePairRecord(device.udid, pairRecordToPlist(record), device.deviceId);
  options.onProgress?.({ stage: 'paired', udid: device.udid, hostId: record.hostId, supervised: wasSupervised });
  return record;
}

/**
 * A session-ready lockdown client for `udid`: uses the stored pair record, pairs when there is
 * none, and pairs again when the device has forgotten it (`InvalidHostID`, or TLS refused).
 * @throws KitError `device/not-found` (exit 3), `device/wrong-mode`, the pairing codes of
 * {@link pairDevice}, `lockdown/missing-pair-record` with `pair: 'never'` and no record, and the
 * usbmux/lockdown/TLS codes of the steps.
 */
export async function openDevice(
  usbmux: UsbmuxClient,
  udid: string,
  options: OpenDeviceOptions = {},
): Promise<DeviceSession> {
  const device = options.device ?? (await findDevice(usbmux, udid));
  let lockdown = await connectLockdown(usbmux, device, options.timeoutMs);
  const mayPair = (options.pair ?? 'if-needed') === 'if-needed';
  const refuse = (why: string): KitError =>
    new KitError('lockdown/missing-pair-record', `${udid} is not paired with this host (${why})`, { udid });
  try {
    await lockdown.queryType();
    const version = await lockdown.getValue(undefined, 'ProductVersion');
    const productVersion = typeof version === 'string' ? version : undefined;
    let record = await loadPairRecord(usbmux, udid);
    let pairedNow = false;
    // iOS < 7 wants ValidatePair before StartSession (libimobiledevice does the same).
    const major = majorVersion(productVersion);
    const legacy = major !== undefined && major < 7;
    if (record !== null) {
      try {
        if (legacy) await lockdown.validatePair(record);
        await lockdown.startSession(record);
      } catch (err) {
        if (!hasCode(err, 'lockdown/invalid-host-id', 'device/tls-failed') || !mayPair) throw err;
        log.info('the device no longer knows this pairing; pairing again', { udid, code: err.code });
        if (err.code === 'device/tls-failed') {
          lockdown.close();
          lockdown = await connectLockdown(usbmux, device, options.timeoutMs);
          await lockdown.getValue(undefined, 'ProductVersion');
        }
        record = null;
      }
    }
    if (record === null) {
      if (!mayPair) throw refuse('no pair record');
      record = await pairDevice(usbmux, device, lockdown, options);
      pairedNow = true;
      await lockdown.startSession(record);
    }
    const session = lockdown;
    const finalRecord = record;
    return {
      device,
      lockdown: session,
      record: finalRecord,
      productVersion,
      pairedNow,
      close: async () => {
        await session.stopSession().catch(() => undefined);
        session.close();
      },
    };
  } catch (err) {
    lockdown.close();
    throw err;
  }
}
