/**
 * lockdownd of a virtual device (TCP port 62078): QueryType, GetValue/SetValue/RemoveValue, Pair,
 * ValidatePair, Unpair, StartSession (TLS), StopSession, StartService, EnterRecovery, Goodbye.
 * Replies always echo `Request`; failures carry a lockdown `Error` string (protocols.md §2).
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { isPlistDict, PlistReal, type PlistDict, type PlistValue } from '../plist/index.ts';
import { isSupervisorCertificate, pairingDisallowed } from './cloud-config.ts';
import { verifyCms } from './cms.ts';
import { certificateDer, certificateHasKey } from './crypto.ts';
import { LOCKDOWN_PORT, type Pairing, type VirtualDevice } from './device.ts';
import { acceptActivationRecord, activationInfo } from './mobileactivation.ts';
import { PlistConnection } from './plist-conn.ts';
import { SERVICES } from './services.ts';
import { getValue, WRITABLE_DOMAIN_KEYS, WRITABLE_KEYS } from './values.ts';

function str(v: PlistValue | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function errorReply(request: PlistDict, code: string): PlistDict {
  const r = str(request.Request);
  return r === undefined ? { Error: code } : { Request: r, Error: code };
}

/** Per-connection lockdown state. */
interface LockdownSession {
  sessionId: string | undefined;
  pairing: Pairing | undefined;
}

/** Serves one lockdownd connection on `socket`. */
export function serveLockdown(device: VirtualDevice, socket: Socket): void {
  const session: LockdownSession = { sessionId: undefined, pairing: undefined };
  const log = device.log.child({ port: LOCKDOWN_PORT });
  let untrack: () => void = () => undefined;
  const conn = new PlistConnection({
    socket,
    faults: device.faults,
    timing: device.timing,
    log,
    errorReply,
    handler: (req, c) => handle(device, session, req, c),
    onClose: () => untrack(),
  });
  untrack = device.track(conn);
}

async function handle(
  device: VirtualDevice,
  session: LockdownSession,
  req: PlistDict,
  conn: PlistConnection,
): Promise<PlistDict | undefined> {
  const request = str(req.Request);
  if (request === undefined) return { Error: 'MissingValue' };
  const base: PlistDict = { Request: request };
  const fail = (code: string): PlistDict => ({ ...base, Error: code });
  const inSession = session.sessionId !== undefined;

  switch (request) {
    case 'QueryType':
      return { Request: request, Type: 'com.apple.mobile.lockdown' };

    case 'GetValue': {
      await device.ensureKeys();
      const domain = str(req.Domain);
      const key = str(req.Key);
      if ((domain === undefined || domain === '') && key === 'ActivationInfo') {
        // The legacy activation flow (protocols.md §6.4) reads it within a session.
        if (!inSession) return { Key: key, Request: request, Error: 'GetProhibited' };
        return { Key: key, Request: request, Value: activationInfo(device) };
      }
      device.inSession = inSession;
      const r = getValue(device, domain, key);
      const reply: PlistDict = {};
      if (domain !== undefined) reply.Domain = domain;
      if (key !== undefined) reply.Key = key;
      reply.Request = request;
      if ('error' in r) return { ...reply, Error: r.error };
      reply.Value = r.value;
      return reply;
    }

    case 'SetValue': {
      const domain = str(req.Domain);
      const key = str(req.Key);
      const value = req.Value;
      const echo: PlistDict = { ...base };
      if (domain !== undefined) echo.Domain = domain;
      if (key !== undefined) echo.Key = key;
      if (value === undefined) return { ...echo, Error: 'MissingValue' };
      if (key === undefined) return { ...echo, Error: 'MissingKey' };
      // The host BUID may be written before a session (usbmuxd preflight does).
      if ((domain === undefined || domain === '') && key === 'UntrustedHostBUID') {
        if (typeof value !== 'string') return { ...echo, Error: 'InvalidValue' };
        device.untrustedHostBuid = value;
        return echo;
      }
      if (!inSession) return { ...echo, Error: 'SessionInactive' };
      const err = setValue(device, domain, key, value);
      return err === undefined ? echo : { ...echo, Error: err };
    }

    case 'RemoveValue': {
      const domain = str(req.Domain);
      const key = str(req.Key);
      const echo: PlistDict = { ...base };
      if (domain !== undefined) echo.Domain = domain;
      if (key !== undefined) echo.Key = key;
      if (!inSession) return { ...echo, Error: 'SessionInactive' };
      if (key === undefined) return { ...echo, Error: 'MissingKey' };
      const k = `${domain ?? ''}\u0000${key}`;
      if (!device.extra.delete(k)) return { ...echo, Error: 'RemoveProhibited' };
      return echo;
    }

    case 'Pair':
      return pair(device, req, base, fail);

    case 'ValidatePair': {
      const hostId = pairRecordHostId(req);
      if (hostId === undefined) return fail('MissingHostID');
      return device.pairings.has(hostId) ? base : fail('InvalidHostID');
    }

    case 'Unpair': {
      const hostId = pairRecordHostId(req);
      if (hostId === undefined) return fail('MissingHostID');
      if (!device.removePairing(hostId)) return fail('InvalidHostID');
      device.log.info('unpaired', { hostId });
      return base;
    }

    case 'StartSession': {
      const hostId = str(req.HostID);
      if (hostId === undefined) return fail('MissingHostID');
      if (inSession) return fail('SessionActive');
      const pairing = device.pairings.get(hostId);
      if (pairing === undefined) return fail('InvalidHostID');
      const keys = await device.ensureKeys();
      const sessionId = device.newSessionId();
      session.sessionId = sessionId;
      session.pairing = pairing;
      const accepted = [certificateDer(pairing.hostCertificate), certificateDer(pairing.rootCertificate)].filter(
        (c): c is Buffer => c !== undefined,
      );
      conn.afterReply(() =>
        conn.startTls({
          certPem: pairing.deviceCertificate,
          keyPem: keys.privateKeyPem,
          acceptedClientCerts: accepted,
        }),
      );
      return { ...base, EnableSessionSSL: true, SessionID: sessionId };
    }

    case 'StopSession': {
      if (!inSession) return fail('SessionInactive');
      const id = str(req.SessionID);
      if (id === undefined) return fail('MissingSessionID');
      if (id !== session.sessionId) return fail('InvalidSessionID');
      session.sessionId = undefined;
      session.pairing = undefined;
      // After the reply the device ends TLS (close_notify) and closes the connection.
      conn.afterReply(() => conn.end());
      return { ...base, Result: 'Success' };
    }

    case 'StartService': {
      const name = str(req.Service);
      if (name === undefined) return fail('MissingService');
      if (!inSession || session.pairing === undefined) return fail('SessionInactive');
      const service = SERVICES[name];
      if (service === undefined) return fail('InvalidService');
      const pairing = session.pairing;
      const keys = await device.ensureKeys();
      const accepted = [certificateDer(pairing.hostCertificate), certificateDer(pairing.rootCertificate)].filter(
        (c): c is Buffer => c !== undefined,
      );
      const port = device.openServicePort(name, (socket) =>
        service.serve(device, socket, {
          tls: service.ssl
            ? { certPem: pairing.deviceCertificate, keyPem: keys.privateKeyPem, acceptedClientCerts: accepted }
            : undefined,
        }),
      );
      return { ...base, EnableServiceSSL: service.ssl, Port: port, Service: name };
    }

    case 'Activate': {
      if (!inSession) return fail('SessionInactive');
      const record = req.ActivationRecord;
      if (record === undefined) return fail('MissingActivationRecord');
      return acceptActivationRecord(device, record) ? base : fail('InvalidActivationRecord');
    }

    case 'Deactivate':
      if (!inSession) return fail('SessionInactive');
      device.activationState = 'Unactivated';
      device.activationStateAcknowledged = false;
      return base;

    case 'EnterRecovery':
      if (!inSession) return fail('SessionInactive');
      conn.afterReply(() => device.powerEvent('recovery'));
      return base;

    case 'Goodbye':
      conn.afterReply(() => conn.end());
      return base;

    default:
      return fail('InvalidRequest');
  }
}

function pairRecordHostId(req: PlistDict): string | undefined {
  const rec = req.PairRecord;
  if (!isPlistDict(rec)) return undefined;
  return str(rec.HostID);
}

async function pair(
  device: VirtualDevice,
  req: PlistDict,
  base: PlistDict,
  fail: (code: string) => PlistDict,
): Promise<PlistDict> {
  const rec = req.PairRecord;
  if (!isPlistDict(rec)) return fail('MissingPairRecord');
  const hostId = str(rec.HostID);
  const systemBuid = str(rec.SystemBUID);
  const hostCertificate = rec.HostCertificate;
  const rootCertificate = rec.RootCertificate;
  const deviceCertificate = rec.DeviceCertificate;
  if (hostId === undefined) return fail('MissingHostID');
  if (
    !Buffer.isBuffer(hostCertificate) ||
    !Buffer.isBuffer(rootCertificate) ||
    !Buffer.isBuffer(deviceCertificate) ||
    systemBuid === undefined
  ) {
    return fail('InvalidPairRecord');
  }
  const keys = await device.ensureKeys();
  if (
    !certificateHasKey(deviceCertificate, keys.publicKey) ||
    certificateDer(hostCertificate) === undefined ||
    certificateDer(rootCertificate) === undefined
  ) {
    return fail('InvalidPairRecord');
  }
  const options = isPlistDict(req.PairingOptions) ? req.PairingOptions : undefined;
  const supervisor = supervisedPair(device, options, base, fail);
  if (supervisor === 'accept') {
    const escrowBag = device.addPairing({ hostId, systemBuid, hostCertificate, rootCertificate, deviceCertificate });
    device.log.info('paired (supervised)', { hostId });
    // A locked device accepts the supervisor but cannot make an escrow bag (go-ios ErrDeviceLockedPairingDeferred).
    return device.locked ? base : { ...base, EscrowBag: escrowBag };
  }
  if (supervisor !== undefined) return supervisor;
  if (pairingDisallowed(device.cloudConfiguration)) {
    // AllowPairing false: only a host proving the supervision identity pairs (libimobiledevice LOCKDOWN_E_MC_PROTECTED).
    device.log.info('pair refused', { error: 'MCProtected' });
    return fail('MCProtected');
  }
  const decision = device.pairDecision();
  if (decision !== 'accept') {
    device.log.info('pair refused', { error: decision });
    return fail(decision);
  }
  const escrowBag = device.addPairing({ hostId, systemBuid, hostCertificate, rootCertificate, deviceCertificate });
  device.log.info('paired', { hostId });
  return { ...base, EscrowBag: escrowBag };
}

function setValue(
  device: VirtualDevice,
  domain: string | undefined,
  key: string,
  value: PlistValue,
): string | undefined {
  const noDomain = domain === undefined || domain === '';
  if (noDomain) {
    if (!WRITABLE_KEYS.has(key)) return 'SetProhibited';
    switch (key) {
      case 'DeviceName':
        if (typeof value !== 'string') return 'InvalidValue';
        device.deviceName = value;
        return undefined;
      case 'TimeZone':
        if (typeof value !== 'string') return 'InvalidValue';
        device.timeZone = value;
        return undefined;
      case 'TimeIntervalSince1970': {
        const n =
          typeof value === 'number'
            ? value
            : typeof value === 'bigint'
              ? Number(value)
              : value instanceof PlistReal
                ? value.value
                : NaN;
        if (!Number.isFinite(n)) return 'InvalidValue';
        device.clockOffsetMs = n * 1000 - Date.now();
        return undefined;
      }
      case 'Uses24HourClock':
        if (typeof value !== 'boolean') return 'InvalidValue';
        device.uses24HourClock = value;
        return undefined;
      case 'ActivationStateAcknowledged':
        if (typeof value !== 'boolean') return 'InvalidValue';
        device.activationStateAcknowledged = value;
        return undefined;
      default:
        device.extra.set(`\u0000${key}`, value);
        return undefined;
    }
  }
  if (!WRITABLE_DOMAIN_KEYS.has(`${domain}\u0000${key}`)) return 'SetProhibited';
  if (domain === 'com.apple.international' && (key === 'Language' || key === 'Locale')) {
    if (typeof value !== 'string') return 'InvalidValue';
    if (key === 'Language') device.language = value;
    else device.locale = value;
    return undefined;
  }
  device.extra.set(`${domain}\u0000${key}`, value);
  return undefined;
}

/** Supervised-pairing challenges handed out, per device: the certificate and the challenge. */
const challenges = new WeakMap<VirtualDevice, { certificate: Buffer; challenge: Buffer }>();

/**
 * Supervised pairing (protocols.md §3.4): a `SupervisorCertificate` from the configuration's
 * `SupervisorHostCertificates` gets `MCChallengeRequired` with a challenge; a `ChallengeResponse`
 * (CMS with the challenge attached, signed by that certificate) pairs without a Trust dialog. Returns
 * a reply, `accept`, or undefined when the request is an ordinary Pair.
 */
function supervisedPair(
  device: VirtualDevice,
  options: PlistDict | undefined,
  base: PlistDict,
  fail: (code: string) => PlistDict,
): PlistDict | 'accept' | undefined {
  if (options === undefined) return undefined;
  const response = options.ChallengeResponse;
  if (Buffer.isBuffer(response)) {
    const pending = challenges.get(device);
    challenges.delete(device);
    const v = verifyCms(response);
    if (
      pending === undefined ||
      !v.ok ||
      !v.value.content.equals(pending.challenge) ||
      !v.value.signerCertificate.equals(pending.certificate) ||
      !isSupervisorCertificate(device.cloudConfiguration, v.value.signerCertificate)
    ) {
      device.log.info('supervised pair refused', { reason: v.ok ? 'wrong challenge or signer' : v.reason });
      return fail('MCProtected');
    }
    return 'accept';
  }
  const cert = options.SupervisorCertificate;
  if (Buffer.isBuffer(cert) && device.supervised && isSupervisorCertificate(device.cloudConfiguration, cert)) {
    const challenge = randomBytes(32);
    challenges.set(device, { certificate: cert, challenge });
    return { ...base, Error: 'MCChallengeRequired', ExtendedResponse: { PairingChallenge: challenge } };
  }
  return undefined;
}
