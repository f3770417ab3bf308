/**
 * Configuration profiles as a virtual device handles them: parsing a `.mobileconfig` (signed or
 * not), the records it keeps of installed, waiting and stored profiles, and the GetProfileList
 * answer (go-ios `parseProfile`, appium-ios-device's recorded example: `OrderedIdentifiers`,
 * `ProfileManifest` {Description, IsActive}, `ProfileMetadata` {PayloadDisplayName, …}).
 */
import { decodePlist, isPlistDict, readSignedPlist, type PlistDict, type PlistValue } from '../plist/index.ts';

/** Where an installed profile came from. */
export type ProfileSource = 'usb' | 'silent' | 'enrollment' | 'stored';

/** A profile the device holds (installed, waiting for approval, or stored for after setup). */
export interface DeviceProfile {
  identifier: string;
  uuid: string;
  version: number;
  displayName: string;
  description: string | undefined;
  organization: string | undefined;
  removalDisallowed: boolean;
  /** True when the bytes were CMS SignedData. */
  signed: boolean;
  source: ProfileSource;
  at: string;
  /** The bytes as the host (or the MDM) sent them. */
  bytes: Buffer;
}

/** The JSON of a profile in `sim-ctl state`. */
export interface ProfileJson {
  identifier: string;
  uuid: string;
  displayName: string;
  version: number;
  signed: boolean;
  source: ProfileSource;
  /** True when it came from the device's own enrollment at Setup Assistant. */
  fromEnrollment: boolean;
  at: string;
}

/** Why a profile was refused: an MCProfileErrorDomain code and text. */
export interface ProfileProblem {
  code: number;
  text: string;
}

function str(v: PlistValue | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** Parses profile bytes (XML/binary plist, or CMS SignedData around one). */
export function parseProfile(
  bytes: Buffer,
  source: ProfileSource,
): { profile: DeviceProfile } | { problem: ProfileProblem } {
  let content: PlistValue;
  let signed = false;
  try {
    if (bytes.length > 0 && bytes[0] === 0x30) {
      content = readSignedPlist(bytes).content;
      signed = true;
    } else {
      content = decodePlist(bytes);
    }
  } catch {
    return { problem: { code: 1000, text: 'The profile is malformed.' } };
  }
  if (!isPlistDict(content)) return { problem: { code: 1000, text: 'The profile is malformed.' } };
  const identifier = str(content.PayloadIdentifier);
  const uuid = str(content.PayloadUUID);
  const type = str(content.PayloadType);
  const version = content.PayloadVersion;
  if (identifier === undefined || uuid === undefined || type === undefined) {
    return { problem: { code: 1002, text: 'The profile is missing a required field.' } };
  }
  if (type !== 'Configuration') return { problem: { code: 1010, text: `Unsupported PayloadType "${type}".` } };
  const v = typeof version === 'number' ? version : typeof version === 'bigint' ? Number(version) : NaN;
  if (!Number.isInteger(v) || v !== 1) return { problem: { code: 1001, text: 'Unsupported profile version.' } };
  return {
    profile: {
      identifier,
      uuid,
      version: v,
      displayName: str(content.PayloadDisplayName) ?? identifier,
      description: str(content.PayloadDescription),
      organization: str(content.PayloadOrganization),
      removalDisallowed: content.PayloadRemovalDisallowed === true,
      signed,
      source,
      at: new Date().toISOString(),
      bytes,
    },
  };
}

/** The state JSON of a profile. */
export function profileJson(p: DeviceProfile): ProfileJson {
  return {
    identifier: p.identifier,
    uuid: p.uuid,
    displayName: p.displayName,
    version: p.version,
    signed: p.signed,
    source: p.source,
    fromEnrollment: p.source === 'enrollment',
    at: p.at,
  };
}

/** The GetProfileList reply for `installed` (in install order). */
export function profileListReply(installed: readonly DeviceProfile[]): PlistDict {
  const manifest: PlistDict = {};
  const metadata: PlistDict = {};
  for (const p of installed) {
    manifest[p.identifier] = { Description: p.displayName, IsActive: true };
    const meta: PlistDict = {
      PayloadDisplayName: p.displayName,
      PayloadRemovalDisallowed: p.removalDisallowed,
      PayloadUUID: p.uuid,
      PayloadVersion: p.version,
    };
    if (p.description !== undefined) meta.PayloadDescription = p.description;
    if (p.organization !== undefined) meta.PayloadOrganization = p.organization;
    metadata[p.identifier] = meta;
  }
  return {
    Status: 'Acknowledged',
    OrderedIdentifiers: installed.map((p) => p.identifier),
    ProfileManifest: manifest,
    ProfileMetadata: metadata,
  };
}

/**
 * The identifier a RemoveProfile names: the identifier string (go-ios), or plist data (XML from
 * pymobiledevice3, binary from appium) of `{PayloadIdentifier, …}`.
 */
export function removeProfileIdentifier(v: PlistValue | undefined): string | undefined {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) {
    try {
      const d = decodePlist(v);
      return isPlistDict(d) ? str(d.PayloadIdentifier) : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}
