/**
 * The kitting pipeline's view of the MDM (issue #6, domain.md steps 2 and 8): a small port the
 * steps use, built over the station's {@link MdmClient} and store.
 *
 * - {@link MdmPort}: `getDevice` (check-mdm) and `inactivate` (a forced inactivation the technician
 *   asked for when re-kitting).
 * - {@link openMdmClient}: the configured MDM (`kitting sync config`: URL in the settings, token
 *   sealed by the vault), or null.
 * - {@link mdmEnrollmentProfileSource}: the group's enrollment profile fetched with the group's
 *   credentials (password from the vault) and cached with its fetch time; offline, the cached one.
 * - {@link resolveMdmEnrollmentUrl}: the enrollment URL of a blueprint whose group hides the
 *   authentication screen becomes the MDM's group-specific URL (cached for offline runs); a URL that
 *   is only the MDM's host is discovered through `/MDMServiceConfig`.
 * - {@link refreshEnrollmentConfirmations}: "enrollment confirmed" for finished devices, from
 *   `GET /v1/devices/{serial}`.
 * - {@link checkGroupCredentials}: the credentials check a blueprint gets when it is saved.
 *
 * Group passwords: a blueprint's `passwordRef` `secret:ID` names the password stored with
 * `saveGroupPassword(db, vault, ID, password)` (src/mdm/secrets.ts).
 */
import { KitError, hasCode, type ErrorCode } from '../errors.ts';
import type { Vault } from '../identity/vault.ts';
import { createLogger } from '../log.ts';
import {
  MdmClient,
  discoverServiceConfig,
  fetchAnchorCertificates,
  normalizeBaseUrl,
  type MdmDevice,
} from '../mdm/client.ts';
import { configuredUrl, hasStationToken, loadGroupPassword, loadStationToken } from '../mdm/secrets.ts';
import type { Db } from '../store/db.ts';
import {
  cachedEnrollmentProfile,
  cachedEnrollmentUrl,
  putCachedEnrollmentProfile,
  putCachedEnrollmentUrl,
  putConfirmation,
  serialsAwaitingConfirmation,
} from '../store/mdm-loop.ts';
import type { Blueprint, EnrollmentGroup } from './blueprint.ts';

const log = createLogger('kitting/mdm');

/** What the steps ask the MDM. Errors are the client's (`mdm/offline`, `mdm/timeout` …). */
export interface MdmPort {
  /** The MDM's record of the serial, or null when it has none. */
  getDevice(serial: string): Promise<MdmDevice | null>;
  /** Normal or forced inactivation (`mdm/force-not-allowed` when the device is still reachable). */
  inactivate(serial: string, options: { force: boolean }): Promise<MdmDevice>;
}

/**
 * Codes meaning "the MDM could not be asked" (offline, slow, failing, token refused, not set up):
 * check-mdm records "not checked" and goes on; the staged profile falls back to its cache.
 */
export const MDM_UNAVAILABLE_CODES: readonly ErrorCode[] = [
  'mdm/offline',
  'mdm/timeout',
  'mdm/server-error',
  'mdm/auth-required',
  'mdm/unconfigured',
  'mdm/bad-response',
];

/** True when `err` means the MDM could not be asked (see {@link MDM_UNAVAILABLE_CODES}). */
export function isMdmUnavailable(err: unknown): boolean {
  return hasCode(err, ...MDM_UNAVAILABLE_CODES);
}

/**
 * The configured MDM client (URL from the settings, token opened with the vault), or null when
 * sync is not configured or no vault is at hand. Vault errors reject.
 */
export async function openMdmClient(
  db: Db,
  vault: Vault | (() => Promise<Vault>) | null,
  options: { timeoutMs?: number } = {},
): Promise<MdmClient | null> {
  const url = configuredUrl(db);
  if (url === undefined || !hasStationToken(db) || vault === null) return null;
  const v = typeof vault === 'function' ? await vault() : vault;
  const token = await loadStationToken(db, v);
  return new MdmClient({
    baseUrl: url,
    token,
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
  });
}

/** The port over a client. */
export function mdmPortOf(client: MdmClient): MdmPort {
  return {
    getDevice: (serial) => client.getDevice(serial),
    inactivate: (serial, options) => client.inactivate(serial, options),
  };
}

/** The id of a `secret:ID` reference. */
export function secretRefId(ref: string): string {
  return ref.startsWith('secret:') ? ref.slice('secret:'.length) : ref;
}

/** The group's credentials (password opened from the vault). `kitting/profile-unavailable` when missing. */
export async function groupCredentials(
  db: Db,
  vault: Vault,
  group: EnrollmentGroup,
): Promise<{ userId: string; password: string }> {
  if (group.userId === undefined || group.passwordRef === undefined) {
    throw new KitError('kitting/profile-unavailable', `group ${group.groupId} has no enrollment user ID and password`, {
      details: { groupId: group.groupId },
    });
  }
  const password = await loadGroupPassword(db, vault, secretRefId(group.passwordRef));
  if (password === undefined) {
    throw new KitError('kitting/profile-unavailable', `no password is stored for ${group.passwordRef}`, {
      details: { groupId: group.groupId, passwordRef: group.passwordRef },
    });
  }
  return { userId: group.userId, password };
}

/** What {@link mdmEnrollmentProfileSource} and {@link resolveMdmEnrollmentUrl} need. */
export interface MdmLoopDeps {
  readonly db: Db;
  /** The configured client, or null (offline runs use the caches only). */
  readonly client: MdmClient | null;
  /** Opens the vault (group passwords); null when none is at hand. */
  readonly vault: (() => Promise<Vault>) | null;
  readonly now?: () => Date;
}

/**
 * The staged profile's MDM source: fetched with the group's credentials and cached with its fetch
 * time; when the MDM cannot be asked (offline, unconfigured), the cached profile; none cached →
 * `kitting/profile-unavailable`. Credential errors (`mdm/wrong-credentials` …) are thrown as they are.
 */
export function mdmEnrollmentProfileSource(deps: MdmLoopDeps): (group: EnrollmentGroup | undefined) => Promise<Buffer> {
  const now = deps.now ?? (() => new Date());
  const inFlight = new Map<string, Promise<Buffer>>();
  const fetchOnce = async (group: EnrollmentGroup): Promise<Buffer> => {
    const cached = cachedEnrollmentProfile(deps.db, group.groupId);
    try {
      if (deps.client === null || deps.vault === null)
        throw new KitError('mdm/unconfigured', 'the MDM is not configured (kitting sync config)');
      const creds = await groupCredentials(deps.db, await deps.vault(), group);
      const bytes = await deps.client.fetchEnrollmentProfile(group.groupId, creds);
      putCachedEnrollmentProfile(deps.db, group.groupId, bytes, now().toISOString());
      return bytes;
    } catch (err) {
      if (!isMdmUnavailable(err) || cached === undefined) {
        if (isMdmUnavailable(err)) {
          throw new KitError(
            'kitting/profile-unavailable',
            `the MDM cannot be reached and no enrollment profile of group ${group.groupId} is cached`,
            { cause: err, details: { groupId: group.groupId } },
          );
        }
        throw err;
      }
      log.info('MDM unavailable: using the cached enrollment profile', {
        groupId: group.groupId,
        fetchedAt: cached.fetchedAt,
      });
      return cached.value;
    }
  };
  return (group) => {
    if (group === undefined) {
      return Promise.reject(
        new KitError('kitting/profile-unavailable', 'fetching the enrollment profile needs the MDM group'),
      );
    }
    // One fetch per group for a whole cart (the profile is the same for every device of a run).
    let p = inFlight.get(group.groupId);
    if (p === undefined) {
      p = fetchOnce(group);
      p.catch(() => inFlight.delete(group.groupId));
      inFlight.set(group.groupId, p);
    }
    return p;
  };
}

/** True when `url` names only an MDM host (no path): its enrollment URL comes from `/MDMServiceConfig`. */
function isBareHost(url: string): boolean {
  try {
    const u = new URL(url);
    return u.pathname === '/' || u.pathname === '';
  } catch {
    return false;
  }
}

/** What {@link resolveMdmEnrollmentUrl} did, for the run's log and report. */
export interface EnrollmentUrlResolution {
  readonly blueprint: Blueprint;
  /** `group` (group-specific URL), `group-cached`, `discovered`, `as-written`. */
  readonly source: 'group' | 'group-cached' | 'discovered' | 'as-written';
}

/**
 * The enrollment URL a run writes into `ConfigurationURL` (see the module doc): for a group with
 * "do not show the authentication screen", the MDM's group-specific URL (cached; offline the cached
 * one, else the blueprint's URL as written); for a URL with no path, the one `/MDMServiceConfig`
 * names. Other blueprints are returned unchanged. Credential errors reject.
 */
export async function resolveMdmEnrollmentUrl(deps: MdmLoopDeps, bp: Blueprint): Promise<EnrollmentUrlResolution> {
  const r = await resolveUrl(deps, bp);
  return r.source === 'as-written' && r.anchorCertsUrl === undefined ? r : withMdmAnchors(deps, r);
}

/**
 * The MDM's anchor certificates written into `AnchorCertificates` when the blueprint gives none and
 * the URL came from the MDM (its group-specific URL, or discovery): fetched from the
 * `dep_anchor_certs_url` of `/MDMServiceConfig`. When the MDM cannot be asked the blueprint stays
 * as it is (the device then trusts the server's TLS chain alone).
 */
async function withMdmAnchors(
  deps: MdmLoopDeps,
  r: EnrollmentUrlResolution & { anchorCertsUrl?: string },
): Promise<EnrollmentUrlResolution> {
  const bp = r.blueprint;
  const e = bp.enrollment;
  const plain: EnrollmentUrlResolution = { blueprint: bp, source: r.source };
  if (e.method !== 'url' || e.anchorCertificates.length > 0) return plain;
  try {
    let certs: Buffer[];
    if (r.anchorCertsUrl !== undefined) certs = await fetchAnchorCertificates(r.anchorCertsUrl);
    else if (deps.client !== null) certs = await deps.client.anchorCertificates();
    else return plain;
    const anchorCertificates = certs.map((der) => der.toString('base64'));
    log.info('anchor certificates from the MDM', { count: anchorCertificates.length });
    return { blueprint: { ...bp, enrollment: { ...e, anchorCertificates } }, source: r.source };
  } catch (err) {
    if (!isMdmUnavailable(err) && !hasCode(err, 'mdm/not-found')) throw err;
    log.warn('anchor certificates not fetched', { code: (err as KitError).code });
    return plain;
  }
}

async function resolveUrl(
  deps: MdmLoopDeps,
  bp: Blueprint,
): Promise<EnrollmentUrlResolution & { anchorCertsUrl?: string }> {
  const e = bp.enrollment;
  if (e.method !== 'url') return { blueprint: bp, source: 'as-written' };
  const withUrl = (url: string): Blueprint => ({ ...bp, enrollment: { ...e, url } });
  const group = e.group;
  if (group?.hideAuthScreen === true) {
    try {
      if (deps.client === null || deps.vault === null)
        throw new KitError('mdm/unconfigured', 'the MDM is not configured (kitting sync config)');
      const creds = await groupCredentials(deps.db, await deps.vault(), group);
      const answer = await deps.client.enrollmentUrl(group.groupId, creds);
      putCachedEnrollmentUrl(deps.db, group.groupId, answer.url, (deps.now ?? (() => new Date()))().toISOString());
      return { blueprint: withUrl(answer.url), source: 'group' };
    } catch (err) {
      if (!isMdmUnavailable(err)) throw err;
      const cached = cachedEnrollmentUrl(deps.db, group.groupId);
      if (cached !== undefined) return { blueprint: withUrl(cached.value), source: 'group-cached' };
      log.warn('MDM unavailable and no group URL cached: the blueprint URL is used as written', {
        groupId: group.groupId,
      });
      return { blueprint: bp, source: 'as-written' };
    }
  }
  if (isBareHost(e.url)) {
    try {
      const config = await discoverServiceConfig(normalizeBaseUrl(e.url));
      return { blueprint: withUrl(config.enrollmentUrl), source: 'discovered', anchorCertsUrl: config.anchorCertsUrl };
    } catch (err) {
      if (!isMdmUnavailable(err) && !hasCode(err, 'mdm/not-found')) throw err;
      return { blueprint: bp, source: 'as-written' };
    }
  }
  return { blueprint: bp, source: 'as-written' };
}

/**
 * Asks the MDM about finished devices whose enrollment is not confirmed yet and stores what it
 * says (status and time). Returns how many serials are now `enrolled`. Stops quietly at the first
 * "MDM unavailable" error (the next call continues).
 */
export async function refreshEnrollmentConfirmations(
  db: Db,
  client: MdmClient,
  options: { serials?: readonly string[]; now?: () => Date } = {},
): Promise<number> {
  const now = options.now ?? (() => new Date());
  let enrolled = 0;
  for (const serial of options.serials ?? serialsAwaitingConfirmation(db)) {
    let device: MdmDevice | null;
    try {
      device = await client.getDevice(serial);
    } catch (err) {
      if (isMdmUnavailable(err)) break;
      if (hasCode(err, 'usage/invalid-argument')) continue;
      throw err;
    }
    if (device === null) continue;
    putConfirmation(db, {
      serial,
      status: device.enrollment.status,
      statusAt: device.enrollment.at,
      checkedAt: now().toISOString(),
    });
    if (device.enrollment.status === 'enrolled') enrolled++;
  }
  return enrolled;
}

/** The result of a credentials check when a blueprint is saved. */
export type CredentialsCheck =
  | { readonly status: 'ok' }
  | { readonly status: 'not-checked'; readonly reason: ErrorCode }
  | { readonly status: 'none' };

/**
 * Checks a blueprint's MDM group credentials with the MDM (`POST /v1/groups/{id}/enrollment-url`,
 * which changes nothing): `ok`; `not-checked` when the MDM cannot be asked (saved with a warning);
 * `none` when the blueprint has no group with credentials. Wrong, expired or closed credentials
 * reject with the MDM's code (`mdm/wrong-credentials`, `mdm/credentials-expired`, `mdm/group-closed`,
 * `mdm/not-found`): the seed's "wrong credentials make the profile impossible to save".
 */
export async function checkGroupCredentials(deps: MdmLoopDeps, bp: Blueprint): Promise<CredentialsCheck> {
  const e = bp.enrollment;
  const group = e.method === 'none' ? undefined : e.group;
  if (group?.userId === undefined || group.passwordRef === undefined) return { status: 'none' };
  try {
    if (deps.client === null || deps.vault === null)
      throw new KitError('mdm/unconfigured', 'the MDM is not configured (kitting sync config)');
    const creds = await groupCredentials(deps.db, await deps.vault(), group);
    await deps.client.enrollmentUrl(group.groupId, creds);
    return { status: 'ok' };
  } catch (err) {
    if (isMdmUnavailable(err)) return { status: 'not-checked', reason: (err as KitError).code };
    throw err;
  }
}
