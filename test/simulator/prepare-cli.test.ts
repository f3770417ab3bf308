/**
 * `kitting prepare` as a technician runs it (cli.md "Kitting"), against a spawned simulator: progress
 * lines, `--json` summary, `--json --events`, exit codes (0 all done, 1 waiting/failed/cancelled,
 * 2 bad usage, 3 no such blueprint or device), erase refused without `--yes` with the advice to
 * re-run with it, and SIGINT cancelling cleanly so the same command finishes the job.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlClient } from '../../src/simulator/index.ts';
import { createPrepareEnv, type PrepareEnv } from '../helpers/prepare-env.ts';
import { KITTING, NODE, ROOT, spawnSim, type SimProcess } from '../helpers/sim-process.ts';

let env: PrepareEnv;
let sim: SimProcess;
let control: ControlClient;
let bp: string;
let activationUrl: string;

beforeAll(async () => {
  env = await createPrepareEnv();
  bp = env.blueprint('cli');
  sim = await spawnSim(['--devices', '0', '--timing', 'none']);
  control = new ControlClient(sim.control);
  activationUrl = (await control.activationEndpoint()).url;
});
afterAll(async () => {
  await sim.stop();
  env.cleanup();
});

async function plug(preset: string): Promise<string> {
  const r = await sim.ctl(['plug', '--preset', preset]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}

function prepare(args: string[]) {
  return env.kitting(sim.usbmuxd, ['prepare', ...args, '--activation-url', activationUrl]);
}

describe('kitting prepare', () => {
  it('human output: one `UDID  step  status` line per event, a result line, exit 0', async () => {
    const udid = await plug('fresh');
    const r = await prepare([udid, '--blueprint', bp]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toContain(`${udid}  configure  running`);
    expect(lines).toContain(`${udid}  configure  done`);
    expect(lines).toContain(`${udid}  activate  done`);
    expect(lines).toContain(`${udid}  job  done`);
    expect(lines[lines.length - 1]).toMatch(new RegExp(`^${udid}  result  done`));
    for (const line of lines) expect(line.split('  ').length).toBeGreaterThanOrEqual(3);
  });

  it('--json: one summary document; --json --events: one event per line, then the summary', async () => {
    const udid = await plug('activated');
    const events = await prepare([udid, '--blueprint', bp, '--json', '--events']);
    expect(events.code, events.stderr).toBe(0);
    const parsed = events.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; udid?: string; results?: unknown });
    expect(parsed[0]).toMatchObject({ type: 'jobCreated', udid });
    expect(parsed.some((e) => e.type === 'stepFinished')).toBe(true);
    expect(parsed[parsed.length - 1]).toEqual({
      type: 'summary',
      results: [{ udid, jobId: expect.any(String) as string, status: 'done' }],
    });
    const again = await prepare([udid, '--blueprint', bp, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual([{ udid, jobId: expect.any(String) as string, status: 'done' }]);
  });

  it('erase needed without --yes: the job waits, exit 1 and the advice to re-run with --yes; with --yes exit 0', async () => {
    const udid = await plug('in-use');
    expect((await sim.ctl(['unlock', udid])).code).toBe(0);
    expect((await sim.ctl(['trust', udid, 'accept'])).code).toBe(0);
    const refused = await prepare([udid, '--blueprint', bp, '--json']);
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stdout)).toEqual([
      {
        udid,
        jobId: expect.any(String) as string,
        status: 'waiting',
        waitingReason: 'erase-confirmation',
        errorCode: 'kitting/erase-not-confirmed',
        stepId: 'erase',
      },
    ]);
    expect(refused.stderr).toContain('--yes');
    expect((await control.state(udid)).setupComplete).toBe(true);
    const confirmed = await prepare([udid, '--blueprint', bp, '--yes', '--json']);
    expect(confirmed.code, confirmed.stderr).toBe(0);
    expect((await control.state(udid)).setupComplete).toBe(false);
  });

  it('--blueprint takes a stored name or a file; neither: exit 3 blueprint/not-found; an unknown UDID: exit 3; no UDID: exit 2', async () => {
    const udid = await plug('fresh');
    const stored = await env.kitting(sim.usbmuxd, ['blueprint', 'import', env.blueprint('stored-cart')]);
    expect(stored.code, stored.stderr).toBe(0);
    const byName = await prepare([udid, '--blueprint', 'stored-cart', '--json']);
    expect(byName.code, byName.stderr).toBe(0);
    expect(env.jobs().find((j) => j.udid === udid)?.blueprintName).toBe('stored-cart');
    const missing = await prepare([udid, '--blueprint', 'no-such-blueprint', '--json']);
    expect(missing.code).toBe(3);
    const err = JSON.parse(missing.stdout) as { error: { code: string; message: string } };
    expect(err.error.code).toBe('blueprint/not-found');
    expect(err.error.message).toContain('no-such-blueprint');
    const unknown = await prepare(['0000-NOT-ATTACHED', '--blueprint', bp]);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain('device/not-found');
    const none = await prepare(['--blueprint', bp]);
    expect(none.code).toBe(2);
  });

  it('SIGINT cancels cleanly (exit 1, job cancelled); the same command then finishes the device', async () => {
    const udid = await plug('fresh');
    // The device's first answer comes slowly, so the interrupt lands inside a step.
    expect((await sim.ctl(['fault', udid, 'delay-ms=3000', '--once'])).code).toBe(0);
    const child = spawn(
      NODE,
      [
        KITTING,
        '--data-dir',
        env.dataDir,
        '--passphrase-file',
        env.passphraseFile,
        '--json',
        'prepare',
        udid,
        '--blueprint',
        bp,
        '--events',
        '--activation-url',
        activationUrl,
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, USBMUXD_SOCKET_ADDRESS: sim.usbmuxd } },
    );
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stderr.resume();
    const code = await new Promise<number | null>((resolve) => {
      child.stdout.on('data', (s: string) => {
        out += s;
        if (out.includes('"stepStarted"') && child.pid !== undefined && !child.killed) child.kill('SIGINT');
      });
      child.once('exit', (c) => resolve(c));
    });
    expect(code).toBe(1);
    const lines = out.trim().split('\n');
    const summary = JSON.parse(lines[lines.length - 1] ?? '{}') as { results?: { status: string }[] };
    expect(summary.results?.[0]?.status).toBe('cancelled');
    expect(lines.some((l) => l.includes('"jobCancelled"'))).toBe(true);
    const job = env.jobs().find((j) => j.udid === udid);
    expect(job?.status).toBe('cancelled');
    expect(job?.steps.some((s) => s.status === 'running')).toBe(false);
    const rerun = await prepare([udid, '--blueprint', bp]);
    expect(rerun.code, rerun.stderr).toBe(0);
  });
});
