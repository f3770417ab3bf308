/**
 * `npm run bench -- sync` (issue #6): the syncer draining 1k, 5k and 10k queued kitting results to
 * the reference MDM server over real HTTP, with its memory measured alone.
 *
 * Three processes, so each figure belongs to one program:
 * - the reference MDM server: `kitting mdm-dev` (src/cli/main.ts) spawned once, in memory; its own
 *   SQLite and heap grow with every result it stores, in its own process;
 * - this process: fills each station outbox — a real SQLite file (WAL, migrated) in a temp dir — in
 *   chunks of 500 rows, so the fill never holds the whole queue either;
 * - the syncer: `bench/sync-drain.ts`, a fresh `node --expose-gc` process per drain that opens the
 *   outbox file and runs `Syncer.drain()` with the real `MdmClient`, sampling its own memory.
 *
 * Per queue size, two drains: one timed with heapUsed/RSS sampled as they are (every request, batch
 * and 5 ms), and one with `global.gc()` forced before every sample, whose heap figure is what the
 * syncer keeps alive (the batch in flight) rather than garbage not collected yet. Targets:
 * - the 10,000 drain ≤ 5 s;
 * - live heap (GC forced) growth 1k→10k ≤ 1 MiB: 9,000 more queued rows may cost < 117 bytes each,
 *   less than keeping one delivered key, so any per-row state (a delivered-keys set, the whole
 *   outbox read at once, retained listeners or request bodies) misses it by MiB, while a batch
 *   (≤ 500 rows) is the same size at every queue length.
 * Peak heapUsed without forced GC and peak RSS are printed with their growth but without a target:
 * they follow V8's GC pacing and heap sizing (which grow over the first ~15 batches, then level
 * off) and SQLite's page cache (better-sqlite3's default `cache_size` of 16 MB, filled as the drain
 * touches more of the file), which a 1k drain does not reach and a 10k one partly does; at these
 * sizes that growth is as large as a per-row leak would be, so a pass/fail on it would say nothing.
 * BENCHMARKS.md has longer drains showing where they level off.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { openDatabase } from '../src/store/db.ts';
import { enqueueResults, type NewOutboxEntry } from '../src/store/outbox.ts';
import { DrainReportSchema, type DrainReport } from './sync-drain.ts';
import type { BenchResult } from './types.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const AT = '2025-01-01T00:00:00.000Z';
const SIZES = [1000, 5000, 10_000] as const;
const CHUNK = 500;
const MiB = 2 ** 20;
/** Targets (see the module comment). */
const DRAIN_10K_MAX_MS = 5000;
const LIVE_HEAP_GROWTH_MAX_MIB = 1;

const STEPS = ['pair', 'activate', 'supervise', 'wifi', 'profiles', 'apps', 'name', 'enroll', 'check-mdm', 'report'];

/** A kitting result shaped like the ones the station queues (src/store/outbox.ts enqueueJobResult). */
function entry(prefix: string, i: number): NewOutboxEntry {
  const key = `job:${prefix}-${String(i).padStart(6, '0')}:done:${AT}`;
  return {
    idempotencyKey: key,
    createdAt: AT,
    payload: {
      idempotencyKey: key,
      serial: `B${String(i).padStart(9, '0')}`,
      udid: `00008101-${String(i).padStart(16, '0')}`,
      outcome: 'done',
      finishedAt: AT,
      blueprint: 'grade-1-ipads',
      deviceName: `Grade1-iPad-${String(i).padStart(5, '0')}`,
      groupId: 'demo-school-grade1',
      steps: STEPS.map((name) => ({ name, status: 'done' })),
    },
  };
}

/** Fills a fresh outbox file with `n` rows, `CHUNK` at a time (one transaction each). */
function fillOutbox(file: string, prefix: string, n: number): void {
  const db = openDatabase(file);
  try {
    for (let from = 0; from < n; from += CHUNK) {
      const chunk: NewOutboxEntry[] = [];
      for (let i = from; i < Math.min(n, from + CHUNK); i++) chunk.push(entry(prefix, i));
      if (enqueueResults(db, chunk) !== chunk.length) throw new Error('outbox fill: a key was already there');
    }
  } finally {
    db.close();
  }
}

interface MdmProcess {
  url: string;
  tokenFile: string;
  stop(): Promise<void>;
}

const ReadyLineSchema = z.object({ ready: z.literal(true), url: z.url() });

/** `kitting mdm-dev` in its own process (in-memory db); tokens only in a 0600 file. */
async function spawnMdm(dir: string): Promise<MdmProcess> {
  const tokenFile = path.join(dir, 'mdm-tokens.json');
  const child = spawn(process.execPath, [path.join(ROOT, 'src/cli/main.ts'), 'mdm-dev', '--token-file', tokenFile], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, KITTING_LOG: 'error' },
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (s: string) => {
      out += s;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(ReadyLineSchema.parse(JSON.parse(out.slice(0, nl))).url);
    });
    void exited.then(() => reject(new Error('kitting mdm-dev exited before it was ready')));
  });
  return {
    url,
    tokenFile,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Runs bench/sync-drain.ts on an outbox file in a fresh process and parses its report. */
async function drainInChild(dbFile: string, mdm: MdmProcess, gc: boolean): Promise<DrainReport> {
  const args = ['--expose-gc', path.join(ROOT, 'bench/sync-drain.ts'), '--db', dbFile, '--url', mdm.url];
  args.push('--token-file', mdm.tokenFile);
  if (gc) args.push('--gc');
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, KITTING_LOG: 'error' },
  });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (s: string) => (out += s));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  if (code !== 0) throw new Error(`sync-drain exited with ${String(code)}`);
  return DrainReportSchema.parse(JSON.parse(out.trim()));
}

async function measure(dir: string, mdm: MdmProcess, n: number, gc: boolean): Promise<DrainReport> {
  const tag = `${n}-${gc ? 'gc' : 'timed'}`;
  const dbFile = path.join(dir, `station-${tag}.db`);
  fillOutbox(dbFile, tag, n);
  const r = await drainInChild(dbFile, mdm, gc);
  if (r.delivered !== n) throw new Error(`drained ${r.delivered} of ${n}`);
  return r;
}

/** The sync bench figures. */
export async function run(): Promise<BenchResult[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kit-bench-sync-'));
  const mdm = await spawnMdm(dir);
  try {
    const timed = new Map<number, DrainReport>();
    const live = new Map<number, DrainReport>();
    for (const n of SIZES) {
      timed.set(n, await measure(dir, mdm, n, false));
      live.set(n, await measure(dir, mdm, n, true));
    }
    const get = (m: Map<number, DrainReport>, n: number): DrainReport => {
      const r = m.get(n);
      if (r === undefined) throw new Error(`no drain of ${n}`);
      return r;
    };
    const out: BenchResult[] = [];
    const t10k = get(timed, 10_000).ms;
    out.push({
      name: 'drain 10,000 results (syncer process)',
      value: t10k / 1000,
      unit: 's',
      target: `≤ ${DRAIN_10K_MAX_MS / 1000} s`,
      ok: t10k <= DRAIN_10K_MAX_MS,
    });
    for (const n of SIZES) {
      const t = get(timed, n);
      const l = get(live, n);
      out.push({ name: `${n}: syncer heap at start`, value: t.baselineHeap / MiB, unit: 'MiB' });
      out.push({ name: `${n}: syncer peak heapUsed`, value: t.peakHeap / MiB, unit: 'MiB' });
      out.push({ name: `${n}: syncer live heap, GC forced`, value: l.peakHeap / MiB, unit: 'MiB' });
      out.push({ name: `${n}: syncer RSS at start`, value: t.baselineRss / MiB, unit: 'MiB' });
      out.push({ name: `${n}: syncer peak RSS`, value: t.peakRss / MiB, unit: 'MiB' });
    }
    const first = SIZES[0];
    const last = SIZES[SIZES.length - 1] ?? first;
    const liveGrowth = (get(live, last).peakHeap - get(live, first).peakHeap) / MiB;
    const rssGrowth = (get(timed, last).peakRss - get(timed, first).peakRss) / MiB;
    const heapGrowth = (get(timed, last).peakHeap - get(timed, first).peakHeap) / MiB;
    out.push({
      name: 'growth 1k→10k: live heap, GC forced',
      value: liveGrowth,
      unit: 'MiB',
      target: `≤ ${LIVE_HEAP_GROWTH_MAX_MIB} MiB`,
      ok: liveGrowth <= LIVE_HEAP_GROWTH_MAX_MIB,
    });
    out.push({ name: 'growth 1k→10k: peak heapUsed, no GC forced', value: heapGrowth, unit: 'MiB' });
    out.push({ name: 'growth 1k→10k: peak RSS', value: rssGrowth, unit: 'MiB' });
    return out;
  } finally {
    await mdm.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
