/**
 * The control API under races: every request gets its answer or a clear error, never a hang or a
 * bare "socket hang up" (the chaos tier once saw one from `POST /usbmuxd/restart`).
 *
 * The cause was the usbmuxd restart: it destroyed the Listen/command clients but not the Connect
 * tunnels to the devices, and then waited for `net.Server.close()`, which waits for every
 * connection, so its answer (and usbmuxd itself) waited until the host happened to close its
 * device connections. A station holding a lockdown session could keep it waiting indefinitely;
 * when the simulator was stopped meanwhile, the waiting request was cut ("socket hang up") and
 * the restart listened again after the stop. Now a restart listens again at once (device
 * connections stay up unless `cutConnections`), a stop during a restart keeps usbmuxd down, and a
 * request still running when the control server closes is answered "the simulator is stopping".
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import { ControlClient, startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { startControlServer } from '../../src/simulator/control.ts';
import { listDevices, lockdownConnect, spawnSim, type DeviceSocket, type SimProcess } from '../helpers/sim-process.ts';

const dirs: string[] = [];
const sims: Simulator[] = [];
const processes: SimProcess[] = [];

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sim-control-races-'));
  dirs.push(dir);
  return dir;
}

async function newSim(devices: number): Promise<{ sim: Simulator; socketPath: string }> {
  const socketPath = path.join(tempDir(), 'usbmuxd.sock');
  const sim = await startSimulator({ socketPath, devices });
  sims.push(sim);
  return { sim, socketPath };
}

afterAll(async () => {
  for (const p of processes) await p.stop();
  for (const s of sims) await s.stop();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** Resolves once `socket` closed. */
function closed(socket: net.Socket): Promise<void> {
  return socket.destroyed && socket.closed ? Promise.resolve() : new Promise((r) => socket.once('close', () => r()));
}

/** Whether something accepts connections at the unix socket `p`. */
function accepts(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(p, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** What a settled promise gave: its value or its error. */
async function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  try {
    return { ok: true, value: await p };
  } catch (error) {
    return { ok: false, error };
  }
}

describe('usbmuxd restart through the control API', () => {
  it('answers while a host holds device connections, which stay up, and usbmuxd is back at once', async () => {
    const { sim } = await newSim(1);
    const udid = sim.udids()[0] ?? '';
    // A bound that turns a request left unanswered into a failure naming it.
    const control = new ControlClient(sim.controlAddress, { timeoutMs: 10_000 });
    const held = await lockdownConnect(sim.usbmuxdAddress, udid);
    expect((await held.request({ Label: 'vitest', Request: 'QueryType' })).Type).toBe('com.apple.mobile.lockdown');

    // Before the fix this waited for `held` to close (and usbmuxd stayed down meanwhile).
    await expect(control.request('POST', '/usbmuxd/restart', {})).resolves.toEqual({ ok: true });
    expect((await listDevices(sim.usbmuxdAddress)).map((d) => d.udid)).toEqual([udid]);
    expect((await held.request({ Label: 'vitest', Request: 'QueryType' })).Type).toBe('com.apple.mobile.lockdown');
    held.close();
  });

  it('with cutConnections, cuts the device connections a host holds (as a real daemon exit does) and answers', async () => {
    const { sim } = await newSim(1);
    const udid = sim.udids()[0] ?? '';
    const control = new ControlClient(sim.controlAddress, { timeoutMs: 10_000 });
    const held = await lockdownConnect(sim.usbmuxdAddress, udid);
    expect((await held.request({ Label: 'vitest', Request: 'QueryType' })).Type).toBe('com.apple.mobile.lockdown');

    const restart = settle(control.request('POST', '/usbmuxd/restart', { cutConnections: true }));
    await expect(held.reader.readToEnd()).resolves.toBeInstanceOf(Buffer);
    expect(await restart).toEqual({ ok: true, value: { ok: true } });

    // usbmuxd is back at the same address and the device answers on a new connection.
    expect((await listDevices(sim.usbmuxdAddress)).map((d) => d.udid)).toEqual([udid]);
    const again = await lockdownConnect(sim.usbmuxdAddress, udid);
    expect((await again.request({ Label: 'vitest', Request: 'QueryType' })).Type).toBe('com.apple.mobile.lockdown');
    again.close();
  });

  it('a restart racing the simulator stop fails clearly, and usbmuxd does not listen again after the stop', async () => {
    const { sim, socketPath } = await newSim(1);
    const held = await lockdownConnect(sim.usbmuxdAddress, sim.udids()[0] ?? '');
    const restart = settle(sim.restartUsbmuxd());
    await sim.stop();
    const r = await restart;
    if (!r.ok) {
      expect(r.error).toBeInstanceOf(KitError);
      expect(r.error).toMatchObject({ code: 'sim/invalid-state' });
    }
    await closed(held.socket);
    expect(await accepts(socketPath)).toBe(false);
  });

  it('two restarts at once end with one usbmuxd listening', async () => {
    const { sim, socketPath } = await newSim(1);
    const control = new ControlClient(sim.controlAddress);
    const answers = await Promise.all([
      control.request('POST', '/usbmuxd/restart', {}),
      control.request('POST', '/usbmuxd/restart', {}),
      sim.restartUsbmuxd().then(() => ({ ok: true })),
    ]);
    expect(answers).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
    expect((await listDevices(sim.usbmuxdAddress)).length).toBe(1);
    await sim.stop();
    // A second server left behind by overlapping restarts would still accept here.
    expect(await accepts(socketPath)).toBe(false);
  });
});

describe('the control server closing with requests in flight', () => {
  it('answers them "the simulator is stopping" (naming the request), not with a bare hang-up', async () => {
    let started!: () => void;
    const inVerb = new Promise<void>((r) => (started = r));
    // A simulator whose usbmuxd restart never finishes (what a verb awaiting something forever looks like).
    const fake = {
      restartUsbmuxd: () => {
        started();
        return new Promise<void>(() => undefined);
      },
    } as unknown as Simulator;
    const server = await startControlServer(fake, path.join(tempDir(), 'control.sock'));
    const control = new ControlClient(server.address);
    const pending = settle(control.request('POST', '/usbmuxd/restart', {}));
    await inVerb;
    await server.close();
    const r = await pending;
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error).toMatchObject({ code: 'sim/invalid-state' });
      expect(String((r.error as Error).message)).toMatch(/simulator is stopping: POST \/usbmuxd\/restart/);
    }
  });
});

describe('ControlClient and kept-alive connections', () => {
  it('asks a GET again when its kept-alive connection was closed under it; a POST never rides one', async () => {
    // A server that closes every idle connection the moment after answering, as a keep-alive
    // timeout does; the client cannot have seen that close when its next request goes out.
    const sockets = new Set<net.Socket>();
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      seen.push(`${req.method ?? ''} ${req.url ?? ''}`);
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ok: true }));
      });
    });
    server.on('connection', (s: net.Socket) => {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    });
    const sock = path.join(tempDir(), 'control.sock');
    await new Promise<void>((r) => server.listen(sock, () => r()));
    try {
      const control = new ControlClient(sock);
      const cutAll = (): void => {
        for (const s of sockets) s.destroy();
      };
      await control.request('GET', '/info');
      cutAll();
      await expect(control.request('GET', '/info')).resolves.toEqual({ ok: true });
      await control.request('GET', '/info');
      cutAll();
      await expect(control.request('POST', '/usbmuxd/restart', {})).resolves.toEqual({ ok: true });
      // The POST went out once; only the GET whose connection was cut was asked twice.
      expect(seen.filter((r) => r.startsWith('POST'))).toEqual(['POST /usbmuxd/restart']);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('the control API hammered while a host holds device connections', () => {
  it('every verb (unplug, replug, reboot, usbmuxd restarts, fault, lock) and every read gets an answer', async () => {
    const sim = await spawnSim(['--devices', '5', '--seed', 'control-races']);
    processes.push(sim);
    try {
      // The verbs go to four devices; the fifth is only the host's, so only a restart with
      // cutConnections ends its connection (as for a station's session during the chaos tier).
      const udids = sim.devices.slice(0, 4);
      // Generous bound: a request that gets no answer fails, naming itself, instead of hanging the test.
      const control = new ControlClient(sim.control, { timeoutMs: 20_000 });
      let done = false;
      /** Devices whose lockdown connection the host holds right now. */
      const holding = new Set<string>();
      const until = async (what: string, ok: () => boolean): Promise<void> => {
        for (let i = 0; !ok(); i++) {
          if (i > 2000) throw new Error(`the host never got ${what}`);
          await new Promise((r) => setTimeout(r, 5));
        }
      };

      // A host like the station: per device, a lockdown connection held open until the simulator cuts
      // it (unplug, reboot, usbmuxd restart), then a new one as soon as usbmuxd and the device allow.
      const hold = async (udid: string): Promise<number> => {
        let sessions = 0;
        while (!done) {
          let ld: DeviceSocket | undefined;
          try {
            ld = await lockdownConnect(sim.usbmuxd, udid);
            await ld.request({ Label: 'vitest', Request: 'QueryType' });
            sessions++;
            holding.add(udid);
            const socket = ld.socket;
            await new Promise<void>((resolve) => {
              const poll = setInterval(() => {
                if (done || socket.destroyed || socket.closed) {
                  clearInterval(poll);
                  resolve();
                }
              }, 10);
              socket.once('close', () => {
                clearInterval(poll);
                resolve();
              });
            });
          } catch {
            // usbmuxd restarting or the device off the bus: try again shortly.
            await new Promise((r) => setTimeout(r, 10));
          } finally {
            holding.delete(udid);
            ld?.close();
          }
        }
        return sessions;
      };
      const hosts = sim.devices.map((u) => hold(u));
      await until('a connection to every device', () => holding.size === sim.devices.length);

      type Outcome = { what: string; ok: true } | { what: string; ok: false; code: string; message: string };
      const outcomes: Outcome[] = [];
      const verbs = [
        'unplug',
        'replug',
        'reboot',
        'restart',
        'restart-cut',
        'fault',
        'fault-clear',
        'lock',
        'unlock',
        'state',
        'list',
      ] as const;
      const worker = async (seed: number): Promise<void> => {
        for (let i = 0; i < 30; i++) {
          const verb = verbs[(seed * 7 + i * 3) % verbs.length] ?? 'list';
          const udid = udids[(seed + i) % udids.length] ?? '';
          const what = `${verb} ${udid}`;
          const call = async (): Promise<unknown> => {
            switch (verb) {
              case 'unplug':
              case 'replug':
              case 'reboot':
              case 'lock':
              case 'unlock':
                return control.verb(udid, verb);
              case 'restart':
                // Restart while the host holds device connections (what hung before the fix).
                await until('a device connection', () => holding.size > 0);
                return control.request('POST', '/usbmuxd/restart', {});
              case 'restart-cut':
                await until('a device connection', () => holding.size > 0);
                return control.request('POST', '/usbmuxd/restart', { cutConnections: true });
              case 'fault':
                return control.fault(udid, 'delay-ms=5');
              case 'fault-clear':
                return control.fault(udid, 'clear');
              case 'state':
                return control.state(udid);
              case 'list':
                return control.list();
            }
          };
          const r = await settle(call());
          if (r.ok) outcomes.push({ what, ok: true });
          else {
            const e = r.error instanceof KitError ? r.error : undefined;
            outcomes.push({ what, ok: false, code: e?.code ?? 'not-a-KitError', message: String(r.error) });
          }
        }
      };
      await Promise.all([0, 1, 2, 3, 4, 5].map((s) => worker(s)));
      done = true;
      const sessions = await Promise.all(hosts);

      // Wrong-state answers (unplug of an unplugged device, reboot while rebooting, lock without a
      // passcode) are answers; a lost, cut or missing answer is the failure.
      const failures = outcomes.filter((o) => !o.ok && o.code !== 'sim/invalid-state');
      expect(failures).toEqual([]);
      expect(outcomes.filter((o) => o.what.startsWith('restart')).every((o) => o.ok)).toBe(true);
      expect(sessions.every((n) => n > 0)).toBe(true);
      expect(outcomes.length).toBe(6 * 30);

      // Afterwards every device can be plugged back in and usbmuxd lists them all.
      for (const u of udids) await control.verb(u, 'replug');
      await expect
        .poll(async () => (await listDevices(sim.usbmuxd)).map((d) => d.udid).sort(), { timeout: 10_000 })
        .toEqual([...sim.devices].sort());
    } finally {
      await sim.stop();
    }
  });
});
