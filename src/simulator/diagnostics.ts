/**
 * `com.apple.mobile.diagnostics_relay` of a virtual device (protocols.md §7.2): Restart, Shutdown
 * and Sleep (honouring `WaitForDisconnect`; `DisplayPass`/`DisplayFail` only show a dialog on a real
 * device), Goodbye, and the informational requests with small believable answers.
 */
import type { Socket } from 'node:net';
import type { PlistDict } from '../plist/index.ts';
import type { VirtualDevice } from './device.ts';
import { PlistConnection } from './plist-conn.ts';
import type { ServeOptions } from './services.ts';

/** Serves one diagnostics_relay connection. */
export function serveDiagnosticsRelay(device: VirtualDevice, socket: Socket, options: ServeOptions): void {
  let onClosed: (() => void) | undefined;
  let untrack: () => void = () => undefined;
  const log = device.log.child({ service: 'diagnostics_relay' });
  const conn = new PlistConnection({
    socket,
    faults: device.faults,
    timing: device.timing,
    log,
    tls: options.tls,
    errorReply: (_req, code) => ({ Status: 'Failure', Error: code }),
    onClose: () => {
      untrack();
      onClosed?.();
    },
    handler: async (req, c): Promise<PlistDict> => {
      const request = typeof req.Request === 'string' ? req.Request : undefined;
      switch (request) {
        case 'Restart':
        case 'Shutdown': {
          const event = request === 'Restart' ? 'restart' : 'shutdown';
          const display = req.DisplayPass === true ? 'pass' : req.DisplayFail === true ? 'fail' : 'none';
          log.info(`${request.toLowerCase()} requested`, {
            waitForDisconnect: req.WaitForDisconnect === true,
            display,
          });
          if (req.WaitForDisconnect === true) {
            // Act only once the host hangs up.
            onClosed = () => device.powerEvent(event);
          } else {
            c.afterReply(async () => {
              await device.timing.wait('detach');
              device.powerEvent(event);
            });
          }
          return { Status: 'Success' };
        }
        case 'Sleep':
          if (device.passcodeSet) device.locked = true;
          return { Status: 'Success' };
        case 'Goodbye':
          return { Status: 'Success' };
        case 'All':
          return {
            Status: 'Success',
            Diagnostics: { GasGauge: gasGauge(device), WiFi: wifi(device), NAND: nand(device) },
          };
        case 'GasGauge':
          return { Status: 'Success', Diagnostics: { GasGauge: gasGauge(device) } };
        case 'WiFi':
          return { Status: 'Success', Diagnostics: { WiFi: wifi(device) } };
        case 'NAND':
          return { Status: 'Success', Diagnostics: { NAND: nand(device) } };
        case 'MobileGestalt':
          return { Status: 'Success', Diagnostics: { MobileGestalt: { Status: 'MobileGestaltDeprecated' } } };
        case 'IORegistry':
          return { Status: 'Success', Diagnostics: { IORegistry: ioRegistry(device, req) } };
        default:
          return { Status: 'UnknownRequest' };
      }
    },
  });
  untrack = device.track(conn);
}

function gasGauge(device: VirtualDevice): PlistDict {
  return {
    CycleCount: 40 + Number(device.identity.ecid % 300n),
    DesignCapacity: 7606,
    FullChargeCapacity: 7150,
    Status: 'Success',
  };
}

function wifi(device: VirtualDevice): PlistDict {
  return { Active: true, Status: 'Success', MACAddress: device.identity.wifiAddress };
}

function nand(device: VirtualDevice): PlistDict {
  return { Status: 'Success', TotalDiskCapacity: device.identity.diskCapacity };
}

function ioRegistry(device: VirtualDevice, req: PlistDict): PlistDict {
  if (req.EntryClass === 'IOPMPowerSource' || req.EntryName === 'AppleSmartBattery') {
    return {
      BatteryInstalled: true,
      CurrentCapacity: device.batteryLevel,
      ExternalConnected: true,
      FullyCharged: device.batteryLevel >= 100,
      IsCharging: device.charging && device.batteryLevel < 100,
      MaxCapacity: 100,
    };
  }
  return {};
}
