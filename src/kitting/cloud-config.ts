/**
 * Blueprint → the `CloudConfiguration` dictionary written by MCInstall `SetCloudConfiguration`
 * (pipeline step 7, domain.md), and the comparison that decides whether a configuration already on
 * a device (error 14002) is ours.
 *
 * Key names and types: protocols.md §5.1 and its Addendum ("keys the device accepts", type-checked:
 * strings, booleans, arrays of data / strings). Apple's PascalCase keys appear only in this file's
 * output; everything else in the station speaks the camelCase blueprint.
 *
 * What the builder writes, and why:
 * - `IsSupervised`, `AllowPairing`, `IsMandatory`, `IsMultiUser`, `SkipSetup`, `OrganizationName`,
 *   `OrganizationMagic`, `SupervisorHostCertificates`: as go-ios `Prepare` and pymobiledevice3
 *   `supervise` do (§5.1). Certificates only when supervising (go-ios sends none unsupervised).
 * - `IsMDMUnremovable` = supervised and not removable: the device forces it false when unsupervised
 *   (Addendum), so writing the forced value keeps "ours" equal to what the device stores.
 * - `OrganizationPhone` / `OrganizationEmail` / `OrganizationDepartment` / `OrganizationAddress`:
 *   the seed's サポート用電話番号 / サポート用メールアドレス. The device also accepts
 *   `OrganizationSupportPhone` / `OrganizationSupportEmail` (Addendum); which pair Setup Assistant
 *   displays is UNCONFIRMED, we write the `Organization*` pair only.
 * - `ConfigurationURL` + `AnchorCertificates` for the enrollment-URL way (Addendum: the device POSTs
 *   MachineInfo there at the Remote Management pane). `CloudConfigurationUIComplete: true` only
 *   without a URL: the device forces it true in that case, and a URL needs the pane to show.
 * - `PostSetupProfileWasInstalled` is never written: it is the device's own record that a staged
 *   (`StoreProfile`) profile was installed; pymobiledevice3 sends true, which would tell the device a
 *   staged enrollment profile is already done.
 * - `Language` / `Region` from the blueprint's locale (`ja`, `JP`), like a DEP profile's
 *   `language` / `region`, so Setup Assistant can take them instead of asking.
 * - `AutoAdvanceSetup` only when the blueprint asks for it (supervised Apple TV only; iPads ignore it).
 *
 * **Shared iPad.** The cloud configuration carries only `IsMultiUser`. Apple has no cloud
 * configuration key for the per-user quota or the user count: those are MDM `Settings` items sent
 * after enrollment — `SharedDeviceConfiguration` { `QuotaSize` (MB), `ResidentUsers` } from iOS 13.4,
 * and the older `MaximumResidentUsers` (iOS 9.3–13.4) — per apple/device-management
 * `mdm/commands/settings.yaml` (b6202ca). Names such as `UserQuotaSize` or `SharedIPadNumberOfUsers`
 * appear in no Apple source read and are not used. {@link sharedIpadMdmSettings} builds those
 * Settings items for the MDM side; mapping 共有iPadのキャッシュユーザー数上限 to
 * `MaximumResidentUsers` is our reading of the seed (UNCONFIRMED).
 */
import { createHash } from 'node:crypto';
import { KitError } from '../errors.ts';
import type { PlistDict, PlistValue } from '../plist/index.ts';
import { plistEqual } from '../plist/index.ts';
import { certificateDer, type Blueprint } from './blueprint.ts';
import { allIosSkipKeys, skipKeyWireValues } from './skip-panes.ts';

/** What the builder needs besides the blueprint. */
export interface CloudConfigInputs {
  /** DER of the organization identity's certificate (the blueprint's `organization.identityId`). */
  readonly supervisorCertificateDer: Buffer;
  /** Per-device facts; with `storageBytes` the Shared iPad quota rule is checked for this device. */
  readonly device?: { readonly storageBytes?: number };
}

/** Reserved for the system and apps on a Shared iPad (seed: "26GB（システム用とApp・メディア用）"). */
export const SHARED_IPAD_RESERVED_BYTES = 26_000_000_000;
/** Bytes in the quota's MB (decimal, as device storage is reported and sold). */
export const MB = 1_000_000;

/** The largest per-user quota (MB) a device with `storageBytes` accepts: below storage − 26 GB. */
export function sharedIpadQuotaLimitMb(storageBytes: number): number {
  return Math.max(0, Math.ceil((storageBytes - SHARED_IPAD_RESERVED_BYTES) / MB) - 1);
}

/**
 * The seed's Shared iPad rule for one device: the per-user quota must be below the device's storage
 * minus 26 GB, or user sign-in fails. No-op when Shared iPad is off or uses a user count.
 * @throws KitError `blueprint/shared-ipad-quota` (details `quotaMb`, `storageBytes`, `limitMb`).
 */
export function checkSharedIpadQuota(bp: Blueprint, deviceStorageBytes: number): void {
  if (bp.sharedIpad.mode !== 'on' || bp.sharedIpad.quotaMb === undefined) return;
  const quotaMb = bp.sharedIpad.quotaMb;
  if (quotaMb * MB >= deviceStorageBytes - SHARED_IPAD_RESERVED_BYTES) {
    throw new KitError(
      'blueprint/shared-ipad-quota',
      `Shared iPad quota ${quotaMb} MB is not below the device storage (${deviceStorageBytes} bytes) minus 26 GB`,
      { details: { quotaMb, storageBytes: deviceStorageBytes, limitMb: sharedIpadQuotaLimitMb(deviceStorageBytes) } },
    );
  }
}

/**
 * `OrganizationMagic`: a UUID string stable per blueprint and identity (SHA-256 of both, laid out as
 * an RFC 9562 version-8 UUID, upper case as Apple writes UUIDs). The same blueprint prepared on two
 * stations gives the same value.
 */
export function organizationMagic(bp: Blueprint): string {
  const h = createHash('sha256')
    .update(`kitting-station/org-magic/v1\u0000${bp.organization.identityId}\u0000${bp.id ?? bp.name}`)
    .digest();
  h[6] = ((h[6] ?? 0) & 0x0f) | 0x80;
  h[8] = ((h[8] ?? 0) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex').toUpperCase();
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

/** The `SkipSetup` array for a blueprint: "all" expands to every iOS/iPadOS key of the catalogue. */
export function skipSetupValues(bp: Blueprint): string[] {
  return skipKeyWireValues(bp.skipSetup === 'all' ? allIosSkipKeys() : bp.skipSetup);
}

/** The country part of an Apple locale (`ja_JP` → `JP`), or undefined (`en`). */
function regionCode(locale: string): string | undefined {
  const last = locale.split('_').pop();
  return last !== undefined && locale.includes('_') && /^([A-Z]{2}|\d{3})$/.test(last) ? last : undefined;
}

/**
 * Builds the `CloudConfiguration` dictionary for `SetCloudConfiguration`.
 * @throws KitError `blueprint/shared-ipad-quota` when `inputs.device.storageBytes` is given and the
 *   quota does not fit; `blueprint/invalid` when an anchor certificate does not parse.
 */
export function buildCloudConfiguration(bp: Blueprint, inputs: CloudConfigInputs): PlistDict {
  if (inputs.device?.storageBytes !== undefined) checkSharedIpadQuota(bp, inputs.device.storageBytes);
  const org = bp.organization;
  const cc: PlistDict = {
    AllowPairing: bp.allowPairing,
    IsSupervised: bp.supervise,
    IsMandatory: bp.mandatoryEnrollment,
    IsMDMUnremovable: bp.supervise && !bp.mdmRemovable,
    IsMultiUser: bp.sharedIpad.mode === 'on',
    SkipSetup: skipSetupValues(bp),
    OrganizationName: org.displayName,
    OrganizationMagic: organizationMagic(bp),
  };
  if (org.phone !== undefined) cc.OrganizationPhone = org.phone;
  if (org.email !== undefined) cc.OrganizationEmail = org.email;
  if (org.department !== undefined) cc.OrganizationDepartment = org.department;
  if (org.address !== undefined) cc.OrganizationAddress = org.address;
  if (bp.supervise) cc.SupervisorHostCertificates = [Buffer.from(inputs.supervisorCertificateDer)];
  if (bp.autoAdvance) cc.AutoAdvanceSetup = true;
  cc.Language = bp.locale.language;
  const region = regionCode(bp.locale.region);
  if (region !== undefined) cc.Region = region;
  if (bp.enrollment.method === 'url') {
    cc.ConfigurationURL = bp.enrollment.url;
    cc.AnchorCertificates = bp.enrollment.anchorCertificates.map(certificateDer);
  } else {
    cc.CloudConfigurationUIComplete = true;
  }
  return cc;
}

/**
 * The MDM `Settings` items that finish a Shared iPad after enrollment (the cloud configuration has
 * no keys for them; see the module doc). Empty when Shared iPad is off.
 */
export function sharedIpadMdmSettings(bp: Blueprint): PlistDict[] {
  if (bp.sharedIpad.mode !== 'on') return [];
  const items: PlistDict[] = [];
  const shared: PlistDict = { Item: 'SharedDeviceConfiguration' };
  if (bp.sharedIpad.quotaMb !== undefined) shared.QuotaSize = bp.sharedIpad.quotaMb;
  if (bp.sharedIpad.userCount !== undefined) shared.ResidentUsers = bp.sharedIpad.userCount;
  items.push(shared);
  if (bp.sharedIpad.maxCachedUsers !== undefined) {
    items.push({ Item: 'MaximumResidentUsers', MaximumResidentUsers: bp.sharedIpad.maxCachedUsers });
  }
  return items;
}

// ---------------------------------------------------------------------------------------------
// Forced values

/** The platform an OS version belongs to, for {@link forcedValues}. */
export type OsPlatform = 'ios' | 'ipados' | 'tvos' | 'macos';

/** Settings the device imposes whatever the blueprint says (for the UI to show as forced). */
export interface ForcedValues {
  /** Supervised regardless of `supervise`. */
  readonly supervise?: true;
  /** Enrollment cannot be skipped regardless of `mandatoryEnrollment`. */
  readonly mandatoryEnrollment?: true;
}

const FORCED_FROM: Readonly<Record<OsPlatform, readonly number[]>> = {
  ios: [13, 0],
  ipados: [13, 1],
  tvos: [13, 0],
  macos: [10, 15],
};

function versionAtLeast(version: string, min: readonly number[]): boolean {
  const parts = version.split('.').map((p) => Number.parseInt(p, 10));
  for (let i = 0; i < min.length; i++) {
    const a = Number.isNaN(parts[i] ?? 0) ? 0 : (parts[i] ?? 0);
    const b = min[i] ?? 0;
    if (a !== b) return a > b;
  }
  return true;
}

/**
 * What the OS forces (seed: iOS 13+, iPadOS 13.1+, tvOS 13+, macOS 10.15+ are supervised and cannot
 * skip MDM enrollment whatever the profile says). An unparsable version forces nothing.
 */
export function forcedValues(osVersion: string, platform: OsPlatform = 'ios'): ForcedValues {
  if (!/^\d+(\.\d+)*$/.test(osVersion)) return {};
  return versionAtLeast(osVersion, FORCED_FROM[platform]) ? { supervise: true, mandatoryEnrollment: true } : {};
}

// ---------------------------------------------------------------------------------------------
// Comparison

/** One difference that matters between our configuration and the device's. */
export interface CloudConfigDifference {
  /** Apple's key. */
  readonly key: string;
  /** Our value (undefined: we do not set the key). */
  readonly ours: PlistValue | undefined;
  /** The device's value (undefined: the device has no such key). */
  readonly theirs: PlistValue | undefined;
}

/**
 * Keys the device writes or rewrites itself, never compared: `ConfigurationSource` (overwritten:
 * 2 Configurator, 1 ADE), `ConfigurationWasApplied` and `CloudConfigurationUIComplete` (forced
 * true), `PostSetupProfileWasInstalled` (the device's own progress flag), and `OrganizationMagic`.
 *
 * `OrganizationMagic` is ignored on purpose: it only tags the organization and changes no device
 * behaviour; ours is derived from the blueprint's id or name, so a renamed blueprint, or an identical
 * one prepared by go-ios/pymobiledevice3 (random UUIDs), would otherwise demand an erase for a
 * configuration that is the same in every setting. The supervision certificate — which is what
 * actually binds a device to this station — is compared.
 */
export const IGNORED_KEYS: readonly string[] = [
  'ConfigurationSource',
  'ConfigurationWasApplied',
  'CloudConfigurationUIComplete',
  'PostSetupProfileWasInstalled',
  'OrganizationMagic',
];

/** Boolean keys where an absent key means false. */
const FALSE_WHEN_ABSENT = new Set([
  'IsSupervised',
  'IsMandatory',
  'IsMDMUnremovable',
  'IsMultiUser',
  'AutoAdvanceSetup',
  'AwaitDeviceConfigured',
]);

function truthy(v: PlistValue | undefined): boolean {
  return v === true || v === 1 || v === 1n;
}

/** Applies the device's forcing rules (Addendum) to one side, so both compare like for like. */
function normalise(cc: PlistDict, supervised: boolean): Map<string, PlistValue> {
  const m = new Map<string, PlistValue>();
  for (const [k, v] of Object.entries(cc)) {
    if (IGNORED_KEYS.includes(k)) continue;
    m.set(k, v);
  }
  // The device stores these as booleans or (ADE dumps) integers 0/1.
  for (const k of FALSE_WHEN_ABSENT) m.set(k, truthy(m.get(k)));
  m.set('IsMandatory', true); // forced on by the device
  if (!supervised) {
    m.set('IsMDMUnremovable', false); // forced off when not supervised
    m.set('AwaitDeviceConfigured', false);
  }
  return m;
}

function sameSet(a: PlistValue | undefined, b: PlistValue | undefined): boolean {
  if (!Array.isArray(a) || !Array.isArray(b)) return a === undefined && b === undefined;
  const unmatched = [...b];
  for (const x of a) {
    const i = unmatched.findIndex((y) => plistEqual(x, y));
    if (i < 0) return false;
    unmatched.splice(i, 1);
  }
  return unmatched.length === 0;
}

/** Keys whose arrays are unordered sets. */
const SET_KEYS = new Set(['SkipSetup', 'SupervisorHostCertificates', 'AnchorCertificates']);

/**
 * The differences that matter between the configuration we would write (`ours`, from
 * {@link buildCloudConfiguration}) and the one a device reports (`theirs`, GetCloudConfiguration).
 * Ignored: key order, the {@link IGNORED_KEYS}, `IsMandatory` (forced on), `IsMDMUnremovable` and
 * `AwaitDeviceConfigured` (forced off when unsupervised), `IsMultiUser` when we asked for it and the
 * device dropped it (unsupported hardware), array order in `SkipSetup` and the certificate lists,
 * integer 0/1 for booleans. An empty list means "equal: a 14002 counts as done"; otherwise the list
 * is what an erase would change, for the technician to read.
 */
export function compareCloudConfiguration(ours: PlistDict, theirs: PlistDict): CloudConfigDifference[] {
  const supervisedTheirs = truthy(theirs.IsSupervised);
  const a = normalise(ours, supervisedTheirs && truthy(ours.IsSupervised));
  const b = normalise(theirs, supervisedTheirs);
  // Shared iPad dropped by the device on hardware without it: not a difference.
  if (a.get('IsMultiUser') === true && theirs.IsMultiUser === undefined) b.set('IsMultiUser', true);
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort();
  const diffs: CloudConfigDifference[] = [];
  for (const key of keys) {
    const x = a.get(key);
    const y = b.get(key);
    const equal = SET_KEYS.has(key) ? sameSet(x, y) : x === undefined || y === undefined ? x === y : plistEqual(x, y);
    if (!equal) diffs.push({ key, ours: x, theirs: y });
  }
  return diffs;
}
