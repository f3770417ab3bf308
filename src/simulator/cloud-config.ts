/**
 * What a virtual device does with a `SetCloudConfiguration` dictionary (protocols.md §5.1 and the
 * Addendum): type-check the keys it knows (33002 on a wrong type), then store a copy with the values
 * it forces — `IsMandatory` on, `ConfigurationSource` 2 (Configurator), `IsMDMUnremovable` and
 * `AwaitDeviceConfigured` off when not supervised, `CloudConfigurationUIComplete` and
 * `ConfigurationWasApplied` on when there is no enrollment URL — and `IsMultiUser` dropped unless the
 * hardware supports Shared iPad and the configuration is supervised. Unknown keys are kept verbatim.
 */
import { PlistReal, type PlistDict, type PlistValue } from '../plist/index.ts';

type Kind = 'string' | 'number' | 'boolean' | 'data[]' | 'string[]';

/** Keys the device type-checks, with their type (Addendum "Keys the device accepts"). */
export const CLOUD_CONFIG_KEYS: Readonly<Record<string, Kind>> = {
  OrganizationName: 'string',
  OrganizationShortName: 'string',
  OrganizationDepartment: 'string',
  OrganizationAddress: 'string',
  OrganizationAddressLine1: 'string',
  OrganizationAddressLine2: 'string',
  OrganizationAddressLine3: 'string',
  OrganizationCity: 'string',
  OrganizationRegion: 'string',
  OrganizationZipCode: 'string',
  OrganizationCountry: 'string',
  OrganizationPhone: 'string',
  OrganizationEmail: 'string',
  OrganizationSupportPhone: 'string',
  OrganizationSupportEmail: 'string',
  OrganizationMagic: 'string',
  ConfigurationURL: 'string',
  ConfigurationWebURL: 'string',
  Language: 'string',
  Region: 'string',
  MDMProtocolVersion: 'number',
  ConfigurationSource: 'number',
  IsSupervised: 'boolean',
  AllowPairing: 'boolean',
  IsMandatory: 'boolean',
  IsMDMUnremovable: 'boolean',
  AwaitDeviceConfigured: 'boolean',
  CloudConfigurationUIComplete: 'boolean',
  PostSetupProfileWasInstalled: 'boolean',
  IsMultiUser: 'boolean',
  AutoAdvanceSetup: 'boolean',
  AnchorCertificates: 'data[]',
  SupervisorHostCertificates: 'data[]',
  SkipSetup: 'string[]',
};

function isKind(v: PlistValue, kind: Kind): boolean {
  switch (kind) {
    case 'string':
      return typeof v === 'string';
    case 'number':
      return typeof v === 'number' || typeof v === 'bigint' || v instanceof PlistReal;
    case 'boolean':
      return typeof v === 'boolean';
    case 'data[]':
      return Array.isArray(v) && v.every((x) => Buffer.isBuffer(x));
    case 'string[]':
      return Array.isArray(v) && v.every((x) => typeof x === 'string');
  }
}

/** The first key with a wrong type, or undefined when every known key is well typed. */
export function wronglyTypedKey(config: PlistDict): string | undefined {
  for (const [key, kind] of Object.entries(CLOUD_CONFIG_KEYS)) {
    const v = config[key];
    if (v !== undefined && !isKind(v, kind)) return key;
  }
  return undefined;
}

/** The configuration as the device stores it; see the module comment. */
export function applyForcedValues(config: PlistDict, supportsSharedIpad: boolean): PlistDict {
  const out: PlistDict = { ...config };
  const supervised = out.IsSupervised === true;
  out.IsMandatory = true;
  out.ConfigurationSource = 2;
  if (!supervised) {
    out.IsMDMUnremovable = false;
    out.AwaitDeviceConfigured = false;
  }
  if (out.ConfigurationURL === undefined && out.ConfigurationWebURL === undefined) {
    out.CloudConfigurationUIComplete = true;
    out.ConfigurationWasApplied = true;
  }
  if (out.IsMultiUser !== undefined && !(supportsSharedIpad && supervised)) delete out.IsMultiUser;
  return out;
}

/** True when the stored configuration disallows normal pairing. */
export function pairingDisallowed(config: PlistDict | null): boolean {
  return config !== null && config.AllowPairing === false;
}

/** True when `certDer` is one of the configuration's `SupervisorHostCertificates`. */
export function isSupervisorCertificate(config: PlistDict | null, certDer: Buffer): boolean {
  const list = config?.SupervisorHostCertificates;
  return Array.isArray(list) && list.some((c) => Buffer.isBuffer(c) && c.equals(certDer));
}
