/**
 * `npm run bench -- sync`: drain 10,000 queued kitting results to the reference MDM server over
 * real HTTP (target ≤ 5 s), and the peak heap/RSS while draining 1k, 5k and 10k queued results:
 * the syncer holds one batch at a time, so memory should stay flat as the queue grows.
 */
import { MdmClient } from '../src/mdm/client.ts';
import { Syncer } from '../src/mdm/syncer.ts';
import { startMdmServer } from '../src/simulator/mdm-server/index.ts';
import { openDatabase } from '../src/store/db.ts';
import { enqueueResults } from '../src/store/outbox.ts';
import type { BenchResult } from './types.ts';

const AT = '2025-01-01T00:00:00.000Z';

async function drain(n: number): Promise<{ ms: number; heapMiB: number; rssMiB: number; delivered: number }> {
  const server = await startMdmServer({});
  const db = openDatabase(':memory:');
  try {
    enqueueResults(
      db,
      Array.from({ length: n }, (_, i) => {
        const key = `bench-${i}`;
        return {
          idempotencyKey: key,
          createdAt: AT,
          payload: { idempotencyKey: key, serial: `B${String(i).padStart(9, '0')}`, outcome: 'done', finishedAt: AT },
        };
      }),
    );
    const syncer = new Syncer({ db, client: new MdmClient({ baseUrl: server.url, token: server.token }) });
    let heap = 0;
    let rss = 0;
    const sample = (): void => {
      const m = process.memoryUsage();
      heap = Math.max(heap, m.heapUsed);
      rss = Math.max(rss, m.rss);
    };
    syncer.on('batchDelivered', sample);
    const start = performance.now();
    const sum = await syncer.drain();
    const ms = performance.now() - start;
    sample();
    return { ms, heapMiB: heap / 2 ** 20, rssMiB: rss / 2 ** 20, delivered: sum.delivered };
  } finally {
    db.close();
    await server.stop();
  }
}

/** The sync bench figures. */
export async function run(): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  for (const n of [1000, 5000, 10_000]) {
    const r = await drain(n);
    if (r.delivered !== n) throw new Error(`drained ${r.delivered} of ${n}`);
    if (n === 10_000)
      out.push({ name: 'drain 10,000 results', value: r.ms / 1000, unit: 's', target: '≤ 5 s', ok: r.ms <= 5000 });
    out.push({ name: `peak heap while draining ${n}`, value: r.heapMiB, unit: 'MiB' });
    out.push({ name: `peak RSS while draining ${n}`, value: r.rssMiB, unit: 'MiB' });
  }
  return out;
}
