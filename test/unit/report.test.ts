/** The kitting report from seeded jobs: rows, CSV (BOM, ja/en, Shift_JIS), JSON, throughput. */
import iconv from 'iconv-lite';
import { afterEach, describe, expect, it } from 'vitest';
import { modelName } from '../../src/device/models.ts';
import { KitError } from '../../src/errors.ts';
import {
  parseSince,
  percentile,
  REPORT_COLUMNS,
  reportCsv,
  reportDocument,
  reportRows,
  reportThroughput,
} from '../../src/kitting/report.ts';
import { openDatabase, type Db } from '../../src/store/db.ts';
import {
  appendStepEvent,
  createJob,
  failJob,
  finishJob,
  markJobRunning,
  markStepFinished,
  markStepRunning,
  recordIdentity,
} from '../../src/store/jobs.ts';

const dbs: Db[] = [];
afterEach(() => {
  for (const d of dbs.splice(0)) d.close();
});

const STEPS = ['identify', 'pair', 'configure', 'personalize'] as const;
const iso = (ms: number): string => new Date(ms).toISOString();

interface Seed {
  id: string;
  serial: string;
  start: string;
  /** Milliseconds per step, in STEPS order. */
  durations: readonly number[];
  deviceName?: string;
  failAt?: (typeof STEPS)[number];
  productType?: string;
}

function seed(db: Db, s: Seed): void {
  let t = Date.parse(s.start);
  const udid = `udid-${s.id}`;
  createJob(
    db,
    {
      id: s.id,
      udid,
      serial: null,
      blueprintName: '3年生',
      blueprintJson: '{}',
      batchId: 'b1',
      counterStart: 1,
      steps: [...STEPS],
    },
    iso(t - 5000),
  );
  markJobRunning(db, s.id, false, iso(t));
  for (const [i, step] of STEPS.entries()) {
    const d = s.durations[i] ?? 0;
    if (step === s.failAt) {
      markStepRunning(db, s.id, step, iso(t));
      t += d;
      failJob(db, s.id, step, { code: 'activation/offline', message: 'no internet' }, {}, iso(t));
      return;
    }
    if (step === 'pair') {
      // Found already done: recorded done, but not applied by this job.
      markStepFinished(db, s.id, step, 'done', iso(t), { alreadyDone: true });
      continue;
    }
    markStepRunning(db, s.id, step, iso(t));
    if (step === 'identify') {
      const productType = s.productType ?? 'iPad13,18';
      recordIdentity(db, s.id, step, { udid, serial: s.serial, ecid: '1234', productType }, iso(t));
      appendStepEvent(
        db,
        s.id,
        step,
        'factsRecorded:identity',
        {
          serial: s.serial,
          productType,
          productVersion: '17.5',
          plan: { name: s.deviceName ?? null, assetTag: `A-${s.id}`, group: '3年1組' },
        },
        iso(t),
      );
    }
    t += d;
    markStepFinished(
      db,
      s.id,
      step,
      'done',
      iso(t),
      step === 'personalize' && s.deviceName !== undefined ? { deviceName: s.deviceName } : {},
    );
  }
  finishJob(db, s.id, {}, iso(t));
}

function seeded(): Db {
  const db = openDatabase(':memory:');
  dbs.push(db);
  seed(db, {
    id: 'j1',
    serial: 'DMPXK0ZZQ1GC',
    start: '2026-04-01T09:10:00.000Z',
    durations: [1000, 0, 4000, 2000],
    deviceName: '髙橋-iPad①',
  });
  seed(db, {
    id: 'j2',
    serial: 'F9FZ1234ABCD',
    start: '2026-04-01T09:40:00.000Z',
    durations: [3000, 0, 6000, 1000],
    deviceName: 'iPad-02',
  });
  seed(db, {
    id: 'j3',
    serial: 'G0AB1234CDEF',
    start: '2026-04-01T11:05:00.000Z',
    durations: [2000, 0, 9000],
    failAt: 'configure',
  });
  return db;
}

describe('report rows', () => {
  it('one row per finished job with name given, model, outcome, timings and applied steps', () => {
    const rows = reportRows(seeded());
    expect(rows.map((r) => r.jobId)).toEqual(['j1', 'j2', 'j3']);
    const [r1, , r3] = rows;
    expect(r1).toMatchObject({
      udid: 'udid-j1',
      serial: 'DMPXK0ZZQ1GC',
      nameGiven: '髙橋-iPad①',
      assetTag: 'A-j1',
      group: '3年1組',
      productType: 'iPad13,18',
      model: modelName('iPad13,18'),
      osVersion: '17.5',
      blueprint: '3年生',
      outcome: 'done',
      errorCode: null,
      startedAt: '2026-04-01T09:10:00.000Z',
      finishedAt: '2026-04-01T09:10:07.000Z',
      durationMs: 7000,
      applied: ['identify', 'configure', 'personalize'],
    });
    expect(r1?.model).not.toBe('iPad13,18');
    expect(r1?.steps.map((s) => [s.id, s.status, s.durationMs])).toEqual([
      ['identify', 'done', 1000],
      ['pair', 'done', null],
      ['configure', 'done', 4000],
      ['personalize', 'done', 2000],
    ]);
    expect(r3).toMatchObject({
      outcome: 'failed',
      errorCode: 'activation/offline',
      nameGiven: null,
      applied: ['identify'],
      durationMs: 11_000,
    });
    expect(r3?.steps.find((s) => s.id === 'configure')).toMatchObject({
      status: 'failed',
      errorCode: 'activation/offline',
    });
  });

  it('--since keeps jobs finished at or after it; a date alone is local midnight', () => {
    const db = seeded();
    expect(reportRows(db, { since: '2026-04-01T10:00:00.000Z' }).map((r) => r.jobId)).toEqual(['j3']);
    expect(reportRows(db, { since: '2026-04-01T09:10:07.000Z' }).map((r) => r.jobId)).toEqual(['j1', 'j2', 'j3']);
    expect(parseSince('2026-04-01')).toBe(new Date(2026, 3, 1).toISOString());
    expect(parseSince('2026-04-01T10:00:00+09:00')).toBe('2026-04-01T01:00:00.000Z');
    for (const bad of ['yesterday', '2026-02-30', '']) {
      expect(() => parseSince(bad)).toThrow(KitError);
    }
  });
});

describe('report CSV and JSON', () => {
  it('UTF-8 with BOM, English headers and words', () => {
    const bytes = reportCsv(reportRows(seeded()), { lang: 'en' });
    expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    const lines = bytes.subarray(3).toString('utf8').split('\r\n');
    expect(lines[0]).toBe(REPORT_COLUMNS.map(([, en]) => en).join(','));
    expect(lines[0]).toBe(
      'job_id,udid,serial,device_name,asset_tag,group,model,product_type,os_version,blueprint,outcome,error_code,started_at,finished_at,duration_s,applied_steps,step_seconds,enrollment_confirmed',
    );
    expect(lines[1]).toContain(
      ',done,,2026-04-01T09:10:00.000Z,2026-04-01T09:10:07.000Z,7.0,identify configure personalize,',
    );
    expect(lines[1]).toContain('identify=1.0 configure=4.0 personalize=2.0');
    expect(lines[3]).toContain(',failed,activation/offline,');
    expect(lines).toHaveLength(5);
  });

  it('Japanese headers and outcome words', () => {
    const text = reportCsv(reportRows(seeded()), { lang: 'ja' }).subarray(3).toString('utf8');
    const [header, first, , third] = text.split('\r\n');
    expect(header?.split(',').slice(0, 4)).toEqual(['ジョブID', 'UDID', 'シリアル番号', '端末名']);
    expect(header).toContain('結果');
    expect(first).toContain('髙橋-iPad①');
    expect(first).toContain(',完了,');
    expect(third).toContain(',失敗,activation/offline,');
  });

  it('Shift_JIS: CP932 bytes without BOM that decode to the same text', () => {
    const rows = reportRows(seeded());
    const sj = reportCsv(rows, { lang: 'ja', encoding: 'shift_jis' });
    expect([...sj.subarray(0, 3)]).not.toEqual([0xef, 0xbb, 0xbf]);
    expect(sj.includes(iconv.encode('シリアル番号', 'cp932'))).toBe(true);
    expect(sj.includes(iconv.encode('髙橋-iPad①', 'cp932'))).toBe(true);
    expect(iconv.decode(sj, 'cp932')).toBe(reportCsv(rows, { lang: 'ja' }).subarray(3).toString('utf8'));
  });

  it('Shift_JIS refuses a name it cannot hold, naming the device', () => {
    const db = openDatabase(':memory:');
    dbs.push(db);
    seed(db, {
      id: 'e1',
      serial: 'H0AB1234CDEF',
      start: '2026-04-01T09:00:00.000Z',
      durations: [1, 0, 1, 1],
      deviceName: 'iPad 🍎',
    });
    try {
      reportCsv(reportRows(db), { encoding: 'shift_jis' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(KitError);
      expect((err as KitError).code).toBe('csv/unrepresentable');
      expect((err as KitError).details).toMatchObject({ line: 2, key: 'H0AB1234CDEF', character: '🍎' });
    }
  });

  it('JSON document: devices with their fields and the throughput', () => {
    const doc = reportDocument(seeded(), { now: () => new Date('2026-04-02T00:00:00Z') });
    const parsed = JSON.parse(JSON.stringify(doc)) as typeof doc;
    expect(parsed.generatedAt).toBe('2026-04-02T00:00:00.000Z');
    expect(parsed.since).toBeNull();
    expect(Object.keys(parsed.devices[0] ?? {}).sort()).toEqual(
      [
        'applied',
        'assetTag',
        'blueprint',
        'durationMs',
        'enrollment',
        'errorCode',
        'finishedAt',
        'group',
        'jobId',
        'model',
        'nameGiven',
        'osVersion',
        'outcome',
        'productType',
        'serial',
        'startedAt',
        'steps',
        'udid',
      ].sort(),
    );
    expect(parsed.throughput.buckets.map((b) => b.finished)).toEqual([2, 0, 1]);
  });
});

describe('throughput', () => {
  it('devices finished per hour (gaps filled) and p50/p90 per step', () => {
    const t = reportThroughput(seeded(), { bucket: 'hour' });
    expect(t.bucket).toBe('hour');
    expect(t.buckets).toEqual([
      {
        start: '2026-04-01T09:00:00.000Z',
        end: '2026-04-01T10:00:00.000Z',
        finished: 2,
        done: 2,
        failed: 0,
        cancelled: 0,
      },
      {
        start: '2026-04-01T10:00:00.000Z',
        end: '2026-04-01T11:00:00.000Z',
        finished: 0,
        done: 0,
        failed: 0,
        cancelled: 0,
      },
      {
        start: '2026-04-01T11:00:00.000Z',
        end: '2026-04-01T12:00:00.000Z',
        finished: 1,
        done: 0,
        failed: 1,
        cancelled: 0,
      },
    ]);
    expect(t.steps).toEqual([
      { step: 'identify', count: 3, p50Ms: 2000, p90Ms: 3000, maxMs: 3000 },
      { step: 'configure', count: 2, p50Ms: 4000, p90Ms: 6000, maxMs: 6000 },
      { step: 'personalize', count: 2, p50Ms: 1000, p90Ms: 2000, maxMs: 2000 },
    ]);
    const later = reportThroughput(seeded(), { since: '2026-04-01T11:00:00.000Z' });
    expect(later.buckets.map((b) => b.start)).toEqual(['2026-04-01T11:00:00.000Z']);
    const empty = openDatabase(':memory:');
    dbs.push(empty);
    expect(reportThroughput(empty)).toEqual({ bucket: 'hour', since: null, buckets: [], steps: [] });
  });

  it('percentile is nearest-rank', () => {
    const v = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
    expect(percentile(v, 0.5)).toBe(50);
    expect(percentile(v, 0.9)).toBe(90);
    expect(percentile([7], 0.9)).toBe(7);
    expect(percentile([], 0.5)).toBe(0);
  });
});
