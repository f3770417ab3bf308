/**
 * MDM check-in of a virtual device, right after it installed a profile holding a `com.apple.mdm`
 * payload (Apple's MDM check-in protocol): `Authenticate` (`UDID`, `SerialNumber`, `Topic`,
 * `OSVersion`, `BuildVersion`, `ProductName`, `Model`, `ModelName`, `DeviceName`), then `TokenUpdate`
 * (`Token`, `PushMagic`, `UnlockToken`, `AwaitingConfiguration`), each an XML plist PUT to the
 * payload's `CheckInURL` (`ServerURL` when absent) with `Content-Type:
 * application/x-apple-aspen-mdm-checkin`. The identity is the payload named by
 * `IdentityCertificateUUID` (a `com.apple.security.pkcs12` payload, opened with its `Password`);
 * with `SignMessage` the body's detached CMS signature by that identity goes in the `Mdm-Signature`
 * header (base64), which is how a server without client TLS knows the device.
 *
 * The same check-in happens whichever way the profile arrived: from the enrollment URL at Setup
 * Assistant, staged with `StoreProfile` and installed when Setup Assistant completes, or installed
 * over MCInstall (`InstallProfile` during Setup Assistant, `InstallProfileSilent`). `CheckOut`
 * (`UDID`, `Topic`) is sent when such a profile is removed (`CheckOutWhenRemoved`) and when the
 * device is erased ({@link checkOutProfile}).
 *
 * Only plain-HTTP loopback check-in URLs are contacted (the virtual fleet talks to local test
 * servers); other URLs are left alone (`skipped`). A non-200 answer is a failed enrollment: a real
 * device refuses to install the MDM profile when the server rejects `Authenticate`.
 */
import http from 'node:http';
import { randomBytes, randomUUID } from 'node:crypto';
import forge from 'node-forge';
import {
  decodePlist,
  encodeXml,
  isPlistDict,
  readSignedPlist,
  type PlistDict,
  type PlistValue,
} from '../plist/index.ts';
import { signCms } from './cms.ts';
import type { VirtualDevice } from './device.ts';

/** What the device's check-in did (`state.enrollment.checkIn`). */
export interface CheckInRecord {
  /** `enrolled` (Authenticate and TokenUpdate answered 200), `skipped` (not a loopback http URL), `failed`. */
  status: 'enrolled' | 'skipped' | 'failed';
  url: string;
  /** The check-in messages answered 200, in order. */
  messages: string[];
  httpStatus: number | null;
  error: string | null;
  at: string;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

function put(url: URL, body: Buffer, headers: Record<string, string>): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: 'PUT', headers: { ...headers, 'Content-Length': String(body.length) }, timeout: 15_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('the MDM server did not answer in time')));
    req.on('error', reject);
    req.end(body);
  });
}

function profileContent(bytes: Buffer): PlistDict | undefined {
  try {
    const v: PlistValue = bytes[0] === 0x30 ? readSignedPlist(bytes).content : decodePlist(bytes);
    return isPlistDict(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** The `com.apple.mdm` payload of a profile, and the payload list it sits in; undefined when none. */
export function mdmPayloadOf(bytes: Buffer): { mdm: PlistDict; payloads: PlistDict[] } | undefined {
  const content = profileContent(bytes);
  const list = content?.PayloadContent;
  if (!Array.isArray(list)) return undefined;
  const payloads = list.filter((p): p is PlistDict => isPlistDict(p));
  const mdm = payloads.find((p) => p.PayloadType === 'com.apple.mdm');
  return mdm === undefined ? undefined : { mdm, payloads };
}

function identityOf(payloads: PlistDict[], uuid: PlistValue | undefined): { certPem: string; keyPem: string } {
  const p = payloads.find((x) => x.PayloadUUID === uuid);
  if (p === undefined) throw new Error('IdentityCertificateUUID names no payload of the profile');
  if (p.PayloadType !== 'com.apple.security.pkcs12' || !Buffer.isBuffer(p.PayloadContent))
    throw new Error('the identity payload is not a com.apple.security.pkcs12 payload with data');
  const password = typeof p.Password === 'string' ? p.Password : '';
  const p12 = forge.pkcs12.pkcs12FromAsn1(
    forge.asn1.fromDer(forge.util.createBuffer(p.PayloadContent.toString('binary'))),
    password,
  );
  const cert = p12.getBags({ bagType: forge.pki.oids.certBag as string })[forge.pki.oids.certBag as string]?.[0]?.cert;
  const keyBag =
    p12.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag as string })[
      forge.pki.oids.pkcs8ShroudedKeyBag as string
    ]?.[0] ?? p12.getBags({ bagType: forge.pki.oids.keyBag as string })[forge.pki.oids.keyBag as string]?.[0];
  if (cert === undefined || keyBag?.key === undefined)
    throw new Error('the identity PKCS#12 holds no certificate and key');
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keyBag.key) };
}

/** The `Mdm-Signature` header for `body`: its detached CMS signature by the identity, base64. */
function mdmSignature(body: Buffer, identity: { certPem: string; keyPem: string }): string {
  return signCms(body, identity.certPem, identity.keyPem, { detached: true }).toString('base64');
}

/**
 * Checks the device in at the MDM payload of `profileBytes` (see the module comment). Returns
 * undefined when the profile has no `com.apple.mdm` payload. Never throws: failures are recorded.
 */
export async function checkInAfterInstall(
  device: VirtualDevice,
  profileBytes: Buffer,
): Promise<CheckInRecord | undefined> {
  const found = mdmPayloadOf(profileBytes);
  if (found === undefined) return undefined;
  const { mdm, payloads } = found;
  const target = typeof mdm.CheckInURL === 'string' ? mdm.CheckInURL : mdm.ServerURL;
  const record: CheckInRecord = {
    status: 'failed',
    url: typeof target === 'string' ? target : '',
    messages: [],
    httpStatus: null,
    error: null,
    at: new Date().toISOString(),
  };
  let url: URL;
  try {
    url = new URL(record.url);
  } catch {
    record.error = 'the MDM payload has no valid CheckInURL or ServerURL';
    return record;
  }
  if (url.protocol !== 'http:' || !LOOPBACK.has(url.hostname)) {
    record.status = 'skipped';
    return record;
  }
  const topic = typeof mdm.Topic === 'string' ? mdm.Topic : '';
  const id = device.identity;
  const messages: PlistDict[] = [
    {
      MessageType: 'Authenticate',
      Topic: topic,
      UDID: id.udid,
      SerialNumber: id.serial,
      OSVersion: id.productVersion,
      BuildVersion: id.buildVersion,
      ProductName: id.productType,
      Model: id.productType,
      ModelName: id.model.name,
      DeviceName: device.deviceName,
    },
    {
      MessageType: 'TokenUpdate',
      Topic: topic,
      UDID: id.udid,
      Token: randomBytes(32),
      PushMagic: randomUUID().toUpperCase(),
      UnlockToken: randomBytes(64),
      AwaitingConfiguration: false,
    },
  ];
  try {
    const identity = identityOf(payloads, mdm.IdentityCertificateUUID);
    for (const message of messages) {
      const body = encodeXml(message);
      const headers: Record<string, string> = {
        'Content-Type': 'application/x-apple-aspen-mdm-checkin',
        'User-Agent': 'MDM/1.0',
      };
      if (mdm.SignMessage === true) headers['Mdm-Signature'] = mdmSignature(body, identity);
      const answer = await put(url, body, headers);
      record.httpStatus = answer.status;
      if (answer.status !== 200) {
        record.error = `${String(message.MessageType)} answered HTTP ${answer.status}: ${answer.body.toString('utf8').slice(0, 300)}`;
        return record;
      }
      record.messages.push(String(message.MessageType));
    }
    record.status = 'enrolled';
    return record;
  } catch (err) {
    record.error = err instanceof Error ? err.message : String(err);
    return record;
  } finally {
    device.log.info('mdm check-in', { status: record.status, messages: record.messages });
  }
}

/**
 * Sends `CheckOut` for an MDM profile being removed (or wiped with the device) when its payload has
 * `CheckOutWhenRemoved` (erase: `always`). Returns undefined for a profile without an MDM payload
 * or without the flag. Never throws: failures are recorded (the profile goes anyway).
 */
export async function checkOutProfile(
  device: VirtualDevice,
  profileBytes: Buffer,
  options: { always?: boolean } = {},
): Promise<CheckInRecord | undefined> {
  const found = mdmPayloadOf(profileBytes);
  if (found === undefined) return undefined;
  const { mdm, payloads } = found;
  if (mdm.CheckOutWhenRemoved !== true && options.always !== true) return undefined;
  const target = typeof mdm.CheckInURL === 'string' ? mdm.CheckInURL : mdm.ServerURL;
  const record: CheckInRecord = {
    status: 'failed',
    url: typeof target === 'string' ? target : '',
    messages: [],
    httpStatus: null,
    error: null,
    at: new Date().toISOString(),
  };
  try {
    const url = new URL(record.url);
    if (url.protocol !== 'http:' || !LOOPBACK.has(url.hostname)) {
      record.status = 'skipped';
      return record;
    }
    const body = encodeXml({
      MessageType: 'CheckOut',
      Topic: typeof mdm.Topic === 'string' ? mdm.Topic : '',
      UDID: device.identity.udid,
    });
    const headers: Record<string, string> = {
      'Content-Type': 'application/x-apple-aspen-mdm-checkin',
      'User-Agent': 'MDM/1.0',
    };
    if (mdm.SignMessage === true) {
      const identity = identityOf(payloads, mdm.IdentityCertificateUUID);
      headers['Mdm-Signature'] = mdmSignature(body, identity);
    }
    const answer = await put(url, body, headers);
    record.httpStatus = answer.status;
    if (answer.status !== 200) {
      record.error = `CheckOut answered HTTP ${answer.status}`;
      return record;
    }
    record.messages.push('CheckOut');
    record.status = 'enrolled';
    return record;
  } catch (err) {
    record.error = err instanceof Error ? err.message : String(err);
    return record;
  } finally {
    device.log.info('mdm check-out', { status: record.status });
  }
}

/**
 * Checks in after a profile installed other than through the enrollment URL (staged, MCInstall):
 * records the check-in in `state.enrollment` when the device has no enrollment record yet (or the
 * record is of an earlier staged/MCInstall install). Returns the check-in, undefined for a profile
 * without an MDM payload.
 */
export async function checkInInstalledProfile(
  device: VirtualDevice,
  profileBytes: Buffer,
  identifier: string,
): Promise<CheckInRecord | undefined> {
  const checkIn = await checkInAfterInstall(device, profileBytes);
  if (checkIn === undefined) return undefined;
  if (device.enrollment === null || device.enrollment.url === checkIn.url) {
    device.enrollment = {
      url: checkIn.url,
      status: checkIn.status === 'failed' ? 'failed' : 'installed',
      httpStatus: checkIn.httpStatus,
      attempts: 0,
      authenticated: false,
      profileIdentifier: identifier,
      error: checkIn.error,
      at: checkIn.at,
      checkIn,
    };
  }
  return checkIn;
}
