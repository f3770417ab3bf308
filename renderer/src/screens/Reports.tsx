/**
 * レポート / Reports: the results table with filters (since a date, outcome, blueprint), exports
 * (CSV UTF-8 / Shift_JIS from the station, JSON), charts of throughput per hour and step durations,
 * and the port map (each hub's ports with the device there and its state).
 *
 * The charts are small hand-written SVG: two bar charts do not justify a charting library's weight
 * in a bundle that must load offline under a strict CSP.
 */
import { useEffect, useMemo, useState, type ReactNode } from 'react';
import type { CommandResult, DeviceState } from '../../../src/contract.ts';
import { ErrorNote, useApp } from '../context.tsx';
import { useI18n } from '../i18n/index.tsx';
import { isStepId } from '../station-state.ts';
import { base64ToBytes, download, formatDuration, formatShortDuration } from '../util.ts';

type Report = CommandResult<'report.generate'>;
type Outcome = 'all' | 'done' | 'failed' | 'cancelled';

function BarChart(props: {
  title: string;
  bars: { label: string; value: number; text: string }[];
  unit: string;
}): ReactNode {
  const max = Math.max(1, ...props.bars.map((b) => b.value));
  const rowH = 28;
  const width = 640;
  const labelW = 220;
  const h = props.bars.length * rowH + 8;
  return (
    <figure className="chart">
      <figcaption>{props.title}</figcaption>
      <svg viewBox={`0 0 ${width} ${h}`} width="100%" role="img" aria-label={props.title}>
        {props.bars.map((b, i) => {
          const w = ((width - labelW - 150) * b.value) / max;
          const y = i * rowH + 4;
          return (
            <g key={b.label}>
              <text x={labelW - 8} y={y + 18} textAnchor="end" className="chart-label">
                {b.label}
              </text>
              <rect x={labelW} y={y + 4} width={Math.max(w, 1)} height={rowH - 10} className="chart-bar" />
              <text x={labelW + w + 6} y={y + 18} className="chart-value">
                {b.text}
              </text>
            </g>
          );
        })}
      </svg>
      <table className="visually-hidden">
        <tbody>
          {props.bars.map((b) => (
            <tr key={b.label}>
              <th scope="row">{b.label}</th>
              <td>
                {b.text} {props.unit}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </figure>
  );
}

function PortMap(): ReactNode {
  const { t } = useI18n();
  const { view } = useApp();
  const hubs = new Map<string, { label: string; udid: string; state: DeviceState; name: string }[]>();
  for (const d of view.devices.values()) {
    if (!d.attached) continue;
    const port = d.summary?.port ?? null;
    const m = port !== null ? /^(\d+)[-.:/](\d+)$/.exec(port) : null;
    const hub = m?.[1] ?? d.hub ?? '?';
    const list = hubs.get(hub) ?? [];
    list.push({
      label: m?.[2] ?? port ?? '—',
      udid: d.udid,
      state: d.state,
      name: d.summary?.name ?? d.summary?.serial ?? d.udid,
    });
    hubs.set(hub, list);
  }
  const entries = [...hubs.entries()].sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }));
  return (
    <section className="card" aria-labelledby="portmap-h">
      <h3 id="portmap-h">{t('report.portMap')}</h3>
      {entries.length === 0 ? (
        <p className="empty">{t('report.portMapEmpty')}</p>
      ) : (
        entries.map(([hub, ports]) => (
          <div key={hub} className="hub">
            <h4>{hub === '?' ? t('report.hubUnknown') : t('station.hub', { hub })}</h4>
            <ul className="ports">
              {ports
                .sort((a, b) => a.label.localeCompare(b.label, 'en', { numeric: true }))
                .map((p) => {
                  return (
                    <li key={p.udid} className={`port-cell state-${p.state}`} data-state={p.state}>
                      <span className="port-no">
                        {/^\d+$/.test(p.label) ? t('station.port', { port: p.label }) : t('report.portUnknown')}
                      </span>
                      <span className="port-name">{p.name}</span>
                      <span className="port-state">{t(`state.${p.state}`)}</span>
                    </li>
                  );
                })}
            </ul>
          </div>
        ))
      )}
    </section>
  );
}

export function ReportsScreen(): ReactNode {
  const { t, lang } = useI18n();
  const { client } = useApp();
  const [since, setSince] = useState('');
  const [outcome, setOutcome] = useState<Outcome>('all');
  const [blueprint, setBlueprint] = useState('');
  const [report, setReport] = useState<Report | null>(null);
  const [error, setError] = useState<unknown>(null);
  const sinceIso = since !== '' ? new Date(`${since}T00:00:00`).toISOString() : undefined;

  useEffect(() => {
    let alive = true;
    client.call('report.generate', sinceIso !== undefined ? { since: sinceIso } : {}).then(
      (r) => alive && setReport(r),
      (e: unknown) => alive && setError(e),
    );
    return () => {
      alive = false;
    };
  }, [client, sinceIso]);

  const rows = useMemo(
    () =>
      (report?.devices ?? []).filter(
        (r) => (outcome === 'all' || r.outcome === outcome) && (blueprint === '' || r.blueprint === blueprint),
      ),
    [report, outcome, blueprint],
  );
  const blueprints = [...new Set((report?.devices ?? []).map((r) => r.blueprint))].sort();
  const hours = (report?.throughput.buckets ?? []).slice(-12).map((b) => ({
    label: new Date(b.start).toLocaleTimeString(lang, { hour: '2-digit', minute: '2-digit' }),
    value: b.done,
    text: String(b.done),
  }));
  const steps = (report?.throughput.steps ?? []).map((s) => ({
    label: isStepId(s.step) ? t(`step.${s.step}`) : s.step,
    value: s.p50Ms,
    text: `${formatShortDuration(s.p50Ms)} (p90 ${formatShortDuration(s.p90Ms)})`,
  }));

  const csv = (encoding: 'utf-8' | 'shift_jis'): void => {
    client
      .call('report.csv', { lang, encoding, ...(sinceIso !== undefined ? { since: sinceIso } : {}) })
      .then((r) => download(`kitting-report-${encoding}.csv`, base64ToBytes(r.base64), 'text/csv'), setError);
  };

  return (
    <div className="screen reports">
      <div className="screen-head">
        <h2>{t('nav.reports')}</h2>
      </div>
      {error !== null ? <ErrorNote error={error} /> : null}
      <div className="form-row" role="group" aria-label={t('report.filters')}>
        <label>
          {t('report.since')}
          <input type="date" value={since} onChange={(e) => setSince(e.target.value)} />
        </label>
        <label>
          {t('report.outcome')}
          <select value={outcome} onChange={(e) => setOutcome(e.target.value as Outcome)}>
            <option value="all">{t('report.all')}</option>
            <option value="done">{t('jobStatus.done')}</option>
            <option value="failed">{t('jobStatus.failed')}</option>
            <option value="cancelled">{t('jobStatus.cancelled')}</option>
          </select>
        </label>
        <label>
          {t('report.blueprint')}
          <select value={blueprint} onChange={(e) => setBlueprint(e.target.value)}>
            <option value="">{t('report.all')}</option>
            {blueprints.map((b) => (
              <option key={b} value={b}>
                {b}
              </option>
            ))}
          </select>
        </label>
        <button type="button" onClick={() => csv('utf-8')}>
          {t('report.csvUtf8')}
        </button>
        <button type="button" onClick={() => csv('shift_jis')}>
          {t('report.csvSjis')}
        </button>
        <button
          type="button"
          disabled={report === null}
          onClick={() =>
            download(
              'kitting-report.json',
              `${JSON.stringify({ ...report, devices: rows }, null, 2)}\n`,
              'application/json',
            )
          }
        >
          {t('report.json')}
        </button>
      </div>
      <div className="columns">
        <section className="card">
          {hours.length === 0 ? (
            <p className="empty">{t('report.noThroughput')}</p>
          ) : (
            <BarChart title={t('report.throughputChart')} bars={hours} unit={t('report.devices')} />
          )}
        </section>
        <section className="card">
          {steps.length === 0 ? (
            <p className="empty">{t('report.noSteps')}</p>
          ) : (
            <BarChart title={t('report.stepChart')} bars={steps} unit="" />
          )}
        </section>
      </div>
      <section className="card" aria-labelledby="results-h">
        <h3 id="results-h">{t('report.results', { n: rows.length })}</h3>
        {rows.length === 0 ? (
          <p className="empty">{t('report.empty')}</p>
        ) : (
          <table className="list" data-testid="report-table">
            <thead>
              <tr>
                <th scope="col">{t('report.finishedAt')}</th>
                <th scope="col">{t('plan.serial')}</th>
                <th scope="col">{t('plan.deviceName')}</th>
                <th scope="col">{t('detail.model')}</th>
                <th scope="col">{t('report.blueprint')}</th>
                <th scope="col">{t('report.outcome')}</th>
                <th scope="col">{t('detail.duration')}</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.jobId} className={`outcome-${r.outcome}`}>
                  <td>{new Date(r.finishedAt).toLocaleString(lang)}</td>
                  <td className="mono">{r.serial ?? '—'}</td>
                  <td>{r.nameGiven ?? '—'}</td>
                  <td>{r.model ?? '—'}</td>
                  <td>{r.blueprint}</td>
                  <td>
                    {r.outcome === 'done' ? '✓ ' : '✕ '}
                    {t(`jobStatus.${r.outcome}`)}
                    {r.errorCode !== null ? <span className="mono small"> {r.errorCode}</span> : null}
                  </td>
                  <td className="mono">{formatDuration(r.durationMs)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      <PortMap />
    </div>
  );
}
