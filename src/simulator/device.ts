/**
 * One virtual iPad (or iPhone): identity, state, remembered host pairings, the Trust dialog, faults,
 * and the TCP "ports" its daemons listen on (lockdownd on 62078 plus the service ports it hands out).
 * Attachment to the bus (DeviceID, Attached/Detached) belongs to the simulator that owns it.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { KitError } from '../errors.ts';
import { createLogger, type Logger } from '../log.ts';
import type { PlistDict, PlistValue } from '../plist/index.ts';
import { deviceKeys, type DeviceKeys } from './crypto.ts';
import { FaultSet } from './faults.ts';
import { OS_RELEASES, type DeviceIdentity } from './identity.ts';
import type { ActivationState, PresetName, PresetSpec, TrustMode } from './presets.ts';
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
  /** The device restarts, shuts down or enters recovery: it leaves the bus (and returns after a reboot). */
  powerEvent(device: VirtualDevice, event: 'restart' | 'shutdown' | 'recovery'): void;
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
  cloudConfiguration: PlistDict | null;
  profiles: { identifier: string }[];
  storedProfile: PlistDict | null;
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
  profiles: { identifier: string }[] = [];
  storedProfile: PlistDict | null = null;
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

  /** The device restarts, shuts down or enters recovery (asked by lockdown or diagnostics_relay). */
  powerEvent(event: 'restart' | 'shutdown' | 'recovery'): void {
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
      cloudConfiguration: this.cloudConfiguration,
      profiles: this.profiles,
      storedProfile: this.storedProfile,
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
