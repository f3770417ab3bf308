/**
 * The virtual fleet: a usbmuxd with virtual iPads that real usbmuxd clients (libimobiledevice,
 * go-ios, pymobiledevice3, our own client) cannot tell from a Linux machine with iPads attached.
 *
 * ```ts
 * const sim = await startSimulator({ devices: 3, preset: 'in-use', seed: 'demo' });
 * process.env.USBMUXD_SOCKET_ADDRESS = sim.usbmuxdAddress;
 * sim.trust(sim.udids()[0]!, 'accept');
 * await sim.stop();
 * ```
 */
import { Simulator, type SimulatorOptions } from './simulator.ts';

export { Simulator, type DeviceSummary, type SimulatorOptions } from './simulator.ts';
export type { DeviceStateJson, PowerMode } from './device.ts';
export { ControlClient, parseControlTarget } from './control.ts';
export { PRESETS, PRESET_NAMES, type PresetName, type TrustMode } from './presets.ts';
export { parseFaultSpec, type Fault, type FaultSpec } from './faults.ts';
export type { TimingMode } from './timing.ts';

/** Starts a simulator: usbmuxd listening, devices attached, control API up. */
export function startSimulator(options: SimulatorOptions = {}): Promise<Simulator> {
  return Simulator.start(options);
}
