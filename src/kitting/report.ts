/**
 * The kitting report (domain.md "Export"): one row per finished job (a job with a result row:
 * done, failed or cancelled) with what the device is, what it was named, which blueprint ran, the
 * outcome and error code, start/finish/duration, per-step timings and the steps that changed the
 * device; as CSV (UTF-8 with BOM for Excel, or Shift_JIS; ja/en headers) or JSON. Plus throughput
 * data for charts ({@link reportThroughput}): devices finished per hour and p50/p90 per step.
 *
 * Sources: `jobs` + `results` (outcome, error, times), `devices` (product type), `job_steps`
 * (per-step status and times of the last attempt), `step_events` (`jobStarted` for the start,
 * `factsRecorded:identity` for OS version and plan fields, `stepFinished` for what was applied:
 * a step counts as applied when it finished `done` and was not merely found done, and the
 * personalize step's `deviceName` is the name given).
 *
 * Times are ISO-8601 UTC in both formats (unambiguous in Excel and scripts). `--since DATE` takes
 * `YYYY-MM-DD` (midnight, the station's local time) or any ISO-8601 date-time, and keeps jobs that
 * finished at or after it.
 */
import { getConfirmation } from '../store/mdm-loop.ts';
import { KitError } from '../errors.ts';
import type { Lang } from '../i18n/messages.ts';
import { modelName } from '../device/models.ts';
import type { Db } from '../store/db.ts';
import type { StepStatus } from '../store/jobs.ts';
import { reportEvents, reportJobs, reportSteps, type ReportEventRecord } from '../store/reports.ts';
import { encodeCsv, type PlanEncoding } from './plans.ts';

/** One step in a report row. */
export interface ReportStep {
  readonly id: string;
  readonly status: StepStatus;
  readonly attempts: number;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
  /** finishedAt − startedAt, when both are known. */
  readonly durationMs: number | null;
  readonly errorCode: string | null;
}

/** One device (one finished job) in the report. */
export interface ReportRow {
  readonly jobId: string;
  readonly udid: string;
  readonly serial: string | null;
  /** The device name the personalize step gave, or null when it set none. */
  readonly nameGiven: string | null;
  readonly assetTag: string | null;
  readonly group: string | null;
  /** Human model name (`iPad (10th generation)`), or the product type when unknown. */
  readonly model: string | null;
  readonly productType: string | null;
  readonly osVersion: string | null;
  readonly blueprint: string;
  readonly outcome: 'done' | 'failed' | 'cancelled';
  readonly errorCode: string | null;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationMs: number;
  readonly steps: readonly ReportStep[];
  /** Steps that changed the device in this job, in pipeline order. */
  readonly applied: readonly string[];
  /**
   * "Enrollment confirmed": the MDM's enrollment status of the serial as the station last saw it
   * (`GET /v1/devices/{serial}`, stored by `refreshEnrollmentConfirmations`), or null when never
   * seen. `confirmed` is true once the MDM saw the device check in (`enrolled`).
   */
  readonly enrollment: {
    readonly confirmed: boolean;
    readonly status: string;
    readonly at: string;
    readonly checkedAt: string;
  } | null;
}

/** Options of {@link reportRows}. */
export interface ReportOptions {
  /** ISO-8601 UTC: only jobs finished at or after it. */
  readonly since?: string;
}

/**
 * Parses `--since`: `YYYY-MM-DD` (local midnight) or an ISO-8601 date-time; returns ISO-8601 UTC.
 * @throws KitError `usage/invalid-argument`.
 */
export function parseSince(text: string): string {
  const day = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text.trim());
  const d = day !== null ? new Date(Number(day[1]), Number(day[2]) - 1, Number(day[3])) : new Date(text.trim());
  if (Number.isNaN(d.getTime()) || (day !== null && d.getDate() !== Number(day[3]))) {
    throw new KitError('usage/invalid-argument', `--since: "${text}" is not a date (YYYY-MM-DD or ISO-8601)`);
  }
  return d.toISOString();
}

function ms(from: string | null, to: string | null): number | null {
  if (from === null || to === null) return null;
  const a = Date.parse(from);
  const b = Date.parse(to);
  return Number.isNaN(a) || Number.isNaN(b) ? null : b - a;
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v !== '' ? v : null;
}

const EVENT_KINDS = ['jobStarted', 'factsRecorded:identity', 'stepFinished'] as const;

/** Every finished job as a report row, oldest first. Errors: `store/*`. */
export function reportRows(db: Db, options: ReportOptions = {}): ReportRow[] {
  const jobs = reportJobs(db, options.since);
  if (jobs.length === 0) return [];
  const ids = jobs.map((j) => j.jobId);
  const steps = new Map<string, ReportStep[]>();
  for (const s of reportSteps(db, ids)) {
    const list = steps.get(s.jobId) ?? [];
    list.push({
      id: s.stepId,
      status: s.status,
      attempts: s.attempts,
      startedAt: s.startedAt,
      finishedAt: s.finishedAt,
      durationMs: ms(s.startedAt, s.finishedAt),
      errorCode: s.errorCode,
    });
    steps.set(s.jobId, list);
  }
  const events = new Map<string, ReportEventRecord[]>();
  for (const e of reportEvents(db, ids, EVENT_KINDS)) {
    const list = events.get(e.jobId) ?? [];
    list.push(e);
    events.set(e.jobId, list);
  }
  return jobs.map((j) => {
    const evs = events.get(j.jobId) ?? [];
    const started = evs.find((e) => e.kind === 'jobStarted')?.at ?? j.createdAt;
    const identity = evs.filter((e) => e.kind === 'factsRecorded:identity').at(-1)?.details;
    const plan = identity?.plan;
    const planObj = typeof plan === 'object' && plan !== null && !Array.isArray(plan) ? plan : {};
    const finished = evs.filter((e) => e.kind === 'stepFinished');
    const appliedSet = new Set(
      finished
        .filter((e) => e.details.status === 'done' && e.details.alreadyDone !== true && e.stepId !== null)
        .map((e) => e.stepId ?? ''),
    );
    const jobSteps = steps.get(j.jobId) ?? [];
    const personalize = finished.filter((e) => e.stepId === 'personalize' && str(e.details.deviceName) !== null).at(-1);
    const productType = j.productType ?? str(identity?.productType);
    return {
      jobId: j.jobId,
      udid: j.udid,
      serial: j.serial,
      nameGiven: str(personalize?.details.deviceName),
      assetTag: str(planObj.assetTag),
      group: str(planObj.group),
      model: productType === null ? null : modelName(productType),
      productType,
      osVersion: str(identity?.productVersion),
      blueprint: j.blueprint,
      outcome: j.outcome,
      errorCode: j.errorCode,
      startedAt: started,
      finishedAt: j.finishedAt,
      durationMs: ms(started, j.finishedAt) ?? 0,
      steps: jobSteps,
      applied: jobSteps.filter((s) => appliedSet.has(s.id)).map((s) => s.id),
      enrollment: enrollmentOf(db, j.serial),
    };
  });
}

function enrollmentOf(db: Db, serial: string | null): ReportRow['enrollment'] {
  const c = serial === null ? undefined : getConfirmation(db, serial);
  return c === undefined
    ? null
    : { confirmed: c.status === 'enrolled', status: c.status, at: c.statusAt, checkedAt: c.checkedAt };
}

/** Report CSV columns in order, with their ja/en headers. */
export const REPORT_COLUMNS = [
  ['jobId', 'job_id', 'ジョブID'],
  ['udid', 'udid', 'UDID'],
  ['serial', 'serial', 'シリアル番号'],
  ['nameGiven', 'device_name', '端末名'],
  ['assetTag', 'asset_tag', '資産管理番号'],
  ['group', 'group', 'グループ'],
  ['model', 'model', '機種'],
  ['productType', 'product_type', '製品タイプ'],
  ['osVersion', 'os_version', 'OSバージョン'],
  ['blueprint', 'blueprint', 'ブループリント'],
  ['outcome', 'outcome', '結果'],
  ['errorCode', 'error_code', 'エラーコード'],
  ['startedAt', 'started_at', '開始日時'],
  ['finishedAt', 'finished_at', '終了日時'],
  ['duration', 'duration_s', '所要時間（秒）'],
  ['applied', 'applied_steps', '実施した手順'],
  ['stepTimings', 'step_seconds', '手順別所要時間（秒）'],
  ['enrollmentConfirmed', 'enrollment_confirmed', '登録確認'],
] as const;

/**
 * The "enrollment confirmed" cell: `yes`/`確認済み` once the MDM saw the device check in, `no`/`未確認`
 * when the MDM was asked and has not seen it yet, empty when the MDM was never asked.
 */
const CONFIRMED_WORDS: Readonly<Record<Lang, { readonly yes: string; readonly no: string }>> = {
  ja: { yes: '確認済み', no: '未確認' },
  en: { yes: 'yes', no: 'no' },
};

const OUTCOME_WORDS: Readonly<Record<Lang, Readonly<Record<ReportRow['outcome'], string>>>> = {
  ja: { done: '完了', failed: '失敗', cancelled: '中止' },
  en: { done: 'done', failed: 'failed', cancelled: 'cancelled' },
};

function seconds(msValue: number): string {
  return (msValue / 1000).toFixed(1);
}

function cellsOf(r: ReportRow, lang: Lang): string[] {
  const values: Record<(typeof REPORT_COLUMNS)[number][0], string> = {
    jobId: r.jobId,
    udid: r.udid,
    serial: r.serial ?? '',
    nameGiven: r.nameGiven ?? '',
    assetTag: r.assetTag ?? '',
    group: r.group ?? '',
    model: r.model ?? '',
    productType: r.productType ?? '',
    osVersion: r.osVersion ?? '',
    blueprint: r.blueprint,
    outcome: OUTCOME_WORDS[lang][r.outcome],
    errorCode: r.errorCode ?? '',
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
    duration: seconds(r.durationMs),
    applied: r.applied.join(' '),
    stepTimings: r.steps
      .filter((s) => s.durationMs !== null)
      .map((s) => `${s.id}=${seconds(s.durationMs ?? 0)}`)
      .join(' '),
    enrollmentConfirmed:
      r.enrollment === null ? '' : r.enrollment.confirmed ? CONFIRMED_WORDS[lang].yes : CONFIRMED_WORDS[lang].no,
  };
  return REPORT_COLUMNS.map(([key]) => values[key]);
}

/** RFC 4180 field quoting (see `csvField` in plans.ts for why it is written here). */
function csvLine(cells: readonly string[]): string {
  return `${cells.map((v) => (/[",\r\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v)).join(',')}\r\n`;
}

/**
 * The report as CSV bytes: header in `lang`, outcome words in `lang`, UTF-8 with BOM or Shift_JIS.
 * @throws KitError `csv/unrepresentable` (Shift_JIS; details name the line and serial).
 */
export function reportCsv(rows: readonly ReportRow[], options: { lang?: Lang; encoding?: PlanEncoding } = {}): Buffer {
  const lang = options.lang ?? 'en';
  const header = csvLine(REPORT_COLUMNS.map(([, en, ja]) => (lang === 'ja' ? ja : en)));
  const lines = [header, ...rows.map((r) => csvLine(cellsOf(r, lang)))];
  return encodeCsv(lines, options.encoding ?? 'utf-8', ['', ...rows.map((r) => r.serial ?? r.udid)]);
}

/** One hour (or other bucket) of {@link Throughput}. */
export interface ThroughputBucket {
  /** ISO-8601 UTC, inclusive. */
  readonly start: string;
  /** ISO-8601 UTC, exclusive. */
  readonly end: string;
  /** Jobs finished in the bucket (any outcome). */
  readonly finished: number;
  readonly done: number;
  readonly failed: number;
  readonly cancelled: number;
}

/** Duration statistics of one step over the jobs reported. */
export interface StepStats {
  readonly step: string;
  /** Completed runs measured (status `done` with start and finish times). */
  readonly count: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly maxMs: number;
}

/** Chart data: finished devices per bucket (gaps filled with zeros) and per-step duration stats. */
export interface Throughput {
  readonly bucket: 'hour';
  readonly since: string | null;
  readonly buckets: readonly ThroughputBucket[];
  readonly steps: readonly StepStats[];
}

/** Nearest-rank percentile of sorted values (p in 0…1). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.max(1, Math.ceil(p * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] ?? 0;
}

const HOUR_MS = 3_600_000;

/** Throughput from report rows (see {@link reportThroughput}). */
export function throughputOf(rows: readonly ReportRow[], since: string | null = null): Throughput {
  const counts = new Map<number, { done: number; failed: number; cancelled: number }>();
  for (const r of rows) {
    const t = Date.parse(r.finishedAt);
    if (Number.isNaN(t)) continue;
    const key = Math.floor(t / HOUR_MS);
    const c = counts.get(key) ?? { done: 0, failed: 0, cancelled: 0 };
    c[r.outcome] += 1;
    counts.set(key, c);
  }
  const keys = [...counts.keys()];
  const buckets: ThroughputBucket[] = [];
  if (keys.length > 0) {
    for (let k = Math.min(...keys); k <= Math.max(...keys); k++) {
      const c = counts.get(k) ?? { done: 0, failed: 0, cancelled: 0 };
      buckets.push({
        start: new Date(k * HOUR_MS).toISOString(),
        end: new Date((k + 1) * HOUR_MS).toISOString(),
        finished: c.done + c.failed + c.cancelled,
        ...c,
      });
    }
  }
  const durations = new Map<string, number[]>();
  const order: string[] = [];
  for (const r of rows) {
    for (const s of r.steps) {
      if (!order.includes(s.id)) order.push(s.id);
      if (s.status !== 'done' || s.durationMs === null) continue;
      durations.set(s.id, [...(durations.get(s.id) ?? []), s.durationMs]);
    }
  }
  const steps = order.flatMap((id) => {
    const list = (durations.get(id) ?? []).sort((a, b) => a - b);
    if (list.length === 0) return [];
    return [
      {
        step: id,
        count: list.length,
        p50Ms: percentile(list, 0.5),
        p90Ms: percentile(list, 0.9),
        maxMs: list[list.length - 1] ?? 0,
      },
    ];
  });
  return { bucket: 'hour', since, buckets, steps };
}

/**
 * Throughput over time for charts: devices finished per hour (UTC hours, empty hours between the
 * first and the last included with zeros) and p50/p90/max duration per step (nearest rank, over
 * steps that completed `done` with both times known). Errors: `store/*`.
 */
export function reportThroughput(db: Db, options: { since?: string; bucket?: 'hour' } = {}): Throughput {
  const rows = reportRows(db, options.since === undefined ? {} : { since: options.since });
  return throughputOf(rows, options.since ?? null);
}

/** The JSON document of `kitting report --format json`. */
export interface ReportDocument {
  readonly generatedAt: string;
  readonly since: string | null;
  readonly devices: readonly ReportRow[];
  readonly throughput: Throughput;
}

/** The whole report as one JSON-ready document. Errors: `store/*`. */
export function reportDocument(db: Db, options: ReportOptions & { now?: () => Date } = {}): ReportDocument {
  const devices = reportRows(db, options.since === undefined ? {} : { since: options.since });
  return {
    generatedAt: (options.now ?? (() => new Date()))().toISOString(),
    since: options.since ?? null,
    devices,
    throughput: throughputOf(devices, options.since ?? null),
  };
}
