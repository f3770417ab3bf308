/**
 * lockdownd client (protocols.md §2, §3): the device's front door on TCP port 62078, reached
 * through usbmuxd. Requests are framed plists; `Error` strings become error codes through the one
 * table in `lockdown-errors.ts`.
 *
 * Lifecycle: {@link LockdownClient.connect} → (pre-session requests: QueryType, GetValue of the
 * identity keys, Pair) → {@link LockdownClient.startSession} (TLS on the same socket) → session
 * requests, StartService → {@link LockdownClient.stopSession} or {@link LockdownClient.close}.
 * Node cannot drop TLS back to plaintext on a socket, so after StopSession the connection is closed
 * (libimobiledevice and go-ios close it too, §3.5); open a new client for more.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { KitError } from '../errors.ts';
import { createLogger, type Logger } from '../log.ts';
import { isPlistDict, type PlistDict, type PlistValue } from '../plist/index.ts';
import { PlistChannel, type PlistChannelOptions } from './framing.ts';
import { lockdownError } from './lockdown-errors.ts';
import { pairRequestRecord, type PairRecord, type SupervisorCredentials } from './pairing.ts';
import {
  openService,
  openServiceSocket,
  type RawServiceConnection,
  type ServiceConnection,
  type ServiceEndpoint,
} from './service.ts';
import { deviceTlsOptions, startTls } from './tls.ts';
import { LOCKDOWN_PORT, type UsbmuxClient } from './usbmux.ts';

/** The `Type` lockdownd answers to QueryType in normal mode. */
export const LOCKDOWN_SERVICE_TYPE = 'com.apple.mobile.lockdown';
/** `Label` sent with every request. */
export const LOCKDOWN_LABEL = 'kitting';

/** The identity values readable before a session (§2.5), typed. Missing values are undefined. */
export interface DeviceIdentity {
  udid: string | undefined;
  serialNumber: string | undefined;
  /** ECID: 64-bit, always a bigint. */
  uniqueChipId: bigint | undefined;
  productType: string | undefined;
  productVersion: string | undefined;
  buildVersion: string | undefined;
  deviceClass: string | undefined;
  deviceName: string | undefined;
  activationState: string | undefined;
  wifiAddress: string | undefined;
  /** PEM (PKCS#1 `RSA PUBLIC KEY`). */
  devicePublicKey: Buffer | undefined;
}

function str(v: PlistValue | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** Picks the identity keys out of a `GetValue` dictionary (no Domain, no Key). */
export function identityFromValues(values: PlistDict): DeviceIdentity {
  const ecid = values.UniqueChipID;
  const pub = values.DevicePublicKey;
  return {
    udid: str(values.UniqueDeviceID),
    serialNumber: str(values.SerialNumber),
    uniqueChipId:
      typeof ecid === 'bigint' ? ecid : typeof ecid === 'number' && Number.isInteger(ecid) ? BigInt(ecid) : undefined,
    productType: str(values.ProductType),
    productVersion: str(values.ProductVersion),
    buildVersion: str(values.BuildVersion),
    deviceClass: str(values.DeviceClass),
    deviceName: str(values.DeviceName),
    activationState: str(values.ActivationState),
    wifiAddress: str(values.WiFiAddress),
    devicePublicKey: pub instanceof Buffer ? pub : typeof pub === 'string' ? Buffer.from(pub, 'utf8') : undefined,
  };
}

/** Progress while pairing. */
export type PairProgress = { stage: 'trust-pending'; udid: string };

export interface PairOptions {
  /** Called once when the Trust dialog is showing on the device. */
  onProgress?: (event: PairProgress) => void;
  /** How long to wait for the person to tap Trust (default 120 s). */
  timeoutMs?: number;
  /** Interval between re-sent `Pair` requests while the dialog is pending (default 1 s, like pymobiledevice3). */
  retryIntervalMs?: number;
  /** Extra `PairingOptions` (supervised pairing adds `SupervisorCertificate` / `ChallengeResponse`). */
  pairingOptions?: PlistDict;
  /** Aborts the wait for Trust. */
  signal?: AbortSignal;
}

export interface LockdownConnectOptions {
  /** Reply timeout per request (default 10 s). */
  timeoutMs?: number;
  /** Frame limit etc. for the lockdown channel. */
  channel?: PlistChannelOptions;
}

export interface StartServiceOptions {
  /** The pair record's `EscrowBag`: lets the service start while the device is locked. */
  escrowBag?: Buffer;
  /** Options for the service's channel. */
  channel?: PlistChannelOptions;
}

/**
 * One lockdownd connection. Not safe for overlapping requests from several callers beyond simple
 * pipelining (replies are matched in order).
 */
export class LockdownClient {
  readonly udid: string;
  readonly deviceId: number;
  private channel: PlistChannel;
  private readonly usbmux: UsbmuxClient;
  private readonly timeoutMs: number;
  private readonly channelOptions: PlistChannelOptions;
  private readonly log: Logger;
  private session: { id: string; record: PairRecord } | undefined;
  /** `ProductVersion`, once read (decides the TLS range). */
  productVersion: string | undefined;

  private constructor(
    usbmux: UsbmuxClient,
    device: { deviceId: number; udid: string },
    channel: PlistChannel,
    options: LockdownConnectOptions,
  ) {
    this.usbmux = usbmux;
    this.udid = device.udid;
    this.deviceId = device.deviceId;
    this.channel = channel;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.channelOptions = options.channel ?? {};
    this.log = createLogger('device/lockdown', { udid: device.udid });
  }

  /**
   * Connects to lockdownd on `device` through usbmuxd.
   * @throws KitError `usbmux/device-gone`, `usbmux/connection-refused` (retryable), `usbmux/unavailable`.
   */
  static async connect(
    usbmux: UsbmuxClient,
    device: { deviceId: number; udid: string },
    options: LockdownConnectOptions = {},
  ): Promise<LockdownClient> {
    const socket = await usbmux.connect(device.deviceId, LOCKDOWN_PORT, { udid: device.udid });
    socket.setNoDelay(true);
    const channel = new PlistChannel(socket, {
      label: 'lockdown',
      udid: device.udid,
      timeoutMs: options.timeoutMs,
      ...options.channel,
    });
    return new LockdownClient(usbmux, device, channel, options);
  }

  /** True while a session (TLS) is active. */
  get inSession(): boolean {
    return this.session !== undefined;
  }

  /** The active session's id, if any. */
  get sessionId(): string | undefined {
    return this.session?.id;
  }

  /** Sends one request and returns the reply, without interpreting `Error`. */
  private async raw(request: string, extra: PlistDict = {}, timeoutMs = this.timeoutMs): Promise<PlistDict> {
    const reply = await this.channel.request({ Label: LOCKDOWN_LABEL, Request: request, ...extra }, { timeoutMs });
    return reply;
  }

  /** Sends one request; an `Error` (or iOS < 5 `Result: Failure`) becomes a KitError through the table. */
  private async call(request: string, extra: PlistDict = {}, timeoutMs = this.timeoutMs): Promise<PlistDict> {
    const reply = await this.raw(request, extra, timeoutMs);
    const error = reply.Error;
    if (typeof error === 'string') {
      this.log.debug('lockdown error', { request, error });
      throw lockdownError(error, request, { udid: this.udid });
    }
    if (reply.Result === 'Failure') throw lockdownError('Failure', request, { udid: this.udid });
    return reply;
  }

  /**
   * `QueryType`: `com.apple.mobile.lockdown` in normal mode.
   * @throws KitError `device/wrong-mode` when the device answers another type (restore ramdisk).
   */
  async queryType(): Promise<string> {
    const reply = await this.call('QueryType');
    const type = str(reply.Type);
    if (type === undefined) throw new KitError('device/bad-reply', 'QueryType reply without Type', { udid: this.udid });
    if (type !== LOCKDOWN_SERVICE_TYPE) {
      throw new KitError('device/wrong-mode', `the device answers as ${type}, not ${LOCKDOWN_SERVICE_TYPE}`, {
        udid: this.udid,
      });
    }
    return type;
  }

  /**
   * `GetValue`: one key, a whole domain (no key) or everything readable (neither). Undefined when the
   * reply carries no `Value`.
   * @throws KitError `lockdown/missing-value`, `lockdown/get-prohibited`, `lockdown/session-inactive` …
   */
  async getValue(domain?: string, key?: string): Promise<PlistValue | undefined> {
    const extra: PlistDict = {};
    if (domain !== undefined) extra.Domain = domain;
    if (key !== undefined) extra.Key = key;
    const reply = await this.call('GetValue', extra);
    if (key === 'ProductVersion' && domain === undefined && typeof reply.Value === 'string')
      this.productVersion = reply.Value;
    return reply.Value;
  }

  /** `GetValue` without a key: the domain's (or the default domain's) dictionary. */
  async getValues(domain?: string): Promise<PlistDict> {
    const value = await this.getValue(domain);
    if (value === undefined) return {};
    if (!isPlistDict(value))
      throw new KitError('device/bad-reply', 'GetValue without Key did not return a dictionary', { udid: this.udid });
    return value;
  }

  /** The typed identity values (pre-session readable), from one `GetValue` without Domain or Key. */
  async getIdentity(): Promise<DeviceIdentity> {
    const identity = identityFromValues(await this.getValues());
    if (identity.productVersion !== undefined) this.productVersion = identity.productVersion;
    return identity;
  }

  /** `SetValue`. @throws KitError `lockdown/set-prohibited`, `lockdown/immutable-value`, `lockdown/session-inactive` … */
  async setValue(domain: string | undefined, key: string, value: PlistValue): Promise<void> {
    const extra: PlistDict = { Key: key, Value: value };
    if (domain !== undefined) extra.Domain = domain;
    await this.call('SetValue', extra);
  }

  /** `RemoveValue`. @throws KitError `lockdown/remove-prohibited`, `lockdown/session-inactive` … */
  async removeValue(domain: string | undefined, key: string): Promise<void> {
    const extra: PlistDict = { Key: key };
    if (domain !== undefined) extra.Domain = domain;
    await this.call('RemoveValue', extra);
  }

  /**
   * `Pair` (§3.3) with `ExtendedPairingErrors`. While the Trust dialog is up the device answers
   * `PairingDialogResponsePending`: `onProgress` gets `trust-pending` once and the identical request
   * is re-sent every `retryIntervalMs` until accepted. Resolves with the `EscrowBag` (undefined when
   * the device sent none).
   * @throws KitError `lockdown/trust-denied`, `lockdown/trust-pending` (timed out, retryable),
   * `lockdown/password-protected`, `lockdown/mc-challenge-required` (supervised device) …
   */
  async pair(record: PairRecord, options: PairOptions = {}): Promise<Buffer | undefined> {
    const reply = await this.pairUntilAnswered(
      record,
      { ExtendedPairingErrors: true, ...options.pairingOptions },
      options,
    );
    const error = reply.Error;
    if (typeof error === 'string') {
      const ext = reply.ExtendedResponse;
      const err = lockdownError(error, 'Pair', { udid: this.udid });
      if (error === 'MCChallengeRequired' && isPlistDict(ext) && ext.PairingChallenge instanceof Buffer) {
        throw new KitError(err.code, err.message, {
          udid: this.udid,
          details: { ...err.details, challengeBytes: ext.PairingChallenge.length },
        });
      }
      throw err;
    }
    const bag = reply.EscrowBag;
    this.log.info('paired', { hostId: record.hostId });
    return bag instanceof Buffer ? bag : undefined;
  }

  /**
   * Supervised pairing (§3.4): `Pair` offering the supervision certificate
   * (`PairingOptions.SupervisorCertificate`); the device answers `MCChallengeRequired` with
   * `ExtendedResponse.PairingChallenge`; the challenge is signed (CMS, content attached) by
   * `supervisor.sign` and sent back as `PairingOptions.ChallengeResponse` in a second `Pair` with the
   * same record. No Trust dialog. Resolves with the `EscrowBag`, or undefined when the device accepted
   * the identity but is locked (go-ios `ErrDeviceLockedPairingDeferred`: do not save such a record).
   * A device that pairs at once (no challenge: not supervised, in Setup Assistant) is paired too.
   * @throws KitError `lockdown/supervisor-rejected` when the device does not accept this identity
   * (`MCProtected`, a Trust dialog instead of a challenge, or the signed response refused),
   * `lockdown/password-protected`, `device/bad-reply` (challenge without data), and the other
   * lockdown codes.
   */
  async pairSupervised(
    record: PairRecord,
    supervisor: SupervisorCredentials,
    options: Omit<PairOptions, 'pairingOptions' | 'onProgress'> = {},
  ): Promise<Buffer | undefined> {
    const rejected = (why: string, lockdownErr?: string): KitError =>
      new KitError('lockdown/supervisor-rejected', `the device refused supervised pairing: ${why}`, {
        udid: this.udid,
        details: { lockdownError: lockdownErr ?? null },
      });
    const first = await this.raw(
      'Pair',
      this.pairRequest(record, {
        SupervisorCertificate: supervisor.certificateDer,
        ExtendedPairingErrors: true,
      }),
    );
    const error = first.Error;
    if (error === undefined) {
      this.log.info('paired without a challenge', { hostId: record.hostId });
      return first.EscrowBag instanceof Buffer ? first.EscrowBag : undefined;
    }
    if (error === 'MCProtected') throw rejected('it is not supervised by this identity (MCProtected)', error);
    if (error === 'PairingDialogResponsePending')
      throw rejected('it asks for Trust instead of a challenge: not supervised by this identity', error);
    if (error !== 'MCChallengeRequired') throw lockdownError(String(error), 'Pair', { udid: this.udid });
    const ext = first.ExtendedResponse;
    const challenge = isPlistDict(ext) ? ext.PairingChallenge : undefined;
    if (!(challenge instanceof Buffer) || challenge.length === 0)
      throw new KitError('device/bad-reply', 'MCChallengeRequired without ExtendedResponse.PairingChallenge', {
        udid: this.udid,
      });
    const signed = await supervisor.sign(challenge);
    const second = await this.pairUntilAnswered(
      record,
      { ChallengeResponse: signed, ExtendedPairingErrors: true },
      options,
    );
    const error2 = second.Error;
    if (error2 === 'MCProtected' || error2 === 'MCChallengeRequired')
      throw rejected('the signed challenge was not accepted', error2);
    if (typeof error2 === 'string') throw lockdownError(error2, 'Pair', { udid: this.udid });
    const bag = second.EscrowBag;
    this.log.info('paired (supervised)', { hostId: record.hostId, escrowBag: bag instanceof Buffer });
    return bag instanceof Buffer ? bag : undefined;
  }

  private pairRequest(record: PairRecord, pairingOptions: PlistDict): PlistDict {
    return { PairRecord: pairRequestRecord(record), ProtocolVersion: '2', PairingOptions: pairingOptions };
  }

  /** Sends `Pair` until the answer is something other than `PairingDialogResponsePending` (or times out). */
  private async pairUntilAnswered(
    record: PairRecord,
    pairingOptions: PlistDict,
    options: PairOptions,
  ): Promise<PlistDict> {
    const timeoutMs = options.timeoutMs ?? 120_000;
    const interval = options.retryIntervalMs ?? 1_000;
    const deadline = Date.now() + timeoutMs;
    const request = this.pairRequest(record, pairingOptions);
    let notified = false;
    for (;;) {
      const reply = await this.raw('Pair', request);
      const error = reply.Error;
      if (error !== 'PairingDialogResponsePending') return reply;
      if (!notified) {
        notified = true;
        this.log.info('waiting for Trust on the device');
        options.onProgress?.({ stage: 'trust-pending', udid: this.udid });
      }
      if (Date.now() + interval > deadline || options.signal?.aborted === true) {
        throw lockdownError(error, 'Pair', { udid: this.udid, detail: `nobody tapped Trust within ${timeoutMs} ms` });
      }
      await sleep(interval, undefined, options.signal !== undefined ? { signal: options.signal } : {}).catch(
        () => undefined,
      );
    }
  }

  /** `ValidatePair` (only needed for iOS < 7). @throws KitError `lockdown/invalid-host-id` … */
  async validatePair(record: PairRecord): Promise<void> {
    await this.call('ValidatePair', { PairRecord: pairRequestRecord(record), ProtocolVersion: '2' });
  }

  /** `Unpair`: the device forgets this host pairing. @throws KitError `lockdown/invalid-host-id` … */
  async unpair(record: PairRecord | { hostId: string }): Promise<void> {
    const pr: PlistDict = 'hostCertificate' in record ? pairRequestRecord(record) : { HostID: record.hostId };
    await this.call('Unpair', { PairRecord: pr, ProtocolVersion: '2' });
  }

  /**
   * `StartSession` with the record's HostID and SystemBUID, then TLS as client on this socket with
   * the host certificate when the device asks for it (`EnableSessionSSL`).
   * @throws KitError `lockdown/invalid-host-id` (pairing removed on the device; the socket stays usable),
   * `device/tls-failed` (the connection is closed afterwards), `lockdown/password-protected` …
   */
  async startSession(record: PairRecord): Promise<string> {
    if (this.session !== undefined)
      throw new KitError('lockdown/session-active', 'a session is already active on this connection', {
        udid: this.udid,
      });
    const reply = await this.call('StartSession', {
      HostID: record.hostId,
      SystemBUID: record.systemBuid,
      ProtocolVersion: '2',
    });
    const id = str(reply.SessionID);
    if (id === undefined)
      throw new KitError('device/bad-reply', 'StartSession reply without SessionID', { udid: this.udid });
    if (reply.EnableSessionSSL === true) {
      const raw = this.channel.detach();
      const secure = await startTls(raw, deviceTlsOptions(record, this.productVersion), {
        udid: this.udid,
        label: 'lockdown',
      });
      this.channel = new PlistChannel(secure, {
        label: 'lockdown',
        udid: this.udid,
        timeoutMs: this.timeoutMs,
        ...this.channelOptions,
      });
    }
    this.session = { id, record };
    this.log.debug('session started');
    return id;
  }

  /** `StopSession` (inside TLS), then closes the connection. */
  async stopSession(): Promise<void> {
    const session = this.session;
    if (session === undefined) return;
    try {
      await this.call('StopSession', { SessionID: session.id });
    } finally {
      this.session = undefined;
      this.close();
    }
  }

  /**
   * `StartService` and a ready connection to it (a new usbmuxd Connect to the returned port, TLS
   * when `EnableServiceSSL`), framed plists. Needs a session for most services.
   * @throws KitError `lockdown/invalid-service`, `lockdown/session-inactive`, `lockdown/password-protected`,
   * `lockdown/escrow-locked`, `lockdown/service-limit`, plus the usbmux/TLS errors of the new connection.
   */
  async startService(name: string, options: StartServiceOptions = {}): Promise<ServiceConnection> {
    const { endpoint, record } = await this.requestService(name, options);
    return openService(
      this.usbmux,
      { deviceId: this.deviceId, udid: this.udid },
      endpoint,
      record,
      this.productVersion,
      options.channel,
    );
  }

  /**
   * Like {@link startService}, for services that do not speak framed plists (AFC): the connected
   * socket (TLS when the device asked for it), paused, for the caller's own protocol.
   * @throws the codes of {@link startService}.
   */
  async startRawService(
    name: string,
    options: Omit<StartServiceOptions, 'channel'> = {},
  ): Promise<RawServiceConnection> {
    const { endpoint, record } = await this.requestService(name, options);
    const socket = await openServiceSocket(
      this.usbmux,
      { deviceId: this.deviceId, udid: this.udid },
      endpoint,
      record,
      this.productVersion,
    );
    return { name: endpoint.name, port: endpoint.port, socket };
  }

  private async requestService(
    name: string,
    options: { escrowBag?: Buffer },
  ): Promise<{ endpoint: ServiceEndpoint; record: PairRecord | undefined }> {
    const extra: PlistDict = { Service: name };
    if (options.escrowBag !== undefined) extra.EscrowBag = options.escrowBag;
    const reply = await this.call('StartService', extra);
    const port = reply.Port;
    if (typeof port !== 'number' || !Number.isInteger(port) || port <= 0 || port > 65535) {
      throw new KitError('device/bad-reply', `StartService ${name} reply without a valid Port`, { udid: this.udid });
    }
    const enableServiceSsl = reply.EnableServiceSSL === true;
    const record = this.session?.record;
    if (enableServiceSsl && record === undefined) {
      throw new KitError(
        'lockdown/session-inactive',
        `service ${name} wants TLS but no session (pair record) is active`,
        { udid: this.udid },
      );
    }
    this.log.debug('service started', { service: name, port, tls: enableServiceSsl });
    return { endpoint: { name, port, enableServiceSsl }, record };
  }

  /**
   * `Activate` (legacy activation, §6.4): hands the activation record from Apple's server to the
   * device. Needs a session.
   * @throws KitError `lockdown/invalid-activation-record`, `lockdown/missing-activation-record`,
   * `lockdown/session-inactive` …
   */
  async activate(activationRecord: PlistDict): Promise<void> {
    await this.call('Activate', { ActivationRecord: activationRecord });
  }

  /** `EnterRecovery`: the device reboots into recovery mode (and leaves usbmuxd). */
  async enterRecovery(): Promise<void> {
    await this.call('EnterRecovery');
  }

  /** `Goodbye`, then closes the connection. Errors from a device that already hung up are ignored. */
  async goodbye(): Promise<void> {
    try {
      await this.call('Goodbye', {}, Math.min(this.timeoutMs, 3_000));
    } catch (err) {
      if (!(err instanceof KitError && (err.code === 'device/connection-lost' || err.code === 'device/timeout')))
        throw err;
    } finally {
      this.close();
    }
  }

  /** Closes the connection (no StopSession). */
  close(): void {
    this.session = undefined;
    this.channel.close();
  }
}
