/**
 * Activation through the prepare pipeline (step `activate`, the simulator's fake Apple server):
 * success; offline (the activation URL is a closed port: the job waits "needs internet", and the same
 * prepare with the server back resumes it to done); Activation Lock; a server error — each with its code.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { createPrepareEnv, prepareInProcess, type PrepareEnv } from '../helpers/prepare-env.ts';

let env: PrepareEnv;
let sim: Simulator;
let bp: string;

beforeAll(async () => {
  env = await createPrepareEnv();
  bp = env.blueprint('activation');
  sim = await startSimulator({ devices: 0, timing: 'none' });
});
afterAll(async () => {
  await sim.stop();
  env.cleanup();
});

/** A loopback URL nobody listens on. */
async function closedPortUrl(): Promise<string> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/deviceservices/deviceActivation`;
}

function prepare(udid: string, activationUrl: string) {
  return prepareInProcess(env, { usbmuxd: sim.usbmuxdAddress, udids: [udid], blueprint: bp, activationUrl });
}

describe('activation in the pipeline', () => {
  it('succeeds: the activate step is done and the device activated', async () => {
    const udid = sim.plug('fresh');
    const { results, events } = await prepare(udid, sim.activationUrl);
    expect(results).toEqual([expect.objectContaining({ status: 'done' })]);
    expect(events.find((e) => e.type === 'stepFinished' && e.stepId === 'activate')).toMatchObject({ status: 'done' });
    expect(sim.state(udid).activationState).toBe('Activated');
  });

  it('offline: the job waits for internet (activation/offline) and resumes when the server is reachable', async () => {
    const udid = sim.plug('fresh');
    const offline = await prepare(udid, await closedPortUrl());
    expect(offline.results).toEqual([
      expect.objectContaining({
        status: 'waiting',
        waitingReason: 'needs-internet',
        errorCode: 'activation/offline',
        stepId: 'activate',
      }),
    ]);
    expect(sim.state(udid).activationState).toBe('Unactivated');
    const job = env.jobs().find((j) => j.id === offline.results[0]?.jobId);
    expect(job).toMatchObject({ status: 'waiting', waitingReason: 'needs-internet' });
    const online = await prepare(udid, sim.activationUrl);
    expect(online.results).toEqual([expect.objectContaining({ status: 'done', jobId: offline.results[0]?.jobId })]);
    expect(sim.state(udid).activationState).toBe('Activated');
  });

  it('Activation Lock: the job fails with activation/locked', async () => {
    const udid = sim.plug('activation-locked');
    const { results } = await prepare(udid, sim.activationUrl);
    expect(results).toEqual([
      expect.objectContaining({ status: 'failed', errorCode: 'activation/locked', stepId: 'activate' }),
    ]);
    expect(sim.state(udid).cloudConfiguration).toBeNull();
  });

  it('a server error: the job fails with activation/failed, naming the HTTP status', async () => {
    const udid = sim.plug('fresh');
    sim.setActivationFailure(500);
    try {
      const { results } = await prepare(udid, sim.activationUrl);
      expect(results).toEqual([
        expect.objectContaining({ status: 'failed', errorCode: 'activation/failed', stepId: 'activate' }),
      ]);
      expect(results[0]?.errorMessage).toMatch(/500/);
    } finally {
      sim.setActivationFailure(null);
    }
    expect(sim.state(udid).activationState).toBe('Unactivated');
  });
});
