/**
 * `com.apple.mobile.MCInstall` of a virtual device (protocols.md §4, §5.1, the Addendum).
 *
 * TLS (as go-ios and pymobiledevice3 expect: `EnableServiceSSL`), lockdown framing, `RequestType`,
 * any number of requests per connection. Replies are `{Status: "Acknowledged", …}`, a literal
 * status (`CertificateRejected`, `SignedRequestRejected`, `CommandFormatError`, `ErrorPayloadEmpty`)
 * or `{Status: "Error", ErrorChain: [{ErrorCode, ErrorDomain, LocalizedDescription,
 * USEnglishDescription}]}`.
 *
 * Settled shapes (sources in the README): `GetCloudConfiguration` nests the dictionary under
 * `CloudConfiguration` (absent when none); `GetProfileList` answers `OrderedIdentifiers`,
 * `ProfileManifest`, `ProfileMetadata`; `GetStoredProfile` answers the bytes as `ProfileData` (the
 * key StoreProfile takes; the real key is unconfirmed).
 *
 * Faults: `error=<RequestType>:<Code>` answers an ErrorChain with that code (a non-numeric code is
 * answered as a literal `Status`); `disconnect-after=<RequestType>` processes the request and
 * drops the connection instead of answering — a real device that loses the link after reading a
 * request still acts on it.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { isPlistDict, type PlistDict, type PlistValue } from '../plist/index.ts';
import { applyForcedValues, isSupervisorCertificate, wronglyTypedKey } from './cloud-config.ts';
import { verifyCms } from './cms.ts';
import type { VirtualDevice } from './device.ts';
import { checkInInstalledProfile, checkOutProfile } from './mdm-checkin.ts';
import { PlistConnection } from './plist-conn.ts';
import { parseProfile, profileListReply, removeProfileIdentifier, type ProfileSource } from './profiles.ts';
import type { ServeOptions } from './services.ts';

/** English texts of the error codes the simulator answers (Apple MDM error-code reference wording). */
const ERROR_TEXTS: Readonly<Record<number, string>> = {
  1000: 'The profile is malformed.',
  1001: 'The profile version is not supported.',
  1002: 'The profile is missing a required field.',
  1010: 'The profile contains an unsupported field value.',
  4024: 'The profile could not be found.',
  4025: 'The request requires an escalated supervision session.',
  14000: 'Invalid field.',
  14001: 'The device is locked.',
  14002: 'A cloud configuration is already present on the device.',
  29000: 'The device is not supervised.',
  33002: 'The cloud configuration contains a value of the wrong type.',
  33003: 'The device is not activated.',
  33004: 'The device is assigned to Automated Device Enrollment; its configuration comes from Apple.',
  33015: 'The pairing records could not be deleted.',
  33023: 'The cloud configuration could not be written.',
};

/** The error domain a code belongs to. */
export function errorDomainOf(code: number): string {
  if (code >= 14000 && code < 15000) return 'MCTunnelErrorDomain';
  if (code >= 33000 && code < 34000) return 'MCCloudConfigErrorDomain';
  if (code >= 1000 && code < 2000) return 'MCProfileErrorDomain';
  if (code >= 29000 && code < 30000) return 'MCChaperoneErrorDomain';
  if (code >= 37000 && code < 38000) return 'MCKeybagErrorDomain';
  return 'MCInstallationErrorDomain';
}

/** An MCInstall error reply carrying `code`. */
export function mcError(code: number, text?: string): PlistDict {
  const description = text ?? ERROR_TEXTS[code] ?? `The operation couldn’t be completed. (error ${code})`;
  return {
    Status: 'Error',
    ErrorChain: [
      {
        ErrorCode: code,
        ErrorDomain: errorDomainOf(code),
        LocalizedDescription: description,
        USEnglishDescription: description,
      },
    ],
  };
}

function faultReply(_req: PlistDict, code: string): PlistDict {
  const n = Number(code);
  return Number.isInteger(n) ? mcError(n) : { Status: code };
}

const ACK: PlistDict = { Status: 'Acknowledged' };

/** Per-connection escalation state. */
interface McSession {
  escalationCertificate: Buffer | undefined;
  challenge: Buffer | undefined;
  escalated: boolean;
}

/** Serves one MCInstall connection. */
export function serveMcInstall(device: VirtualDevice, socket: Socket, options: ServeOptions): void {
  const session: McSession = { escalationCertificate: undefined, challenge: undefined, escalated: false };
  let untrack: () => void = () => undefined;
  const conn = new PlistConnection({
    socket,
    faults: device.faults,
    timing: device.timing,
    log: device.log.child({ service: 'MCInstall' }),
    tls: options.tls,
    errorReply: faultReply,
    handler: (req, c) => Promise.resolve(handle(device, session, req, c)),
    onClose: () => untrack(),
  });
  untrack = device.track(conn);
}

async function install(
  device: VirtualDevice,
  payload: PlistValue | undefined,
  source: ProfileSource,
  interactive: boolean,
): Promise<PlistDict> {
  if (payload === undefined) return { Status: 'ErrorPayloadEmpty' };
  if (!Buffer.isBuffer(payload)) return mcError(14000);
  if (payload.length === 0) return { Status: 'ErrorPayloadEmpty' };
  if (device.locked) return mcError(14001);
  const parsed = parseProfile(payload, source);
  if ('problem' in parsed) return mcError(parsed.problem.code, parsed.problem.text);
  // During Setup Assistant nobody needs to approve; afterwards an interactive install waits in Settings.
  if (interactive && device.setupComplete) {
    device.queueProfile(parsed.profile);
    return ACK;
  }
  // An MDM payload checks the device in first; a refused check-in fails the installation.
  const checkIn = await checkInInstalledProfile(device, payload, parsed.profile.identifier);
  if (checkIn?.status === 'failed') return mcError(4001, `The MDM server refused the check-in: ${checkIn.error ?? ''}`);
  device.installProfile(parsed.profile);
  return ACK;
}

function handle(
  device: VirtualDevice,
  s: McSession,
  req: PlistDict,
  conn: PlistConnection,
): PlistDict | Promise<PlistDict> {
  const type = typeof req.RequestType === 'string' ? req.RequestType : undefined;
  switch (type) {
    case 'HelloHostIdentifier':
      return ACK;
    case 'Flush':
      return ACK;
    case 'GetCloudConfiguration':
      return device.cloudConfiguration === null ? ACK : { ...ACK, CloudConfiguration: device.cloudConfiguration };
    case 'SetCloudConfiguration': {
      const config = req.CloudConfiguration;
      if (!isPlistDict(config)) return mcError(14000);
      if (device.cloudConfiguration !== null) return mcError(14002);
      if (device.activationState === 'Unactivated') return mcError(33003);
      if (device.adeAssigned) return mcError(33004);
      const wrong = wronglyTypedKey(config);
      if (wrong !== undefined) return mcError(33002, `The value of ${wrong} has the wrong type.`);
      const stored = applyForcedValues(config, device.supportsSharedIpad);
      device.cloudConfiguration = stored;
      device.supervised = stored.IsSupervised === true;
      if (stored.AllowPairing === false) {
        const n = device.pairings.size;
        device.pairings.clear();
        device.log.info('pairing disallowed: every pairing deleted', { deleted: n });
      }
      device.log.info('cloud configuration stored', { supervised: device.supervised });
      return ACK;
    }
    case 'Escalate': {
      const cert = req.SupervisorCertificate;
      s.escalated = false;
      s.challenge = undefined;
      if (!Buffer.isBuffer(cert) || !isSupervisorCertificate(device.cloudConfiguration, cert)) {
        s.escalationCertificate = undefined;
        return { Status: 'CertificateRejected' };
      }
      s.escalationCertificate = cert;
      s.challenge = randomBytes(8);
      return { ...ACK, Challenge: s.challenge };
    }
    case 'EscalateResponse': {
      const signed = req.SignedRequest;
      const challenge = s.challenge;
      const cert = s.escalationCertificate;
      s.challenge = undefined;
      if (!Buffer.isBuffer(signed) || challenge === undefined || cert === undefined)
        return { Status: 'SignedRequestRejected' };
      const v = verifyCms(signed);
      if (!v.ok) {
        device.log.info('escalation refused', { reason: v.reason });
        return { Status: 'SignedRequestRejected' };
      }
      const first = v.value.certificates[0];
      if (
        first === undefined ||
        !first.equals(cert) ||
        !v.value.signerCertificate.equals(cert) ||
        !v.value.content.equals(challenge)
      ) {
        device.log.info('escalation refused', { reason: 'not the escalation certificate or not the challenge' });
        return { Status: 'SignedRequestRejected' };
      }
      s.escalated = true;
      return ACK;
    }
    case 'ProceedWithKeybagMigration':
      if (!s.escalated) return device.supervised ? mcError(4025) : mcError(29000);
      return ACK;
    case 'InstallProfile':
      return install(device, req.Payload, 'usb', true);
    case 'InstallProfileSilent':
      if (!device.supervised) return mcError(29000);
      if (!s.escalated) return mcError(4025);
      return install(device, req.Payload, 'silent', false);
    case 'RemoveProfile': {
      const id = removeProfileIdentifier(req.ProfileIdentifier);
      if (id === undefined) return mcError(14000);
      const removed = device.profiles.find((p) => p.identifier === id);
      if (!device.removeProfile(id)) return mcError(4024);
      return removed === undefined ? ACK : checkOutProfile(device, removed.bytes).then(() => ACK);
    }
    case 'GetProfileList':
      return profileListReply(device.profiles);
    case 'StoreProfile': {
      if (req.Purpose !== 'PostSetupInstallation') return { Status: 'CommandFormatError' };
      const data = req.ProfileData;
      if (!Buffer.isBuffer(data) || data.length === 0) return { Status: 'ErrorPayloadEmpty' };
      const parsed = parseProfile(data, 'stored');
      if ('problem' in parsed) return mcError(parsed.problem.code, parsed.problem.text);
      device.storedProfile = parsed.profile;
      return ACK;
    }
    case 'GetStoredProfile':
      if (req.Purpose !== 'PostSetupInstallation') return { Status: 'CommandFormatError' };
      return device.storedProfile === null ? ACK : { ...ACK, ProfileData: device.storedProfile.bytes };
    case 'EraseDevice': {
      const keep = req.PreserveDataPlan;
      const disallow = req.DisallowProximitySetup;
      const isFlag = (v: unknown): boolean =>
        v === undefined || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'bigint';
      if (!isFlag(keep) || !isFlag(disallow)) return { Status: 'CommandFormatError' };
      device.log.info('erase requested', { preserveDataPlan: keep === true || Number(keep ?? 0) !== 0 });
      conn.afterReply(
        async () => {
          await device.timing.wait('detach');
          for (const p of device.profiles) await checkOutProfile(device, p.bytes, { always: true });
          device.powerEvent('erase');
        },
        { alsoWhenDropped: true },
      );
      return ACK;
    }
    case 'SetWiFiPowerState':
      return typeof req.PowerState === 'boolean' ? ACK : { Status: 'CommandFormatError' };
    default:
      return { Status: 'CommandFormatError' };
  }
}
