/** The report CSV's "enrollment confirmed" column: ja/en header and words, empty when never asked. */
import { describe, expect, it } from 'vitest';
import { REPORT_COLUMNS, reportCsv, type ReportRow } from '../../src/kitting/report.ts';

function row(serial: string, enrollment: ReportRow['enrollment']): ReportRow {
  return {
    jobId: `job-${serial}`,
    udid: `udid-${serial}`,
    serial,
    nameGiven: null,
    assetTag: null,
    group: null,
    model: null,
    productType: null,
    osVersion: null,
    blueprint: 'bp',
    outcome: 'done',
    errorCode: null,
    startedAt: '2026-04-01T09:00:00.000Z',
    finishedAt: '2026-04-01T09:01:00.000Z',
    durationMs: 60_000,
    steps: [],
    applied: [],
    enrollment,
  };
}

const at = '2026-04-01T09:02:00.000Z';
const rows = [
  row('AAA111', { confirmed: true, status: 'enrolled', at, checkedAt: at }),
  row('BBB222', { confirmed: false, status: 'profile-issued', at, checkedAt: at }),
  row('CCC333', null),
];

function lastCells(bytes: Buffer): string[] {
  return bytes
    .subarray(3)
    .toString('utf8')
    .split('\r\n')
    .filter((l) => l !== '')
    .map((l) => l.split(',').at(-1) ?? '');
}

describe('report CSV: enrollment confirmed', () => {
  it('is the last column, with its English header and yes/no/empty', () => {
    expect(REPORT_COLUMNS.at(-1)).toEqual(['enrollmentConfirmed', 'enrollment_confirmed', '登録確認']);
    expect(lastCells(reportCsv(rows, { lang: 'en' }))).toEqual(['enrollment_confirmed', 'yes', 'no', '']);
  });
  it('has the Japanese header and words', () => {
    expect(lastCells(reportCsv(rows, { lang: 'ja' }))).toEqual(['登録確認', '確認済み', '未確認', '']);
  });
});
