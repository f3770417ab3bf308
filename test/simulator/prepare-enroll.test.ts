/**
 * Enrollment both ways, as far as they go without an MDM:
 * - enrollment URL: prepare writes it into the cloud configuration; completing Setup Assistant makes
 *   the device POST its signed MachineInfo to a tiny HTTP server of this test and install the profile
 *   it answers;
 * - staged profile: prepare stages the file with `StoreProfile` while the device is in Setup
 *   Assistant; completing setup installs it.
 */
import http from 'node:http';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { createPrepareEnv, prepareInProcess, type PrepareEnv } from '../helpers/prepare-env.ts';
import { KITTING, NODE, profileBytes, run } from '../helpers/sim-process.ts';

let env: PrepareEnv;
let sim: Simulator;
let server: http.Server;
let enrollUrl: string;
const requests: { userAgent: string | undefined; contentType: string | undefined; bytes: number }[] = [];

beforeAll(async () => {
  env = await createPrepareEnv();
  sim = await startSimulator({ devices: 0, timing: 'none' });
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({
        userAgent: req.headers['user-agent'],
        contentType: req.headers['content-type'],
        bytes: Buffer.concat(chunks).length,
      });
      res.writeHead(200, { 'Content-Type': 'application/x-apple-aspen-config' });
      res.end(profileBytes('com.example.mdm.url-enrollment', 'MDM enrollment'));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  enrollUrl = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/enroll`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await sim.stop();
  env.cleanup();
});

describe('enrollment through prepare', () => {
  it('enrollment URL: written into the configuration; at setup the device POSTs to it and installs the answer', async () => {
    const bp = env.blueprint('by-url', { enrollment: { method: 'url', url: enrollUrl } });
    const udid = sim.plug('fresh');
    const { results } = await prepareInProcess(env, {
      usbmuxd: sim.usbmuxdAddress,
      udids: [udid],
      blueprint: bp,
      activationUrl: sim.activationUrl,
    });
    expect(results).toEqual([expect.objectContaining({ status: 'done' })]);
    expect(sim.state(udid).cloudConfiguration).toMatchObject({ ConfigurationURL: enrollUrl });
    expect(requests).toHaveLength(0);
    // The person taps through Setup Assistant: `kitting sim-ctl setup UDID complete`.
    const setup = await run(NODE, [KITTING, 'sim-ctl', '--control', sim.controlAddress, 'setup', udid, 'complete']);
    expect(setup.code, setup.stderr).toBe(0);
    expect(requests).toHaveLength(1);
    expect(requests[0]?.userAgent).toBe('CloudConfiguration/1.0');
    expect(requests[0]?.bytes).toBeGreaterThan(0);
    const s = sim.state(udid);
    expect(s.setupComplete).toBe(true);
    expect(s.profiles.find((p) => p.identifier === 'com.example.mdm.url-enrollment')).toMatchObject({
      fromEnrollment: true,
    });
  });

  it('staged profile: stored during Setup Assistant, installed when setup completes', async () => {
    env.profile('staged.mobileconfig', 'com.example.mdm.staged');
    const bp = env.blueprint('staged', {
      enrollment: { method: 'staged', source: { kind: 'file', path: 'staged.mobileconfig' } },
    });
    const udid = sim.plug('activated');
    const { results, events } = await prepareInProcess(env, {
      usbmuxd: sim.usbmuxdAddress,
      udids: [udid],
      blueprint: bp,
      activationUrl: sim.activationUrl,
    });
    expect(results).toEqual([expect.objectContaining({ status: 'done' })]);
    expect(events.find((e) => e.type === 'stepFinished' && e.stepId === 'enroll')).toMatchObject({
      details: { method: 'staged', how: 'stored' },
    });
    expect(sim.state(udid).storedProfile?.identifier).toBe('com.example.mdm.staged');
    expect(sim.state(udid).profiles.map((p) => p.identifier)).not.toContain('com.example.mdm.staged');
    const setup = await sim.setup(udid);
    expect(setup.installed).toContain('com.example.mdm.staged');
    expect(sim.state(udid).profiles.map((p) => p.identifier)).toContain('com.example.mdm.staged');
  });
});
