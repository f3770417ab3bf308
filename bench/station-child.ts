/**
 * The station process of `bench/station.ts`: runs `Station.prepare` on every attached device and
 * prints one JSON line with its own figures (wall, CPU over the batch, peak RSS of the process, the
 * slowest device's own time). Not a CLI for people: `bench/station.ts` spawns it.
 */
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import type { StationEvent } from '../src/contract.ts';
import { Station } from '../src/station.ts';
import type { BatchFigures } from './station.ts';

const Config = z.strictObject({
  usbmuxd: z.string(),
  activationUrl: z.string(),
  dataDir: z.string(),
  passphraseFile: z.string(),
  blueprint: z.string(),
  maxParallel: z.number().int().min(1),
});
const config = Config.parse(JSON.parse(process.argv[2] ?? '{}'));

const station = new Station({
  usbmuxdAddress: config.usbmuxd,
  dataDir: config.dataDir,
  passphraseFile: config.passphraseFile,
});
const firstSeen = new Map<string, number>();
const own = new Map<string, number>();
let lastFinished = 0;
station.on((e: StationEvent) => {
  if ((e.type === 'jobCreated' || e.type === 'jobResumed') && !firstSeen.has(e.udid))
    firstSeen.set(e.udid, performance.now());
  if (e.type === 'jobFinished') {
    lastFinished = performance.now();
    own.set(e.udid, lastFinished - (firstSeen.get(e.udid) ?? lastFinished));
  }
});
const rssBeforeMb = process.memoryUsage.rss() / 2 ** 20;
// BENCH_MEM_TRACE=1: sample the process's memory parts every 100 ms and print their peaks on stderr
// (for finding where RSS goes; the sampling costs CPU, so the figures of such a run are not used).
const memPeaks = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 };
const memTrace =
  process.env.BENCH_MEM_TRACE === '1'
    ? setInterval(() => {
        const m = process.memoryUsage();
        for (const k of Object.keys(memPeaks) as (keyof typeof memPeaks)[]) memPeaks[k] = Math.max(memPeaks[k], m[k]);
      }, 100)
    : undefined;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const results = await station.prepare({
  udids: 'all',
  blueprint: config.blueprint,
  confirmedErase: true,
  maxParallel: config.maxParallel,
  activationUrl: config.activationUrl,
});
const wallMs = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
const firstJob = Math.min(...firstSeen.values());
await station.close();
if (memTrace !== undefined) {
  clearInterval(memTrace);
  const mb = Object.fromEntries(Object.entries(memPeaks).map(([k, v]) => [k, Math.round(v / 2 ** 20)]));
  process.stderr.write(`station process memory peaks (MB): ${JSON.stringify(mb)}\n`);
}
const figures: BatchFigures = {
  wallMs,
  cpuMs: (cpu.user + cpu.system) / 1000,
  // Linux and macOS report kilobytes (Node normalizes macOS's bytes).
  peakRssMb: (process.resourceUsage().maxRSS * 1024) / 2 ** 20,
  rssBeforeMb,
  heapUsedAfterMb: process.memoryUsage().heapUsed / 2 ** 20,
  done: results.filter((r) => r.status === 'done').length,
  slowestDeviceMs: Math.max(0, ...own.values()),
  // Before the first job: opening the data folder, unlocking the vault, loading the blueprint,
  // starting the watcher (paid once per batch, not per device).
  startupMs: Number.isFinite(firstJob) ? firstJob - t0 : Number.NaN,
  // The first job created to the last one finished: what the scheduler adds to its slowest device.
  jobsMs: Number.isFinite(firstJob) ? lastFinished - firstJob : Number.NaN,
};
process.stdout.write(`${JSON.stringify(figures)}\n`);
