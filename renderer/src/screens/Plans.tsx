/**
 * 計画 / シリアル番号リスト — Plans: a CSV file is checked by the station first (`plans.preview`:
 * encoding, format, first rows, or every bad row with its line and reason), then imported all or
 * nothing; the stored plans are listed and exported.
 */
import { useCallback, useEffect, useState, type ReactNode } from 'react';
import type { CommandResult } from '../../../src/contract.ts';
import { ErrorNote, useApp } from '../context.tsx';
import { useI18n } from '../i18n/index.tsx';
import { base64ToBytes, download, fileToBase64 } from '../util.ts';

type Plan = CommandResult<'plans.list'>[number];
type Preview = CommandResult<'plans.preview'>;
type Encoding = 'auto' | 'utf-8' | 'shift_jis';

export function PlansScreen(): ReactNode {
  const { t, lang } = useI18n();
  const { client } = useApp();
  const [plans, setPlans] = useState<Plan[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [csv, setCsv] = useState<{ name: string; base64: string } | null>(null);
  const [encoding, setEncoding] = useState<Encoding>('auto');
  const [planName, setPlanName] = useState('');
  const [preview, setPreview] = useState<Preview | null>(null);
  const [message, setMessage] = useState('');

  const reload = useCallback(() => {
    client.call('plans.list', {}).then(setPlans, setError);
  }, [client]);
  useEffect(reload, [reload]);

  useEffect(() => {
    if (csv === null) return;
    let alive = true;
    setError(null);
    client
      .call('plans.preview', { csvBase64: csv.base64, encoding, ...(planName.trim() !== '' ? { name: planName } : {}) })
      .then(
        (p) => alive && setPreview(p),
        (e: unknown) => {
          if (!alive) return;
          setPreview(null);
          setError(e);
        },
      );
    return () => {
      alive = false;
    };
  }, [client, csv, encoding, planName]);

  const encName = (e: string): string => (e === 'shift_jis' ? 'Shift_JIS' : 'UTF-8');

  return (
    <div className="screen plans">
      <div className="screen-head">
        <h2>{t('nav.plans')}</h2>
      </div>
      <p className="hint">{t('plan.intro')}</p>
      <section className="card" aria-labelledby="plan-import-h">
        <h3 id="plan-import-h">{t('plan.import')}</h3>
        <div className="form-row">
          <label>
            {t('plan.file')}
            <input
              type="file"
              accept=".csv,text/csv"
              data-testid="plan-file"
              onChange={(e) => {
                const file = e.target.files?.[0];
                setMessage('');
                if (file === undefined) return;
                void fileToBase64(file).then((b) => {
                  setCsv({ name: file.name, base64: b });
                  setPlanName(file.name.replace(/\.[^.]*$/, ''));
                }, setError);
              }}
            />
          </label>
          <label>
            {t('plan.encoding')}
            <select value={encoding} onChange={(e) => setEncoding(e.target.value as Encoding)}>
              <option value="auto">{t('plan.encoding.auto')}</option>
              <option value="utf-8">UTF-8</option>
              <option value="shift_jis">Shift_JIS</option>
            </select>
          </label>
          <label>
            {t('plan.name')}
            <input value={planName} onChange={(e) => setPlanName(e.target.value)} />
          </label>
        </div>
        {error !== null ? <ErrorNote error={error} /> : null}
        {preview !== null && preview.ok ? (
          <div className="preview-block" data-testid="plan-preview">
            <p>
              {t('plan.previewSummary', {
                rows: preview.rows,
                encoding: encName(preview.encoding),
                format: t(`plan.format.${preview.format}`),
              })}
            </p>
            <table className="list">
              <thead>
                <tr>
                  <th scope="col">{t('plan.line')}</th>
                  <th scope="col">{t('plan.serial')}</th>
                  <th scope="col">{t('plan.deviceName')}</th>
                  <th scope="col">{t('plan.assetTag')}</th>
                  <th scope="col">{t('plan.group')}</th>
                </tr>
              </thead>
              <tbody>
                {preview.first.map((r) => (
                  <tr key={r.line}>
                    <td>{r.line}</td>
                    <td className="mono">{r.serial}</td>
                    <td>{r.name ?? ''}</td>
                    <td>{r.assetTag ?? ''}</td>
                    <td>{r.group ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <button
              type="button"
              className="primary"
              onClick={() => {
                if (csv === null) return;
                setError(null);
                client
                  .call('plans.import', {
                    csvBase64: csv.base64,
                    encoding,
                    ...(planName.trim() !== '' ? { name: planName } : {}),
                  })
                  .then((r) => {
                    setMessage(t('plan.imported', { name: r.name, rows: r.rows, encoding: encName(r.encoding) }));
                    setCsv(null);
                    setPreview(null);
                    reload();
                  }, setError);
              }}
            >
              {t('plan.importButton', { n: preview.rows })}
            </button>
          </div>
        ) : null}
        {preview !== null && !preview.ok ? (
          <div className="bad-rows" role="alert" data-testid="plan-bad-rows">
            <p className="bad-text">✕ {t('plan.badRows', { n: preview.badRows.length })}</p>
            <table className="list">
              <thead>
                <tr>
                  <th scope="col">{t('plan.line')}</th>
                  <th scope="col">{t('plan.serial')}</th>
                  <th scope="col">{t('plan.reason')}</th>
                </tr>
              </thead>
              <tbody>
                {preview.badRows.map((r) => (
                  <tr key={`${r.line}-${r.reason}`}>
                    <td>{t('plan.lineN', { n: r.line })}</td>
                    <td className="mono">{r.serial}</td>
                    <td>{r.message[lang]}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
        {message !== '' ? (
          <p className="ok-text" role="status">
            ✓ {message}
          </p>
        ) : null}
      </section>
      <section className="card" aria-labelledby="plan-list-h">
        <h3 id="plan-list-h">{t('plan.list')}</h3>
        {plans === null ? (
          <p className="muted">{t('common.loading')}</p>
        ) : plans.length === 0 ? (
          <p className="empty">{t('plan.empty')}</p>
        ) : (
          <>
            <table className="list">
              <thead>
                <tr>
                  <th scope="col">{t('plan.name')}</th>
                  <th scope="col">{t('plan.rows')}</th>
                  <th scope="col">{t('plan.encoding')}</th>
                  <th scope="col">{t('plan.source')}</th>
                  <th scope="col">{t('plan.importedAt')}</th>
                </tr>
              </thead>
              <tbody>
                {plans.map((p) => (
                  <tr key={p.name}>
                    <td>{p.name}</td>
                    <td>{p.rows}</td>
                    <td>{encName(p.encoding)}</td>
                    <td>{p.source ?? '—'}</td>
                    <td>{new Date(p.importedAt).toLocaleString(lang)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <div className="form-actions">
              {(['utf-8', 'shift_jis'] as const).map((enc) => (
                <button
                  key={enc}
                  type="button"
                  onClick={() =>
                    client
                      .call('plans.export', { encoding: enc })
                      .then((r) => download(`plans-${enc}.csv`, base64ToBytes(r.base64), 'text/csv'), setError)
                  }
                >
                  {t('plan.export', { encoding: encName(enc) })}
                </button>
              ))}
            </div>
          </>
        )}
      </section>
    </div>
  );
}
