/** Every `kitting` command group, in the order `--help` lists them. */
import type { Command } from 'commander';
import { registerSim } from './sim.ts';
import { registerPlist } from './plist.ts';
import { registerBlueprint } from './blueprint.ts';
import { registerDevice } from './device.ts';
import { registerDeviceServices } from './device-services.ts';
import { registerJobs } from './jobs.ts';
import { registerPlan } from './plan.ts';
import { registerReport } from './report.ts';
import { registerPrepare } from './prepare.ts';
import { registerWatch } from './watch.ts';
import { registerIdentity } from './identity.ts';
import { registerUsb } from './usb.ts';
import { registerMdmDev } from './mdm-dev.ts';
import { registerSync } from './sync.ts';
import { registerServe } from './serve.ts';

export type RegisterCommand = (program: Command) => void;

export const COMMANDS: readonly RegisterCommand[] = [
  registerSim,
  registerPlist,
  registerBlueprint,
  registerDevice,
  registerDeviceServices,
  registerPrepare,
  registerWatch,
  registerJobs,
  registerPlan,
  registerReport,
  registerIdentity,
  registerUsb,
  registerMdmDev,
  registerServe,
  registerSync,
];
