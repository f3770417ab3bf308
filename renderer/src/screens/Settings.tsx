/** 設定 / Settings: language, usbmuxd address, caps, and the data folder (read-only). */
import { useEffect, useState, type ReactNode } from 'react';
import type { CommandResult } from '../../../src/contract.ts';
import { ErrorNote, useApp } from '../context.tsx';
import { useI18n, type Lang } from '../i18n/index.tsx';

type Settings = CommandResult<'settings.get'>;

export function SettingsScreen(): ReactNode {
  const { t, lang, setLang } = useI18n();
  const { client } = useApp();
  const [settings, setSettings] = useState<Settings | null>(null);
  const [dataDir, setDataDir] = useState<string | null>(null);
  const [usbmuxd, setUsbmuxd] = useState('');
  const [maxParallel, setMaxParallel] = useState('4');
  const [perHub, setPerHub] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);

  useEffect(() => {
    client.call('settings.get', {}).then((s) => {
      setSettings(s);
      setUsbmuxd(s.usbmuxdAddress ?? '');
      setMaxParallel(String(s.maxParallel));
      setPerHub(s.perHub !== null ? String(s.perHub) : '');
    }, setError);
    client.call('station.info', {}).then((i) => setDataDir(i.dataDir), setError);
  }, [client]);

  const chooseLang = (l: Lang): void => {
    setLang(l);
    client.call('settings.set', { language: l }).catch(setError);
  };

  return (
    <div className="screen settings">
      <div className="screen-head">
        <h2>{t('nav.settings')}</h2>
      </div>
      {error !== null ? <ErrorNote error={error} /> : null}
      <section className="card">
        <fieldset>
          <legend>{t('settings.language')}</legend>
          <label className="inline">
            <input type="radio" name="lang" checked={lang === 'ja'} onChange={() => chooseLang('ja')} />
            日本語
          </label>
          <label className="inline">
            <input type="radio" name="lang" checked={lang === 'en'} onChange={() => chooseLang('en')} />
            English
          </label>
        </fieldset>
      </section>
      <section className="card">
        <form
          onSubmit={(e) => {
            e.preventDefault();
            setError(null);
            setSaved(false);
            const m = Number(maxParallel);
            const p = perHub.trim() === '' ? null : Number(perHub);
            client
              .call('settings.set', {
                usbmuxdAddress: usbmuxd.trim() === '' ? null : usbmuxd.trim(),
                ...(Number.isInteger(m) ? { maxParallel: m } : {}),
                perHub: p !== null && Number.isInteger(p) ? p : null,
              })
              .then((s) => {
                setSettings(s);
                setSaved(true);
              }, setError);
          }}
        >
          <label>
            {t('settings.usbmuxd')}
            <input
              value={usbmuxd}
              onChange={(e) => setUsbmuxd(e.target.value)}
              placeholder={t('settings.usbmuxdDefault')}
            />
          </label>
          <p className="hint">{t('settings.usbmuxdHint')}</p>
          <label>
            {t('batch.maxParallel')}
            <input
              type="number"
              min={1}
              max={256}
              value={maxParallel}
              onChange={(e) => setMaxParallel(e.target.value)}
            />
          </label>
          <label>
            {t('batch.perHub')}
            <input type="number" min={1} max={256} value={perHub} onChange={(e) => setPerHub(e.target.value)} />
          </label>
          <p className="hint">{t('batch.perHubHint')}</p>
          <div className="form-actions">
            {saved ? <span className="ok-text">✓ {t('settings.saved')}</span> : null}
            <button type="submit" className="primary" disabled={settings === null}>
              {t('common.save')}
            </button>
          </div>
        </form>
      </section>
      <section className="card">
        <h3>{t('settings.dataDir')}</h3>
        <p className="mono" data-testid="data-dir">
          {dataDir ?? '—'}
        </p>
        <p className="hint">{t('settings.dataDirHint')}</p>
      </section>
    </div>
  );
}
