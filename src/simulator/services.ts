/**
 * The lockdown services a virtual device can start (`StartService`), with whether each runs TLS
 * (`EnableServiceSSL`).
 */
import type { Socket } from 'node:net';
import type { TlsServerOptions } from './crypto.ts';
import type { VirtualDevice } from './device.ts';
import { serveAfc } from './afc.ts';
import { serveDiagnosticsRelay } from './diagnostics.ts';
import { serveMcInstall } from './mcinstall.ts';
import { serveMobileActivation } from './mobileactivation.ts';

/** How a service connection starts. */
export interface ServeOptions {
  /** TLS server options when the service runs TLS (set from the session's pairing). */
  tls: TlsServerOptions | undefined;
}

/** One startable service. */
export interface ServiceSpec {
  /** Answered as `EnableServiceSSL`. */
  readonly ssl: boolean;
  /** Serves one connection to the port StartService handed out. */
  serve(device: VirtualDevice, socket: Socket, options: ServeOptions): void;
}

/** Services by lockdown name; anything else is `InvalidService`. */
export const SERVICES: Readonly<Record<string, ServiceSpec>> = {
  'com.apple.mobile.diagnostics_relay': { ssl: true, serve: serveDiagnosticsRelay },
  'com.apple.mobile.MCInstall': { ssl: true, serve: serveMcInstall },
  'com.apple.mobileactivationd': { ssl: true, serve: serveMobileActivation },
  // AFC runs in the clear (libimobiledevice and go-ios speak it without TLS).
  'com.apple.afc': { ssl: false, serve: serveAfc },
};
