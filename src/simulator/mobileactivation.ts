/**
 * Activation on a virtual device (protocols.md §6): `com.apple.mobileactivationd` (one command per
 * connection, as libimobiledevice, pymobiledevice3 and go-ios use it; binary or XML plists in) and
 * what the lockdown legacy flow needs (`GetValue ActivationInfo`, `Activate`).
 *
 * Session mode: `CreateTunnel1SessionInfoRequest` gives `{CollectionBlob, HandshakeRequestMessage,
 * UniqueDeviceID}` for Apple's drmHandshake; `CreateTunnel1ActivationInfoRequest` takes the
 * handshake response body and gives the activation-info dictionary for deviceActivation (refused with
 * "Failed to establish session." when the handshake answer is not for this device's request);
 * `HandleActivationInfoWithSessionRequest` takes the deviceActivation response body and activates
 * when it carries an activation record for this device.
 *
 * Simulator convention: the handshake answer's `HandshakeResponseMessage` starts with
 * SHA-256("drm" ‖ HandshakeRequestMessage), and a session-mode activation info carries the
 * handshake's `serverKP` (a lockdown `ActivationInfo` does not), which is how the fake Apple server
 * tells the two flows apart. An activation record is accepted when its `AccountToken` names this
 * device's UDID.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { decodePlist, encodeXml, isPlistDict, type PlistDict, type PlistValue } from '../plist/index.ts';
import type { VirtualDevice } from './device.ts';
import { PlistConnection } from './plist-conn.ts';
import type { ServeOptions } from './services.ts';

/** `Error` text when the handshake does not belong to this device (real text, libideviceactivation#29). */
export const SESSION_ERROR =
  'Error Domain=com.apple.MobileActivation.ErrorDomain Code=-2 "Failed to establish session."';
/** `Error` text when the activation response carries no usable record. */
export const RECORD_ERROR =
  'Error Domain=com.apple.MobileActivation.ErrorDomain Code=-1 "Failed to handle activation response."';

/** The prefix of a HandshakeResponseMessage for `request` (see the module comment). */
export function handshakeDigest(request: Buffer): Buffer {
  return createHash('sha256').update('drm').update(request).digest();
}

/** The inner ActivationInfoXML dictionary of a device. */
function activationInfoXml(device: VirtualDevice): PlistDict {
  const id = device.identity;
  return {
    ActivationRequestInfo: {
      ActivationRandomness: randomUUID().toUpperCase(),
      ActivationState: device.activationState,
      FMiPAccountExists: device.activationLocked,
    },
    DeviceCertRequest: randomBytes(64),
    DeviceID: { SerialNumber: id.serial, UniqueDeviceID: id.udid },
    DeviceInfo: {
      BuildVersion: id.buildVersion,
      DeviceClass: id.model.deviceClass,
      DeviceVariant: 'A',
      ModelNumber: id.modelNumber,
      OSType: 'iPhone OS',
      ProductType: id.productType,
      ProductVersion: id.productVersion,
      RegionInfo: id.regionInfo,
      UniqueChipID: id.ecid,
    },
  };
}

/** The activation-info dictionary (lockdown `ActivationInfo`, or session mode with `serverKP`). */
export function activationInfo(device: VirtualDevice, serverKP?: Buffer): PlistDict {
  const info: PlistDict = {
    ActivationInfoComplete: true,
    ActivationInfoXML: encodeXml(activationInfoXml(device)),
    FairPlayCertChain: randomBytes(96),
    FairPlaySignature: randomBytes(128),
  };
  if (serverKP !== undefined) {
    info.serverKP = serverKP;
    info.RKCertification = randomBytes(64);
    info.RKSignature = randomBytes(64);
  }
  return info;
}

/** The activation record in a deviceActivation response body (plist, or HTML with an embedded plist). */
export function activationRecordFromBody(body: Buffer): PlistDict | undefined {
  let doc: PlistValue | undefined;
  try {
    doc = decodePlist(body);
  } catch {
    const m = /<plist[\s\S]*?<\/plist>/.exec(body.toString('utf8'));
    if (m === null) return undefined;
    try {
      doc = decodePlist(Buffer.from(m[0], 'utf8'));
    } catch {
      return undefined;
    }
  }
  if (!isPlistDict(doc)) return undefined;
  if (isPlistDict(doc.ActivationRecord)) return doc.ActivationRecord;
  for (const k of ['iphone-activation', 'device-activation']) {
    const node = doc[k];
    if (isPlistDict(node) && isPlistDict(node['activation-record'])) return node['activation-record'];
  }
  return undefined;
}

/** Activates the device with `record` when it is a record for this device; returns whether it did. */
export function acceptActivationRecord(device: VirtualDevice, record: PlistValue | undefined): boolean {
  if (!isPlistDict(record)) return false;
  const token = record.AccountToken;
  if (!Buffer.isBuffer(token) || !Buffer.isBuffer(record.AccountTokenSignature)) return false;
  if (!Buffer.isBuffer(record.DeviceCertificate) || !Buffer.isBuffer(record.AccountTokenCertificate)) return false;
  if (!token.toString('utf8').includes(`"UniqueDeviceID" = "${device.udid}";`)) return false;
  device.activationState = 'Activated';
  device.activationStateAcknowledged = false;
  device.log.info('activated');
  return true;
}

function handle(device: VirtualDevice, req: PlistDict): PlistDict {
  const command = typeof req.Command === 'string' ? req.Command : undefined;
  switch (command) {
    case 'GetActivationStateRequest':
      return { Value: device.activationState };
    case 'CreateTunnel1SessionInfoRequest': {
      const message = randomBytes(32);
      device.activationHandshake = message;
      return {
        Value: {
          CollectionBlob: encodeXml({ IngestBody: randomBytes(48), UniqueDeviceID: device.udid }),
          HandshakeRequestMessage: message,
          UniqueDeviceID: device.udid,
        },
      };
    }
    case 'CreateTunnel1ActivationInfoRequest':
    case 'CreateActivationInfoRequest': {
      const v = req.Value;
      const expected = device.activationHandshake;
      if (!Buffer.isBuffer(v) || expected === undefined) return { Error: SESSION_ERROR };
      let answer: PlistValue;
      try {
        answer = decodePlist(v);
      } catch {
        return { Error: SESSION_ERROR };
      }
      const msg = isPlistDict(answer) ? answer.HandshakeResponseMessage : undefined;
      if (!Buffer.isBuffer(msg) || !msg.subarray(0, 32).equals(handshakeDigest(expected)))
        return { Error: SESSION_ERROR };
      const kp = isPlistDict(answer) && Buffer.isBuffer(answer.serverKP) ? answer.serverKP : randomBytes(16);
      return { Value: activationInfo(device, kp) };
    }
    case 'HandleActivationInfoWithSessionRequest': {
      const v = req.Value;
      if (!Buffer.isBuffer(v)) return { Error: RECORD_ERROR };
      if (req.ActivationResponseHeaders !== undefined && !isPlistDict(req.ActivationResponseHeaders))
        return { Error: RECORD_ERROR };
      return acceptActivationRecord(device, activationRecordFromBody(v)) ? {} : { Error: RECORD_ERROR };
    }
    case 'HandleActivationInfoRequest':
      return acceptActivationRecord(device, req.Value) ? {} : { Error: RECORD_ERROR };
    case 'DeactivateRequest':
      device.activationState = 'Unactivated';
      device.activationStateAcknowledged = false;
      return {};
    default:
      return { Error: `Unknown command: ${command ?? '(none)'}` };
  }
}

/** Serves one mobileactivationd connection: one command, one reply, then the device closes. */
export function serveMobileActivation(device: VirtualDevice, socket: Socket, options: ServeOptions): void {
  let untrack: () => void = () => undefined;
  const conn = new PlistConnection({
    socket,
    faults: device.faults,
    timing: device.timing,
    log: device.log.child({ service: 'mobileactivationd' }),
    tls: options.tls,
    errorReply: (_req, code) => ({ Error: code }),
    handler: (req, c) => {
      c.afterReply(() => c.end());
      return Promise.resolve(handle(device, req));
    },
    onClose: () => untrack(),
  });
  untrack = device.track(conn);
}
