/**
 * Child process of `bench/sync.ts`: the syncer alone in a fresh process, draining a station outbox
 * (a real SQLite file filled beforehand by the parent) to a reference MDM server running in yet
 * another process. Prints one JSON line ({@link DrainReport}) on stdout.
 *
 * `node --expose-gc bench/sync-drain.ts --db FILE --url URL --token-file FILE [--gc]`
 *
 * - The token is read from the file `kitting mdm-dev --token-file` wrote (never from argv, never
 *   printed).
 * - Without `--gc`: the drain is timed and this process's heapUsed/RSS are sampled on every request
 *   (just before it is sent and once its answer is in), on every delivered batch and every 5 ms.
 * - With `--gc`: at the same points a full GC runs first (`global.gc`, needs `--expose-gc`), so the
 *   heap figure is what the syncer really keeps alive — the outbox rows of the batch in flight, its
 *   request and answer — not garbage the collector has not reclaimed yet. The time is not a figure
 *   in this mode.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { MdmClient, type KittingResultPayload, type ResultsAnswer } from '../src/mdm/client.ts';
import { Syncer } from '../src/mdm/syncer.ts';
import { openDatabase } from '../src/store/db.ts';

/** What the child prints (one JSON line). */
export const DrainReportSchema = z.object({
  delivered: z.number().int(),
  batches: z.number().int(),
  ms: z.number(),
  gcForced: z.boolean(),
  /** heapUsed / RSS after start-up (modules, database, client), before the first batch. */
  baselineHeap: z.number(),
  baselineRss: z.number(),
  /** Highest sampled heapUsed / RSS during the drain. */
  peakHeap: z.number(),
  peakRss: z.number(),
  samples: z.number().int(),
});
/** One drain's figures (bytes, ms). */
export type DrainReport = z.infer<typeof DrainReportSchema>;

const TokenFileSchema = z.object({ token: z.string().min(16) });

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      db: { type: 'string' },
      url: { type: 'string' },
      'token-file': { type: 'string' },
      gc: { type: 'boolean', default: false },
    },
  });
  if (values.db === undefined || values.url === undefined || values['token-file'] === undefined)
    throw new Error('usage: sync-drain.ts --db FILE --url URL --token-file FILE [--gc]');
  const gc = values.gc ? globalThis.gc : undefined;
  if (values.gc && gc === undefined) throw new Error('--gc needs node --expose-gc');
  const { token } = TokenFileSchema.parse(JSON.parse(fs.readFileSync(values['token-file'], 'utf8')));

  let peakHeap = 0;
  let peakRss = 0;
  let samples = 0;
  const sample = (): void => {
    if (gc !== undefined) gc();
    const m = process.memoryUsage();
    peakHeap = Math.max(peakHeap, m.heapUsed);
    peakRss = Math.max(peakRss, m.rss);
    samples += 1;
  };

  /** The real client, sampled around each request while the batch is held. */
  class SampledClient extends MdmClient {
    override async postResults(batch: readonly KittingResultPayload[]): Promise<ResultsAnswer> {
      sample();
      const answer = await super.postResults(batch);
      sample();
      return answer;
    }
  }

  const db = openDatabase(values.db);
  try {
    const syncer = new Syncer({ db, client: new SampledClient({ baseUrl: values.url, token }) });
    syncer.on('batchDelivered', sample);
    globalThis.gc?.(); // both modes: the start figures are after a full GC when it is exposed
    const base = process.memoryUsage();
    const timer = gc === undefined ? setInterval(sample, 5) : undefined;
    const start = performance.now();
    const sum = await syncer.drain({ maxFailures: 3 });
    const ms = performance.now() - start;
    if (timer !== undefined) clearInterval(timer);
    sample();
    const report: DrainReport = {
      delivered: sum.delivered,
      batches: sum.batches,
      ms,
      gcForced: gc !== undefined,
      baselineHeap: base.heapUsed,
      baselineRss: base.rss,
      peakHeap,
      peakRss,
      samples,
    };
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } finally {
    db.close();
  }
}

// Imported by bench/sync.ts for its schema: only run as a script.
if (process.argv[1] === import.meta.filename) await main();
