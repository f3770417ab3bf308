/**
 * Activation against the virtual fleet and its fake Apple server: the session flow (iOS ≥ 10) and
 * the legacy lockdown flow (iOS < 10) activate; no network (a closed port) is `activation/offline`;
 * the Activation Lock answer is `activation/locked`; an HTTP failure or an answer without a record
 * is `activation/server-error` with the status; a device refusing is `activation/failed`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import { openDevice, type DeviceSession } from '../../src/device/device.ts';
import {
  APPLE_ACTIVATION_URL,
  APPLE_DRM_HANDSHAKE_URL,
  activateDevice,
  activationEndpoints,
  activationFlowFor,
  getActivationState,
} from '../../src/device/services/activation.ts';
import { UsbmuxClient } from '../../src/device/usbmux.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';

const sims: Simulator[] = [];
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  for (const s of sims.splice(0)) await s.stop();
});

async function fleet(preset: string): Promise<{ sim: Simulator; session: DeviceSession; udid: string }> {
  const sim = await startSimulator({ devices: 1, preset, timing: 'none' });
  sims.push(sim);
  const udid = sim.udids()[0];
  if (udid === undefined) throw new Error('no device');
  const session = await openDevice(new UsbmuxClient(sim.usbmuxdAddress), udid);
  cleanups.push(() => session.close());
  return { sim, session, udid };
}

async function failure(p: Promise<unknown>): Promise<KitError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof KitError) return err;
    throw err;
  }
  throw new Error('expected a KitError');
}

/** A loopback HTTP server answering every request with `answer`. */
async function httpServer(answer: (res: http.ServerResponse) => void): Promise<string> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => answer(res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/deviceservices/deviceActivation`;
}

/** A URL on a port nothing listens on. */
async function closedPortUrl(): Promise<string> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/deviceservices/deviceActivation`;
}

describe('activation', () => {
  it("uses Apple's URLs by default and derives drmHandshake next to a given deviceActivation URL", () => {
    expect(activationEndpoints({})).toEqual({
      activationUrl: APPLE_ACTIVATION_URL,
      drmHandshakeUrl: APPLE_DRM_HANDSHAKE_URL,
    });
    expect(activationEndpoints({ activationUrl: 'http://127.0.0.1:9/x/deviceActivation' }).drmHandshakeUrl).toBe(
      'http://127.0.0.1:9/x/drmHandshake',
    );
    expect(activationFlowFor('17.5.1')).toBe('session');
    expect(activationFlowFor('10.0')).toBe('session');
    expect(activationFlowFor('9.3.5')).toBe('legacy');
  });

  it('activates a fresh device in session mode and acknowledges it; a second call changes nothing', async () => {
    const { sim, session, udid } = await fleet('fresh');
    expect(await getActivationState(session.lockdown)).toBe('Unactivated');
    const result = await activateDevice(session.lockdown, { activationUrl: sim.activation.url });
    expect(result).toEqual({ flow: 'session', alreadyActivated: false, activationState: 'Activated' });
    expect(sim.state(udid).activationState).toBe('Activated');
    expect(await session.lockdown.getValue(undefined, 'ActivationStateAcknowledged')).toBe(true);
    const again = await activateDevice(session.lockdown, { activationUrl: sim.activation.url });
    expect(again.alreadyActivated).toBe(true);
  });

  it('activates through the legacy lockdown flow (ActivationInfo → deviceActivation → Activate)', async () => {
    // The virtual fleet only has iOS 17.5+ releases, so the flow iOS < 10 would choose is forced here.
    const { sim, session, udid } = await fleet('fresh');
    const result = await activateDevice(session.lockdown, {
      activationUrl: sim.activation.url,
      drmHandshakeUrl: sim.activation.drmHandshakeUrl,
      flow: 'legacy',
    });
    expect(result).toEqual({ flow: 'legacy', alreadyActivated: false, activationState: 'Activated' });
    expect(sim.state(udid).activationState).toBe('Activated');
  });

  it('no network (the server port is closed) → activation/offline, retryable; the device stays unactivated', async () => {
    const { sim, session, udid } = await fleet('fresh');
    const err = await failure(activateDevice(session.lockdown, { activationUrl: await closedPortUrl() }));
    expect(err.code).toBe('activation/offline');
    expect(err.retryable).toBe(true);
    expect(err.details).toMatchObject({ errno: 'ECONNREFUSED' });
    expect(sim.state(udid).activationState).toBe('Unactivated');
  });

  it('a server that never answers in time → activation/offline', async () => {
    const { session } = await fleet('fresh');
    const url = await httpServer(() => undefined);
    const err = await failure(activateDevice(session.lockdown, { activationUrl: url, httpTimeoutMs: 300 }));
    expect(err.code).toBe('activation/offline');
    expect(err.details).toMatchObject({ timedOut: true });
  });

  it('follows a 307 redirect of both endpoints to the real server (body and method kept)', async () => {
    const { sim, session, udid } = await fleet('fresh');
    const target = new URL(sim.activation.url);
    const redirected: string[] = [];
    const server = http.createServer((req, res) => {
      redirected.push(req.url ?? '');
      req.resume();
      req.on('end', () => {
        const to = new URL(req.url ?? '/', target);
        res.writeHead(307, { Location: to.href }).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const result = await activateDevice(session.lockdown, {
      activationUrl: `${base}${target.pathname}`,
      drmHandshakeUrl: `${base}${new URL(sim.activation.drmHandshakeUrl).pathname}`,
    });
    expect(result.activationState).toBe('Activated');
    expect(sim.state(udid).activationState).toBe('Activated');
    expect(redirected.length).toBeGreaterThanOrEqual(2);
  });

  it('Activation Lock (the activation-locked preset) → activation/locked', async () => {
    const { sim, session, udid } = await fleet('activation-locked');
    const err = await failure(activateDevice(session.lockdown, { activationUrl: sim.activation.url }));
    expect(err.code).toBe('activation/locked');
    expect(err.retryable).toBe(false);
    expect(sim.state(udid).activationState).toBe('Unactivated');
  });

  it('the server failing (HTTP 500) → activation/server-error with the status', async () => {
    const { sim, session } = await fleet('fresh');
    sim.setActivationFailure(500);
    const err = await failure(activateDevice(session.lockdown, { activationUrl: sim.activation.url }));
    expect(err.code).toBe('activation/server-error');
    expect(err.details).toMatchObject({ httpStatus: 500 });
    expect(err.message).toContain('500');
  });

  it('a 200 answer without an activation record → activation/server-error', async () => {
    const { session } = await fleet('fresh');
    const url = await httpServer((res) => {
      res.writeHead(200, { 'Content-Type': 'text/html' }).end('<html><body>maintenance</body></html>');
    });
    const err = await failure(activateDevice(session.lockdown, { activationUrl: url }));
    expect(err.code).toBe('activation/server-error');
    expect(err.details).toMatchObject({ httpStatus: 200, contentType: 'text/html' });
  });

  it('mobileactivationd refusing → activation/failed with its text', async () => {
    const { sim, session, udid } = await fleet('fresh');
    sim.fault(udid, 'error=CreateTunnel1SessionInfoRequest:Failed to create session');
    const err = await failure(activateDevice(session.lockdown, { activationUrl: sim.activation.url }));
    expect(err.code).toBe('activation/failed');
    expect(err.message).toContain('CreateTunnel1SessionInfoRequest');
  });
});
