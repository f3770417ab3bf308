/**
 * A connection to a service the device started for us (lockdown `StartService`): a fresh usbmuxd
 * `Connect` to the returned port, TLS when the device asked for it (`EnableServiceSSL`), then
 * lockdown-style framing (protocols.md §3.5, §4.1, §7.2).
 */
import type { Duplex } from 'node:stream';
import { KitError } from '../errors.ts';
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

/** A started service's connected socket, for protocols other than framed plists (AFC). */
export interface RawServiceConnection {
  readonly name: string;
  readonly port: number;
  /** Paused; TLS when the device asked for it. The caller owns it (destroy it when done). */
  readonly socket: Duplex;
}

/**
 * Connects to a started service and returns the socket (TLS when `EnableServiceSSL`).
 * @throws KitError `usbmux/*` from Connect, `device/tls-failed` / `device/timeout` from the
 * handshake, `lockdown/session-inactive` when TLS is wanted but there is no pair record.
 */
export async function openServiceSocket(
  usbmux: UsbmuxClient,
  device: { deviceId: number; udid: string },
  endpoint: ServiceEndpoint,
  record: PairRecord | undefined,
  productVersion: string | undefined,
): Promise<Duplex> {
  if (endpoint.enableServiceSsl && record === undefined) {
    throw new KitError('lockdown/session-inactive', `service ${endpoint.name} wants TLS but there is no pair record`, {
      udid: device.udid,
    });
  }
  const raw = await usbmux.connect(device.deviceId, endpoint.port, { udid: device.udid });
  raw.setNoDelay(true);
  if (record === undefined || !endpoint.enableServiceSsl) return raw;
  try {
    return await startTls(raw, deviceTlsOptions(record, productVersion), { udid: device.udid, label: endpoint.name });
  } catch (err) {
    raw.destroy();
    throw err;
  }
}

/**
 * Connects to a started service with plist framing.
 * @throws the codes of {@link openServiceSocket}.
 */
export async function openService(
  usbmux: UsbmuxClient,
  device: { deviceId: number; udid: string },
  endpoint: ServiceEndpoint,
  record: PairRecord | undefined,
  productVersion: string | undefined,
  channelOptions: PlistChannelOptions = {},
): Promise<ServiceConnection> {
  const socket = await openServiceSocket(usbmux, device, endpoint, record, productVersion);
  const channel = new PlistChannel(socket, { label: endpoint.name, udid: device.udid, ...channelOptions });
  return new ServiceConnection(endpoint, channel);
}
