/**
 * The per-device pipeline as data (domain.md "The per-device pipeline", architecture.md "Steps are
 * data"): ten {@link StepDefinition}s in order, each with `isDone` (reads the device) and `run`
 * (does the work through the {@link KitDevice} port). The runner (`runner.ts`) persists every
 * transition and calls `isDone` before `run`, so a step whose device state is already right is
 * never applied again.
 *
 * Decisions that are ours rather than Apple's (each said where it is implemented):
 * - `identify`, `check-mdm` and `inspect` only read and record: their `isDone` is always false, so
 *   they re-run on every run and resume (the facts must be fresh).
 * - `erase` is needed when a cloud configuration is present and differs from this blueprint's, or
 *   when Setup Assistant is complete and no configuration equal to ours is stored. A device that
 *   already carries our configuration is never erased, even past Setup Assistant.
 * - `finish` cannot read from the device whether it restarted; its `isDone` is the one exception
 *   that reads the job: nothing to finish when none of erase … personalize ran in this job (pairing
 *   alone needs no restart), or when `finish` itself already completed in this job. A crash between
 *   the restart and its record restarts once more (at-least-once; harmless).
 * - The time zone is written only when it differs; devices honour it during Setup Assistant (go-ios,
 *   protocols.md §5.3), so a device past Setup Assistant may keep its own.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { modelName } from '../device/models.ts';
import type { MdmDevice } from '../mdm/client.ts';
import { KitError, hasCode, type ErrorCode } from '../errors.ts';
import { decodePlist, isPlistDict, readSignedPlist, type PlistDict, type PlistValue } from '../plist/index.ts';
import type { JsonObject, JsonValue } from '../store/jobs.ts';
import type { Bilingual, Blueprint, EnrollmentGroup, ProfileRef } from './blueprint.ts';
import {
  buildCloudConfiguration,
  checkSharedIpadQuota,
  compareCloudConfiguration,
  type CloudConfigDifference,
} from './cloud-config.ts';
import { isActivated, type DeviceInspection, type KitDevice, type SupervisorSigner } from './device-port.ts';
import { isMdmUnavailable, type MdmPort } from './mdm-port.ts';
import { renderName } from './naming.ts';

/** The ids of the pipeline's steps, in order. */
export type StepId =
  | 'identify'
  | 'check-mdm'
  | 'pair'
  | 'inspect'
  | 'erase'
  | 'activate'
  | 'configure'
  | 'enroll'
  | 'personalize'
  | 'finish';

/** What a successful `run` reports: `done` (it changed or checked something) or `skipped` (nothing to do). */
export interface StepOutcome {
  readonly status: 'done' | 'skipped';
  /** Facts for the job's event log (JSON). */
  readonly details?: JsonObject;
}

/** A configuration profile loaded for installation, with the identifier it installs under. */
export interface LoadedProfile {
  readonly bytes: Buffer;
  /** The profile's `PayloadIdentifier`. */
  readonly identifier: string;
  readonly displayName: string | null;
}

/**
 * Where the steps get profile bytes from. `load` resolves the blueprint's profile references;
 * `enrollmentProfile` the staged enrollment profile (a file, or fetched from the MDM).
 * Both throw `kitting/profile-unavailable` when the source cannot give the profile, `io/read-failed`
 * for an unreadable file, `plist/malformed` / `cms/malformed` for a broken one.
 */
export interface ProfileLoader {
  load(ref: ProfileRef): Promise<LoadedProfile>;
  enrollmentProfile(blueprint: Blueprint): Promise<LoadedProfile>;
}

/** The supervision identity of the blueprint's organization, as the steps need it. */
export interface SupervisorAccess {
  /** The identity's certificate, DER: goes into `SupervisorHostCertificates`. */
  readonly certificateDer: Buffer;
  /** Null when the identity is locked (no vault passphrase): steps that must sign throw `kitting/signer-required`. */
  readonly signer: SupervisorSigner | null;
}

/** A serial-number plan row (domain.md "Serial plans"). */
export interface PlanEntry {
  readonly name?: string;
  readonly assetTag?: string;
  readonly group?: string;
}

/** Kinds of facts a job records (`identify`, `inspect`). */
export type FactKind = 'identity' | 'inspection' | 'mdm';

/**
 * Everything a step may use. Built by the runner per job (and rebuilt on resume); the methods that
 * record or read facts go to the store.
 */
export interface StepContext {
  readonly device: KitDevice;
  readonly blueprint: Blueprint;
  readonly job: { readonly id: string; readonly udid: string; readonly batchId: string; readonly seqN: number };
  /** The technician confirmed erasing (`--yes`, or the typed confirmation in the UI). */
  readonly confirmedErase: boolean;
  readonly signal: AbortSignal;
  readonly supervisor: SupervisorAccess;
  readonly profiles: ProfileLoader;
  /** The plan row for a serial number, or null (no plan loaded, or the serial is not in it). */
  planFor(serial: string): PlanEntry | null;
  /** How long `erase` waits for the device to come back. */
  readonly eraseReturnTimeoutMs: number;
  /** Records facts in the job (an event); later steps and resumes read them with {@link lastFacts}. */
  recordFacts(kind: FactKind, facts: JsonObject): void;
  /** The newest facts of this kind recorded in this job, or undefined. */
  lastFacts(kind: FactKind): JsonObject | undefined;
  /** The status of a step of this job as persisted (for `finish`, see the module doc). */
  stepStatus(stepId: StepId): string | undefined;
  /** Reports progress the UI shows (e.g. `trust-pending`: "tap Trust on the device"). */
  progress(kind: ProgressKind, details?: JsonObject): void;
}

/** Progress a step reports while it runs. */
export type ProgressKind = 'trust-pending' | 'erasing' | 'waiting-for-return' | 'activating' | 'restarting';

/** One step of the pipeline. */
export interface StepDefinition {
  readonly id: StepId;
  readonly title: Bilingual;
  /** Reads the device (never memory, except `finish`): true when the step has nothing left to do. */
  isDone(ctx: StepContext): Promise<boolean>;
  /** Does the step's work. Throws KitErrors; the runner retries, waits or fails by code. */
  run(ctx: StepContext): Promise<StepOutcome>;
  /** Wipes the device (the UI asks for confirmation). */
  readonly destructive?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** The configuration this blueprint writes (quota checked in `inspect`, so no device facts here). */
export function ourCloudConfiguration(ctx: StepContext): PlistDict {
  return buildCloudConfiguration(ctx.blueprint, { supervisorCertificateDer: ctx.supervisor.certificateDer });
}

function requireSigner(ctx: StepContext, what: string): SupervisorSigner {
  if (ctx.supervisor.signer === null) {
    throw new KitError(
      'kitting/signer-required',
      `${what} needs the supervision identity ${ctx.blueprint.organization.identityId}, which is locked`,
      { udid: ctx.job.udid, details: { identityId: ctx.blueprint.organization.identityId } },
    );
  }
  return ctx.supervisor.signer;
}

function containsCertificate(cc: PlistDict | null, der: Buffer): boolean {
  const certs = cc?.SupervisorHostCertificates;
  return Array.isArray(certs) && certs.some((c) => c instanceof Uint8Array && Buffer.from(c).equals(der));
}

function plistToJson(v: PlistValue | undefined): JsonValue {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Uint8Array) return `<${v.length} bytes>`;
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v)) return v.map(plistToJson);
  if (isPlistDict(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plistToJson(x)]));
  return String(v);
}

/** Differences as flat error details: the keys, and the whole list as JSON text. */
function differenceDetails(diffs: readonly CloudConfigDifference[]): Record<string, string | number> {
  return {
    differenceCount: diffs.length,
    differingKeys: diffs.map((d) => d.key).join(', '),
    differences: JSON.stringify(
      diffs.map((d) => ({ key: d.key, ours: plistToJson(d.ours), theirs: plistToJson(d.theirs) })),
    ),
  };
}

/** Why this device must be erased for this blueprint, or null. */
export interface EraseReason {
  readonly reason: 'foreign-configuration' | 'setup-complete';
  readonly differences: readonly CloudConfigDifference[];
}

/** The erase decision of domain.md step 5 (see the module doc). */
export function eraseReason(
  ours: PlistDict,
  state: Pick<DeviceInspection, 'cloudConfiguration' | 'setupComplete'>,
): EraseReason | null {
  if (state.cloudConfiguration !== null) {
    const differences = compareCloudConfiguration(ours, state.cloudConfiguration);
    return differences.length > 0 ? { reason: 'foreign-configuration', differences } : null;
  }
  return state.setupComplete ? { reason: 'setup-complete', differences: [] } : null;
}

const PAIRING_REFUSED: readonly ErrorCode[] = ['lockdown/mc-protected', 'lockdown/mc-challenge-required'];
const DEVICE_GONE: readonly ErrorCode[] = ['usbmux/device-gone', 'device/not-found'];

/**
 * Pairs the device: supervised first when this job's inspection found it supervised by our
 * identity (no Trust dialog), else normal; a device that refuses normal pairing because it is
 * supervised (`lockdown/mc-protected`, `lockdown/mc-challenge-required`) is paired supervised.
 * A failed supervised attempt falls back to normal pairing (the device may have been erased).
 * @throws KitError `kitting/signer-required` when supervised pairing is needed and the identity is
 *   locked; the codes of {@link KitDevice.pair}.
 */
export async function pairDevice(ctx: StepContext, preferSupervised: boolean): Promise<'normal' | 'supervised'> {
  const signer = ctx.supervisor.signer;
  const normal = async (): Promise<'normal'> => {
    let told = false;
    await ctx.device.pair({
      mode: 'normal',
      signal: ctx.signal,
      onTrustPending: () => {
        if (!told) ctx.progress('trust-pending');
        told = true;
      },
    });
    return 'normal';
  };
  if (preferSupervised && signer !== null) {
    try {
      await ctx.device.pair({ mode: 'supervised', signer, signal: ctx.signal });
      return 'supervised';
    } catch (err) {
      if (hasCode(err, ...DEVICE_GONE) || ctx.signal.aborted) throw err;
    }
    return normal();
  }
  try {
    return await normal();
  } catch (err) {
    if (!hasCode(err, ...PAIRING_REFUSED)) throw err;
    const s = requireSigner(ctx, 'pairing with a supervised device');
    await ctx.device.pair({ mode: 'supervised', signer: s, signal: ctx.signal });
    return 'supervised';
  }
}

/** Whether this job's last inspection found the device supervised by our identity. */
function knownOurs(ctx: StepContext): boolean {
  return ctx.lastFacts('inspection')?.supervisedByUs === true;
}

/**
 * The payload identity of a `.mobileconfig` (signed or not): `PayloadIdentifier` and display name.
 * @throws KitError `kitting/profile-unavailable` when it has no `PayloadIdentifier`;
 *   `plist/malformed`, `cms/malformed` for broken bytes.
 */
export function profileIdentity(bytes: Buffer): { identifier: string; displayName: string | null } {
  const signed = bytes[0] === 0x30 || bytes.subarray(0, 32).toString('latin1').includes('-----BEGIN');
  const content = signed ? readSignedPlist(bytes).content : decodePlist(bytes);
  const id = isPlistDict(content) ? content.PayloadIdentifier : undefined;
  if (typeof id !== 'string' || id === '') {
    throw new KitError('kitting/profile-unavailable', 'the configuration profile has no PayloadIdentifier');
  }
  const name = isPlistDict(content) ? content.PayloadDisplayName : undefined;
  return { identifier: id, displayName: typeof name === 'string' ? name : null };
}

/** Options of {@link fileProfileLoader}. */
export interface FileProfileLoaderOptions {
  /** Relative paths are resolved against this folder (default: the process's working folder). */
  readonly baseDir?: string;
  /** Profiles stored in the station (`{kind: 'stored', id}`); without it such references are unavailable. */
  readonly stored?: (id: string) => Promise<Buffer | undefined>;
  /** Fetches the group's enrollment profile from the MDM (`source.kind: 'mdm'`); without it unavailable. */
  readonly fetchEnrollmentProfile?: (group: EnrollmentGroup | undefined) => Promise<Buffer>;
}

/**
 * A {@link ProfileLoader} for profile files, plus the optional stored-profile and MDM sources.
 * Throws `io/read-failed` for an unreadable file and `kitting/profile-unavailable` for a source
 * that is not configured.
 */
export function fileProfileLoader(options: FileProfileLoaderOptions = {}): ProfileLoader {
  const fromFile = async (file: string): Promise<LoadedProfile> => {
    const full = path.resolve(options.baseDir ?? process.cwd(), file);
    let bytes: Buffer;
    try {
      bytes = await readFile(full);
    } catch (err) {
      throw new KitError('io/read-failed', `cannot read the profile ${full}: ${(err as Error).message}`, {
        cause: err,
        details: { path: full },
      });
    }
    return { bytes, ...profileIdentity(bytes) };
  };
  const withIdentity = (bytes: Buffer): LoadedProfile => ({ bytes, ...profileIdentity(bytes) });
  return {
    async load(ref) {
      if (ref.kind === 'file') return fromFile(ref.path);
      const bytes = options.stored !== undefined ? await options.stored(ref.id) : undefined;
      if (bytes === undefined) {
        throw new KitError('kitting/profile-unavailable', `no stored profile ${ref.id}`, { details: { id: ref.id } });
      }
      return withIdentity(bytes);
    },
    async enrollmentProfile(bp) {
      if (bp.enrollment.method !== 'staged') {
        throw new KitError('bug', `blueprint ${bp.name} has no staged enrollment profile`);
      }
      const source = bp.enrollment.source;
      if (source.kind === 'file') return fromFile(source.path);
      if (options.fetchEnrollmentProfile === undefined) {
        throw new KitError('kitting/profile-unavailable', 'fetching the enrollment profile needs the MDM connection', {
          details: { source: 'mdm' },
        });
      }
      return withIdentity(await options.fetchEnrollmentProfile(bp.enrollment.group));
    },
  };
}

/** The name the blueprint gives this device, or null when the blueprint does not name devices. */
async function targetName(ctx: StepContext): Promise<string | null> {
  const naming = ctx.blueprint.naming;
  if (naming === undefined) return null;
  // The identify step of this run recorded serial and model (a UDID's serial and model never
  // change); asking the device again costs a lockdown connection and its whole value list.
  const facts = ctx.lastFacts('identity');
  const known =
    typeof facts?.serial === 'string' && typeof facts.productType === 'string'
      ? { serial: facts.serial, productType: facts.productType }
      : null;
  const id = known ?? (await ctx.device.identify());
  const plan = ctx.planFor(id.serial);
  return renderName(naming.template, {
    serial: id.serial,
    model: modelName(id.productType),
    n: ctx.job.seqN,
    ...(plan !== null ? { plan: { name: plan.name, assetTag: plan.assetTag } } : {}),
  });
}

interface PersonalTargets {
  readonly update: { deviceName?: string; language?: string; locale?: string; timeZone?: string };
  readonly missingProfiles: readonly LoadedProfile[];
}

async function personalTargets(ctx: StepContext): Promise<PersonalTargets> {
  const bp = ctx.blueprint;
  const [name, settings, installed] = await Promise.all([
    targetName(ctx),
    ctx.device.readSettings(),
    ctx.device.listProfiles(),
  ]);
  const update: { deviceName?: string; language?: string; locale?: string; timeZone?: string } = {};
  if (name !== null && settings.deviceName !== name) update.deviceName = name;
  if (settings.language !== bp.locale.language) update.language = bp.locale.language;
  if (settings.locale !== bp.locale.region) update.locale = bp.locale.region;
  if (settings.timeZone !== bp.locale.timeZone) update.timeZone = bp.locale.timeZone;
  const ids = new Set(installed.map((p) => p.identifier));
  const missingProfiles: LoadedProfile[] = [];
  for (const ref of bp.profiles) {
    const profile = await ctx.profiles.load(ref);
    if (!ids.has(profile.identifier)) missingProfiles.push(profile);
  }
  return { update, missingProfiles };
}

/**
 * Installs profiles: silently after escalation on a supervised blueprint, else for the person to
 * approve in Settings (an unsupervised device never installs silently).
 */
async function installProfiles(ctx: StepContext, profiles: readonly LoadedProfile[]): Promise<void> {
  if (profiles.length === 0) return;
  if (ctx.blueprint.supervise) {
    await ctx.device.escalate(requireSigner(ctx, 'installing a profile silently'));
    for (const p of profiles) await ctx.device.installProfile(p.bytes, { silent: true });
  } else {
    for (const p of profiles) await ctx.device.installProfile(p.bytes, { silent: false });
  }
}

async function wifiProfile(ctx: StepContext): Promise<LoadedProfile | null> {
  const e = ctx.blueprint.enrollment;
  return e.method === 'url' && e.wifiProfile !== undefined ? ctx.profiles.load(e.wifiProfile) : null;
}

// ---------------------------------------------------------------------------------------------
// The steps

const identify: StepDefinition = {
  id: 'identify',
  title: { ja: '端末の識別', en: 'Identify the device' },
  isDone: () => Promise.resolve(false),
  async run(ctx) {
    const id = await ctx.device.identify();
    if (id.udid !== ctx.job.udid) {
      throw new KitError('bug', `the port for ${ctx.job.udid} answered for ${id.udid}`, { udid: ctx.job.udid });
    }
    const plan = ctx.planFor(id.serial);
    const facts: JsonObject = {
      udid: id.udid,
      serial: id.serial,
      ecid: id.ecid,
      productType: id.productType,
      productVersion: id.productVersion,
      deviceClass: id.deviceClass,
      activationState: id.activationState,
      deviceName: id.deviceName,
      plan:
        plan === null ? null : { name: plan.name ?? null, assetTag: plan.assetTag ?? null, group: plan.group ?? null },
    };
    ctx.recordFacts('identity', facts);
    return { status: 'done', details: facts };
  },
};

/** What check-mdm may do beyond asking (see {@link createCheckMdm}). */
export interface CheckMdmOptions {
  /** The MDM, or null when sync is not configured (or the vault is locked): "not checked". */
  readonly mdm: MdmPort | null;
  /**
   * The technician asked for a forced inactivation of a registered, active device being re-kitted
   * (`--force-inactivate`, the contract's `forceInactivate`). Honoured only with a blueprint that
   * allows erasing and a confirmed erase.
   */
  readonly forceInactivate?: boolean;
  /** Writes the audit-log row of a forced inactivation (the station's audit log). */
  readonly audit?: (action: string, subject: string, details: JsonObject) => void;
}

/**
 * The `check-mdm` step (domain.md step 2). Policies of the blueprint's `mdmCheck`:
 * - `off`: skipped, the MDM is not asked.
 * - any other policy when the MDM cannot be asked (offline, timeout, 5xx, token refused, not
 *   configured): "not checked" is recorded (an `mdm` fact) and the run goes on — **also with
 *   `block`**: the MDM itself refuses a second registration of an active serial when the device
 *   enrolls (409 `mdm/already-registered`), so nothing can be registered twice; the report shows
 *   the device as not checked.
 * - `warn`: a registered, active serial is recorded as a warning fact (`kitting/mdm-registered`)
 *   and the run goes on.
 * - `block`: a registered, active serial fails the job with `kitting/mdm-registered` ("inactivate
 *   in the MDM first"), unless a forced inactivation was requested (`forceInactivate`), the
 *   blueprint allows erasing and the erase is confirmed: then the MDM is asked to force; it refuses
 *   while it can still reach the device (`mdm/force-not-allowed`, whose guidance is the normal
 *   inactivation), and a granted one is written to the audit log.
 * An inactive or unknown serial passes under every policy.
 */
export function createCheckMdm(options: CheckMdmOptions): StepDefinition {
  return {
    id: 'check-mdm',
    title: { ja: 'MDM登録状況の確認', en: 'Check the MDM registration' },
    isDone: () => Promise.resolve(false),
    async run(ctx) {
      const policy = ctx.blueprint.mdmCheck;
      if (policy === 'off') return { status: 'skipped', details: { mdm: 'off', policy } };
      const serialFact = ctx.lastFacts('identity')?.serial;
      const serial = typeof serialFact === 'string' ? serialFact : (await ctx.device.identify()).serial;
      const notChecked = (reason: string): StepOutcome => {
        const facts: JsonObject = { mdm: 'not-checked', reason, policy, serial };
        ctx.recordFacts('mdm', facts);
        return { status: 'done', details: facts };
      };
      if (options.mdm === null) return notChecked('mdm/unconfigured');
      let record: MdmDevice | null;
      try {
        record = await options.mdm.getDevice(serial);
      } catch (err) {
        if (isMdmUnavailable(err)) return notChecked((err as KitError).code);
        throw err;
      }
      if (record === null || record.state !== 'active') {
        const facts: JsonObject = {
          mdm: record === null ? 'not-registered' : 'inactive',
          policy,
          serial,
          licenseConsumed: record?.licenseConsumed ?? false,
        };
        ctx.recordFacts('mdm', facts);
        return { status: 'done', details: facts };
      }
      const registered: JsonObject = {
        serial,
        groupId: record.groupId,
        reachable: record.reachable,
        enrollment: record.enrollment.status,
        registeredAt: record.registeredAt,
      };
      if (policy === 'warn') {
        const facts: JsonObject = { mdm: 'registered', policy, warning: 'kitting/mdm-registered', ...registered };
        ctx.recordFacts('mdm', facts);
        return { status: 'done', details: facts };
      }
      const mayForce = options.forceInactivate === true && ctx.blueprint.eraseIfNeeded && ctx.confirmedErase;
      if (!mayForce) {
        ctx.recordFacts('mdm', { mdm: 'registered', policy, ...registered });
        throw new KitError(
          'kitting/mdm-registered',
          `${serial} is registered and active in the MDM (group ${record.groupId}): inactivate it in the MDM first`,
          {
            udid: ctx.job.udid,
            details: {
              serial,
              groupId: record.groupId,
              forceRequested: options.forceInactivate === true,
              eraseAllowed: ctx.blueprint.eraseIfNeeded,
              eraseConfirmed: ctx.confirmedErase,
            },
          },
        );
      }
      let after: MdmDevice;
      try {
        after = await options.mdm.inactivate(serial, { force: true });
      } catch (err) {
        if (isMdmUnavailable(err)) return notChecked((err as KitError).code);
        throw err;
      }
      const facts: JsonObject = {
        mdm: 'force-inactivated',
        policy,
        ...registered,
        state: after.state,
        inactivatedAt: after.inactivation?.at ?? null,
      };
      options.audit?.('mdm/force-inactivated', serial, {
        udid: ctx.job.udid,
        jobId: ctx.job.id,
        groupId: record.groupId,
      });
      ctx.recordFacts('mdm', facts);
      return { status: 'done', details: facts };
    },
  };
}

/** The step as it runs without an MDM connection: "not checked" under every policy but `off`. */
const checkMdm: StepDefinition = createCheckMdm({ mdm: null });

const pair: StepDefinition = {
  id: 'pair',
  title: { ja: 'ペアリング', en: 'Pair' },
  async isDone(ctx) {
    return (await ctx.device.pairingState()) === 'paired';
  },
  async run(ctx) {
    const mode = await pairDevice(ctx, knownOurs(ctx));
    return { status: 'done', details: { mode } };
  },
};

const inspect: StepDefinition = {
  id: 'inspect',
  title: { ja: '端末の状態確認', en: 'Inspect the device' },
  isDone: () => Promise.resolve(false),
  async run(ctx) {
    const s = await ctx.device.inspect();
    const ours = ourCloudConfiguration(ctx);
    const differences = s.cloudConfiguration === null ? [] : compareCloudConfiguration(ours, s.cloudConfiguration);
    const facts: JsonObject = {
      activationState: s.activationState,
      activationLocked: s.activationLocked,
      setupComplete: s.setupComplete,
      supervised: s.supervised,
      cloudConfiguration: s.cloudConfiguration === null ? 'none' : differences.length === 0 ? 'ours' : 'different',
      differingKeys: differences.map((d) => d.key),
      supervisedByUs: containsCertificate(s.cloudConfiguration, ctx.supervisor.certificateDer),
      storageTotalBytes: s.storage?.totalBytes ?? null,
      storageFreeBytes: s.storage?.freeBytes ?? null,
      batteryLevel: s.batteryLevel,
      profiles: s.profiles.map((p) => p.identifier),
      storedProfilePresent: s.storedProfilePresent,
    };
    ctx.recordFacts('inspection', facts);
    if (s.storage !== null) checkSharedIpadQuota(ctx.blueprint, s.storage.totalBytes);
    return { status: 'done', details: facts };
  },
};

/** Why the device must still be erased for this blueprint (read from the device), or null. */
async function eraseStillNeeded(ctx: StepContext): Promise<EraseReason | null> {
  return eraseReason(ourCloudConfiguration(ctx), await ctx.device.inspect());
}

/** `kitting/erase-unconfirmed`: the device answers, `when`, as one that was not erased. */
function notErased(ctx: StepContext, still: EraseReason, when: string): KitError {
  return new KitError(
    'kitting/erase-unconfirmed',
    `${ctx.job.udid} is still ${still.reason === 'setup-complete' ? 'set up' : 'configured'} ${when}: it was not erased`,
    { udid: ctx.job.udid, details: { reason: still.reason } },
  );
}

const erase: StepDefinition = {
  id: 'erase',
  title: { ja: 'すべてのコンテンツと設定を消去', en: 'Erase all content and settings' },
  destructive: true,
  async isDone(ctx) {
    return (await eraseStillNeeded(ctx)) === null;
  },
  async run(ctx) {
    const why = await eraseStillNeeded(ctx);
    if (why === null) return { status: 'skipped' };
    const details = { reason: why.reason, ...differenceDetails(why.differences) };
    if (!ctx.blueprint.eraseIfNeeded) {
      throw new KitError(
        'kitting/erase-not-allowed',
        `${ctx.job.udid} must be erased (${why.reason}) but blueprint ${ctx.blueprint.name} does not allow erasing`,
        { udid: ctx.job.udid, details },
      );
    }
    if (!ctx.confirmedErase) {
      throw new KitError('kitting/erase-not-confirmed', `erasing ${ctx.job.udid} (${why.reason}) needs confirmation`, {
        udid: ctx.job.udid,
        details,
      });
    }
    ctx.progress('erasing', { reason: why.reason });
    await ctx.device.erase({ preserveDataPlan: true, disallowProximitySetup: false });
    ctx.progress('waiting-for-return');
    await waitForErase(ctx);
    await pairDevice(ctx, false);
    // A connection that drops right after EraseDevice is how a real erase starts, and also how a
    // cable pulled at that moment looks: the device must come back wiped, or the erase is tried again.
    const after = await eraseStillNeeded(ctx);
    if (after !== null) throw notErased(ctx, after, 'after coming back from the erase');
    return { status: 'done', details: { reason: why.reason } };
  },
};

/**
 * How long an erased device is given to leave USB before the step asks whether it is erasing at
 * all: a device that got EraseDevice drops off within seconds; one still answering, still set up,
 * after this never got the request (the connection was cut as it was sent).
 */
export const ERASE_LEAVE_MS = 60_000;

/**
 * Waits for the device to come back from the erase (a new attachment), at most
 * `ctx.eraseReturnTimeoutMs`. If it has not left after {@link ERASE_LEAVE_MS} and still answers as
 * a device that needs the erase, the erase did not happen: `kitting/erase-unconfirmed` (retryable,
 * the step erases again) instead of waiting the whole return time for nothing.
 * @throws KitError `usbmux/device-gone` when it does not come back in time.
 */
async function waitForErase(ctx: StepContext): Promise<void> {
  const total = ctx.eraseReturnTimeoutMs;
  const first = Math.min(ERASE_LEAVE_MS, total);
  const gone = (err: unknown): KitError =>
    new KitError('usbmux/device-gone', `${ctx.job.udid} did not come back after the erase`, {
      udid: ctx.job.udid,
      cause: err,
    });
  let timedOut: unknown;
  try {
    await ctx.device.waitForReturn({ timeoutMs: first, signal: ctx.signal });
    return;
  } catch (err) {
    if (!hasCode(err, 'device/timeout')) throw err;
    timedOut = err;
  }
  // Still no new attachment: is the device there, answering, and not erased?
  let still: EraseReason | null = null;
  try {
    still = await eraseStillNeeded(ctx);
  } catch {
    // Not answering (busy erasing, or away): wait for it as usual.
  }
  if (still !== null) throw notErased(ctx, still, `${Math.round(first / 1000)} s after the erase request`);
  if (first >= total) throw gone(timedOut);
  try {
    await ctx.device.waitForReturn({ timeoutMs: total - first, signal: ctx.signal });
  } catch (err) {
    if (!hasCode(err, 'device/timeout')) throw err;
    throw gone(err);
  }
}

const activate: StepDefinition = {
  id: 'activate',
  title: { ja: 'アクティベーション（Apple）', en: 'Activate' },
  async isDone(ctx) {
    return isActivated((await ctx.device.identify()).activationState);
  },
  async run(ctx) {
    ctx.progress('activating');
    await ctx.device.activate({ signal: ctx.signal });
    return { status: 'done' };
  },
};

const configure: StepDefinition = {
  id: 'configure',
  title: { ja: '監視用の構成の書き込み', en: 'Write the cloud configuration' },
  async isDone(ctx) {
    const cc = await ctx.device.getCloudConfiguration();
    return cc !== null && compareCloudConfiguration(ourCloudConfiguration(ctx), cc).length === 0;
  },
  async run(ctx) {
    const ours = ourCloudConfiguration(ctx);
    let alreadyPresent = false;
    const write = async (): Promise<void> => {
      try {
        await ctx.device.setCloudConfiguration(ours);
      } catch (err) {
        if (hasCode(err, 'mcinstall/ade-assigned')) {
          throw new KitError('kitting/ade-assigned', `${ctx.job.udid} has an ADE (DEP) assignment`, {
            udid: ctx.job.udid,
            cause: err,
          });
        }
        if (!hasCode(err, 'mcinstall/cloud-config-present')) throw err;
        const theirs = await ctx.device.getCloudConfiguration();
        const diffs = theirs === null ? [] : compareCloudConfiguration(ours, theirs);
        if (theirs === null || diffs.length > 0) {
          throw new KitError(
            'kitting/erase-needed',
            `${ctx.job.udid} already has a different cloud configuration (${diffs.map((d) => d.key).join(', ')})`,
            {
              udid: ctx.job.udid,
              cause: err,
              details: { reason: 'foreign-configuration', ...differenceDetails(diffs) },
            },
          );
        }
        alreadyPresent = true;
      }
    };
    try {
      await write();
    } catch (err) {
      // 33003: the device refuses a configuration before activation (protocols.md Addendum).
      if (!hasCode(err, 'mcinstall/not-activated')) throw err;
      ctx.progress('activating');
      await ctx.device.activate({ signal: ctx.signal });
      await write();
    }
    // AllowPairing false makes the device delete its pairings: reach it again, supervised. A device
    // that allows pairing keeps them (asking would cost a fresh session and TLS handshake).
    if (!ctx.blueprint.allowPairing && (await ctx.device.pairingState()) !== 'paired') await pairDevice(ctx, true);
    return { status: 'done', details: { alreadyPresent } };
  },
};

const enroll: StepDefinition = {
  id: 'enroll',
  title: { ja: 'MDM登録の準備', en: 'Prepare MDM enrollment' },
  async isDone(ctx) {
    const e = ctx.blueprint.enrollment;
    if (e.method === 'none') return true;
    if (e.method === 'url') {
      const cc = await ctx.device.getCloudConfiguration();
      if (cc?.ConfigurationURL !== e.url) return false;
      const wifi = await wifiProfile(ctx);
      return wifi === null || (await ctx.device.listProfiles()).some((p) => p.identifier === wifi.identifier);
    }
    const profile = await ctx.profiles.enrollmentProfile(ctx.blueprint);
    const [installed, stored] = await Promise.all([ctx.device.listProfiles(), ctx.device.getStoredProfile()]);
    return (
      installed.some((p) => p.identifier === profile.identifier) || (stored !== null && stored.equals(profile.bytes))
    );
  },
  async run(ctx): Promise<StepOutcome> {
    const e = ctx.blueprint.enrollment;
    if (e.method === 'none') return { status: 'skipped' };
    if (e.method === 'url') {
      const cc = await ctx.device.getCloudConfiguration();
      if (cc?.ConfigurationURL !== e.url) {
        throw new KitError(
          'kitting/erase-needed',
          `${ctx.job.udid} has no enrollment URL ${e.url} in its configuration`,
          {
            udid: ctx.job.udid,
            details: { reason: 'foreign-configuration', differingKeys: 'ConfigurationURL' },
          },
        );
      }
      const wifi = await wifiProfile(ctx);
      if (wifi !== null) {
        const installed = await ctx.device.listProfiles();
        if (!installed.some((p) => p.identifier === wifi.identifier)) await installProfiles(ctx, [wifi]);
      }
      return { status: 'done', details: { method: 'url', wifi: wifi?.identifier ?? null } };
    }
    const profile = await ctx.profiles.enrollmentProfile(ctx.blueprint);
    const state = await ctx.device.inspect();
    if (!state.setupComplete) {
      await ctx.device.storeProfile(profile.bytes);
      return { status: 'done', details: { method: 'staged', how: 'stored', identifier: profile.identifier } };
    }
    await installProfiles(ctx, [profile]);
    return { status: 'done', details: { method: 'staged', how: 'installed', identifier: profile.identifier } };
  },
};

const personalize: StepDefinition = {
  id: 'personalize',
  title: { ja: '端末名・言語と地域・プロファイル', en: 'Name, language, region and profiles' },
  async isDone(ctx) {
    const t = await personalTargets(ctx);
    return Object.keys(t.update).length === 0 && t.missingProfiles.length === 0;
  },
  async run(ctx) {
    const t = await personalTargets(ctx);
    if (Object.keys(t.update).length > 0) await ctx.device.writeSettings(t.update);
    await installProfiles(ctx, t.missingProfiles);
    return {
      status: 'done',
      details: { ...t.update, profiles: t.missingProfiles.map((p) => p.identifier) },
    };
  },
};

/**
 * The steps whose work a restart or shut-down completes (`finish`): pairing changes nothing on the
 * device that needs one, so a run that only paired does not restart the device.
 */
const FINISHED_BY_RESTART: readonly StepId[] = ['erase', 'activate', 'configure', 'enroll', 'personalize'];

function changedInJob(ctx: StepContext): boolean {
  return FINISHED_BY_RESTART.some((id) => ctx.stepStatus(id) === 'done');
}

const finish: StepDefinition = {
  id: 'finish',
  title: { ja: '完了（再起動・システム終了）', en: 'Finish (restart or shut down)' },
  isDone(ctx) {
    return Promise.resolve(
      ctx.blueprint.finish === 'none' || ctx.stepStatus('finish') === 'done' || !changedInJob(ctx),
    );
  },
  async run(ctx) {
    ctx.progress('restarting', { action: ctx.blueprint.finish });
    if (ctx.blueprint.finish === 'restart') await ctx.device.restart();
    else if (ctx.blueprint.finish === 'shutdown') await ctx.device.shutdown();
    else return { status: 'skipped' };
    return { status: 'done', details: { action: ctx.blueprint.finish } };
  },
};

/** The ten steps of domain.md, in order. */
export const STEPS: readonly StepDefinition[] = [
  identify,
  checkMdm,
  pair,
  inspect,
  erase,
  activate,
  configure,
  enroll,
  personalize,
  finish,
];

/** The pipeline with check-mdm connected to the MDM (see {@link createCheckMdm}). */
export function createSteps(options: CheckMdmOptions): readonly StepDefinition[] {
  const check = createCheckMdm(options);
  return STEPS.map((s) => (s.id === 'check-mdm' ? check : s));
}

/** The step with this id. */
export function stepById(id: string): StepDefinition | undefined {
  return STEPS.find((s) => s.id === id);
}
