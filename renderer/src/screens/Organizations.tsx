/**
 * 組織 / 監視用ID — Organizations: supervision identities with their fingerprints (grouped, for
 * comparing two stations) and expiry; create, import (.p12 + password, PEM, DER certificate + key)
 * and export (p12 / PEM / DER) as browser downloads. Bytes travel as base64 through the contract.
 */
import { useCallback, useEffect, useState, type ReactNode } from 'react';
import type { CommandResult } from '../../../src/contract.ts';
import { Dialog } from '../components/Dialog.tsx';
import { ErrorNote, useApp } from '../context.tsx';
import { useI18n } from '../i18n/index.tsx';
import { base64ToBytes, download, fileToBase64, groupFingerprint } from '../util.ts';

type Identity = CommandResult<'identities.list'>[number];

function ExportDialog(props: { identity: Identity; onClose: () => void }): ReactNode {
  const { t } = useI18n();
  const { client } = useApp();
  const [format, setFormat] = useState<'p12' | 'pem' | 'der'>('p12');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<unknown>(null);
  const needs = format === 'p12';
  return (
    <Dialog title={t('org.exportTitle', { org: props.identity.org })} onClose={props.onClose}>
      <fieldset>
        <legend>{t('org.format')}</legend>
        {(['p12', 'pem', 'der'] as const).map((f) => (
          <label key={f} className="inline">
            <input type="radio" name="format" checked={format === f} onChange={() => setFormat(f)} />
            {t(`org.format.${f}`)}
          </label>
        ))}
      </fieldset>
      {format !== 'der' ? (
        <label>
          {needs ? t('org.passwordRequired') : t('org.passwordOptional')}
          <input
            type="password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            autoComplete="new-password"
          />
        </label>
      ) : (
        <p className="hint">{t('org.derNote')}</p>
      )}
      {error !== null ? <ErrorNote error={error} /> : null}
      <div className="dialog-actions">
        <button type="button" onClick={props.onClose}>
          {t('common.cancel')}
        </button>
        <button
          type="button"
          className="primary"
          disabled={needs && password === ''}
          onClick={() => {
            setError(null);
            client
              .call('identities.export', {
                id: props.identity.id,
                format,
                ...(format !== 'der' && password !== '' ? { password } : {}),
              })
              .then((r) => {
                for (const f of r.files) download(f.name, base64ToBytes(f.base64), 'application/octet-stream');
                props.onClose();
              }, setError);
          }}
        >
          {t('common.export')}
        </button>
      </div>
    </Dialog>
  );
}

export function OrganizationsScreen(): ReactNode {
  const { t, lang } = useI18n();
  const { client } = useApp();
  const [list, setList] = useState<Identity[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [org, setOrg] = useState('');
  const [country, setCountry] = useState('JP');
  const [busy, setBusy] = useState(false);
  const [file, setFile] = useState<File | null>(null);
  const [keyFile, setKeyFile] = useState<File | null>(null);
  const [password, setPassword] = useState('');
  const [exporting, setExporting] = useState<Identity | null>(null);
  const [message, setMessage] = useState('');

  const reload = useCallback(() => {
    client.call('identities.list', {}).then(setList, setError);
  }, [client]);
  useEffect(reload, [reload]);

  const act = (p: Promise<Identity>): void => {
    setError(null);
    setBusy(true);
    p.then(
      (i) => {
        setBusy(false);
        setMessage(t('org.stored', { org: i.org }));
        reload();
      },
      (e: unknown) => {
        setBusy(false);
        setError(e);
      },
    );
  };

  const now = Date.now();
  return (
    <div className="screen organizations">
      <div className="screen-head">
        <h2>{t('nav.organizations')}</h2>
      </div>
      <p className="hint">{t('org.intro')}</p>
      {error !== null ? <ErrorNote error={error} /> : null}
      {message !== '' ? (
        <p className="ok-text" role="status">
          ✓ {message}
        </p>
      ) : null}
      <section className="card" aria-labelledby="org-list-h">
        <h3 id="org-list-h">{t('org.list')}</h3>
        {list === null ? (
          <p className="muted">{t('common.loading')}</p>
        ) : list.length === 0 ? (
          <p className="empty">{t('org.empty')}</p>
        ) : (
          <table className="list">
            <thead>
              <tr>
                <th scope="col">{t('org.org')}</th>
                <th scope="col">{t('org.id')}</th>
                <th scope="col">{t('org.fingerprint')}</th>
                <th scope="col">{t('org.expiry')}</th>
                <th scope="col">{t('common.actions')}</th>
              </tr>
            </thead>
            <tbody>
              {list.map((i) => {
                const days = Math.floor((Date.parse(i.notAfter) - now) / 86_400_000);
                return (
                  <tr key={i.id}>
                    <td>{i.org}</td>
                    <td className="mono">{i.id}</td>
                    <td>
                      <span className="fingerprint">
                        {groupFingerprint(i.fingerprint).map((g) => (
                          <span key={g} className="mono">
                            {g}
                          </span>
                        ))}
                      </span>
                    </td>
                    <td className={days < 90 ? 'bad-text' : undefined}>
                      {new Date(i.notAfter).toLocaleDateString(lang)}
                      <br />
                      <span className="small">{days < 0 ? t('org.expired') : t('org.daysLeft', { n: days })}</span>
                    </td>
                    <td>
                      <button type="button" onClick={() => setExporting(i)}>
                        {t('common.export')}
                      </button>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
      </section>
      <div className="columns">
        <section className="card" aria-labelledby="org-create-h">
          <h3 id="org-create-h">{t('org.create')}</h3>
          <form
            onSubmit={(e) => {
              e.preventDefault();
              act(client.call('identities.create', { org, ...(country !== '' ? { country } : {}) }));
            }}
          >
            <label>
              {t('org.org')}
              <input value={org} onChange={(e) => setOrg(e.target.value)} required name="org" />
            </label>
            <label>
              {t('org.country')}
              <input value={country} onChange={(e) => setCountry(e.target.value)} maxLength={2} name="country" />
            </label>
            <button type="submit" className="primary" disabled={busy || org.trim() === ''}>
              {busy ? t('common.working') : t('org.createButton')}
            </button>
          </form>
        </section>
        <section className="card" aria-labelledby="org-import-h">
          <h3 id="org-import-h">{t('org.import')}</h3>
          <form
            onSubmit={(e) => {
              e.preventDefault();
              if (file === null) return;
              act(
                (async () =>
                  client.call('identities.import', {
                    fileName: file.name,
                    fileBase64: await fileToBase64(file),
                    ...(keyFile !== null ? { keyBase64: await fileToBase64(keyFile) } : {}),
                    ...(password !== '' ? { password } : {}),
                  }))(),
              );
            }}
          >
            <label>
              {t('org.file')}
              <input
                type="file"
                accept=".p12,.pfx,.pem,.crt,.cer,.der"
                onChange={(e) => setFile(e.target.files?.[0] ?? null)}
              />
            </label>
            <label>
              {t('org.keyFile')}
              <input type="file" accept=".key,.pem,.der" onChange={(e) => setKeyFile(e.target.files?.[0] ?? null)} />
            </label>
            <label>
              {t('org.password')}
              <input
                type="password"
                value={password}
                onChange={(e) => setPassword(e.target.value)}
                autoComplete="off"
              />
            </label>
            <p className="hint">{t('org.importHint')}</p>
            <button type="submit" className="primary" disabled={busy || file === null}>
              {t('org.importButton')}
            </button>
          </form>
        </section>
      </div>
      {exporting !== null ? <ExportDialog identity={exporting} onClose={() => setExporting(null)} /> : null}
    </div>
  );
}
