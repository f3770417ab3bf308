/**
 * ステーション / Station: a tile per device with its state, current step, progress, elapsed time
 * and, large, what a person must do; multi-select with actions; the batch bar (blueprint, auto
 * apply, caps, counts, throughput, ETA).
 */
import {
  useCallback,
  useEffect,
  useMemo,
  useRef,
  useState,
  type KeyboardEvent,
  type MouseEvent,
  type ReactNode,
} from 'react';
import type { CommandResult, DeviceState } from '../../../src/contract.ts';
import { Dialog } from '../components/Dialog.tsx';
import { ErrorNote, useApp, wordsOf } from '../context.tsx';
import { useI18n, type MessageKey } from '../i18n/index.tsx';
import {
  STEP_IDS,
  isStepId,
  leaveRecoveryEcid,
  nextLine,
  type ActiveBatch,
  type DeviceView,
} from '../station-state.ts';
import { formatDuration } from '../util.ts';

type Blueprint = CommandResult<'blueprints.list'>[number];

/** Tone, icon: never color alone. */
const STATE_LOOK: Readonly<Record<DeviceState, { tone: string; icon: string }>> = {
  attached: { tone: 'neutral', icon: '◌' },
  'trust-pending': { tone: 'attention', icon: '☝' },
  locked: { tone: 'attention', icon: '⊘' },
  ready: { tone: 'neutral', icon: '○' },
  running: { tone: 'busy', icon: '⟳' },
  waiting: { tone: 'attention', icon: '⏸' },
  done: { tone: 'ok', icon: '✓' },
  failed: { tone: 'bad', icon: '✕' },
  detached: { tone: 'muted', icon: '⏏' },
  recovery: { tone: 'attention', icon: '⚠' },
};

function useNow(ms: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const id = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(id);
  }, [ms]);
  return now;
}

export function portLabel(
  t: (k: MessageKey, p?: Readonly<Record<string, string | number>>) => string,
  d: DeviceView,
): string | null {
  const port = d.summary?.port ?? null;
  if (port !== null) {
    const m = /^(\d+)[-.:/](\d+)$/.exec(port);
    if (m !== null) return t('station.hubPort', { hub: m[1] ?? '', port: m[2] ?? '' });
    return t('station.port', { port });
  }
  if (d.hub !== null) return t('station.hub', { hub: d.hub });
  return null;
}

function DeviceTile(props: {
  d: DeviceView;
  batch: ActiveBatch | null;
  selected: boolean;
  now: number;
  onSelect: (udid: string, e: MouseEvent | KeyboardEvent) => void;
  onOpen: (udid: string) => void;
}): ReactNode {
  const { t } = useI18n();
  const { client, words } = useApp();
  const [actionError, setActionError] = useState<unknown>(null);
  const { d } = props;
  const ecid = leaveRecoveryEcid(d);
  const state: DeviceState = !d.attached && d.state !== 'done' && d.state !== 'failed' ? 'detached' : d.state;
  const look = STATE_LOOK[state];
  const pct = Math.round((d.stepsFinished / STEP_IDS.length) * 100);
  const elapsed = d.startedAt !== null ? (d.finishedAt ?? props.now) - d.startedAt : null;
  const port = portLabel(t, d);
  const name = d.summary?.name ?? d.summary?.serial ?? d.udid;
  const err = wordsOf(words, d.code);
  return (
    <li
      className={`tile tone-${look.tone}${props.selected ? ' selected' : ''}`}
      role="option"
      aria-selected={props.selected}
      tabIndex={0}
      data-udid={d.udid}
      data-state={state}
      onClick={(e) => props.onSelect(d.udid, e)}
      onDoubleClick={() => props.onOpen(d.udid)}
      onKeyDown={(e) => {
        if (e.key === ' ') {
          e.preventDefault();
          props.onSelect(d.udid, e);
        } else if (e.key === 'Enter') {
          e.preventDefault();
          props.onOpen(d.udid);
        }
      }}
    >
      <div className="tile-head">
        <span className="state-badge">
          <span className="state-icon" aria-hidden="true">
            {look.icon}
          </span>
          {t(`state.${state}`)}
        </span>
        {port !== null ? <span className="port">{port}</span> : null}
      </div>
      <div className="tile-name">{name}</div>
      <div className="tile-meta">
        <span>
          {t('station.serial')}: <span className="mono">{d.summary?.serial ?? '—'}</span>
        </span>
        <span>{d.summary?.model ?? '—'}</span>
      </div>
      <p className="next-action" data-testid="next-action">
        {t(`next.${nextLine(d, props.batch)}`)}
      </p>
      {err !== null && (state === 'failed' || state === 'waiting') ? <p className="tile-error">{err.title}</p> : null}
      <div className="tile-step">
        <span>
          {d.step !== null && isStepId(d.step) ? t(`step.${d.step}`) : state === 'done' ? t('state.done') : '—'}
        </span>
        <span className="mono">{elapsed !== null ? formatDuration(elapsed) : ''}</span>
      </div>
      <progress max={100} value={pct} aria-label={t('station.progress', { name })}>
        {pct}%
      </progress>
      {ecid !== null ? (
        <button
          type="button"
          className="tile-action"
          onClick={(e) => {
            e.stopPropagation();
            setActionError(null);
            client.call('devices.leaveRecovery', { ecid }).catch(setActionError);
          }}
        >
          {t('station.leaveRecovery')}
        </button>
      ) : null}
      {actionError !== null ? <ErrorNote error={actionError} /> : null}
      <button
        type="button"
        className="link-button"
        onClick={(e) => {
          e.stopPropagation();
          props.onOpen(d.udid);
        }}
      >
        {t('station.details')}
      </button>
    </li>
  );
}

function BatchBar(props: {
  blueprints: Blueprint[];
  blueprint: string;
  setBlueprint: (b: string) => void;
  maxParallel: number;
  perHub: number | null;
  setCaps: (m: number, p: number | null) => void;
}): ReactNode {
  const { t } = useI18n();
  const { client, view } = useApp();
  const [error, setError] = useState<unknown>(null);
  const batch = view.batch;
  const watching = batch?.mode === 'watch';
  const run = (p: Promise<unknown>): void => {
    setError(null);
    p.catch(setError);
  };
  const counts = batch?.counts;
  const eta = counts?.etaSeconds ?? null;
  return (
    <section className="batch-bar" aria-label={t('batch.label')}>
      <div className="batch-controls">
        <label>
          {t('batch.blueprint')}
          <select
            value={props.blueprint}
            onChange={(e) => props.setBlueprint(e.target.value)}
            disabled={batch !== null}
          >
            {props.blueprints.length === 0 ? <option value="">{t('batch.noBlueprint')}</option> : null}
            {props.blueprints.map((b) => (
              <option key={b.name} value={b.name}>
                {b.name}
              </option>
            ))}
          </select>
        </label>
        <label className="switch">
          <input
            type="checkbox"
            role="switch"
            checked={watching}
            disabled={(batch !== null && !watching) || props.blueprint === ''}
            onChange={(e) =>
              run(
                e.target.checked
                  ? client.call('watch.set', {
                      enabled: true,
                      blueprint: props.blueprint,
                      maxParallel: props.maxParallel,
                      ...(props.perHub !== null ? { perHub: props.perHub } : {}),
                    })
                  : client.call('watch.set', { enabled: false }),
              )
            }
          />
          {t('batch.autoApply')}
        </label>
        <label>
          {t('batch.maxParallel')}
          <input
            type="number"
            min={1}
            max={256}
            value={props.maxParallel}
            onChange={(e) => props.setCaps(Math.max(1, Number(e.target.value) || 1), props.perHub)}
          />
        </label>
        <label>
          {t('batch.perHub')}
          <input
            type="number"
            min={0}
            max={256}
            value={props.perHub ?? 0}
            aria-describedby="perhub-hint"
            onChange={(e) => {
              const n = Number(e.target.value) || 0;
              props.setCaps(props.maxParallel, n > 0 ? n : null);
            }}
          />
          <span id="perhub-hint" className="hint">
            {t('batch.perHubHint')}
          </span>
        </label>
      </div>
      <div className="batch-status" data-testid="batch-status">
        {batch === null ? (
          <span className="muted">{t('batch.idle')}</span>
        ) : (
          <>
            <span className="batch-mode">
              {t(watching ? 'batch.watching' : 'batch.running', { blueprint: batch.blueprint })}
              {batch.paused ? ` · ${t('batch.paused')}` : ''}
            </span>
            <dl className="counts">
              <div>
                <dt>{t('batch.waiting')}</dt>
                <dd data-count="waiting">{counts?.waiting ?? 0}</dd>
              </div>
              <div>
                <dt>{t('batch.runningCount')}</dt>
                <dd data-count="running">{counts?.running ?? 0}</dd>
              </div>
              <div>
                <dt>{t('batch.done')}</dt>
                <dd data-count="done">{counts?.done ?? 0}</dd>
              </div>
              <div>
                <dt>{t('batch.failed')}</dt>
                <dd data-count="failed">{counts?.failed ?? 0}</dd>
              </div>
              <div>
                <dt>{t('batch.throughput')}</dt>
                <dd>{t('batch.perHour', { n: Math.round(counts?.throughputPerHour ?? 0) })}</dd>
              </div>
              <div>
                <dt>{t('batch.eta')}</dt>
                <dd>{eta !== null ? formatDuration(eta * 1000) : '—'}</dd>
              </div>
            </dl>
            {batch.paused ? (
              <button type="button" onClick={() => run(client.call('batch.resume', {}))}>
                {t('batch.resume')}
              </button>
            ) : (
              <button type="button" onClick={() => run(client.call('batch.pause', {}))}>
                {t('batch.pause')}
              </button>
            )}
            <button type="button" className="danger" onClick={() => run(client.call('batch.stop', {}))}>
              {t('batch.stop')}
            </button>
          </>
        )}
      </div>
      {error !== null ? <ErrorNote error={error} /> : null}
    </section>
  );
}

function EraseDialog(props: { devices: DeviceView[]; onClose: () => void }): ReactNode {
  const { t } = useI18n();
  const { client } = useApp();
  const [typed, setTyped] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const single = props.devices.length === 1 ? (props.devices[0]?.summary?.serial ?? null) : null;
  const word = t('erase.word');
  const accepted = [word, 'ERASE', ...(single !== null ? [single] : [])];
  const ok = accepted.includes(typed.trim());
  return (
    <Dialog title={t('erase.title', { n: props.devices.length })} onClose={props.onClose}>
      <p className="warning">
        <span aria-hidden="true">⚠ </span>
        {t('erase.warning')}
      </p>
      <ul className="plain">
        {props.devices.map((d) => (
          <li key={d.udid} className="mono">
            {d.summary?.serial ?? d.udid}
          </li>
        ))}
      </ul>
      <label>
        {single !== null ? t('erase.typeSerial', { serial: single, word }) : t('erase.typeWord', { word })}
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
          disabled={!ok || busy}
          onClick={() => {
            setBusy(true);
            client
              .call('devices.erase', { udids: props.devices.map((d) => d.udid), confirmation: 'ERASE', wait: false })
              .then(props.onClose, (e: unknown) => {
                setBusy(false);
                setError(e);
              });
          }}
        >
          {t('erase.confirm')}
        </button>
      </div>
    </Dialog>
  );
}

export function StationScreen(): ReactNode {
  const { t } = useI18n();
  const { client, view, openDevice } = useApp();
  const now = useNow(1000);
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const anchor = useRef<string | null>(null);
  const [blueprints, setBlueprints] = useState<Blueprint[]>([]);
  const [blueprint, setBlueprint] = useState('');
  const [caps, setCapsState] = useState<{ maxParallel: number; perHub: number | null }>({
    maxParallel: 4,
    perHub: null,
  });
  const [confirmErase, setConfirmErase] = useState(false);
  const [erasing, setErasing] = useState(false);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    void client.call('blueprints.list', {}).then((list) => {
      setBlueprints(list);
      setBlueprint((b) => (b !== '' ? b : (list[0]?.name ?? '')));
    }, setError);
    void client
      .call('settings.get', {})
      .then((s) => setCapsState({ maxParallel: s.maxParallel, perHub: s.perHub }), setError);
  }, [client]);

  const setCaps = (maxParallel: number, perHub: number | null): void => {
    setCapsState({ maxParallel, perHub });
    client.call('settings.set', { maxParallel, perHub }).catch(setError);
  };

  const devices = useMemo(
    () =>
      [...view.devices.values()].sort((a, b) =>
        (a.summary?.port ?? a.summary?.serial ?? a.udid).localeCompare(
          b.summary?.port ?? b.summary?.serial ?? b.udid,
          'en',
          {
            numeric: true,
          },
        ),
      ),
    [view.devices],
  );

  const onSelect = useCallback(
    (udid: string, e: MouseEvent | KeyboardEvent) => {
      setSelected((cur) => {
        const next = new Set(cur);
        if (e.shiftKey && anchor.current !== null) {
          const ids = devices.map((d) => d.udid);
          const a = ids.indexOf(anchor.current);
          const b = ids.indexOf(udid);
          for (const id of ids.slice(Math.min(a, b), Math.max(a, b) + 1)) next.add(id);
          return next;
        }
        anchor.current = udid;
        if (e.ctrlKey || e.metaKey || e.type === 'keydown') {
          if (next.has(udid)) next.delete(udid);
          else next.add(udid);
          return next;
        }
        return cur.size === 1 && cur.has(udid) ? new Set() : new Set([udid]);
      });
    },
    [devices],
  );

  const chosen = devices.filter((d) => selected.has(d.udid));
  const targets = chosen.filter((d) => d.attached);
  const run = (p: Promise<unknown>): void => {
    setError(null);
    p.catch(setError);
  };
  const each = (fn: (d: DeviceView) => Promise<unknown>): void => run(Promise.all(targets.map(fn)));

  const attention = devices.filter((d) => d.nextAction !== null).length;

  return (
    <div className="screen station">
      <div className="screen-head">
        <h2>{t('nav.station')}</h2>
        <p className="muted">{t('station.summary', { n: devices.filter((d) => d.attached).length, attention })}</p>
      </div>
      <BatchBar
        blueprints={blueprints}
        blueprint={blueprint}
        setBlueprint={setBlueprint}
        maxParallel={caps.maxParallel}
        perHub={caps.perHub}
        setCaps={setCaps}
      />
      <div className="toolbar" role="toolbar" aria-label={t('station.actions')}>
        <span className="muted" aria-live="polite">
          {t('station.selected', { n: chosen.length })}
        </span>
        <button type="button" onClick={() => setSelected(new Set(devices.map((d) => d.udid)))}>
          {t('station.selectAll')}
        </button>
        <button type="button" onClick={() => setSelected(new Set())} disabled={chosen.length === 0}>
          {t('station.selectNone')}
        </button>
        <label className="inline">
          <input type="checkbox" checked={confirmErase} onChange={(e) => setConfirmErase(e.target.checked)} />
          {t('station.allowErase')}
        </label>
        <button
          type="button"
          className="primary"
          disabled={targets.length === 0 || blueprint === '' || view.batch !== null}
          onClick={() =>
            run(
              client.call('batch.start', {
                blueprint,
                udids: targets.map((d) => d.udid),
                maxParallel: caps.maxParallel,
                confirmedErase: confirmErase,
                ...(caps.perHub !== null ? { perHub: caps.perHub } : {}),
              }),
            )
          }
        >
          {t('station.prepare')}
        </button>
        <button
          type="button"
          disabled={targets.length === 0}
          onClick={() => each((d) => client.call('devices.pair', { udid: d.udid }))}
        >
          {t('station.pair')}
        </button>
        <button
          type="button"
          disabled={targets.length === 0}
          onClick={() => each((d) => client.call('devices.restart', { udid: d.udid }))}
        >
          {t('station.restart')}
        </button>
        <button
          type="button"
          disabled={!targets.some((d) => d.jobId !== null && (d.state === 'failed' || d.state === 'waiting'))}
          onClick={() =>
            each((d) => (d.jobId !== null ? client.call('jobs.retry', { jobId: d.jobId }) : Promise.resolve(null)))
          }
        >
          {t('station.retry')}
        </button>
        <button type="button" className="danger" disabled={targets.length === 0} onClick={() => setErasing(true)}>
          {t('station.erase')}
        </button>
      </div>
      {error !== null ? <ErrorNote error={error} /> : null}
      {devices.length === 0 ? (
        <div className="empty">
          <p className="big">{t('station.empty')}</p>
          <p className="muted">{t('station.emptyHint')}</p>
        </div>
      ) : (
        <ul className="tiles" role="listbox" aria-multiselectable="true" aria-label={t('station.devices')}>
          {devices.map((d) => (
            <DeviceTile
              key={d.udid}
              d={d}
              batch={view.batch}
              selected={selected.has(d.udid)}
              now={now}
              onSelect={onSelect}
              onOpen={openDevice}
            />
          ))}
        </ul>
      )}
      {erasing ? <EraseDialog devices={targets} onClose={() => setErasing(false)} /> : null}
    </div>
  );
}
