/**
 * One virtual iPad (or iPhone): identity, state, remembered host pairings, the Trust dialog, faults,
 * and the TCP "ports" its daemons listen on (lockdownd on 62078 plus the service ports it hands out).
 * Attachment to the bus (DeviceID, Attached/Detached) belongs to the simulator that owns it.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { KitError } from '../errors.ts';
import { createLogger, type Logger } from '../log.ts';
import { PlistReal, PlistUid, type PlistDict, type PlistValue } from '../plist/index.ts';
import { AfcTree } from './afc.ts';
import { deviceKeys, type DeviceKeys } from './crypto.ts';
import type { DeviceCa, DeviceIdentityCert } from './device-ca.ts';
import { FaultSet } from './faults.ts';
import type { CheckInRecord } from './mdm-checkin.ts';
import { OS_RELEASES, type DeviceIdentity } from './identity.ts';
import { PRESETS, type ActivationState, type PresetName, type PresetSpec, type TrustMode } from './presets.ts';
import { profileJson, type DeviceProfile, type ProfileJson } from './profiles.ts';
import type { Timing } from './timing.ts';
import type { ValueState } from './values.ts';

/** lockdownd's TCP port. */
export const LOCKDOWN_PORT = 62078;

/** A host pairing the device remembers. */
export interface Pairing {
  hostId: string;
  systemBuid: string;
  /** PEM certificates as the host sent them. */
  hostCertificate: Buffer;
  rootCertificate: Buffer;
  deviceCertificate: Buffer;
  escrowBag: Buffer;
  pairedAt: string;
}

/** Where the device is: running normally, powered off, rebooting, or in recovery mode. */
export type PowerMode = 'normal' | 'off' | 'rebooting' | 'recovery';

/** What the device asks of the simulator that owns it. */
export interface DeviceHost {
  readonly timing: Timing;
  /**
   * The device restarts, shuts down, enters recovery or erases itself: it leaves the bus (and returns
   * after a reboot or an erase).
   */
  powerEvent(device: VirtualDevice, event: PowerEvent): void;
  /** The simulated Apple device CA that issues device identity certificates. */
  readonly deviceCa: DeviceCa;
}

/** What makes a device leave the bus. */
export type PowerEvent = 'restart' | 'shutdown' | 'recovery' | 'erase';

/** What happened when the device enrolled itself at Setup Assistant (`state.enrollment`). */
export interface EnrollmentRecord {
  url: string;
  /** `installed` (profile installed), `needs-credentials` (401 and none given), `failed`. */
  status: 'installed' | 'needs-credentials' | 'failed';
  /** HTTP status of the last answer (null when no answer came). */
  httpStatus: number | null;
  /** How many POSTs were made. */
  attempts: number;
  /** Whether credentials were sent. */
  authenticated: boolean;
  /** Identifier of the profile installed. */
  profileIdentifier: string | null;
  error: string | null;
  at: string;
  /** The MDM check-in after installing a profile with a `com.apple.mdm` payload (mdm-checkin.ts). */
  checkIn?: CheckInRecord;
}

/** Handles a new connection to one of the device's ports. */
export type PortHandler = (socket: Socket) => void;

/** A service port handed out by StartService, waiting for its one connection. */
interface ServicePort {
  service: string;
  handler: PortHandler;
  timer: NodeJS.Timeout;
}

/** The JSON a `sim-ctl state` prints (cli.md). */
export interface DeviceStateJson {
  udid: string;
  serial: string;
  ecid: string;
  productType: string;
  model: string;
  productVersion: string;
  buildVersion: string;
  deviceClass: 'iPad' | 'iPhone';
  deviceName: string;
  activationState: ActivationState;
  setupComplete: boolean;
  supervised: boolean;
  passcodeSet: boolean;
  locked: boolean;
  trust: TrustMode;
  trustDialog: 'hidden' | 'showing';
  pairings: { hostId: string; systemBuid: string; pairedAt: string }[];
  /** The stored cloud configuration with data as base64 strings, or null. */
  cloudConfiguration: { [key: string]: JsonValue } | null;
  /** Installed profiles (each with `identifier`; `fromEnrollment` when the device enrolled itself). */
  profiles: ProfileJson[];
  /** Profiles sent with InstallProfile that wait for the person's approval in Settings. */
  pendingProfiles: ProfileJson[];
  /** The profile stored for after Setup Assistant (`StoreProfile`), or null. */
  storedProfile: (ProfileJson & { purpose: string }) | null;
  /** The activation record says the device is assigned to ADE (SetCloudConfiguration answers 33004). */
  adeAssigned: boolean;
  /** Activation Lock is on: the activation server answers with the lock form. */
  activationLocked: boolean;
  /** The device's own MDM enrollment at Setup Assistant, or null. */
  enrollment: EnrollmentRecord | null;
  /** Setup Assistant panes the device skipped when setup completed (null while in Setup Assistant). */
  skippedPanes: string[] | null;
  /** Device clock minus host clock (set with lockdown `TimeIntervalSince1970`). */
  clockOffsetMs: number;
  /** Paths in the device's AFC file tree (media partition). */
  afcFiles: number;
  preset: PresetName;
  deviceId: number | null;
  attached: boolean;
  mode: PowerMode;
  locationId: number;
  wifiAddress: string;
  language: string;
  locale: string;
  timeZone: string;
  batteryLevel: number;
  faults: string[];
  activationUrl: string | null;
}

/** A JSON value (what the state JSON carries for plist values). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** A plist value as JSON: data as base64, dates as ISO text, 64-bit integers as numbers when exact. */
export function plistToJson(v: PlistValue): JsonValue {
  if (Buffer.isBuffer(v)) return v.toString('base64');
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (v instanceof Date) return v.toISOString();
  if (v instanceof PlistReal) return v.value;
  if (v instanceof PlistUid) return Number(v.value);
  if (Array.isArray(v)) return v.map(plistToJson);
  if (typeof v === 'object') return jsonDict(v);
  return v;
}

function jsonDict(d: PlistDict): { [key: string]: JsonValue } {
  const out: { [key: string]: JsonValue } = {};
  for (const [k, x] of Object.entries(d)) out[k] = plistToJson(x);
  return out;
}

/** Keys `sim-ctl set` understands, with how to read their value. */
const SETTABLE = {
  deviceName: 'string',
  activationState: 'activation',
  setupComplete: 'boolean',
  supervised: 'boolean',
  passcodeSet: 'boolean',
  locked: 'boolean',
  trust: 'trust',
  language: 'string',
  locale: 'string',
  timeZone: 'string',
  uses24HourClock: 'boolean',
  batteryLevel: 'percent',
  charging: 'boolean',
  productVersion: 'version',
  adeAssigned: 'boolean',
  activationLocked: 'boolean',
} as const;

/** Lockdown key names accepted by `set` as aliases of the fields above. */
const ALIASES: Readonly<Record<string, keyof typeof SETTABLE>> = {
  DeviceName: 'deviceName',
  ActivationState: 'activationState',
  TimeZone: 'timeZone',
  Language: 'language',
  Locale: 'locale',
  ProductVersion: 'productVersion',
  Uses24HourClock: 'uses24HourClock',
  passcode: 'passcodeSet',
};

function parseBool(key: string, v: string | number | boolean): boolean {
  if (typeof v === 'boolean') return v;
  const s = String(v).toLowerCase();
  if (s === 'true' || s === '1' || s === 'yes') return true;
  if (s === 'false' || s === '0' || s === 'no') return false;
  throw new KitError('usage/invalid-argument', `${key}: "${String(v)}" is not a boolean`);
}

/** A virtual device; see the module comment. */
export class VirtualDevice implements ValueState {
  readonly identity: DeviceIdentity;
  readonly faults = new FaultSet();
  readonly log: Logger;
  private readonly host: DeviceHost;

  preset: PresetName;
  deviceName: string;
  activationState: ActivationState;
  activationStateAcknowledged: boolean;
  setupComplete: boolean;
  supervised: boolean;
  passcodeSet: boolean;
  locked = false;
  trust: TrustMode;
  language: string;
  locale: string;
  timeZone: string;
  uses24HourClock = false;
  clockOffsetMs = 0;
  batteryLevel: number;
  charging = true;
  extra = new Map<string, PlistValue>();
  inSession = false;
  cloudConfiguration: PlistDict | null = null;
  /** Installed profiles, in install order. */
  profiles: DeviceProfile[] = [];
  /** Profiles waiting for the person's approval. */
  pendingProfiles: DeviceProfile[] = [];
  storedProfile: DeviceProfile | null = null;
  adeAssigned = false;
  activationLocked: boolean;
  enrollment: EnrollmentRecord | null = null;
  skippedPanes: string[] | null = null;
  /** The AFC media tree. */
  afc = new AfcTree();
  /** The HandshakeRequestMessage of the last CreateTunnel1SessionInfoRequest (mobileactivationd). */
  activationHandshake: Buffer | undefined;
  activationUrl: string | null = null;
  untrustedHostBuid: string | undefined;

  readonly pairings = new Map<string, Pairing>();

  /** When the Trust dialog opened (undefined: not showing). */
  trustDialogSince: number | undefined;

  /** usbmuxd DeviceID while attached. */
  deviceId: number | undefined;
  mode: PowerMode = 'normal';
  /** USB location: (bus << 16) | address. */
  locationId: number;

  keys: DeviceKeys | undefined;
  private readonly connections = new Set<{ destroy(): void }>();
  private readonly servicePorts = new Map<number, ServicePort>();
  private nextServicePort: number;

  constructor(
    identity: DeviceIdentity,
    preset: PresetSpec & { name: PresetName },
    host: DeviceHost,
    locationId: number,
  ) {
    this.identity = identity;
    this.host = host;
    this.log = createLogger('simulator/device', { udid: identity.udid });
    this.preset = preset.name;
    this.deviceName = identity.model.deviceClass;
    this.activationState = preset.activationState;
    this.activationStateAcknowledged = preset.activationState !== 'Unactivated';
    this.setupComplete = preset.setupComplete;
    this.supervised = preset.supervised;
    this.activationLocked = preset.activationLocked;
    this.passcodeSet = preset.passcodeSet;
    this.trust = preset.trust;
    this.language = preset.language;
    this.locale = preset.locale;
    this.timeZone = preset.timeZone;
    this.batteryLevel = 40 + Number(identity.ecid % 60n);
    this.locationId = locationId;
    this.nextServicePort = 49152 + Number(identity.ecid % 4096n);
  }

  get udid(): string {
    return this.identity.udid;
  }

  get timing(): Timing {
    return this.host.timing;
  }

  /** The device's identity certificate from the simulated Apple device CA (and its key). */
  async identityCertificate(): Promise<DeviceIdentityCert> {
    const keys = await this.ensureKeys();
    return this.host.deviceCa.issue(
      this.udid,
      keys.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      keys.privateKeyPem,
    );
  }

  /** True when the hardware supports Shared iPad. */
  get supportsSharedIpad(): boolean {
    return this.identity.model.deviceClass === 'iPad';
  }

  /**
   * Wipes what "Erase All Content and Settings" wipes: pairings, cloud configuration, profiles
   * (installed, waiting and stored), the name, passcode, settings, enrollment, the AFC tree and
   * activation (the device must be activated again; Activation Lock and an ADE assignment live on
   * Apple's servers and survive). Setup Assistant starts over; the device is `fresh` again.
   */
  wipe(): void {
    const fresh = PRESETS.fresh;
    this.preset = 'fresh';
    this.pairings.clear();
    this.cloudConfiguration = null;
    this.profiles = [];
    this.pendingProfiles = [];
    this.storedProfile = null;
    this.enrollment = null;
    this.skippedPanes = null;
    this.deviceName = this.identity.model.deviceClass;
    this.passcodeSet = false;
    this.locked = false;
    this.activationState = 'Unactivated';
    this.activationStateAcknowledged = false;
    this.activationHandshake = undefined;
    this.setupComplete = false;
    this.supervised = false;
    this.language = fresh.language;
    this.locale = fresh.locale;
    this.timeZone = fresh.timeZone;
    this.uses24HourClock = false;
    this.clockOffsetMs = 0;
    this.extra.clear();
    this.untrustedHostBuid = undefined;
    this.trustDialogSince = undefined;
    this.afc = new AfcTree();
  }

  /** The PKCS#1 PEM `DevicePublicKey` (undefined until {@link ensureKeys} ran). */
  get devicePublicKey(): Buffer | undefined {
    return this.keys === undefined ? undefined : Buffer.from(this.keys.publicKeyPem);
  }

  /** Generates (or reuses) the device's RSA key. */
  async ensureKeys(): Promise<DeviceKeys> {
    this.keys ??= await deviceKeys(this.udid);
    return this.keys;
  }

  /** A new lockdown SessionID. */
  newSessionId(): string {
    return randomBytes(16)
      .toString('hex')
      .toUpperCase()
      .replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
  }

  // ---- connections and ports ------------------------------------------------------------------

  /** Remembers an open connection so it is closed when the device leaves the bus. */
  track(conn: { destroy(): void }): () => void {
    this.connections.add(conn);
    return () => this.connections.delete(conn);
  }

  /** Closes every connection and forgets every service port (the device left the bus). */
  dropConnections(): void {
    for (const c of [...this.connections]) c.destroy();
    this.connections.clear();
    for (const p of this.servicePorts.values()) clearTimeout(p.timer);
    this.servicePorts.clear();
    this.inSession = false;
  }

  /** Opens a service port for one connection (lockdownd StartService); it expires unused after a minute. */
  openServicePort(service: string, handler: PortHandler): number {
    let port = this.nextServicePort;
    while (this.servicePorts.has(port) || port === LOCKDOWN_PORT) port = port >= 65000 ? 49152 : port + 1;
    this.nextServicePort = port >= 65000 ? 49152 : port + 1;
    const timer = setTimeout(() => this.servicePorts.delete(port), 60_000);
    timer.unref();
    this.servicePorts.set(port, { service, handler, timer });
    return port;
  }

  /** The handler for a connection to `port`, or undefined when nothing listens there. */
  portHandler(port: number, lockdown: PortHandler): PortHandler | undefined {
    if (this.mode !== 'normal') return undefined;
    if (port === LOCKDOWN_PORT) return lockdown;
    const sp = this.servicePorts.get(port);
    if (sp === undefined) return undefined;
    this.servicePorts.delete(port);
    clearTimeout(sp.timer);
    return sp.handler;
  }

  // ---- trust and pairing ----------------------------------------------------------------------

  /** What the device answers to a Pair request right now: accept, or a lockdown Error string. */
  pairDecision(): 'accept' | 'PasswordProtected' | 'PairingDialogResponsePending' | 'UserDeniedPairing' {
    // Still in Setup Assistant: pairs without a dialog (usbmuxd preflight.c).
    if (!this.setupComplete) return 'accept';
    if (this.locked) return 'PasswordProtected';
    if (this.trust === 'deny') {
      this.trustDialogSince = undefined;
      return 'UserDeniedPairing';
    }
    if (this.trust === 'prompt') {
      this.trustDialogSince ??= Date.now();
      return 'PairingDialogResponsePending';
    }
    // accept: the person taps Trust after a moment (at once with --timing none).
    const latency = this.host.timing.ms('trustDialog');
    if (latency === 0) {
      this.trustDialogSince = undefined;
      return 'accept';
    }
    if (this.trustDialogSince === undefined) {
      this.trustDialogSince = Date.now();
      return 'PairingDialogResponsePending';
    }
    if (Date.now() - this.trustDialogSince < latency) return 'PairingDialogResponsePending';
    this.trustDialogSince = undefined;
    return 'accept';
  }

  /** Remembers a host pairing; returns its escrow bag. */
  addPairing(p: Omit<Pairing, 'escrowBag' | 'pairedAt'>): Buffer {
    const old = this.pairings.get(p.hostId);
    const escrowBag = old?.escrowBag ?? randomBytes(32);
    this.pairings.set(p.hostId, { ...p, escrowBag, pairedAt: new Date().toISOString() });
    this.trustDialogSince = undefined;
    return escrowBag;
  }

  /** Forgets one host pairing (true when it existed). */
  removePairing(hostId: string): boolean {
    return this.pairings.delete(hostId);
  }

  // ---- power ----------------------------------------------------------------------------------

  /** The device restarts, shuts down, enters recovery or erases itself (asked by a service). */
  powerEvent(event: PowerEvent): void {
    this.host.powerEvent(this, event);
  }

  // ---- control --------------------------------------------------------------------------------

  /** Applies `sim-ctl set` values (field names of the state JSON or lockdown key names). */
  set(values: Readonly<Record<string, string | number | boolean>>): void {
    const parsed: [keyof typeof SETTABLE, string | number | boolean][] = [];
    for (const [rawKey, v] of Object.entries(values)) {
      const key = (Object.prototype.hasOwnProperty.call(SETTABLE, rawKey) ? rawKey : ALIASES[rawKey]) as
        keyof typeof SETTABLE | undefined;
      if (key === undefined) {
        throw new KitError(
          'usage/invalid-argument',
          `cannot set "${rawKey}" (settable: ${Object.keys(SETTABLE).join(', ')})`,
        );
      }
      parsed.push([key, v]);
    }
    // Validate everything first so a bad value changes nothing.
    const apply: (() => void)[] = [];
    for (const [key, v] of parsed) {
      switch (SETTABLE[key]) {
        case 'string': {
          const s = String(v);
          apply.push(() => {
            if (key === 'deviceName') this.deviceName = s;
            else if (key === 'language') this.language = s;
            else if (key === 'locale') this.locale = s;
            else if (key === 'timeZone') this.timeZone = s;
          });
          break;
        }
        case 'boolean': {
          const b = parseBool(key, v);
          apply.push(() => {
            if (key === 'setupComplete') this.setupComplete = b;
            else if (key === 'supervised') this.supervised = b;
            else if (key === 'passcodeSet') {
              this.passcodeSet = b;
              if (!b) this.locked = false;
            } else if (key === 'locked') this.locked = b;
            else if (key === 'uses24HourClock') this.uses24HourClock = b;
            else if (key === 'charging') this.charging = b;
            else if (key === 'adeAssigned') this.adeAssigned = b;
            else if (key === 'activationLocked') this.activationLocked = b;
          });
          break;
        }
        case 'activation': {
          const s = String(v);
          if (s !== 'Unactivated' && s !== 'Activated' && s !== 'FactoryActivated') {
            throw new KitError(
              'usage/invalid-argument',
              `activationState: "${s}" is not Unactivated, Activated or FactoryActivated`,
            );
          }
          apply.push(() => {
            this.activationState = s;
          });
          break;
        }
        case 'trust': {
          const s = String(v);
          if (s !== 'accept' && s !== 'deny' && s !== 'prompt')
            throw new KitError('usage/invalid-argument', `trust: "${s}" is not accept, deny or prompt`);
          apply.push(() => this.setTrust(s));
          break;
        }
        case 'percent': {
          const n = Number(v);
          if (!Number.isInteger(n) || n < 0 || n > 100)
            throw new KitError('usage/invalid-argument', `${key}: "${String(v)}" is not 0…100`);
          apply.push(() => {
            this.batteryLevel = n;
          });
          break;
        }
        case 'version': {
          const release = OS_RELEASES.find((r) => r.version === String(v));
          if (release === undefined) {
            throw new KitError(
              'usage/invalid-argument',
              `productVersion: "${String(v)}" is not a known release (${OS_RELEASES.map((r) => r.version).join(', ')})`,
            );
          }
          apply.push(() => {
            this.identity.productVersion = release.version;
            this.identity.buildVersion = release.build;
          });
          break;
        }
      }
    }
    for (const a of apply) a();
    if (this.locked && !this.passcodeSet) this.locked = false;
  }

  // ---- profiles ---------------------------------------------------------------------------------

  /** Installs a profile at once (replacing one with the same identifier, installed or waiting). */
  installProfile(p: DeviceProfile): void {
    this.pendingProfiles = this.pendingProfiles.filter((x) => x.identifier !== p.identifier);
    const i = this.profiles.findIndex((x) => x.identifier === p.identifier);
    if (i >= 0) this.profiles[i] = p;
    else this.profiles.push(p);
    this.log.info('profile installed', { identifier: p.identifier, source: p.source });
  }

  /** Queues a profile for the person's approval in Settings (replacing one with the same identifier). */
  queueProfile(p: DeviceProfile): void {
    this.pendingProfiles = this.pendingProfiles.filter((x) => x.identifier !== p.identifier);
    this.pendingProfiles.push(p);
    this.log.info('profile waits for approval', { identifier: p.identifier });
  }

  /** `sim-ctl approve UDID IDENTIFIER`: the person installs a waiting profile in Settings; returns it. */
  approveProfile(identifier: string): DeviceProfile {
    const p = this.pendingProfiles.find((x) => x.identifier === identifier);
    if (p === undefined) {
      throw new KitError('sim/invalid-state', `no profile "${identifier}" waits for approval on ${this.udid}`, {
        udid: this.udid,
      });
    }
    this.installProfile(p);
    return p;
  }

  /** Removes an installed profile (true when it was installed). */
  removeProfile(identifier: string): boolean {
    const before = this.profiles.length;
    this.profiles = this.profiles.filter((x) => x.identifier !== identifier);
    return this.profiles.length !== before;
  }

  /** `sim-ctl trust`: what the person does with the Trust dialog, now and from now on. */
  setTrust(mode: TrustMode): void {
    this.trust = mode;
    if (mode === 'prompt') return;
    // accept/deny answers a dialog that is showing; the next Pair sees the answer.
    this.trustDialogSince = mode === 'accept' && this.trustDialogSince !== undefined ? 0 : undefined;
  }

  /** `sim-ctl lock` / `unlock`: locking needs a passcode. */
  setLocked(locked: boolean): void {
    if (locked && !this.passcodeSet) {
      throw new KitError('sim/invalid-state', `device ${this.udid} has no passcode, so it cannot be locked`, {
        udid: this.udid,
      });
    }
    this.locked = locked;
  }

  /** The state JSON of cli.md. */
  state(attached: boolean): DeviceStateJson {
    const id = this.identity;
    return {
      udid: id.udid,
      serial: id.serial,
      ecid: id.ecid.toString(),
      productType: id.productType,
      model: id.model.name,
      productVersion: id.productVersion,
      buildVersion: id.buildVersion,
      deviceClass: id.model.deviceClass,
      deviceName: this.deviceName,
      activationState: this.activationState,
      setupComplete: this.setupComplete,
      supervised: this.supervised,
      passcodeSet: this.passcodeSet,
      locked: this.locked,
      trust: this.trust,
      trustDialog: this.trustDialogSince === undefined ? 'hidden' : 'showing',
      pairings: [...this.pairings.values()].map((p) => ({
        hostId: p.hostId,
        systemBuid: p.systemBuid,
        pairedAt: p.pairedAt,
      })),
      cloudConfiguration: this.cloudConfiguration === null ? null : jsonDict(this.cloudConfiguration),
      profiles: this.profiles.map(profileJson),
      pendingProfiles: this.pendingProfiles.map(profileJson),
      storedProfile:
        this.storedProfile === null ? null : { ...profileJson(this.storedProfile), purpose: 'PostSetupInstallation' },
      adeAssigned: this.adeAssigned,
      activationLocked: this.activationLocked,
      enrollment: this.enrollment,
      skippedPanes: this.skippedPanes,
      clockOffsetMs: Math.round(this.clockOffsetMs),
      afcFiles: this.afc.size,
      preset: this.preset,
      deviceId: attached ? (this.deviceId ?? null) : null,
      attached,
      mode: this.mode,
      locationId: this.locationId,
      wifiAddress: id.wifiAddress,
      language: this.language,
      locale: this.locale,
      timeZone: this.timeZone,
      batteryLevel: this.batteryLevel,
      faults: this.faults.list(),
      activationUrl: this.activationUrl,
    };
  }
}
