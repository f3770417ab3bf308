/**
 * `kitting jobs [--json]` (cli.md): the kitting jobs in the station database with their steps,
 * statuses, error codes and timings. Reads `<data-dir>/station.db` (created and migrated if it
 * does not exist yet, so a fresh station answers an empty list).
 *
 * JSON: an array of `{id, udid, serial, blueprint, status, steps: [{id, status, errorCode?,
 * startedAt?, finishedAt?}]}`, oldest job first; `waitingReason` is added for waiting jobs.
 * Human text: one line per job, its steps' statuses in pipeline order.
 *
 * Exit codes: 0; 1 when the database cannot be opened (`store/*`).
 */
import type { Command } from 'commander';
import type { Lang } from '../../i18n/messages.ts';
import { openStationDatabase, type Db } from '../../store/db.ts';
import { listJobs, type JobRecord, type JobStatus, type StepStatus } from '../../store/jobs.ts';
import { ctxOf } from '../context.ts';

/** One step as `kitting jobs --json` prints it. */
export interface JobStepJson {
  id: string;
  status: StepStatus;
  errorCode?: string;
  startedAt?: string;
  finishedAt?: string;
}

/** One job as `kitting jobs --json` prints it (cli.md). */
export interface JobJson {
  id: string;
  udid: string;
  serial: string | null;
  blueprint: string;
  status: JobStatus;
  waitingReason?: string;
  steps: JobStepJson[];
}

/** The cli.md JSON form of a job. */
export function jobJson(job: JobRecord): JobJson {
  const out: JobJson = {
    id: job.id,
    udid: job.udid,
    serial: job.serial,
    blueprint: job.blueprintName,
    status: job.status,
    steps: job.steps.map((s) => {
      const step: JobStepJson = { id: s.stepId, status: s.status };
      if (s.errorCode !== null) step.errorCode = s.errorCode;
      if (s.startedAt !== null) step.startedAt = s.startedAt;
      if (s.finishedAt !== null) step.finishedAt = s.finishedAt;
      return step;
    }),
  };
  if (job.waitingReason !== null) out.waitingReason = job.waitingReason;
  return out;
}

const STATUS_WORDS: Readonly<Record<Lang, Readonly<Record<JobStatus | StepStatus, string>>>> = {
  ja: {
    pending: '待機',
    running: '実行中',
    waiting: '待ち',
    done: '完了',
    skipped: '不要',
    failed: '失敗',
    cancelled: '中止',
  },
  en: {
    pending: 'pending',
    running: 'running',
    waiting: 'waiting',
    done: 'done',
    skipped: 'skipped',
    failed: 'failed',
    cancelled: 'cancelled',
  },
};

/** One human line per job: `udid serial blueprint status [reason/error] | step:status …`. */
export function jobLine(job: JobRecord, lang: Lang): string {
  const words = STATUS_WORDS[lang];
  const failedStep = job.steps.find((s) => s.status === 'failed' || s.status === 'waiting');
  const why =
    job.waitingReason !== null
      ? ` (${job.waitingReason}${failedStep?.errorCode !== null && failedStep !== undefined ? ` ${failedStep.errorCode}` : ''})`
      : job.errorCode !== null
        ? ` (${job.errorCode})`
        : '';
  const steps = job.steps.map((s) => `${s.stepId}:${words[s.status]}`).join(' ');
  return `${job.udid}  ${job.serial ?? '-'}  ${job.blueprintName}  ${words[job.status]}${why}  | ${steps}`;
}

function withDb<T>(dataDir: string, fn: (db: Db) => T): T {
  const db = openStationDatabase(dataDir);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

/** Registers `kitting jobs`. */
export function registerJobs(program: Command): void {
  program
    .command('jobs')
    .usage('[--json]')
    .description('kitting jobs with their steps, statuses, error codes and timings')
    .action((_opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const jobs = withDb(ctx.dataDir, (db) => listJobs(db));
      if (ctx.json) {
        ctx.printJson(jobs.map(jobJson));
        return;
      }
      if (jobs.length === 0) ctx.print(ctx.lang === 'ja' ? 'ジョブはありません' : 'no jobs');
      for (const job of jobs) ctx.print(jobLine(job, ctx.lang));
    });
}
