/**
 * 同期 / Sync: the MDM connection (URL and station token; the token is sent once and never shown
 * again), the syncer's state live from `syncStateChanged` (online / offline since / 送信待ち queue /
 * last error / next try), deliver now, the cached MDM groups, and a device's lifecycle at the MDM
 * (look up a serial; inactivation, forced inactivation, deletion) behind typed confirmations.
 */
import { useCallback, useEffect, useState, type ReactNode } from 'react';
import type { CommandResult } from '../../../src/contract.ts';
import { Dialog } from '../components/Dialog.tsx';
import { ErrorNote, useApp, wordsOf } from '../context.tsx';
import { useI18n, type MessageKey } from '../i18n/index.tsx';

type Status = CommandResult<'sync.status'>;
type Groups = CommandResult<'sync.groups'>;
type MdmDevice = CommandResult<'mdm.device'>;
type Lifecycle = 'inactivate' | 'force' | 'delete';

const STATE_KEYS: Readonly<Record<Status['state'], MessageKey>> = {
  unconfigured: 'sync.state.unconfigured',
  online: 'sync.state.online',
  offline: 'sync.state.offline',
  'auth-required': 'sync.state.auth-required',
};

function LifecycleDialog(props: {
  serial: string;
  action: Lifecycle;
  onDone: () => void;
  onClose: () => void;
}): ReactNode {
  const { t } = useI18n();
  const { client } = useApp();
  const [typed, setTyped] = useState('');
  const [error, setError] = useState<unknown>(null);
  const title = t(`sync.action.${props.action}`);
  return (
    <Dialog title={`${title}: ${props.serial}`} onClose={props.onClose}>
      <p className="warning">{t(`sync.warn.${props.action}`)}</p>
      <label>
        {t('sync.typeSerial', { serial: props.serial })}
        <input value={typed} onChange={(e) => setTyped(e.target.value)} autoComplete="off" />
      </label>
      {error !== null ? <ErrorNote error={error} /> : null}
      <div className="dialog-actions">
        <button type="button" onClick={props.onClose}>
          {t('common.cancel')}
        </button>
        <button
          type="button"
          className="danger"
          disabled={typed.trim() !== props.serial}
          onClick={() => {
            setError(null);
            const p =
              props.action === 'delete'
                ? client.call('mdm.delete', { serial: props.serial, confirmed: true })
                : client.call('mdm.inactivate', {
                    serial: props.serial,
                    force: props.action === 'force',
                    confirmed: true,
                  });
            p.then(() => {
              props.onDone();
              props.onClose();
            }, setError);
          }}
        >
          {title}
        </button>
      </div>
    </Dialog>
  );
}

export function SyncScreen(): ReactNode {
  const { t, lang } = useI18n();
  const { client, words } = useApp();
  const [status, setStatus] = useState<Status | null>(null);
  const [groups, setGroups] = useState<Groups | null>(null);
  const [url, setUrl] = useState('');
  const [token, setToken] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [message, setMessage] = useState('');
  const [serial, setSerial] = useState('');
  const [device, setDevice] = useState<MdmDevice | null>(null);
  const [lifecycle, setLifecycle] = useState<Lifecycle | null>(null);
  const [busy, setBusy] = useState(false);

  const reload = useCallback(() => {
    client.call('sync.status', {}).then(setStatus, setError);
    client.call('sync.groups', {}).then(setGroups, setError);
  }, [client]);
  useEffect(() => {
    reload();
    return client.onEvent((e) => {
      if (e.type === 'syncStateChanged') {
        setStatus({
          state: e.state,
          queueLength: e.queueLength,
          delivered: e.delivered,
          lastError: e.lastError,
          nextTryAt: e.nextTryAt,
          offlineSince: e.offlineSince,
        });
      }
    });
  }, [client, reload]);

  const when = (iso: string | null): string => (iso === null ? '—' : new Date(iso).toLocaleString(lang));
  const lookup = (): void => {
    setError(null);
    client.call('mdm.device', { serial: serial.trim() }).then(setDevice, setError);
  };
  const lastWords = wordsOf(words, status?.lastError?.code ?? null);

  return (
    <div className="screen sync">
      <div className="screen-head">
        <h2>{t('nav.sync')}</h2>
      </div>
      {error !== null ? <ErrorNote error={error} /> : null}
      {message !== '' ? (
        <p className="ok-text" role="status">
          ✓ {message}
        </p>
      ) : null}
      <div className="columns">
        <section className="card" aria-labelledby="sync-state-h">
          <h3 id="sync-state-h">{t('sync.status')}</h3>
          {status === null ? (
            <p className="muted">{t('common.loading')}</p>
          ) : (
            <dl className="props" data-testid="sync-status">
              <div>
                <dt>{t('sync.state')}</dt>
                <dd data-state={status.state}>
                  <span className={`state-badge sync-${status.state}`}>
                    {status.state === 'online' ? '● ' : '○ '}
                    {t(STATE_KEYS[status.state])}
                  </span>
                </dd>
              </div>
              <div>
                <dt>{t('sync.queue')}</dt>
                <dd data-testid="sync-queue">{status.queueLength}</dd>
              </div>
              <div>
                <dt>{t('sync.delivered')}</dt>
                <dd>{status.delivered}</dd>
              </div>
              <div>
                <dt>{t('sync.offlineSince')}</dt>
                <dd>{when(status.offlineSince)}</dd>
              </div>
              <div>
                <dt>{t('sync.nextTry')}</dt>
                <dd>{when(status.nextTryAt)}</dd>
              </div>
              <div>
                <dt>{t('sync.lastError')}</dt>
                <dd>
                  {status.lastError === null ? (
                    '—'
                  ) : (
                    <>
                      <strong>{lastWords?.title ?? status.lastError.code}</strong>
                      <br />
                      {lastWords?.action ?? status.lastError.message}
                      <br />
                      <span className="mono small">
                        {status.lastError.code} · {when(status.lastError.at)}
                      </span>
                    </>
                  )}
                </dd>
              </div>
            </dl>
          )}
          <div className="form-actions">
            <button
              type="button"
              className="primary"
              disabled={status === null || status.state === 'unconfigured' || busy}
              onClick={() => {
                setError(null);
                setBusy(true);
                client.call('sync.run', {}).then(
                  (r) => {
                    setBusy(false);
                    setStatus(r.status);
                    setMessage(t('sync.ran', { n: r.status.delivered }));
                  },
                  (e: unknown) => {
                    setBusy(false);
                    setError(e);
                  },
                );
              }}
            >
              {busy ? t('common.working') : t('sync.runNow')}
            </button>
          </div>
        </section>
        <section className="card" aria-labelledby="sync-conf-h">
          <h3 id="sync-conf-h">{t('sync.connection')}</h3>
          <form
            onSubmit={(e) => {
              e.preventDefault();
              setError(null);
              setBusy(true);
              client.call('sync.configure', { url: url.trim(), token }).then(
                (r) => {
                  setBusy(false);
                  setToken('');
                  setMessage(t('sync.configured', { url: r.url, n: r.groups }));
                  reload();
                },
                (err: unknown) => {
                  setBusy(false);
                  setToken('');
                  setError(err);
                },
              );
            }}
          >
            <label>
              {t('sync.url')}
              <input type="url" value={url} onChange={(e) => setUrl(e.target.value)} name="mdm-url" required />
            </label>
            <label>
              {t('sync.token')}
              <input
                type="password"
                value={token}
                onChange={(e) => setToken(e.target.value)}
                name="mdm-token"
                autoComplete="off"
                required
              />
            </label>
            <p className="hint">{t('sync.tokenHint')}</p>
            <button type="submit" className="primary" disabled={busy || url.trim() === '' || token === ''}>
              {t('sync.connect')}
            </button>
          </form>
        </section>
      </div>
      <section className="card" aria-labelledby="sync-groups-h">
        <h3 id="sync-groups-h">{t('sync.groups')}</h3>
        {groups === null || groups.groups.length === 0 ? (
          <p className="empty">{t('sync.noGroups')}</p>
        ) : (
          <>
            <p className="hint">{t('sync.groupsFetched', { at: when(groups.fetchedAt) })}</p>
            <table className="list">
              <thead>
                <tr>
                  <th scope="col">{t('sync.groupId')}</th>
                  <th scope="col">{t('sync.groupName')}</th>
                </tr>
              </thead>
              <tbody>
                {groups.groups.map((g) => (
                  <tr key={g.id}>
                    <td className="mono">{g.id}</td>
                    <td>{typeof g.path === 'string' ? g.path : typeof g.name === 'string' ? g.name : '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        )}
      </section>
      <section className="card" aria-labelledby="sync-device-h">
        <h3 id="sync-device-h">{t('sync.device')}</h3>
        <form
          className="form-row"
          onSubmit={(e) => {
            e.preventDefault();
            lookup();
          }}
        >
          <label>
            {t('plan.serial')}
            <input value={serial} onChange={(e) => setSerial(e.target.value.toUpperCase())} name="mdm-serial" />
          </label>
          <button type="submit" disabled={serial.trim() === ''}>
            {t('sync.lookup')}
          </button>
        </form>
        {device !== null ? (
          <div data-testid="mdm-device">
            {!device.registered || device.device === null ? (
              <p>{t('sync.notRegistered', { serial: device.serial })}</p>
            ) : (
              <>
                <dl className="props">
                  <div>
                    <dt>{t('sync.deviceState')}</dt>
                    <dd>{device.device.state}</dd>
                  </div>
                  <div>
                    <dt>{t('sync.enrollment')}</dt>
                    <dd>
                      {device.device.enrollment.status} · {when(device.device.enrollment.at)}
                    </dd>
                  </div>
                  <div>
                    <dt>{t('sync.lastCheckIn')}</dt>
                    <dd>{when(device.device.lastCheckIn)}</dd>
                  </div>
                </dl>
                <div className="form-actions">
                  <button type="button" className="danger" onClick={() => setLifecycle('inactivate')}>
                    {t('sync.action.inactivate')}
                  </button>
                  <button type="button" className="danger" onClick={() => setLifecycle('force')}>
                    {t('sync.action.force')}
                  </button>
                  <button type="button" className="danger" onClick={() => setLifecycle('delete')}>
                    {t('sync.action.delete')}
                  </button>
                </div>
              </>
            )}
          </div>
        ) : null}
      </section>
      {lifecycle !== null && device !== null ? (
        <LifecycleDialog serial={device.serial} action={lifecycle} onDone={lookup} onClose={() => setLifecycle(null)} />
      ) : null}
    </div>
  );
}
