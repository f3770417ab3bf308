/**
 * Setup Assistant of a virtual device, as the person taps through it (`sim-ctl setup UDID complete`).
 *
 * At the Remote Management pane, when the cloud configuration has a `ConfigurationURL`, the device
 * enrolls itself (protocols.md Addendum): it POSTs its MachineInfo plist (`UDID`, `SERIAL`,
 * `PRODUCT`, `VERSION`, `OS_VERSION`, `LANGUAGE`, `DEVICE_NAME`, `MODEL`) CMS-signed by its identity
 * from the simulated Apple device CA, with `User-Agent: CloudConfiguration/1.0` and
 * `Content-Type: application/pkcs7-signature`. HTTPS trusts the configuration's
 * `AnchorCertificates` (else the system roots); plain HTTP only to a loopback host. A 401 with
 * `WWW-Authenticate: Basic` makes the device ask for a user name and password and post again with
 * them; a 200 with `application/x-apple-aspen-config` is the enrollment profile (signed or not),
 * installed at once. Then a stored profile (`StoreProfile`) is installed — one with an MDM payload
 * checks in first, as the enrollment URL's does, and a refused check-in fails setup — the skipped
 * panes are recorded and setup is complete.
 */
import http from 'node:http';
import https from 'node:https';
import { KitError } from '../errors.ts';
import { encodeXml, type PlistDict } from '../plist/index.ts';
import { derToPem, signCms } from './cms.ts';
import type { EnrollmentRecord, VirtualDevice } from './device.ts';
import { checkInAfterInstall, checkInInstalledProfile } from './mdm-checkin.ts';
import { parseProfile } from './profiles.ts';

/** Credentials typed at the Remote Management pane. */
export interface SetupCredentials {
  username: string;
  password: string;
}

/** What `setup complete` did. */
export interface SetupResult {
  setupComplete: true;
  enrollment: EnrollmentRecord | null;
  /** Identifiers of the profiles installed at setup (enrollment, then the stored profile). */
  installed: string[];
  skippedPanes: string[];
}

interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

function post(url: URL, body: Buffer, headers: Record<string, string>, anchors: string[]): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const options: https.RequestOptions = {
      method: 'POST',
      headers: { ...headers, 'Content-Length': String(body.length) },
      timeout: 15_000,
    };
    if (url.protocol === 'https:' && anchors.length > 0) options.ca = anchors;
    const req = (url.protocol === 'https:' ? https : http).request(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('the enrollment server did not answer in time')));
    req.on('error', reject);
    req.end(body);
  });
}

/** The MachineInfo plist a device posts. */
export function machineInfo(device: VirtualDevice): PlistDict {
  const id = device.identity;
  return {
    UDID: id.udid,
    SERIAL: id.serial,
    PRODUCT: id.productType,
    VERSION: id.buildVersion,
    OS_VERSION: id.productVersion,
    LANGUAGE: device.language,
    DEVICE_NAME: device.deviceName,
    MODEL: id.model.name,
  };
}

async function enroll(
  device: VirtualDevice,
  configurationUrl: string,
  credentials: SetupCredentials | undefined,
): Promise<{ record: EnrollmentRecord; installed: string | undefined }> {
  const record: EnrollmentRecord = {
    url: configurationUrl,
    status: 'failed',
    httpStatus: null,
    attempts: 0,
    authenticated: false,
    profileIdentifier: null,
    error: null,
    at: new Date().toISOString(),
  };
  const fail = (code: 'sim/setup-needs-credentials' | 'sim/setup-failed', message: string): never => {
    record.error = message;
    record.status = code === 'sim/setup-needs-credentials' ? 'needs-credentials' : 'failed';
    device.enrollment = record;
    throw new KitError(code, message, { udid: device.udid, details: { url: configurationUrl } });
  };
  let url: URL;
  try {
    url = new URL(configurationUrl);
  } catch {
    return fail('sim/setup-failed', `ConfigurationURL "${configurationUrl}" is not a URL`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK.has(url.hostname))) {
    return fail(
      'sim/setup-failed',
      `ConfigurationURL must be https (plain http only to 127.0.0.1): ${configurationUrl}`,
    );
  }
  const anchorList = device.cloudConfiguration?.AnchorCertificates;
  const anchors = Array.isArray(anchorList) ? anchorList.filter((c) => Buffer.isBuffer(c)).map((c) => derToPem(c)) : [];
  const identity = await device.identityCertificate();
  const body = signCms(encodeXml(machineInfo(device)), identity.certificatePem, identity.privateKeyPem);
  const headers: Record<string, string> = {
    'User-Agent': 'CloudConfiguration/1.0',
    'Content-Type': 'application/pkcs7-signature',
    Accept: '*/*',
  };
  let answer: HttpAnswer | undefined;
  for (;;) {
    record.attempts++;
    try {
      answer = await post(url, body, headers, anchors);
    } catch (err) {
      return fail(
        'sim/setup-failed',
        `the enrollment server could not be reached: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    record.httpStatus = answer.status;
    const challenge = String(answer.headers['www-authenticate'] ?? '');
    if (answer.status === 401 && /^\s*basic\b/i.test(challenge)) {
      if (record.authenticated)
        return fail('sim/setup-failed', 'the enrollment server refused the user name and password (401)');
      if (credentials === undefined) {
        return fail(
          'sim/setup-needs-credentials',
          'the Remote Management pane asks for a user name and password (401 with WWW-Authenticate: Basic)',
        );
      }
      headers.Authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`, 'utf8').toString('base64')}`;
      record.authenticated = true;
      continue;
    }
    break;
  }
  const type = String(answer.headers['content-type'] ?? '')
    .split(';')[0]
    ?.trim()
    .toLowerCase();
  if (answer.status !== 200) return fail('sim/setup-failed', `the enrollment server answered HTTP ${answer.status}`);
  if (type !== 'application/x-apple-aspen-config') {
    return fail(
      'sim/setup-failed',
      `the enrollment server answered ${type === '' ? 'no content type' : type}, not application/x-apple-aspen-config (the device shows "Invalid Profile")`,
    );
  }
  const parsed = parseProfile(answer.body, 'enrollment');
  if ('problem' in parsed)
    return fail('sim/setup-failed', `the enrollment profile was refused: ${parsed.problem.text}`);
  // Installing an MDM payload checks the device in; a refused check-in fails the installation.
  const checkIn = await checkInAfterInstall(device, answer.body);
  if (checkIn !== undefined) record.checkIn = checkIn;
  if (checkIn?.status === 'failed')
    return fail('sim/setup-failed', `the MDM server refused the check-in: ${checkIn.error ?? 'unknown reason'}`);
  device.installProfile(parsed.profile);
  record.status = 'installed';
  record.profileIdentifier = parsed.profile.identifier;
  device.enrollment = record;
  return { record, installed: parsed.profile.identifier };
}

/** `sim-ctl setup UDID complete`; see the module comment. */
export async function completeSetup(device: VirtualDevice, credentials?: SetupCredentials): Promise<SetupResult> {
  if (device.setupComplete) {
    throw new KitError('sim/invalid-state', `device ${device.udid} has already finished Setup Assistant`, {
      udid: device.udid,
    });
  }
  if (device.activationState === 'Unactivated') {
    throw new KitError(
      'sim/invalid-state',
      `device ${device.udid} is not activated: Setup Assistant stops at the activation pane`,
      { udid: device.udid },
    );
  }
  const installed: string[] = [];
  const config = device.cloudConfiguration;
  let enrollment: EnrollmentRecord | null = null;
  const url = config?.ConfigurationURL;
  if (typeof url === 'string' && url !== '') {
    const r = await enroll(device, url, credentials);
    enrollment = r.record;
    if (r.installed !== undefined) installed.push(r.installed);
  }
  const stored = device.storedProfile;
  if (stored !== null) {
    const checkIn = await checkInInstalledProfile(device, stored.bytes, stored.identifier);
    if (checkIn?.status === 'failed') {
      throw new KitError(
        'sim/setup-failed',
        `the MDM server refused the check-in: ${checkIn.error ?? 'unknown reason'}`,
        {
          udid: device.udid,
          details: { url: checkIn.url },
        },
      );
    }
    device.installProfile({ ...stored, source: 'stored', at: new Date().toISOString() });
    installed.push(stored.identifier);
    device.storedProfile = null;
    if (device.cloudConfiguration !== null) device.cloudConfiguration.PostSetupProfileWasInstalled = true;
  }
  const skip = config?.SkipSetup;
  const skippedPanes = Array.isArray(skip) ? skip.filter((x): x is string => typeof x === 'string') : [];
  if (device.cloudConfiguration !== null) {
    device.cloudConfiguration.CloudConfigurationUIComplete = true;
    device.cloudConfiguration.ConfigurationWasApplied = true;
  }
  device.skippedPanes = skippedPanes;
  device.setupComplete = true;
  device.log.info('setup complete', { enrolled: enrollment?.status ?? 'no', installed });
  return { setupComplete: true, enrollment, installed, skippedPanes };
}
