/**
 * 端末の詳細 / Device detail: the device's properties (read over lockdown), its cloud configuration
 * (Apple's keys), profiles, the step timeline of its jobs with durations, errors with what to do,
 * and the MDM check's result.
 */
import { useEffect, useState, type ReactNode } from 'react';
import type { CommandResult, JsonPlist } from '../../../src/contract.ts';
import { ErrorNote, useApp, wordsOf } from '../context.tsx';
import { useI18n } from '../i18n/index.tsx';
import { isStepId } from '../station-state.ts';
import { formatShortDuration } from '../util.ts';
import { portLabel } from './Station.tsx';

type Job = CommandResult<'jobs.list'>[number];

function isDict(v: JsonPlist | undefined): v is { [key: string]: JsonPlist } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function text(v: JsonPlist | undefined): string {
  if (v === undefined || v === null) return '—';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function gb(v: JsonPlist | undefined): string {
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  return Number.isFinite(n) ? (n / 1e9).toFixed(1) : '—';
}

/** Loads a value; the error is kept to be shown in place. */
function useLoad<T>(load: () => Promise<T>, deps: readonly unknown[]): { data: T | undefined; error: unknown } {
  const [state, setState] = useState<{ data: T | undefined; error: unknown }>({ data: undefined, error: null });
  useEffect(() => {
    let alive = true;
    setState({ data: undefined, error: null });
    load().then(
      (data) => alive && setState({ data, error: null }),
      (error: unknown) => alive && setState({ data: undefined, error }),
    );
    return () => {
      alive = false;
    };
  }, deps);
  return state;
}

export function DeviceDetailScreen(props: { udid: string }): ReactNode {
  const { t, lang } = useI18n();
  const { client, view, words } = useApp();
  const { udid } = props;
  const d = view.devices.get(udid);
  const attached = d?.attached === true;
  const info = useLoad(
    () => (attached ? client.call('devices.info', { udid }) : Promise.resolve(null)),
    [udid, attached],
  );
  const battery = useLoad(
    () =>
      attached ? client.call('devices.info', { udid, domain: 'com.apple.mobile.battery' }) : Promise.resolve(null),
    [udid, attached],
  );
  const disk = useLoad(
    () => (attached ? client.call('devices.info', { udid, domain: 'com.apple.disk_usage' }) : Promise.resolve(null)),
    [udid, attached],
  );
  const cloud = useLoad(
    () => (attached ? client.call('devices.cloudConfiguration', { udid }) : Promise.resolve(null)),
    [udid, attached],
  );
  const profiles = useLoad(
    () => (attached ? client.call('devices.profiles', { udid }) : Promise.resolve(null)),
    [udid, attached],
  );
  const jobs = useLoad(() => client.call('jobs.list', { udid }), [udid, d?.state, d?.stepsFinished]);

  const values = isDict(info.data ?? undefined) ? (info.data as { [key: string]: JsonPlist }) : {};
  const bat = isDict(battery.data ?? undefined) ? (battery.data as { [key: string]: JsonPlist }) : {};
  const du = isDict(disk.data ?? undefined) ? (disk.data as { [key: string]: JsonPlist }) : {};
  const cc = isDict(cloud.data ?? undefined) ? (cloud.data as { [key: string]: JsonPlist }) : null;
  const s = d?.summary ?? null;
  const supervised = s?.supervised ?? (cc !== null && typeof cc.IsSupervised === 'boolean' ? cc.IsSupervised : null);
  const organization = cc !== null && typeof cc.OrganizationName === 'string' ? cc.OrganizationName : null;
  const jobList: Job[] = [...(jobs.data ?? [])].reverse();
  const latest = jobList[0];
  const mdmStep = latest?.steps.find((st) => st.stepId === 'check-mdm');
  const port = d !== undefined ? portLabel(t, d) : null;

  const rows: [string, string][] = [
    [t('detail.udid'), udid],
    [t('detail.serial'), s?.serial ?? text(values.SerialNumber)],
    [t('detail.ecid'), text(values.UniqueChipID)],
    [t('detail.model'), `${s?.model ?? '—'} (${s?.productType ?? text(values.ProductType)})`],
    [t('detail.os'), s?.osVersion ?? text(values.ProductVersion)],
    [t('detail.activation'), s?.activationState ?? text(values.ActivationState)],
    [
      t('detail.supervision'),
      supervised === null ? t('common.unknown') : supervised ? t('detail.supervised') : t('detail.notSupervised'),
    ],
    [t('detail.organization'), organization ?? '—'],
    [t('detail.battery'), typeof bat.BatteryCurrentCapacity === 'number' ? `${bat.BatteryCurrentCapacity}%` : '—'],
    [
      t('detail.storage'),
      du.TotalDiskCapacity !== undefined
        ? t('detail.storageValue', { free: gb(du.AmountDataAvailable), total: gb(du.TotalDiskCapacity) })
        : '—',
    ],
    [t('detail.port'), port ?? '—'],
  ];

  return (
    <div className="screen detail">
      <div className="screen-head">
        <button type="button" onClick={() => (window.location.hash = '#/station')}>
          ← {t('detail.back')}
        </button>
        <h2>
          {t('detail.title')}: {s?.name ?? s?.serial ?? udid}
        </h2>
        <span className="state-badge">{t(`state.${d?.state ?? 'detached'}`)}</span>
      </div>
      {!attached ? <p className="notice">{t('detail.notAttached')}</p> : null}
      <div className="columns">
        <section className="card" aria-labelledby="props-h">
          <h3 id="props-h">{t('detail.properties')}</h3>
          {info.error !== null ? <ErrorNote error={info.error} /> : null}
          <dl className="props">
            {rows.map(([k, v]) => (
              <div key={k}>
                <dt>{k}</dt>
                <dd className="mono">{v}</dd>
              </div>
            ))}
          </dl>
        </section>
        <section className="card" aria-labelledby="mdm-h">
          <h3 id="mdm-h">{t('detail.mdm')}</h3>
          {mdmStep === undefined ? (
            <p className="muted">{t('detail.mdmUnknown')}</p>
          ) : (
            <p>{t('detail.mdmFromStep', { status: t(`stepStatus.${mdmStep.status}`) })}</p>
          )}
          {latest?.steps.some((st) => st.stepId === 'enroll' && st.status === 'done') === true ? (
            <p className="ok-text">✓ {t('detail.enrolled')}</p>
          ) : null}
          <h3>{t('detail.errors')}</h3>
          {jobList.flatMap((j) => j.steps.filter((st) => st.errorCode !== null).map((st) => ({ j, st }))).length ===
            0 && d?.code == null ? (
            <p className="muted">{t('detail.noErrors')}</p>
          ) : (
            <ul className="plain errors">
              {d?.code != null ? (
                <li>
                  <strong>{wordsOf(words, d.code)?.title ?? d.code}</strong>
                  <p>{wordsOf(words, d.code)?.action ?? ''}</p>
                  <p className="mono muted">{d.code}</p>
                </li>
              ) : null}
              {jobList.flatMap((j) =>
                j.steps
                  .filter((st) => st.errorCode !== null)
                  .map((st) => (
                    <li key={`${j.id}-${st.stepId}`}>
                      <strong>
                        {isStepId(st.stepId) ? t(`step.${st.stepId}`) : st.stepId}:{' '}
                        {wordsOf(words, st.errorCode)?.title ?? st.errorCode}
                      </strong>
                      <p>{wordsOf(words, st.errorCode)?.action ?? st.errorMessage}</p>
                      <p className="mono muted">{st.errorCode}</p>
                    </li>
                  )),
              )}
            </ul>
          )}
        </section>
      </div>
      <section className="card" aria-labelledby="timeline-h">
        <h3 id="timeline-h">{t('detail.timeline')}</h3>
        {jobs.error !== null ? <ErrorNote error={jobs.error} /> : null}
        {latest === undefined ? (
          <p className="muted">{t('detail.noJob')}</p>
        ) : (
          jobList.slice(0, 3).map((j) => (
            <div key={j.id} className="job">
              <p>
                {t('detail.job', {
                  blueprint: j.blueprintName,
                  status: t(`jobStatus.${j.status}`),
                  at: new Date(j.createdAt).toLocaleString(lang),
                })}
              </p>
              <table>
                <thead>
                  <tr>
                    <th scope="col">{t('detail.step')}</th>
                    <th scope="col">{t('detail.status')}</th>
                    <th scope="col">{t('detail.duration')}</th>
                    <th scope="col">{t('detail.attempts')}</th>
                  </tr>
                </thead>
                <tbody>
                  {j.steps.map((st) => (
                    <tr key={st.stepId} className={`step-${st.status}`}>
                      <td>{isStepId(st.stepId) ? t(`step.${st.stepId}`) : st.stepId}</td>
                      <td>{t(`stepStatus.${st.status}`)}</td>
                      <td className="mono">
                        {st.startedAt !== null && st.finishedAt !== null
                          ? formatShortDuration(Date.parse(st.finishedAt) - Date.parse(st.startedAt))
                          : '—'}
                      </td>
                      <td>{st.attempts}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          ))
        )}
      </section>
      <div className="columns">
        <section className="card" aria-labelledby="cc-h">
          <h3 id="cc-h">{t('detail.cloudConfig')}</h3>
          {cloud.error !== null ? <ErrorNote error={cloud.error} /> : null}
          {cc === null ? (
            <p className="muted">{attached && cloud.error === null ? t('detail.noCloudConfig') : '—'}</p>
          ) : (
            <table>
              <thead>
                <tr>
                  <th scope="col">{t('detail.key')}</th>
                  <th scope="col">{t('detail.value')}</th>
                </tr>
              </thead>
              <tbody>
                {Object.entries(cc).map(([k, v]) => (
                  <tr key={k}>
                    <td className="mono">{k}</td>
                    <td className="mono wrap">{text(v)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
        <section className="card" aria-labelledby="pr-h">
          <h3 id="pr-h">{t('detail.profiles')}</h3>
          {profiles.error !== null ? <ErrorNote error={profiles.error} /> : null}
          {Array.isArray(profiles.data) && profiles.data.length > 0 ? (
            <ul className="plain">
              {profiles.data.map((p, i) => (
                <li key={i} className="mono wrap">
                  {isDict(p) ? text(p.displayName ?? p.identifier ?? p) : text(p)}
                </li>
              ))}
            </ul>
          ) : (
            <p className="muted">{attached && profiles.error === null ? t('detail.noProfiles') : '—'}</p>
          )}
        </section>
      </div>
    </div>
  );
}
