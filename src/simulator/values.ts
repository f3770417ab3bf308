/**
 * The lockdown values of a virtual device: the default domain and the domains tools read, built
 * from its identity and current state, plus which keys are readable before a session and which
 * keys may be written.
 */
import { PlistReal, type PlistDict, type PlistValue } from '../plist/index.ts';
import type { DeviceIdentity } from './identity.ts';
import type { ActivationState } from './presets.ts';

/** The parts of a device's state the values depend on. */
export interface ValueState {
  identity: DeviceIdentity;
  devicePublicKey: Buffer | undefined;
  deviceName: string;
  activationState: ActivationState;
  activationStateAcknowledged: boolean;
  setupComplete: boolean;
  supervised: boolean;
  locked: boolean;
  language: string;
  locale: string;
  timeZone: string;
  uses24HourClock: boolean;
  /** Device clock minus host clock, ms (set with `TimeIntervalSince1970`). */
  clockOffsetMs: number;
  batteryLevel: number;
  charging: boolean;
  /** Values written with SetValue or `sim-ctl set` that have no field of their own: `domain\u0000key`. */
  extra: Map<string, PlistValue>;
  /** True within a lockdown session on the connection asking. */
  inSession: boolean;
}

/** Keys of the default domain readable without a session (also the no-key "simple" read). */
export const PRE_SESSION_KEYS: readonly string[] = [
  'ActivationState',
  'BoardId',
  'BuildVersion',
  'CPUArchitecture',
  'ChipID',
  'DeviceClass',
  'DeviceColor',
  'DeviceName',
  'DevicePublicKey',
  'DieID',
  'HardwareModel',
  'HasSiDP',
  'PartitionType',
  'ProductName',
  'ProductType',
  'ProductVersion',
  'ProductionSOC',
  'ProtocolVersion',
  'SerialNumber',
  'SupportedDeviceFamilies',
  'TelephonyCapability',
  'UniqueChipID',
  'UniqueDeviceID',
  'WiFiAddress',
];

/**
 * Keys readable one at a time without a session that are not part of the no-key answer (a real
 * iPhone answered `TimeIntervalSince1970` on a fresh lockdown connection: recorded fixture).
 */
export const PRE_SESSION_SINGLE_KEYS: readonly string[] = ['TimeIntervalSince1970'];

/** Domain keys answered without a session for a whole-domain read (issue libimobiledevice#1199). */
const PRE_SESSION_DOMAINS: Readonly<Record<string, readonly string[]>> = {
  'com.apple.mobile.iTunes': ['FamilyID', 'MinITunesVersion', 'MinMacOSVersion', 'iTunesSetupComplete'],
};

/** Default-domain keys a host may write in a session. */
export const WRITABLE_KEYS: ReadonlySet<string> = new Set([
  'DeviceName',
  'TimeZone',
  'TimeIntervalSince1970',
  'Uses24HourClock',
  'ActivationStateAcknowledged',
  'iTunesHasConnected',
  'UntrustedHostBUID',
]);

/** Domain keys a host may write in a session (`domain\u0000key`). */
export const WRITABLE_DOMAIN_KEYS: ReadonlySet<string> = new Set([
  'com.apple.international\u0000Language',
  'com.apple.international\u0000Locale',
  'com.apple.mobile.wireless_lockdown\u0000EnableWifiConnections',
  'com.apple.mobile.iTunes\u0000iTunesSetupComplete',
]);

/** `longOffset` formatters by time zone (making one loads ICU zone data: far dearer than formatting). */
const offsetFormats = new Map<string, Intl.DateTimeFormat>();

function offsetFormat(timeZone: string): Intl.DateTimeFormat {
  let f = offsetFormats.get(timeZone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, timeZoneName: 'longOffset' });
    // A bound on a leak only (devices take their zones from a short list of blueprints).
    if (offsetFormats.size >= 256) offsetFormats.clear();
    offsetFormats.set(timeZone, f);
  }
  return f;
}

/** The last offset computed per time zone, for the minute it was computed for. */
const offsets = new Map<string, { minute: number; seconds: number }>();

/**
 * Seconds east of UTC for an IANA time zone at `when`. Remembered per zone for the minute (offsets
 * change at whole minutes at the finest): every in-session GetValue of the default domain asks.
 */
export function utcOffsetSeconds(timeZone: string, when: Date): number {
  const minute = Math.floor(when.getTime() / 60_000);
  const known = offsets.get(timeZone);
  if (known?.minute === minute) return known.seconds;
  const seconds = computeUtcOffsetSeconds(timeZone, when);
  if (offsets.size >= 256) offsets.clear();
  offsets.set(timeZone, { minute, seconds });
  return seconds;
}

function computeUtcOffsetSeconds(timeZone: string, when: Date): number {
  try {
    const parts = offsetFormat(timeZone).formatToParts(when);
    const name = parts.find((p) => p.type === 'timeZoneName')?.value ?? 'GMT';
    const m = /GMT([+-])(\d{2}):(\d{2})/.exec(name);
    if (m === null) return 0;
    const sign = m[1] === '-' ? -1 : 1;
    return sign * (Number(m[2]) * 3600 + Number(m[3]) * 60);
  } catch {
    return 0;
  }
}

const SUPPORTED_LANGUAGES = ['en', 'ja', 'fr', 'de', 'es', 'it', 'ko', 'zh-Hans', 'zh-Hant', 'pt-BR', 'nl', 'sv'];
const SUPPORTED_LOCALES = [
  'en_US',
  'en_GB',
  'ja_JP',
  'fr_FR',
  'de_DE',
  'es_ES',
  'it_IT',
  'ko_KR',
  'zh_CN',
  'zh_TW',
  'pt_BR',
];

function hardwarePlatform(chipId: number): string {
  return `t${chipId.toString(16)}`;
}

/** The whole default domain as a real device answers it within a session. */
export function defaultDomain(s: ValueState): PlistDict {
  const id = s.identity;
  const now = Date.now() + s.clockOffsetMs;
  const isPad = id.model.deviceClass === 'iPad';
  const d: PlistDict = {
    ActivationState: s.activationState,
    ActivationStateAcknowledged: s.activationStateAcknowledged,
    BluetoothAddress: id.bluetoothAddress,
    BoardId: 4 + (id.model.chipId % 7),
    BrickState: false,
    BuildVersion: id.buildVersion,
    CPUArchitecture: 'arm64e',
    ChipID: id.model.chipId,
    DeviceClass: id.model.deviceClass,
    DeviceColor: id.deviceColor,
    DeviceEnclosureColor: id.enclosureColor,
    DeviceName: s.deviceName,
    DieID: id.dieId,
    HardwareModel: id.model.hardwareModel,
    HardwarePlatform: hardwarePlatform(id.model.chipId),
    HasSiDP: true,
    HostAttached: true,
    ModelNumber: id.modelNumber,
    PartitionType: 'GUID_partition_scheme',
    PasswordProtected: s.locked,
    ProductName: 'iPhone OS',
    ProductType: id.productType,
    ProductVersion: id.productVersion,
    ProductionSOC: true,
    ProtocolVersion: '2',
    RegionInfo: id.regionInfo,
    SerialNumber: id.serial,
    SoftwareBehavior: Buffer.alloc(16),
    SupportedDeviceFamilies: isPad ? [1, 2] : [1],
    TelephonyCapability: !isPad,
    TimeIntervalSince1970: new PlistReal(now / 1000),
    TimeZone: s.timeZone,
    TimeZoneOffsetFromUTC: new PlistReal(utcOffsetSeconds(s.timeZone, new Date(now))),
    TrustedHostAttached: s.inSession,
    UniqueChipID: id.ecid,
    UniqueDeviceID: id.udid,
    Uses24HourClock: s.uses24HourClock,
    WiFiAddress: id.wifiAddress,
  };
  if (s.devicePublicKey !== undefined) d.DevicePublicKey = s.devicePublicKey;
  for (const [k, v] of s.extra) {
    if (k.startsWith('\u0000')) d[k.slice(1)] = v;
  }
  return d;
}

/** The named domains (other than the default) as a session reads them. */
export function domainValues(s: ValueState, domain: string): PlistDict | undefined {
  const id = s.identity;
  const cap = id.diskCapacity;
  const used = Math.round(cap * 0.18);
  let d: PlistDict | undefined;
  switch (domain) {
    case 'com.apple.international':
      d = {
        Language: s.language,
        Locale: s.locale,
        SupportedLanguages: SUPPORTED_LANGUAGES,
        SupportedLocales: SUPPORTED_LOCALES,
      };
      break;
    case 'com.apple.mobile.battery':
      d = {
        BatteryCurrentCapacity: s.batteryLevel,
        BatteryIsCharging: s.charging && s.batteryLevel < 100,
        ExternalChargeCapable: true,
        ExternalConnected: true,
        FullyCharged: s.batteryLevel >= 100,
        GasGaugeCapability: true,
        HasBattery: true,
      };
      break;
    case 'com.apple.disk_usage':
    case 'com.apple.disk_usage.factory':
      d = {
        AmountDataAvailable: cap - used - 12_000_000_000,
        AmountDataReserved: 209_715_200,
        TotalDataAvailable: cap - used - 12_000_000_000,
        TotalDataCapacity: cap - 12_000_000_000,
        TotalDiskCapacity: cap,
        TotalSystemAvailable: 0,
        TotalSystemCapacity: 12_000_000_000,
      };
      break;
    case 'com.apple.mobile.wireless_lockdown':
      d = { EnableWifiConnections: false };
      break;
    case 'com.apple.PurpleBuddy':
    case 'com.apple.purplebuddy':
      d = { SetupDone: s.setupComplete, SetupFinishedAllSteps: s.setupComplete };
      break;
    case 'com.apple.mobile.chaperone':
      d = { DeviceIsChaperoned: s.supervised };
      break;
    case 'com.apple.mobile.iTunes':
      d = {
        FamilyID: 10_000 + (id.model.chipId % 1000),
        MinITunesVersion: '12.8',
        MinMacOSVersion: '10.13',
        iTunesSetupComplete: s.setupComplete,
      };
      break;
    case 'com.apple.fmip':
      d = { IsAssociated: false };
      break;
    case 'com.apple.mobile.lockdown_cache':
      d = { ActivationState: s.activationState };
      break;
    default:
      return undefined;
  }
  const prefix = `${domain}\u0000`;
  for (const [k, v] of s.extra) {
    if (k.startsWith(prefix)) d[k.slice(prefix.length)] = v;
  }
  return d;
}

/** Outcome of a GetValue: a value, or a lockdown `Error` string. */
export type GetResult = { value: PlistValue } | { error: 'GetProhibited' | 'MissingValue' };

/** Answers a GetValue for `domain`/`key` (either may be absent) under the session rules. */
export function getValue(s: ValueState, domain: string | undefined, key: string | undefined): GetResult {
  if (domain === undefined || domain === '') {
    const all = defaultDomain(s);
    if (key === undefined) {
      if (s.inSession) return { value: all };
      const partial: PlistDict = {};
      for (const k of PRE_SESSION_KEYS) {
        const v = all[k];
        if (v !== undefined) partial[k] = v;
      }
      return { value: partial };
    }
    const v = all[key];
    if (v === undefined) return { error: 'MissingValue' };
    if (!s.inSession && !PRE_SESSION_KEYS.includes(key) && !PRE_SESSION_SINGLE_KEYS.includes(key))
      return { error: 'GetProhibited' };
    return { value: v };
  }
  const dict = domainValues(s, domain);
  if (dict === undefined) return { error: 'MissingValue' };
  if (!s.inSession) {
    const allowed = PRE_SESSION_DOMAINS[domain];
    if (allowed === undefined) return { error: 'GetProhibited' };
    if (key === undefined) {
      const partial: PlistDict = {};
      for (const k of allowed) {
        const v = dict[k];
        if (v !== undefined) partial[k] = v;
      }
      return { value: partial };
    }
    if (!allowed.includes(key)) return { error: 'GetProhibited' };
  }
  if (key === undefined) return { value: dict };
  const v = dict[key];
  return v === undefined ? { error: 'MissingValue' } : { value: v };
}
