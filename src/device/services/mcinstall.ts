/**
 * MCInstall (`com.apple.mobile.MCInstall`, protocols.md §4): cloud configuration, escalation with
 * the supervision identity, configuration profiles, the stored post-setup profile, and erase.
 *
 * Transport: lockdown `StartService` in a session (TLS when the device asks), framed plists, one
 * request `{RequestType, …}` → one reply. Success is `Status: "Acknowledged"`; everything else
 * becomes a KitError through the one table below ({@link MCINSTALL_ERROR_TABLE} for `ErrorChain`
 * codes, {@link MCINSTALL_STATUS_CODES} for literal statuses). Apple's key names stay in this file;
 * callers get camelCase types (the cloud configuration itself is Apple's dictionary, by design).
 */
import { KitError, type ErrorCode } from '../../errors.ts';
import { createLogger, type Logger } from '../../log.ts';
import { encodeXml, isPlistDict, type PlistDict, type PlistValue } from '../../plist/index.ts';
import type { LockdownClient } from '../lockdown.ts';
import type { SupervisorCredentials } from '../pairing.ts';
import type { ServiceConnection } from '../service.ts';

/** The lockdown service name. */
export const MCINSTALL_SERVICE = 'com.apple.mobile.MCInstall';

/** `ProceedWithKeybagMigration` may wait for a keybag roll of up to 300 s on the device (§4.4). */
const KEYBAG_MIGRATION_TIMEOUT_MS = 310_000;

/**
 * The one table from MCInstall `ErrorChain` codes to station codes (§4.2 and the Addendum). Rows are
 * inclusive code ranges, first match wins; codes in no row become `mcinstall/failed` with the
 * domain and number kept in the message and details.
 */
export const MCINSTALL_ERROR_TABLE: readonly {
  readonly from: number;
  readonly to: number;
  readonly code: ErrorCode;
  readonly meaning: string;
}[] = [
  { from: 14001, to: 14001, code: 'mcinstall/device-locked', meaning: 'the device is locked' },
  {
    from: 14002,
    to: 14002,
    code: 'mcinstall/cloud-config-present',
    meaning: 'a cloud configuration is already stored',
  },
  { from: 14000, to: 14099, code: 'mcinstall/failed', meaning: 'MCTunnel request refused' },
  { from: 33003, to: 33003, code: 'mcinstall/not-activated', meaning: 'the device is not activated' },
  {
    from: 33004,
    to: 33004,
    code: 'mcinstall/ade-assigned',
    meaning: 'the device has an Automated Device Enrollment assignment',
  },
  { from: 33000, to: 33099, code: 'mcinstall/failed', meaning: 'cloud configuration refused' },
  { from: 4009, to: 4009, code: 'mcinstall/device-locked', meaning: 'the device is locked' },
  { from: 4024, to: 4024, code: 'mcinstall/profile-not-found', meaning: 'no such profile' },
  { from: 4025, to: 4025, code: 'mcinstall/not-escalated', meaning: 'supervised request without escalation' },
  { from: 4000, to: 4099, code: 'mcinstall/profile-rejected', meaning: 'profile installation refused' },
  { from: 1000, to: 1099, code: 'mcinstall/profile-rejected', meaning: 'malformed or badly signed profile' },
  { from: 29000, to: 29000, code: 'mcinstall/not-supervised', meaning: 'the device is not supervised' },
];

/** Literal `Status` values other than `Acknowledged`/`Error` (§4.2) → code. */
export const MCINSTALL_STATUS_CODES: Readonly<Record<string, ErrorCode>> = {
  CertificateRejected: 'mcinstall/escalation-rejected',
  SignedRequestRejected: 'mcinstall/escalation-rejected',
  ErrorPayloadEmpty: 'mcinstall/profile-rejected',
  CommandFormatError: 'mcinstall/failed',
  ProvisionalEnrollmentRejected: 'mcinstall/failed',
  NonceNotReceived: 'mcinstall/failed',
};

/** One `ErrorChain` entry. */
export interface McInstallErrorItem {
  readonly code: number;
  readonly domain: string | null;
  readonly description: string | null;
}

function errorItems(chain: PlistValue | undefined): McInstallErrorItem[] {
  if (!Array.isArray(chain)) return [];
  const out: McInstallErrorItem[] = [];
  for (const e of chain) {
    if (!isPlistDict(e)) continue;
    const c = e.ErrorCode;
    const code = typeof c === 'number' ? c : typeof c === 'bigint' ? Number(c) : NaN;
    if (!Number.isFinite(code)) continue;
    const d = e.USEnglishDescription ?? e.LocalizedDescription;
    out.push({
      code,
      domain: typeof e.ErrorDomain === 'string' ? e.ErrorDomain : null,
      description: typeof d === 'string' ? d : null,
    });
  }
  return out;
}

function codeFor(n: number): { code: ErrorCode; meaning: string } | undefined {
  return MCINSTALL_ERROR_TABLE.find((r) => n >= r.from && n <= r.to);
}

/**
 * The KitError for an MCInstall reply whose `Status` is not `Acknowledged`: `ErrorChain` codes
 * through {@link MCINSTALL_ERROR_TABLE} (the first entry the table knows, else the first entry),
 * literal statuses through {@link MCINSTALL_STATUS_CODES}; anything unknown is `mcinstall/failed`
 * with the status, domain and number kept.
 */
export function mcInstallError(request: string, reply: PlistDict, udid?: string): KitError {
  const status = typeof reply.Status === 'string' ? reply.Status : null;
  const items = errorItems(reply.ErrorChain);
  const where = udid !== undefined ? { udid } : {};
  const item = items.find((i) => codeFor(i.code) !== undefined) ?? items[0];
  if (item !== undefined) {
    const row = codeFor(item.code);
    const text = `${item.domain ?? 'unknown domain'} ${item.code}${item.description !== null ? ` "${item.description}"` : ''}`;
    return new KitError(
      row?.code ?? 'mcinstall/failed',
      `MCInstall ${request} failed: ${text}${row !== undefined ? ` (${row.meaning})` : ''}`,
      { ...where, details: { request, status, errorDomain: item.domain, errorCode: item.code } },
    );
  }
  const byStatus =
    status !== null && Object.prototype.hasOwnProperty.call(MCINSTALL_STATUS_CODES, status)
      ? MCINSTALL_STATUS_CODES[status]
      : undefined;
  return new KitError(byStatus ?? 'mcinstall/failed', `MCInstall ${request} answered ${status ?? 'no Status'}`, {
    ...where,
    details: { request, status, errorDomain: null, errorCode: null },
  });
}

/** One installed configuration profile (`GetProfileList`). */
export interface McProfileInfo {
  /** `PayloadIdentifier`. */
  readonly identifier: string;
  /** `PayloadUUID`, null when the device does not say. */
  readonly uuid: string | null;
  readonly displayName: string | null;
  readonly description: string | null;
  readonly organization: string | null;
  /** `PayloadVersion`, null when absent. */
  readonly version: number | null;
  /** `PayloadRemovalDisallowed`. */
  readonly removalDisallowed: boolean;
  /** `ProfileManifest.IsActive`, null when absent. */
  readonly active: boolean | null;
}

/** Flags of `EraseDevice` (§4.3). Absent `preserveDataPlan` erases the data plan, like the device. */
export interface EraseDeviceOptions {
  readonly preserveDataPlan?: boolean;
  readonly disallowProximitySetup?: boolean;
}

/** The purpose of a stored profile; the device knows only this one. */
export type StoredProfilePurpose = 'PostSetupInstallation';

function str(v: PlistValue | undefined): string | null {
  return typeof v === 'string' ? v : null;
}

/** Parses a `GetProfileList` reply (order of `OrderedIdentifiers`, then any others). */
export function parseProfileList(reply: PlistDict): McProfileInfo[] {
  const manifest = isPlistDict(reply.ProfileManifest) ? reply.ProfileManifest : {};
  const metadata = isPlistDict(reply.ProfileMetadata) ? reply.ProfileMetadata : {};
  const ordered = Array.isArray(reply.OrderedIdentifiers)
    ? reply.OrderedIdentifiers.filter((x): x is string => typeof x === 'string')
    : [];
  const ids = [...new Set([...ordered, ...Object.keys(metadata), ...Object.keys(manifest)])];
  return ids.map((identifier) => {
    const meta = isPlistDict(metadata[identifier]) ? (metadata[identifier] as PlistDict) : {};
    const man = isPlistDict(manifest[identifier]) ? (manifest[identifier] as PlistDict) : {};
    const v = meta.PayloadVersion;
    return {
      identifier,
      uuid: str(meta.PayloadUUID),
      displayName: str(meta.PayloadDisplayName),
      description: str(meta.PayloadDescription) ?? str(man.Description),
      organization: str(meta.PayloadOrganization),
      version: typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : null,
      removalDisallowed: meta.PayloadRemovalDisallowed === true,
      active: typeof man.IsActive === 'boolean' ? man.IsActive : null,
    };
  });
}

/**
 * One MCInstall connection.
 *
 * Lifecycle: {@link McInstallClient.start} (or the constructor over a started service) → requests,
 * one at a time → {@link close}. An escalation ({@link escalate}) lasts as long as this connection;
 * after an erase, a restart or an unplug, start a new client and escalate again.
 *
 * Errors: the codes of {@link mcInstallError} (`mcinstall/cloud-config-present`,
 * `mcinstall/not-activated`, `mcinstall/ade-assigned`, `mcinstall/device-locked`,
 * `mcinstall/escalation-rejected`, `mcinstall/not-escalated`, `mcinstall/not-supervised`,
 * `mcinstall/profile-rejected`, `mcinstall/profile-not-found`, `mcinstall/failed`), plus the
 * channel's `device/timeout`, `device/connection-lost`, `device/bad-reply`.
 */
export class McInstallClient {
  readonly udid: string;
  private readonly conn: ServiceConnection;
  private readonly log: Logger;
  private escalatedWith: Buffer | undefined;

  constructor(conn: ServiceConnection, udid: string) {
    this.conn = conn;
    this.udid = udid;
    this.log = createLogger('device/mcinstall', { udid });
  }

  /**
   * Starts MCInstall through a lockdown client that is in a session.
   * @throws the lockdown StartService codes (`lockdown/invalid-service`, `lockdown/session-inactive` …).
   */
  static async start(lockdown: LockdownClient, options: { escrowBag?: Buffer } = {}): Promise<McInstallClient> {
    const conn = await lockdown.startService(
      MCINSTALL_SERVICE,
      options.escrowBag !== undefined ? { escrowBag: options.escrowBag } : {},
    );
    return new McInstallClient(conn, lockdown.udid);
  }

  /** True once {@link escalate} succeeded on this connection. */
  get escalated(): boolean {
    return this.escalatedWith !== undefined;
  }

  private async call(request: string, extra: PlistDict = {}, timeoutMs?: number): Promise<PlistDict> {
    const reply = await this.conn.request(
      { RequestType: request, ...extra },
      timeoutMs !== undefined ? { timeoutMs } : {},
    );
    if (reply.Status === 'Acknowledged') return reply;
    const err = mcInstallError(request, reply, this.udid);
    this.log.info('request refused', { request, code: err.code, status: err.details?.status ?? null });
    throw err;
  }

  /** `HelloHostIdentifier` (a no-op on the device; Apple's tools interleave it). */
  async helloHostIdentifier(): Promise<void> {
    await this.call('HelloHostIdentifier');
  }

  /** `Flush`: flushes the device's MDM command queue. */
  async flush(): Promise<void> {
    await this.call('Flush');
  }

  /** `GetCloudConfiguration`: the stored configuration (Apple's keys), or null when none is stored. */
  async getCloudConfiguration(): Promise<PlistDict | null> {
    const reply = await this.call('GetCloudConfiguration');
    const cc = reply.CloudConfiguration;
    return isPlistDict(cc) && Object.keys(cc).length > 0 ? cc : null;
  }

  /**
   * `SetCloudConfiguration`. Works once per erase: `mcinstall/cloud-config-present` (14002) when one
   * is stored, `mcinstall/not-activated` (33003), `mcinstall/ade-assigned` (33004),
   * `mcinstall/failed` (33002 wrong types …). With `AllowPairing` false the device deletes its
   * pairings: the lockdown session and this host's record stop working.
   */
  async setCloudConfiguration(configuration: PlistDict): Promise<void> {
    await this.call('SetCloudConfiguration', { CloudConfiguration: configuration });
    this.log.info('cloud configuration stored');
  }

  /**
   * Escalation (§4.4): `Escalate` with the supervisor certificate → `Challenge` → `EscalateResponse`
   * with the challenge signed by `sign` (CMS, content attached, certificate embedded) →
   * `ProceedWithKeybagMigration`. Unlocks the supervised requests on this connection.
   * @throws KitError `mcinstall/escalation-rejected` (`CertificateRejected`: the device is not
   * supervised by this certificate; `SignedRequestRejected`: the signature was refused),
   * `device/bad-reply` (no challenge).
   */
  async escalate(supervisorCertificateDer: Buffer, sign: SupervisorCredentials['sign']): Promise<void> {
    const reply = await this.call('Escalate', { SupervisorCertificate: supervisorCertificateDer });
    const challenge = reply.Challenge;
    if (!(challenge instanceof Buffer) || challenge.length === 0) {
      throw new KitError('device/bad-reply', 'MCInstall Escalate was acknowledged without a Challenge', {
        udid: this.udid,
      });
    }
    const signed = await sign(challenge);
    await this.call('EscalateResponse', { SignedRequest: signed });
    await this.call('ProceedWithKeybagMigration', {}, KEYBAG_MIGRATION_TIMEOUT_MS);
    this.escalatedWith = supervisorCertificateDer;
    this.log.info('escalated');
  }

  /**
   * `InstallProfile`: an interactive install (`.mobileconfig` bytes, signed or not). On a device
   * past Setup Assistant the person approves it in Settings. @throws `mcinstall/profile-rejected`,
   * `mcinstall/device-locked` …
   */
  async installProfile(profile: Buffer): Promise<void> {
    await this.call('InstallProfile', { Payload: profile });
  }

  /**
   * `InstallProfileSilent`: installs without any prompt; needs {@link escalate} on this connection.
   * @throws KitError `mcinstall/not-escalated` (the device refused: no escalation),
   * `mcinstall/not-supervised`, `mcinstall/profile-rejected` …
   */
  async installProfileSilent(profile: Buffer): Promise<void> {
    await this.call('InstallProfileSilent', { Payload: profile });
  }

  /** `GetProfileList`: the installed profiles (profiles waiting for approval are not listed). */
  async getProfileList(): Promise<McProfileInfo[]> {
    return parseProfileList(await this.call('GetProfileList'));
  }

  /**
   * `RemoveProfile` by `PayloadIdentifier`: sends pymobiledevice3's form (an XML plist naming the
   * profile with its `PayloadUUID`/`PayloadVersion` from {@link getProfileList}).
   * @throws KitError `mcinstall/profile-not-found` (4024), `mcinstall/failed` …
   */
  async removeProfile(identifier: string): Promise<void> {
    const listed = (await this.getProfileList()).find((p) => p.identifier === identifier);
    const ref: PlistDict = { PayloadType: 'Configuration', PayloadIdentifier: identifier };
    if (listed?.uuid != null) ref.PayloadUUID = listed.uuid;
    if (listed?.version != null) ref.PayloadVersion = listed.version;
    await this.call('RemoveProfile', { ProfileIdentifier: encodeXml(ref) });
    this.log.info('profile removed', { identifier });
  }

  /**
   * `StoreProfile`: stages a profile for installation after Setup Assistant.
   * @throws KitError `mcinstall/failed` (`CommandFormatError`, setup already complete …), `mcinstall/profile-rejected`.
   */
  async storeProfile(profile: Buffer, purpose: StoredProfilePurpose = 'PostSetupInstallation'): Promise<void> {
    await this.call('StoreProfile', { ProfileData: profile, Purpose: purpose });
  }

  /**
   * `GetStoredProfile`: the staged profile's bytes, or null when none is staged. The reply key is
   * not confirmed by any public client: `ProfileData` (what StoreProfile takes) is read.
   */
  async getStoredProfile(purpose: StoredProfilePurpose = 'PostSetupInstallation'): Promise<Buffer | null> {
    const reply = await this.call('GetStoredProfile', { Purpose: purpose });
    const data = reply.ProfileData;
    return data instanceof Buffer && data.length > 0 ? data : null;
  }

  /**
   * `EraseDevice` (§4.3, §7.1): the device acknowledges, then wipes itself and reboots; the
   * connection drops (a drop right after the request counts as acknowledged, as pymobiledevice3 and
   * go-ios treat it). The connection is closed afterwards.
   * @throws KitError `mcinstall/device-locked`, `mcinstall/failed`.
   */
  async eraseDevice(options: EraseDeviceOptions = {}): Promise<void> {
    const flags: PlistDict = {};
    if (options.preserveDataPlan !== undefined) flags.PreserveDataPlan = options.preserveDataPlan;
    if (options.disallowProximitySetup !== undefined) flags.DisallowProximitySetup = options.disallowProximitySetup;
    try {
      await this.call('EraseDevice', flags);
      this.log.info('erase acknowledged');
    } catch (err) {
      if (!(err instanceof KitError && err.code === 'device/connection-lost')) throw err;
      this.log.info('the connection dropped after EraseDevice; the erase is under way');
    } finally {
      this.close();
    }
  }

  /** Closes the connection (an escalation ends with it). */
  close(): void {
    this.escalatedWith = undefined;
    this.conn.close();
  }
}
