/**
 * The virtual fleet: a virtual usbmuxd, the virtual devices on its bus (DeviceIDs, USB locations,
 * attach/detach), their power cycles, and the control verbs of `sim-ctl`.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { KitError } from '../errors.ts';
import { createLogger } from '../log.ts';
import { AppleActivationServer } from './apple-activation-server.ts';
import { startControlServer, type ControlServer } from './control.ts';
import { DeviceCa } from './device-ca.ts';
import { VirtualDevice, type DeviceHost, type DeviceStateJson, type PowerEvent } from './device.ts';
import { parseFaultSpec, type FaultSpec } from './faults.ts';
import { generateIdentity, SeededRandom } from './identity.ts';
import { checkInInstalledProfile } from './mdm-checkin.ts';
import { serveLockdown } from './lockdown.ts';
import { PairRecordStore } from './pair-records.ts';
import { presetOf, type PresetName, type TrustMode } from './presets.ts';
import { completeSetup, type SetupCredentials, type SetupResult } from './setup-assistant.ts';
import { readSupervisionP12, type SupervisionCertificate } from './supervision.ts';
import { Timing, type TimingMode } from './timing.ts';
import { formatMuxAddress, VirtualUsbmuxd, type MuxAddress, type MuxBackend, type MuxDevice } from './usbmuxd.ts';

const log = createLogger('simulator/fleet');

/** Devices per virtual USB bus (a hub's worth). */
const DEVICES_PER_BUS = 8;

/** Options of {@link startSimulator}. */
export interface SimulatorOptions {
  /** Devices attached at start (default 1). */
  devices?: number;
  /** Preset of the devices attached at start and of `plug` without a preset (default `fresh`). */
  preset?: string;
  /** Unix socket path for usbmuxd (default: `usbmuxd.sock` in a fresh temp folder). */
  socketPath?: string;
  /** TCP address for usbmuxd instead of a unix socket (port 0 picks a free port). */
  tcp?: { host: string; port: number };
  /** Control API: a unix socket path, or a TCP port on 127.0.0.1 (default: `control.sock` next to the usbmuxd socket). */
  control?: string | number;
  timing?: TimingMode;
  /** Multiplies every delay (default 1). */
  timeScale?: number;
  /** Makes identities deterministic (default: random). */
  seed?: string;
  /** Folder mirroring the pair-record store (default: in memory only). */
  pairRecordDir?: string;
  /**
   * Activation server (deviceActivation URL) the devices use. Without it the simulator starts its
   * own fake Apple activation server on 127.0.0.1.
   */
  activationUrl?: string;
  /** PKCS#12 bytes of the supervision identity behind the `supervised` preset. */
  identityP12?: Buffer;
  /** Password of {@link identityP12}. */
  identityPassword?: string;
}

/** Where activation goes: the deviceActivation and drmHandshake URLs, and whether it is our fake. */
export interface ActivationEndpoint {
  url: string;
  drmHandshakeUrl: string;
  /** True when it is the simulator's own fake Apple server. */
  simulated: boolean;
  /** The HTTP status the fake answers everything with, or null (normal answers). */
  failureStatus: number | null;
}

/** One row of `sim-ctl list`. */
export interface DeviceSummary {
  udid: string;
  deviceId: number | null;
  attached: boolean;
  mode: DeviceStateJson['mode'];
  productType: string;
  model: string;
  deviceName: string;
  productVersion: string;
  preset: PresetName;
}

interface Slot {
  device: VirtualDevice;
  bus: number;
  /** A reboot/boot waiting to re-attach the device. */
  returnTimer: NodeJS.Timeout | undefined;
}

/** A running simulator. Every `sim-ctl` verb has a method here. */
export class Simulator implements MuxBackend, DeviceHost {
  readonly timing: Timing;
  readonly systemBuid: string;
  readonly pairRecords: PairRecordStore;
  readonly seed: string;
  /** The simulated Apple device CA (MachineInfo signatures at enrollment). */
  readonly deviceCa: DeviceCa;
  private readonly supervisor: SupervisionCertificate | undefined;
  private readonly externalActivationUrl: string | undefined;
  private appleServer: AppleActivationServer | undefined;
  private readonly mux: VirtualUsbmuxd;
  private control: ControlServer | undefined;
  private readonly slots = new Map<string, Slot>();
  /** Attached devices in attach order. */
  private readonly attachedOrder: string[] = [];
  private nextDeviceId = 1;
  private nextIndex = 0;
  private readonly nextAddress = new Map<number, number>();
  private readonly defaultPreset: string;
  private readonly tempDir: string | undefined;
  private stopped = false;

  private constructor(
    opts: SimulatorOptions,
    address: MuxAddress,
    tempDir: string | undefined,
    deviceCa: DeviceCa,
    supervisor: SupervisionCertificate | undefined,
  ) {
    this.deviceCa = deviceCa;
    this.supervisor = supervisor;
    this.seed = opts.seed ?? randomUUID();
    this.timing = new Timing(opts.timing ?? 'none', opts.timeScale ?? 1);
    this.pairRecords = new PairRecordStore(opts.pairRecordDir);
    this.systemBuid = this.pairRecords.systemBuid(new SeededRandom(`${this.seed}/buid`).uuid());
    this.defaultPreset = opts.preset ?? 'fresh';
    this.externalActivationUrl = opts.activationUrl;
    this.tempDir = tempDir;
    this.mux = new VirtualUsbmuxd(this, address);
  }

  /** Starts a simulator; see {@link startSimulator}. */
  static async start(opts: SimulatorOptions = {}): Promise<Simulator> {
    const preset = presetOf(opts.preset ?? 'fresh');
    let supervisor: SupervisionCertificate | undefined;
    if (opts.identityP12 !== undefined) supervisor = readSupervisionP12(opts.identityP12, opts.identityPassword ?? '');
    if (preset.preparedBySupervisor && supervisor === undefined) {
      throw new KitError(
        'usage/invalid-argument',
        `preset "${preset.name}" needs a supervision identity: --identity-p12 F --identity-password-file F`,
      );
    }
    const count = opts.devices ?? 1;
    if (!Number.isInteger(count) || count < 0 || count > 512)
      throw new KitError('usage/invalid-argument', `--devices must be 0…512, got ${count}`);
    let tempDir: string | undefined;
    let address: MuxAddress;
    if (opts.tcp !== undefined) {
      address = { kind: 'tcp', host: opts.tcp.host, port: opts.tcp.port };
    } else if (opts.socketPath !== undefined) {
      address = { kind: 'unix', path: path.resolve(opts.socketPath) };
    } else {
      tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kitting-sim-'));
      address = { kind: 'unix', path: path.join(tempDir, 'usbmuxd.sock') };
    }
    const sim = new Simulator(opts, address, tempDir, await DeviceCa.create(), supervisor);
    try {
      if (opts.activationUrl === undefined) {
        sim.appleServer = await AppleActivationServer.start({
          isActivationLocked: (udid) => sim.slots.get(udid)?.device.activationLocked,
        });
      }
      for (let i = 0; i < count; i++) sim.addDevice(opts.preset ?? 'fresh', false);
      await sim.mux.listen();
      let control = opts.control;
      if (control === undefined) {
        if (address.kind === 'unix') control = path.join(path.dirname(address.path), 'control.sock');
        else {
          sim.ownTempDir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'kitting-sim-'));
          control = path.join(sim.ownTempDir, 'control.sock');
        }
      }
      sim.control = await startControlServer(sim, control);
    } catch (err) {
      await sim.stop();
      throw err instanceof KitError
        ? err
        : new KitError('sim/start-failed', `could not start the simulator: ${String(err)}`, { cause: err });
    }
    for (const slot of sim.slots.values()) sim.attach(slot);
    log.info('simulator ready', { usbmuxd: sim.usbmuxdAddress, devices: sim.udids().length });
    return sim;
  }

  private ownTempDir: string | undefined;

  /** The usbmuxd address in `USBMUXD_SOCKET_ADDRESS` form (`UNIX:/path` or `host:port`). */
  get usbmuxdAddress(): string {
    return formatMuxAddress(this.mux.address);
  }

  /** The unix socket path of usbmuxd (undefined for TCP). */
  get usbmuxdSocketPath(): string | undefined {
    return this.mux.address.kind === 'unix' ? this.mux.address.path : undefined;
  }

  /** The control API address (a socket path, or `127.0.0.1:PORT`). */
  get controlAddress(): string {
    return this.control?.address ?? '';
  }

  /** The activation server the devices use (`GET /activation-url`). */
  get activation(): ActivationEndpoint {
    if (this.appleServer !== undefined) {
      return {
        url: this.appleServer.activationUrl,
        drmHandshakeUrl: this.appleServer.drmHandshakeUrl,
        simulated: true,
        failureStatus: this.appleServer.failureStatus,
      };
    }
    const url = this.externalActivationUrl ?? '';
    return {
      url,
      drmHandshakeUrl: url.replace(/deviceActivation\/?$/, 'drmHandshake'),
      simulated: false,
      failureStatus: null,
    };
  }

  /** The deviceActivation URL the devices use. */
  get activationUrl(): string {
    return this.activation.url;
  }

  /** The fake Apple activation server (undefined with an external `activationUrl`). */
  get appleActivationServer(): AppleActivationServer | undefined {
    return this.appleServer;
  }

  /** The simulated Apple device CA certificate (PEM) that signs the devices' identities. */
  get deviceCaPem(): string {
    return this.deviceCa.certificatePem;
  }

  /**
   * Makes the fake Apple activation server answer every request with HTTP `status` (null: normal
   * answers again). `sim/invalid-state` when activation goes to an external server.
   */
  setActivationFailure(status: number | null): void {
    if (this.appleServer === undefined)
      throw new KitError('sim/invalid-state', 'activation goes to an external server (--activation-url)');
    this.appleServer.setFailure(status);
  }

  /** UDIDs of every virtual device the simulator knows (attached or not), in plug order. */
  udids(): string[] {
    return [...this.slots.keys()];
  }

  // ---- MuxBackend --------------------------------------------------------------------------------

  /** @internal usbmuxd's view of the attached devices. */
  attached(): MuxDevice[] {
    const out: MuxDevice[] = [];
    for (const udid of this.attachedOrder) {
      const d = this.slots.get(udid)?.device;
      if (d?.deviceId === undefined) continue;
      out.push({
        deviceId: d.deviceId,
        udid,
        productId: d.identity.model.usbProductId ?? 0x12ab,
        locationId: d.locationId,
        speed: [0x8103, 0x8112, 0x8122, 0x8132].includes(d.identity.model.chipId) ? 5_000_000_000 : 480_000_000,
      });
    }
    return out;
  }

  /** @internal usbmuxd Connect. */
  connect(deviceId: number, port: number): 'nodev' | 'refused' | ((socket: net.Socket) => void) {
    const d = this.byDeviceId(deviceId);
    if (d === undefined) return 'nodev';
    const handler = d.portHandler(port, (socket) => serveLockdown(d, socket));
    return handler ?? 'refused';
  }

  private byDeviceId(id: number): VirtualDevice | undefined {
    for (const udid of this.attachedOrder) {
      const d = this.slots.get(udid)?.device;
      if (d?.deviceId === id) return d;
    }
    return undefined;
  }

  // ---- DeviceHost --------------------------------------------------------------------------------

  /** @internal A device restarts, shuts down or enters recovery. */
  powerEvent(device: VirtualDevice, event: PowerEvent): void {
    const slot = this.slots.get(device.udid);
    if (slot === undefined || this.stopped) return;
    log.info('power event', { udid: device.udid, event });
    const wasAttached = slot.device.deviceId !== undefined;
    if (wasAttached) this.detach(slot);
    if (event === 'erase') {
      // Erase All Content and Settings: wiped now, back in Setup Assistant after the erase.
      device.wipe();
      device.mode = 'rebooting';
      this.scheduleReturn(slot, this.timing.ms('erase'));
      return;
    }
    if (event === 'restart') {
      if (wasAttached) {
        device.mode = 'rebooting';
        this.scheduleReturn(slot, this.timing.ms('reboot'));
      } else {
        // Restarted while unplugged (e.g. WaitForDisconnect and the cable was pulled): it stays off the bus.
        this.boot(slot);
      }
    } else {
      device.mode = event === 'shutdown' ? 'off' : 'recovery';
    }
  }

  private scheduleReturn(slot: Slot, ms: number): void {
    if (slot.returnTimer !== undefined) clearTimeout(slot.returnTimer);
    slot.returnTimer = setTimeout(() => {
      slot.returnTimer = undefined;
      if (this.stopped) return;
      this.boot(slot);
      this.attach(slot);
    }, ms);
  }

  /** The device comes up after a power cycle: locked when it has a passcode, no session, no dialog. */
  private boot(slot: Slot): void {
    const d = slot.device;
    d.mode = 'normal';
    d.trustDialogSince = undefined;
    if (d.passcodeSet) d.locked = true;
  }

  // ---- attach / detach ---------------------------------------------------------------------------

  private addDevice(presetName: string, attachNow: boolean, productType?: string): VirtualDevice {
    const preset = presetOf(presetName);
    const supervisor = this.supervisor;
    if (preset.preparedBySupervisor && supervisor === undefined) {
      throw new KitError(
        'usage/invalid-argument',
        `preset "${preset.name}" needs a supervision identity: start kitting sim with --identity-p12 F --identity-password-file F`,
      );
    }
    const index = this.nextIndex++;
    const identity = generateIdentity(this.seed, index, productType);
    let udid = identity.udid;
    // Vanishingly unlikely, but two seeds' devices must never share a UDID in one fleet.
    if (this.slots.has(udid)) throw new KitError('bug', `duplicate UDID ${udid}`);
    const bus = 1 + Math.floor(index / DEVICES_PER_BUS);
    const device = new VirtualDevice(identity, preset, this, 0);
    device.activationUrl = this.activationUrl === '' ? null : this.activationUrl;
    if (preset.preparedBySupervisor && supervisor !== undefined) {
      device.cloudConfiguration = {
        AllowPairing: false,
        AwaitDeviceConfigured: false,
        CloudConfigurationUIComplete: true,
        ConfigurationSource: 2,
        ConfigurationWasApplied: true,
        IsMDMUnremovable: false,
        IsMandatory: true,
        IsSupervised: true,
        OrganizationMagic: new SeededRandom(`${this.seed}/org/${index}`).uuid(),
        OrganizationName: supervisor.organization,
        SkipSetup: [],
        SupervisorHostCertificates: [supervisor.der],
      };
      device.skippedPanes = [];
    }
    const slot: Slot = { device, bus, returnTimer: undefined };
    udid = device.udid;
    this.slots.set(udid, slot);
    if (attachNow) this.attach(slot);
    return device;
  }

  private attach(slot: Slot): void {
    const d = slot.device;
    if (d.deviceId !== undefined) return;
    d.deviceId = this.nextDeviceId++;
    // Every enumeration gets the next free USB address on the device's bus.
    const address = this.nextAddress.get(slot.bus) ?? 2;
    this.nextAddress.set(slot.bus, address >= 127 ? 2 : address + 1);
    d.locationId = (slot.bus << 16) | address;
    this.attachedOrder.push(d.udid);
    log.info('attached', { udid: d.udid, deviceId: d.deviceId });
    const md = this.attached().find((m) => m.udid === d.udid);
    if (md !== undefined) this.mux.deviceAttached(md);
  }

  private detach(slot: Slot): void {
    const d = slot.device;
    const id = d.deviceId;
    if (id === undefined) return;
    d.deviceId = undefined;
    const i = this.attachedOrder.indexOf(d.udid);
    if (i >= 0) this.attachedOrder.splice(i, 1);
    d.dropConnections();
    d.trustDialogSince = undefined;
    log.info('detached', { udid: d.udid, deviceId: id });
    this.mux.deviceDetached(id);
  }

  private slot(udid: string): Slot {
    const s = this.slots.get(udid);
    if (s === undefined) throw new KitError('sim/unknown-device', `no virtual device ${udid}`, { udid });
    return s;
  }

  // ---- control verbs -----------------------------------------------------------------------------

  /** `sim-ctl list`. */
  list(): DeviceSummary[] {
    return [...this.slots.values()].map(({ device: d }) => ({
      udid: d.udid,
      deviceId: d.deviceId ?? null,
      attached: d.deviceId !== undefined,
      mode: d.mode,
      productType: d.identity.productType,
      model: d.identity.model.name,
      deviceName: d.deviceName,
      productVersion: d.identity.productVersion,
      preset: d.preset,
    }));
  }

  /**
   * `sim-ctl plug [--preset P]`: a new device is plugged in; returns its UDID. `productType` picks
   * the hardware (e.g. `iPhone15,2`) instead of the seed's choice.
   */
  plug(preset?: string, productType?: string): string {
    return this.addDevice(preset ?? this.defaultPreset, true, productType).udid;
  }

  /**
   * `sim-ctl approve UDID IDENTIFIER`: the person installs a profile that waits in Settings; an MDM
   * enrollment profile then checks in at its check-in URL (resolves once the MDM answered).
   */
  async approve(udid: string, identifier: string): Promise<void> {
    const device = this.slot(udid).device;
    const p = device.approveProfile(identifier);
    await checkInInstalledProfile(device, p.bytes, p.identifier);
  }

  /**
   * `sim-ctl setup UDID complete [--username U --password P]`: the person taps through Setup
   * Assistant; the device enrolls itself at its ConfigurationURL. Throws `sim/setup-needs-credentials`
   * or `sim/setup-failed` when enrollment cannot finish (setup stays incomplete).
   */
  setup(udid: string, credentials?: SetupCredentials): Promise<SetupResult> {
    return completeSetup(this.slot(udid).device, credentials);
  }

  /** `sim-ctl unplug UDID`: the cable is pulled; the device keeps its state. */
  unplug(udid: string): void {
    const slot = this.slot(udid);
    if (slot.device.deviceId === undefined)
      throw new KitError('sim/invalid-state', `device ${udid} is not attached`, { udid });
    this.detach(slot);
  }

  /**
   * `sim-ctl replug UDID`: unplug (when attached) and plug the same device back in; it gets a new
   * DeviceID. A powered-off device (Shutdown) or one in recovery is powered on (booted) first; a
   * rebooting device is attached at once.
   */
  async replug(udid: string): Promise<void> {
    const slot = this.slot(udid);
    if (slot.device.deviceId !== undefined) this.detach(slot);
    if (slot.returnTimer !== undefined) {
      clearTimeout(slot.returnTimer);
      slot.returnTimer = undefined;
    }
    if (slot.device.mode !== 'normal') {
      const wasOff = slot.device.mode === 'off';
      this.boot(slot);
      if (wasOff) await this.timing.wait('boot');
    }
    if (!this.stopped) this.attach(slot);
  }

  /** `sim-ctl reboot UDID`: the device restarts (Detached now, Attached with a new DeviceID after the reboot delay). */
  reboot(udid: string): void {
    const slot = this.slot(udid);
    if (slot.device.mode !== 'normal' || slot.device.deviceId === undefined) {
      throw new KitError('sim/invalid-state', `device ${udid} is not running and attached (${slot.device.mode})`, {
        udid,
      });
    }
    this.powerEvent(slot.device, 'restart');
  }

  /** `sim-ctl trust UDID accept|deny|prompt`. */
  trust(udid: string, mode: TrustMode): void {
    this.slot(udid).device.setTrust(mode);
  }

  /** `sim-ctl lock UDID` (needs a passcode). */
  lock(udid: string): void {
    this.slot(udid).device.setLocked(true);
  }

  /** `sim-ctl unlock UDID`. */
  unlock(udid: string): void {
    this.slot(udid).device.setLocked(false);
  }

  /** `sim-ctl set UDID KEY=VALUE…`. */
  set(udid: string, values: Readonly<Record<string, string | number | boolean>>): void {
    this.slot(udid).device.set(values);
  }

  /** `sim-ctl fault UDID SPEC`. */
  fault(udid: string, spec: string | FaultSpec, options: { once?: boolean } = {}): void {
    const parsed = typeof spec === 'string' ? parseFaultSpec(spec, options.once ?? false) : spec;
    this.slot(udid).device.faults.apply(parsed);
  }

  /**
   * `sim-ctl forget UDID [--host-id ID]`: the device forgets one host pairing, or all of them (as
   * after "Reset Location & Privacy"); the host's next StartSession gets `InvalidHostID`.
   * Returns how many pairings were forgotten.
   */
  forget(udid: string, hostId?: string): number {
    const d = this.slot(udid).device;
    if (hostId !== undefined) return d.removePairing(hostId) ? 1 : 0;
    const n = d.pairings.size;
    d.pairings.clear();
    return n;
  }

  /** `sim-ctl state UDID`. */
  state(udid: string): DeviceStateJson {
    const d = this.slot(udid).device;
    return d.state(d.deviceId !== undefined);
  }

  /**
   * Closes usbmuxd's listener and its Listen/command clients, then listens again at the same
   * address; never waits for a host. Device connections made through it stay up unless
   * `cutConnections` (as when the real daemon's process exits).
   */
  async restartUsbmuxd(options: { cutConnections?: boolean } = {}): Promise<void> {
    await this.mux.restart(options);
  }

  /** Stops everything: devices leave, sockets close, temp folders are removed. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const slot of this.slots.values()) {
      if (slot.returnTimer !== undefined) clearTimeout(slot.returnTimer);
      slot.device.dropConnections();
    }
    await this.mux.close();
    await this.control?.close();
    await this.appleServer?.close();
    for (const dir of [this.tempDir, this.ownTempDir]) {
      if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}
