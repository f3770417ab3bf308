/**
 * An in-memory model of one iPad behind the {@link KitDevice} port, for the pipeline's unit tests.
 *
 * It keeps the device's state the way the real device does (protocols.md §4–§7): activation; one
 * cloud configuration, settable once (then MCInstall 14002 → `mcinstall/cloud-config-present`),
 * refused before activation (33003) or with an ADE assignment (33004), stored with the device's
 * forced values, and `AllowPairing` false deleting the pairings; normal pairing with a Trust dialog
 * once Setup Assistant is done, supervised pairing and escalation only with a certificate from the
 * configuration; silent installs only after escalation; `StoreProfile` only during Setup Assistant;
 * erase wiping everything but Activation Lock.
 *
 * Faults: {@link FakeKitDevice.addFault} throws a chosen error, makes the device disappear
 * (unplugged: every call fails until {@link FakeKitDevice.reattach}) or hangs forever (the station
 * process "crashes" in the middle of the call) — before or after the call takes effect, at the
 * n-th call of a method or the n-th call overall.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KitError } from '../../src/errors.ts';
import { parseBlueprint, type Blueprint, type BlueprintInput } from '../../src/kitting/blueprint.ts';
import {
  createRunner,
  type JobEvent,
  type Runner,
  type RunnerClock,
  type RunnerOptions,
} from '../../src/kitting/runner.ts';
import { fileProfileLoader } from '../../src/kitting/steps.ts';
import type { Logger } from '../../src/log.ts';
import { openDatabase, type Db } from '../../src/store/db.ts';
import type {
  DeviceIdentification,
  DeviceInspection,
  DeviceSettings,
  DeviceSettingsUpdate,
  EraseOptions,
  InstalledProfile,
  KitDevice,
  PairOptions,
  PairingState,
  SupervisorSigner,
  WaitForReturnOptions,
} from '../../src/kitting/device-port.ts';
import { decodePlist, encodeXml, isPlistDict, type PlistDict, type PlistValue } from '../../src/plist/index.ts';

/** Every port method. */
export type FakeMethod = keyof Omit<KitDevice, 'udid'>;

/** The methods that change the device. */
export const MUTATING_METHODS: readonly FakeMethod[] = [
  'pair',
  'erase',
  'activate',
  'setCloudConfiguration',
  'installProfile',
  'storeProfile',
  'writeSettings',
  'restart',
  'shutdown',
];

/** The whole virtual device. */
export interface FakeState {
  udid: string;
  serial: string;
  ecid: string;
  productType: string;
  productVersion: string;
  deviceClass: string;
  activationState: string;
  /** Activation answers "Activation Lock" (survives erase). */
  activationLocked: boolean;
  /** The activation server is reachable. */
  online: boolean;
  /** The activation record says ADE (DEP): SetCloudConfiguration answers 33004. */
  adeAssigned: boolean;
  setupComplete: boolean;
  /** Locked with a passcode right now. */
  passcodeLocked: boolean;
  /** What the person does with the Trust dialog. */
  trust: 'accept' | 'prompt' | 'deny';
  /** The device accepts this host's pairing. */
  paired: boolean;
  escalated: boolean;
  cloudConfiguration: PlistDict | null;
  profiles: { identifier: string; bytes: Buffer }[];
  /** Installed interactively, waiting for the person to approve in Settings. */
  pendingProfiles: string[];
  storedProfile: Buffer | null;
  settings: { deviceName: string; language: string; locale: string; timeZone: string };
  storage: { totalBytes: number; freeBytes: number };
  batteryLevel: number;
  attached: boolean;
  poweredOff: boolean;
  /** `ActivationState` after an erase. */
  activationAfterErase: string;
  /** After an erase or restart the device does not come back in time. */
  staysAway: boolean;
}

/** One fault to inject. */
export interface Fault {
  /** The method, or `*` for any. */
  readonly method: FakeMethod | '*';
  /** Fire on the n-th call of `method` (1-based, counted from now); with `*`, the n-th call overall. Default 1. */
  readonly nth?: number;
  /** `before` the call takes effect (default) or `after`. */
  readonly when?: 'before' | 'after';
  readonly action: { kind: 'throw'; error: KitError } | { kind: 'disappear' } | { kind: 'hang' };
}

const DEFAULT_SETTINGS = { deviceName: 'iPad', language: 'en', locale: 'en_US', timeZone: 'America/Los_Angeles' };

/** A state for a preset (see cli.md `kitting sim` presets). */
export function presetState(
  preset: 'fresh' | 'activated' | 'in-use' | 'foreign',
  overrides: Partial<FakeState> = {},
): FakeState {
  const base: FakeState = {
    udid: '00008103-000A1B2C3D4E5F60',
    serial: 'DMPXK0ABCDEF',
    ecid: '18446744073709551615',
    productType: 'iPad13,18',
    productVersion: '17.5.1',
    deviceClass: 'iPad',
    activationState: 'Unactivated',
    activationLocked: false,
    online: true,
    adeAssigned: false,
    setupComplete: false,
    passcodeLocked: false,
    trust: 'accept',
    paired: false,
    escalated: false,
    cloudConfiguration: null,
    profiles: [],
    pendingProfiles: [],
    storedProfile: null,
    settings: { ...DEFAULT_SETTINGS },
    storage: { totalBytes: 64_000_000_000, freeBytes: 50_000_000_000 },
    batteryLevel: 80,
    attached: true,
    poweredOff: false,
    activationAfterErase: 'Unactivated',
    staysAway: false,
  };
  if (preset !== 'fresh') base.activationState = 'Activated';
  if (preset === 'in-use' || preset === 'foreign') {
    base.setupComplete = true;
    base.settings = { deviceName: 'Taro’s iPad', language: 'en', locale: 'en_US', timeZone: 'Asia/Tokyo' };
    base.profiles = [{ identifier: 'com.example.personal', bytes: Buffer.from('personal') }];
  }
  if (preset === 'foreign') {
    base.cloudConfiguration = {
      AllowPairing: true,
      IsSupervised: true,
      IsMandatory: true,
      IsMDMUnremovable: true,
      IsMultiUser: false,
      OrganizationName: 'Another School',
      SkipSetup: ['Siri'],
      SupervisorHostCertificates: [Buffer.from('another-org-certificate')],
      ConfigurationSource: 2,
      ConfigurationWasApplied: true,
      CloudConfigurationUIComplete: true,
    };
  }
  return { ...base, ...overrides };
}

function clonePlist(v: PlistValue): PlistValue {
  if (v instanceof Uint8Array) return Buffer.from(v);
  if (Array.isArray(v)) return v.map(clonePlist);
  if (isPlistDict(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, clonePlist(x)]));
  return v;
}

function cloneDict(d: PlistDict): PlistDict {
  return clonePlist(d) as PlistDict;
}

/** The `PayloadIdentifier` of an (unsigned) test profile. */
export function fakeProfileIdentifier(bytes: Buffer): string {
  const v = decodePlist(bytes);
  const id = isPlistDict(v) ? v.PayloadIdentifier : undefined;
  if (typeof id !== 'string') throw new KitError('mcinstall/profile-rejected', 'profile without PayloadIdentifier');
  return id;
}

/** See the module doc. */
export class FakeKitDevice implements KitDevice {
  readonly state: FakeState;
  /** Every call, in order. */
  readonly calls: FakeMethod[] = [];
  /** Every call that took effect on a mutating method, with what it changed. */
  readonly applied: { method: FakeMethod; detail: string }[] = [];
  /** When true every call hangs (the process is "dead"). */
  hangAll = false;
  private faults: { fault: Fault; remaining: number }[] = [];
  private hangWaiters: (() => void)[] = [];
  /** How many calls hung so far. */
  hangs = 0;

  constructor(state: FakeState) {
    this.state = state;
  }

  get udid(): string {
    return this.state.udid;
  }

  /** Arms a fault (see {@link Fault}). */
  addFault(fault: Fault): void {
    this.faults.push({ fault, remaining: fault.nth ?? 1 });
  }

  /** Resolves when a call hangs (a `hang` fault fired, or {@link hangAll} caught a call). */
  whenHung(): Promise<void> {
    return this.hangs > 0 ? Promise.resolve() : new Promise((resolve) => this.hangWaiters.push(resolve));
  }

  private hang(): Promise<never> {
    this.hangs += 1;
    for (const w of this.hangWaiters.splice(0)) w();
    return new Promise<never>(() => undefined);
  }

  /** Plugs the device back in (after `disappear`). */
  reattach(): void {
    this.state.attached = true;
  }

  /** The person taps through Setup Assistant: a staged profile installs itself. */
  completeSetup(): void {
    this.state.setupComplete = true;
    if (this.state.storedProfile !== null) {
      const bytes = this.state.storedProfile;
      this.addProfile(fakeProfileIdentifier(bytes), bytes);
      this.state.storedProfile = null;
    }
  }

  /** How many calls to mutating methods took effect. */
  appliedCount(method?: FakeMethod): number {
    return this.applied.filter((a) => method === undefined || a.method === method).length;
  }

  // -------------------------------------------------------------------------------------------

  private gone(): KitError {
    return new KitError('device/not-found', `no attached device has UDID ${this.udid}`, { udid: this.udid });
  }

  private fire(action: Fault['action']): Promise<never> {
    if (action.kind === 'hang') return this.hang();
    if (action.kind === 'disappear') {
      this.state.attached = false;
      this.state.escalated = false;
      return Promise.reject(new KitError('usbmux/device-gone', 'the device was unplugged', { udid: this.udid }));
    }
    return Promise.reject(action.error);
  }

  private takeFault(method: FakeMethod): Fault | undefined {
    let hit: Fault | undefined;
    for (const f of this.faults) {
      if (f.fault.method !== '*' && f.fault.method !== method) continue;
      f.remaining -= 1;
      if (f.remaining === 0 && hit === undefined) hit = f.fault;
    }
    this.faults = this.faults.filter((f) => f.remaining > 0);
    return hit;
  }

  private async call<T>(method: FakeMethod, apply: () => T, detail?: (result: T) => string): Promise<T> {
    this.calls.push(method);
    if (this.hangAll) return this.hang();
    const fault = this.takeFault(method);
    await Promise.resolve();
    if (!this.state.attached || this.state.poweredOff) throw this.gone();
    if (fault !== undefined && (fault.when ?? 'before') === 'before') return this.fire(fault.action);
    const result = apply();
    if (MUTATING_METHODS.includes(method)) this.applied.push({ method, detail: detail?.(result) ?? '' });
    if (fault !== undefined) return this.fire(fault.action);
    return result;
  }

  private requireSession(): void {
    if (!this.state.paired) {
      throw new KitError('lockdown/invalid-host-id', 'lockdown StartSession failed: InvalidHostID', {
        udid: this.udid,
      });
    }
  }

  private addProfile(identifier: string, bytes: Buffer): void {
    this.state.profiles = this.state.profiles.filter((p) => p.identifier !== identifier);
    this.state.profiles.push({ identifier, bytes: Buffer.from(bytes) });
  }

  private certificateAccepted(der: Buffer): boolean {
    const certs = this.state.cloudConfiguration?.SupervisorHostCertificates;
    return Array.isArray(certs) && certs.some((c) => c instanceof Uint8Array && Buffer.from(c).equals(der));
  }

  private challenge(signer: SupervisorSigner): void {
    const challenge = Buffer.from('0123456789abcdef', 'hex');
    const signed = signer.sign(challenge);
    if (!(signed instanceof Buffer) || signed.length === 0) {
      throw new KitError('pairing/failed', 'the challenge response is empty', { udid: this.udid });
    }
  }

  // -------------------------------------------------------------------------------------------
  // KitDevice

  identify(): Promise<DeviceIdentification> {
    return this.call('identify', () => ({
      udid: this.state.udid,
      serial: this.state.serial,
      ecid: this.state.ecid,
      productType: this.state.productType,
      productVersion: this.state.productVersion,
      deviceClass: this.state.deviceClass,
      activationState: this.state.activationState,
      deviceName: this.state.settings.deviceName,
    }));
  }

  pairingState(): Promise<PairingState> {
    return this.call('pairingState', () => (this.state.paired ? 'paired' : 'unpaired'));
  }

  pair(options: PairOptions): Promise<void> {
    return this.call(
      'pair',
      () => {
        const s = this.state;
        if (options.mode === 'supervised') {
          if (!this.certificateAccepted(options.signer.certificateDer)) {
            throw new KitError('pairing/failed', 'the device is not supervised by this certificate', {
              udid: this.udid,
            });
          }
          this.challenge(options.signer);
        } else {
          if (s.cloudConfiguration?.AllowPairing === false) {
            throw new KitError('lockdown/mc-protected', 'lockdown Pair failed: MCProtected', { udid: this.udid });
          }
          if (s.setupComplete) {
            if (s.passcodeLocked) throw new KitError('lockdown/password-protected', 'locked', { udid: this.udid });
            if (s.trust === 'deny') throw new KitError('lockdown/trust-denied', 'denied', { udid: this.udid });
            if (s.trust === 'prompt') {
              options.onTrustPending?.();
              throw new KitError('lockdown/trust-pending', 'nobody tapped Trust', { udid: this.udid });
            }
          }
        }
        s.paired = true;
      },
      () => options.mode,
    );
  }

  inspect(): Promise<DeviceInspection> {
    return this.call('inspect', () => {
      this.requireSession();
      const s = this.state;
      return {
        activationState: s.activationState,
        activationLocked: s.activationLocked,
        setupComplete: s.setupComplete,
        cloudConfiguration: s.cloudConfiguration === null ? null : cloneDict(s.cloudConfiguration),
        supervised: s.cloudConfiguration?.IsSupervised === true,
        storage: { ...s.storage },
        batteryLevel: s.batteryLevel,
        profiles: this.installedProfiles(),
        storedProfilePresent: s.storedProfile !== null,
      };
    });
  }

  erase(options: EraseOptions): Promise<void> {
    return this.call(
      'erase',
      () => {
        this.requireSession();
        if (this.state.passcodeLocked && !this.state.setupComplete) {
          throw new KitError('mcinstall/device-locked', 'locked', { udid: this.udid });
        }
        Object.assign(this.state, {
          activationState: this.state.activationAfterErase,
          setupComplete: false,
          passcodeLocked: false,
          paired: false,
          escalated: false,
          cloudConfiguration: null,
          profiles: [],
          pendingProfiles: [],
          storedProfile: null,
          settings: { ...DEFAULT_SETTINGS },
        });
      },
      () => `preserveDataPlan=${String(options.preserveDataPlan)}`,
    );
  }

  waitForReturn(_options: WaitForReturnOptions): Promise<void> {
    return this.call('waitForReturn', () => {
      if (this.state.staysAway)
        throw new KitError('device/timeout', 'the device did not come back', { udid: this.udid });
    });
  }

  activate(): Promise<void> {
    return this.call('activate', () => {
      this.requireSession();
      if (!this.state.online)
        throw new KitError('activation/offline', 'albert.apple.com unreachable', { udid: this.udid });
      if (this.state.activationLocked) throw new KitError('activation/locked', 'Activation Lock', { udid: this.udid });
      this.state.activationState = 'Activated';
    });
  }

  getCloudConfiguration(): Promise<PlistDict | null> {
    return this.call('getCloudConfiguration', () => {
      this.requireSession();
      return this.state.cloudConfiguration === null ? null : cloneDict(this.state.cloudConfiguration);
    });
  }

  setCloudConfiguration(configuration: PlistDict): Promise<void> {
    return this.call('setCloudConfiguration', () => {
      this.requireSession();
      const s = this.state;
      if (s.activationState === 'Unactivated') {
        throw new KitError('mcinstall/not-activated', 'MCCloudConfigErrorDomain 33003', { udid: this.udid });
      }
      if (s.adeAssigned)
        throw new KitError('mcinstall/ade-assigned', 'MCCloudConfigErrorDomain 33004', { udid: this.udid });
      if (s.cloudConfiguration !== null) {
        throw new KitError('mcinstall/cloud-config-present', 'MCTunnelErrorDomain 14002', { udid: this.udid });
      }
      const stored = cloneDict(configuration);
      const supervised = stored.IsSupervised === true;
      stored.ConfigurationSource = 2;
      stored.IsMandatory = true;
      if (!supervised) stored.IsMDMUnremovable = false;
      if (stored.ConfigurationURL === undefined) {
        stored.CloudConfigurationUIComplete = true;
        stored.ConfigurationWasApplied = true;
      }
      s.cloudConfiguration = stored;
      if (stored.AllowPairing === false) s.paired = false;
    });
  }

  escalate(signer: SupervisorSigner): Promise<void> {
    return this.call('escalate', () => {
      this.requireSession();
      if (!this.certificateAccepted(signer.certificateDer)) {
        throw new KitError('mcinstall/escalation-rejected', 'CertificateRejected', { udid: this.udid });
      }
      this.challenge(signer);
      this.state.escalated = true;
    });
  }

  installProfile(profile: Buffer, options: { readonly silent: boolean }): Promise<void> {
    return this.call(
      'installProfile',
      () => {
        this.requireSession();
        const id = fakeProfileIdentifier(profile);
        if (this.state.passcodeLocked) throw new KitError('mcinstall/device-locked', 'locked', { udid: this.udid });
        if (!options.silent) {
          this.state.pendingProfiles.push(id);
          return id;
        }
        if (!this.state.escalated) throw new KitError('mcinstall/not-escalated', 'not escalated', { udid: this.udid });
        this.addProfile(id, profile);
        return id;
      },
      (id) => id,
    ).then(() => undefined);
  }

  storeProfile(profile: Buffer): Promise<void> {
    return this.call(
      'storeProfile',
      () => {
        this.requireSession();
        if (this.state.setupComplete)
          throw new KitError('mcinstall/failed', 'Setup Assistant already done', { udid: this.udid });
        this.state.storedProfile = Buffer.from(profile);
        return fakeProfileIdentifier(profile);
      },
      (id) => id,
    ).then(() => undefined);
  }

  getStoredProfile(): Promise<Buffer | null> {
    return this.call('getStoredProfile', () => {
      this.requireSession();
      return this.state.storedProfile === null ? null : Buffer.from(this.state.storedProfile);
    });
  }

  private installedProfiles(): InstalledProfile[] {
    return this.state.profiles.map((p) => ({
      identifier: p.identifier,
      uuid: null,
      displayName: null,
      removalDisallowed: false,
    }));
  }

  listProfiles(): Promise<InstalledProfile[]> {
    return this.call('listProfiles', () => {
      this.requireSession();
      return this.installedProfiles();
    });
  }

  readSettings(): Promise<DeviceSettings> {
    return this.call('readSettings', () => {
      this.requireSession();
      return { ...this.state.settings };
    });
  }

  writeSettings(update: DeviceSettingsUpdate): Promise<void> {
    return this.call(
      'writeSettings',
      () => {
        this.requireSession();
        const s = this.state.settings;
        if (update.deviceName !== undefined) s.deviceName = update.deviceName;
        if (update.language !== undefined) s.language = update.language;
        if (update.locale !== undefined) s.locale = update.locale;
        if (update.timeZone !== undefined) s.timeZone = update.timeZone;
      },
      () => Object.keys(update).sort().join(','),
    );
  }

  restart(): Promise<void> {
    return this.call('restart', () => {
      this.requireSession();
      this.state.escalated = false;
    });
  }

  shutdown(): Promise<void> {
    return this.call('shutdown', () => {
      this.requireSession();
      this.state.escalated = false;
      this.state.poweredOff = true;
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Test harness: a real SQLite file in a unique temp dir, profile files, a clock that never sleeps.

/** The supervision certificate the tests' blueprint organization uses (opaque bytes for the fake). */
export const TEST_CERTIFICATE = Buffer.from('test-school-supervision-certificate');

/** A signer for {@link TEST_CERTIFICATE}. */
export const TEST_SIGNER: SupervisorSigner = {
  certificateDer: TEST_CERTIFICATE,
  sign: (content) => Buffer.concat([Buffer.from('signed:'), content]),
};

/** An unsigned `.mobileconfig` with this identifier. */
export function testProfile(identifier: string, displayName = identifier): Buffer {
  return encodeXml({
    PayloadType: 'Configuration',
    PayloadIdentifier: identifier,
    PayloadUUID: `UUID-${identifier}`,
    PayloadDisplayName: displayName,
    PayloadVersion: 1,
    PayloadContent: [],
  });
}

/** A clock that counts instead of sleeping: every `now()` is one second later; `sleeps` lists the delays asked for. */
export class TestClock implements RunnerClock {
  private t = Date.parse('2025-04-01T00:00:00.000Z');
  readonly sleeps: number[] = [];
  now(): Date {
    this.t += 1000;
    return new Date(this.t);
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.sleeps.push(ms);
    if (signal?.aborted === true) return Promise.reject(signal.reason as Error);
    return Promise.resolve();
  }
}

/** A temp dir with the station database and profile files. Call {@link Harness.cleanup} after each test. */
export class Harness {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kit-runner-'));
  readonly dbFile = path.join(this.dir, 'station.db');
  readonly clock = new TestClock();
  readonly events: JobEvent[] = [];
  private readonly dbs: Db[] = [];

  constructor() {
    for (const id of ['org.example.wifi', 'org.example.restrictions', 'org.example.mdm-enrollment']) {
      fs.writeFileSync(path.join(this.dir, `${id}.mobileconfig`), testProfile(id));
    }
  }

  /** A new connection to the database file (as a new process would open it). */
  open(): Db {
    const db = openDatabase(this.dbFile);
    this.dbs.push(db);
    return db;
  }

  /** A runner on a new connection, recording events. */
  runner(options: Partial<RunnerOptions> & { signer?: SupervisorSigner | null } = {}): { runner: Runner; db: Db } {
    const db = options.db ?? this.open();
    const signer = options.signer === undefined ? TEST_SIGNER : options.signer;
    const runner = createRunner({
      db,
      supervisor: () => Promise.resolve({ certificateDer: TEST_CERTIFICATE, signer }),
      profiles: fileProfileLoader({ baseDir: this.dir }),
      clock: this.clock,
      logger: silentLogger,
      ...options,
    });
    runner.onEvent((e) => this.events.push(e));
    return { runner, db };
  }

  cleanup(): void {
    for (const db of this.dbs.splice(0)) if (db.open) db.close();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A logger that drops everything (tests assert on the store and events, not on log lines). */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => silentLogger,
};

/** The richest blueprint: supervised, enrollment URL with a Wi-Fi profile, an extra profile, naming, restart. */
export function testBlueprint(overrides: Partial<BlueprintInput> = {}): Blueprint {
  return parseBlueprint({
    version: 1,
    name: 'Grade 3',
    organization: { identityId: 'test-school', displayName: 'Test School' },
    enrollment: {
      method: 'url',
      url: 'https://mdm.example.com/enroll/grade3',
      wifiProfile: { kind: 'file', path: 'org.example.wifi.mobileconfig' },
    },
    naming: { template: 'G3-{n:3}', start: 1 },
    locale: { language: 'ja', region: 'ja_JP', timeZone: 'Asia/Tokyo' },
    profiles: [{ kind: 'file', path: 'org.example.restrictions.mobileconfig' }],
    eraseIfNeeded: true,
    finish: 'restart',
    ...overrides,
  });
}
