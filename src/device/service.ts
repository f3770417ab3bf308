/**
 * A connection to a service the device started for us (lockdown `StartService`): a fresh usbmuxd
 * `Connect` to the returned port, TLS when the device asked for it (`EnableServiceSSL`), then
 * lockdown-style framing (protocols.md §3.5, §4.1, §7.2).
 */
import type { PlistDict, PlistValue } from '../plist/index.ts';
import { PlistChannel, type PlistChannelOptions } from './framing.ts';
import type { PairRecord } from './pairing.ts';
import { deviceTlsOptions, startTls } from './tls.ts';
import type { UsbmuxClient } from './usbmux.ts';

/** What `StartService` answered. */
export interface ServiceEndpoint {
  name: string;
  port: number;
  enableServiceSsl: boolean;
}

/**
 * A ready service connection. Lifecycle: {@link openService} → requests → {@link close}. The
 * channel's errors apply (`device/timeout`, `device/bad-reply`, `device/connection-lost` …).
 */
export class ServiceConnection {
  readonly name: string;
  readonly port: number;
  readonly channel: PlistChannel;

  constructor(endpoint: ServiceEndpoint, channel: PlistChannel) {
    this.name = endpoint.name;
    this.port = endpoint.port;
    this.channel = channel;
  }

  /** Sends a message and awaits the reply dictionary. */
  request(message: PlistValue, options: { timeoutMs?: number } = {}): Promise<PlistDict> {
    return this.channel.request(message, options);
  }

  send(message: PlistValue): void {
    this.channel.send(message);
  }

  receive(timeoutMs?: number): Promise<PlistValue> {
    return this.channel.receive(timeoutMs);
  }

  close(): void {
    this.channel.close();
  }
}

/**
 * Connects to a started service.
 * @throws KitError `usbmux/*` from Connect, `device/tls-failed` / `device/timeout` from the handshake.
 */
export async function openService(
  usbmux: UsbmuxClient,
  device: { deviceId: number; udid: string },
  endpoint: ServiceEndpoint,
  record: PairRecord,
  productVersion: string | undefined,
  channelOptions: PlistChannelOptions = {},
): Promise<ServiceConnection> {
  const raw = await usbmux.connect(device.deviceId, endpoint.port, { udid: device.udid });
  raw.setNoDelay(true);
  const socket = endpoint.enableServiceSsl
    ? await startTls(raw, deviceTlsOptions(record, productVersion), { udid: device.udid, label: endpoint.name })
    : raw;
  const channel = new PlistChannel(socket, { label: endpoint.name, udid: device.udid, ...channelOptions });
  return new ServiceConnection(endpoint, channel);
}
