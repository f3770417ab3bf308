/**
 * ブループリント / Blueprints: the list and the editor. The editor is the seed's DEP-profile form
 * (mobiconnect's words) with every blueprint field; the station validates on every change
 * (`blueprints.validate`) and the issues appear under their fields in the current language.
 * Import/export as JSON (secrets left out by the station).
 */
import { useCallback, useEffect, useMemo, useState, type ReactNode } from 'react';
import type { CommandResult } from '../../../src/contract.ts';
import { ErrorNote, useApp } from '../context.tsx';
import { useI18n, type MessageKey } from '../i18n/index.tsx';
import { download, groupFingerprint } from '../util.ts';
import {
  emptyForm,
  fromBlueprint,
  groupSecretId,
  previewName,
  toBlueprint,
  withStoredPassword,
  type Form,
  type Json,
} from '../blueprint-form.ts';

type Summary = CommandResult<'blueprints.list'>[number];
type Identity = CommandResult<'identities.list'>[number];
type SkipPane = CommandResult<'skipPanes.list'>[number];
type Issue = CommandResult<'blueprints.validate'>['issues'][number];
type Group = CommandResult<'sync.groups'>['groups'][number];

const PLATFORM_KEYS: Readonly<Record<string, MessageKey>> = {
  ios: 'bp.platform.ios',
  ipados: 'bp.platform.ipados',
  tvos: 'bp.platform.tvos',
  macos: 'bp.platform.macos',
  visionos: 'bp.platform.visionos',
};

function Field(props: {
  id: string;
  label: string;
  issues: Issue[];
  hint?: string;
  children: ReactNode;
  forced?: string;
}): ReactNode {
  const { lang } = useI18n();
  const mine = props.issues.filter((i) => i.path === props.id || i.path.startsWith(`${props.id}.`));
  return (
    <div className={`field${mine.length > 0 ? ' invalid' : ''}`} data-field={props.id}>
      <label htmlFor={`f-${props.id}`}>{props.label}</label>
      {props.children}
      {props.hint !== undefined ? <p className="hint">{props.hint}</p> : null}
      {props.forced !== undefined ? <p className="hint forced">※ {props.forced}</p> : null}
      {mine.map((i, k) => (
        <p key={k} className="field-error" id={`e-${props.id}`}>
          ✕ {i.message[lang]}
        </p>
      ))}
    </div>
  );
}

function Check(props: {
  id: string;
  label: string;
  checked: boolean;
  onChange: (v: boolean) => void;
  hint?: string;
  issues: Issue[];
}): ReactNode {
  const { lang } = useI18n();
  const mine = props.issues.filter((i) => i.path === props.id);
  return (
    <div className="field check" data-field={props.id}>
      <label>
        <input type="checkbox" checked={props.checked} onChange={(e) => props.onChange(e.target.checked)} />
        {props.label}
      </label>
      {props.hint !== undefined ? <p className="hint">{props.hint}</p> : null}
      {mine.map((i, k) => (
        <p key={k} className="field-error">
          ✕ {i.message[lang]}
        </p>
      ))}
    </div>
  );
}

function Editor(props: {
  initial: Form;
  isNew: boolean;
  panes: SkipPane[];
  identities: Identity[];
  onSaved: (name: string) => void;
  onCancel: () => void;
}): ReactNode {
  const { t, lang } = useI18n();
  const { client, words } = useApp();
  const [f, setF] = useState<Form>(props.initial);
  const [issues, setIssues] = useState<Issue[]>([]);
  const [warnings, setWarnings] = useState<Issue[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  const [groups, setGroups] = useState<Group[]>([]);
  const [credentials, setCredentials] = useState('');
  useEffect(() => {
    client.call('sync.groups', {}).then((g) => setGroups(g.groups), setError);
  }, [client]);
  const allKeys = useMemo(() => props.panes.map((p) => p.key), [props.panes]);
  const json = useMemo(() => toBlueprint(f, allKeys), [f, allKeys]);
  const set = <K extends keyof Form>(k: K, v: Form[K]): void => {
    setSaved(false);
    setF((cur) => ({ ...cur, [k]: v }));
  };

  useEffect(() => {
    let alive = true;
    const id = setTimeout(() => {
      client.call('blueprints.validate', { blueprint: json }).then(
        (r) => {
          if (!alive) return;
          setIssues([...r.issues]);
          setWarnings([...r.warnings]);
        },
        (e: unknown) => alive && setError(e),
      );
    }, 250);
    return () => {
      alive = false;
      clearTimeout(id);
    };
  }, [client, json]);

  const identity = props.identities.find((i) => i.id === f.identityId);
  const preview = previewName(f.namingTemplate, Number(f.namingStart) || 1, {
    serial: 'DMPXK1ABCD12',
    model: 'iPad',
    planName: t('bp.sampleName'),
    assetTag: 'A-0001',
  });
  const txt = (
    k: keyof Form,
    id: string,
    label: string,
    extra: { type?: string; hint?: string; forced?: string; list?: string } = {},
  ): ReactNode => (
    <Field
      id={id}
      label={label}
      issues={issues}
      {...(extra.hint !== undefined ? { hint: extra.hint } : {})}
      {...(extra.forced !== undefined ? { forced: extra.forced } : {})}
    >
      <input
        id={`f-${id}`}
        type={extra.type ?? 'text'}
        list={extra.list}
        value={String(f[k])}
        aria-invalid={issues.some((i) => i.path === id)}
        onChange={(e) => set(k, e.target.value as never)}
      />
    </Field>
  );

  const save = (): void => {
    setError(null);
    // A typed group password is stored sealed first; the blueprint gets only its reference.
    const stored: Promise<Form> =
      f.groupId.trim() !== '' && f.groupPassword !== ''
        ? client
            .call('secrets.setGroupPassword', { id: groupSecretId(f), password: f.groupPassword })
            .then((r) => withStoredPassword(f, r.ref))
        : Promise.resolve(f);
    stored
      .then((form) => {
        setF(form);
        return client.call('blueprints.import', { blueprint: toBlueprint(form, allKeys), replace: !props.isNew });
      })
      .then((r) => {
        setSaved(true);
        setCredentials(
          r.credentials.status === 'ok'
            ? t('bp.credentialsOk')
            : r.credentials.status === 'not-checked'
              ? t('bp.credentialsNotChecked', { reason: words[r.credentials.reason]?.title ?? r.credentials.reason })
              : '',
        );
        props.onSaved(r.name);
      }, setError);
  };

  return (
    <form
      className="editor"
      aria-label={t('bp.editor')}
      onSubmit={(e) => {
        e.preventDefault();
        save();
      }}
    >
      <p className="hint">{t('bp.likeDep')}</p>
      <fieldset>
        <legend>{t('bp.section.general')}</legend>
        {txt('name', 'name', t('bp.name'), { hint: t('bp.nameHint') })}
        {txt('description', 'description', t('bp.description'))}
      </fieldset>
      <fieldset>
        <legend>{t('bp.section.organization')}</legend>
        <Field id="organization.identityId" label={t('bp.identity')} issues={issues}>
          <select
            id="f-organization.identityId"
            value={f.identityId}
            onChange={(e) => set('identityId', e.target.value)}
          >
            <option value="">{t('bp.chooseIdentity')}</option>
            {props.identities.map((i) => (
              <option key={i.id} value={i.id}>
                {i.org} ({i.id})
              </option>
            ))}
          </select>
        </Field>
        {identity !== undefined ? (
          <p className="fingerprint" aria-label={t('org.fingerprint')}>
            {groupFingerprint(identity.fingerprint).map((g) => (
              <span key={g} className="mono">
                {g}
              </span>
            ))}
          </p>
        ) : null}
        {txt('displayName', 'organization.displayName', t('bp.displayName'))}
        {txt('phone', 'organization.phone', t('bp.phone'), { type: 'tel' })}
        {txt('email', 'organization.email', t('bp.email'), { type: 'email' })}
        {txt('department', 'organization.department', t('bp.department'))}
        {txt('address', 'organization.address', t('bp.address'))}
      </fieldset>
      <fieldset>
        <legend>{t('bp.section.behavior')}</legend>
        <Check
          id="supervise"
          label={t('bp.supervise')}
          checked={f.supervise}
          onChange={(v) => set('supervise', v)}
          hint={t('bp.superviseHint')}
          issues={issues}
        />
        <Check
          id="allowPairing"
          label={t('bp.allowPairing')}
          checked={f.allowPairing}
          onChange={(v) => set('allowPairing', v)}
          issues={issues}
        />
        <Check
          id="mandatoryEnrollment"
          label={t('bp.mandatoryEnrollment')}
          checked={f.mandatoryEnrollment}
          onChange={(v) => set('mandatoryEnrollment', v)}
          hint={`※ ${t('bp.forcedOn')}`}
          issues={issues}
        />
        <Check
          id="mdmRemovable"
          label={t('bp.mdmRemovable')}
          checked={f.mdmRemovable}
          onChange={(v) => set('mdmRemovable', v)}
          hint={`※ ${t('bp.forcedOff')}`}
          issues={issues}
        />
        <Check
          id="autoAdvance"
          label={t('bp.autoAdvance')}
          checked={f.autoAdvance}
          onChange={(v) => set('autoAdvance', v)}
          hint={t('bp.autoAdvanceHint')}
          issues={issues}
        />
        <Check
          id="sharedIpad"
          label={t('bp.shared')}
          checked={f.shared}
          onChange={(v) => set('shared', v)}
          issues={issues}
        />
        {f.shared ? (
          <div className="nested" role="group" aria-label={t('bp.shared')}>
            <div className="radios">
              <label>
                <input
                  type="radio"
                  name="sharedBy"
                  checked={f.sharedBy === 'quota'}
                  onChange={() => set('sharedBy', 'quota')}
                />
                {t('bp.quotaMb')}
              </label>
              <label>
                <input
                  type="radio"
                  name="sharedBy"
                  checked={f.sharedBy === 'users'}
                  onChange={() => set('sharedBy', 'users')}
                />
                {t('bp.userCount')}
              </label>
            </div>
            {f.sharedBy === 'quota'
              ? txt('quotaMb', 'sharedIpad.quotaMb', t('bp.quotaMb'), { type: 'number', hint: t('bp.quotaHint') })
              : txt('userCount', 'sharedIpad.userCount', t('bp.userCount'), { type: 'number' })}
            {txt('maxCachedUsers', 'sharedIpad.maxCachedUsers', t('bp.maxCachedUsers'), { type: 'number' })}
          </div>
        ) : null}
      </fieldset>
      <fieldset>
        <legend>{t('bp.section.skip')}</legend>
        <div className="skip-tools">
          <button type="button" onClick={() => set('skip', allKeys)}>
            {t('bp.selectAll')}
          </button>
          <button type="button" onClick={() => set('skip', [])}>
            {t('bp.selectNone')}
          </button>
          <span className="muted">{t('bp.skipCount', { n: f.skip.length, total: allKeys.length })}</span>
        </div>
        {issues
          .filter((i) => i.path.startsWith('skipSetup'))
          .map((i, k) => (
            <p key={k} className="field-error">
              ✕ {i.message[lang]}
            </p>
          ))}
        <ul className="skip-list" aria-label={t('bp.section.skip')}>
          {props.panes.map((p) => (
            <li key={p.key}>
              <label>
                <input
                  type="checkbox"
                  checked={f.skip.includes(p.key)}
                  onChange={(e) =>
                    set('skip', e.target.checked ? [...f.skip, p.key] : f.skip.filter((k) => k !== p.key))
                  }
                />
                <span>{lang === 'ja' ? (p.seedJa?.[0] ?? p.ja) : p.en}</span>
                <span className="platforms">
                  {p.platforms.map((pl) => (
                    <abbr key={pl} title={t(PLATFORM_KEYS[pl] ?? 'bp.platform.ios')}>
                      {t(PLATFORM_KEYS[pl] ?? 'bp.platform.ios')}
                    </abbr>
                  ))}
                </span>
                <span className="mono muted small">{p.key}</span>
              </label>
            </li>
          ))}
        </ul>
      </fieldset>
      <fieldset>
        <legend>{t('bp.section.enrollment')}</legend>
        <div className="radios" role="radiogroup" aria-label={t('bp.enrollment')}>
          {(['none', 'url', 'staged'] as const).map((m) => (
            <label key={m}>
              <input
                type="radio"
                name="enrollment"
                checked={f.enrollment === m}
                onChange={() => set('enrollment', m)}
              />
              {t(`bp.enrollment.${m}`)}
            </label>
          ))}
        </div>
        {f.enrollment === 'url' ? (
          <>
            {txt('url', 'enrollment.url', t('bp.url'), { type: 'url' })}
            <Field
              id="enrollment.anchorCertificates"
              label={t('bp.anchors')}
              issues={issues}
              hint={t('bp.anchorsHint')}
            >
              <textarea
                id="f-enrollment.anchorCertificates"
                rows={3}
                value={f.anchors}
                onChange={(e) => set('anchors', e.target.value)}
              />
            </Field>
          </>
        ) : null}
        {f.enrollment === 'staged' ? (
          <>
            <div className="radios">
              <label>
                <input
                  type="radio"
                  name="stagedSource"
                  checked={f.stagedSource === 'mdm'}
                  onChange={() => set('stagedSource', 'mdm')}
                />
                {t('bp.stagedFromMdm')}
              </label>
              <label>
                <input
                  type="radio"
                  name="stagedSource"
                  checked={f.stagedSource === 'file'}
                  onChange={() => set('stagedSource', 'file')}
                />
                {t('bp.stagedFromFile')}
              </label>
            </div>
            {f.stagedSource === 'file' ? txt('stagedPath', 'enrollment.source.path', t('bp.stagedPath')) : null}
          </>
        ) : null}
        {f.enrollment !== 'none' ? (
          <div className="nested">
            {txt('groupId', 'enrollment.group.groupId', t('bp.groupId'), {
              hint: t('bp.groupHint'),
              list: 'mdm-groups',
            })}
            <datalist id="mdm-groups">
              {groups.map((g) => (
                <option key={g.id} value={g.id}>
                  {typeof g.path === 'string' ? g.path : typeof g.name === 'string' ? g.name : g.id}
                </option>
              ))}
            </datalist>
            <Check
              id="enrollment.group.hideAuthScreen"
              label={t('bp.hideAuthScreen')}
              checked={f.hideAuthScreen}
              onChange={(v) => set('hideAuthScreen', v)}
              issues={issues}
            />
            {txt('groupUserId', 'enrollment.group.userId', t('bp.groupUserId'))}
            <Field
              id="enrollment.group.passwordRef"
              label={t('bp.groupPassword')}
              issues={issues}
              hint={f.groupPasswordRef !== '' ? t('bp.groupPasswordStored') : t('bp.groupPasswordHint')}
            >
              <input
                id="f-enrollment.group.passwordRef"
                type="password"
                autoComplete="new-password"
                value={f.groupPassword}
                aria-invalid={issues.some((i) => i.path === 'enrollment.group.passwordRef')}
                onChange={(e) => set('groupPassword', e.target.value)}
              />
            </Field>
            <p className="hint">{t('bp.passwordNote')}</p>
          </div>
        ) : null}
      </fieldset>
      <fieldset>
        <legend>{t('bp.section.personalize')}</legend>
        {txt('namingTemplate', 'naming.template', t('bp.namingTemplate'), { hint: t('bp.namingHint') })}
        {txt('namingStart', 'naming.start', t('bp.namingStart'), { type: 'number' })}
        {f.namingTemplate !== '' ? (
          <p className="preview" aria-live="polite">
            {t('bp.preview')}: <strong className="mono">{preview}</strong>
          </p>
        ) : null}
        {txt('language', 'locale.language', t('bp.language'))}
        {txt('region', 'locale.region', t('bp.region'))}
        {txt('timeZone', 'locale.timeZone', t('bp.timeZone'))}
        <Field id="profiles" label={t('bp.profiles')} issues={issues} hint={t('bp.profilesHint')}>
          <textarea id="f-profiles" rows={2} value={f.profiles} onChange={(e) => set('profiles', e.target.value)} />
        </Field>
      </fieldset>
      <fieldset>
        <legend>{t('bp.section.run')}</legend>
        <Check
          id="eraseIfNeeded"
          label={t('bp.eraseIfNeeded')}
          checked={f.eraseIfNeeded}
          onChange={(v) => set('eraseIfNeeded', v)}
          hint={t('bp.eraseHint')}
          issues={issues}
        />
        <Field id="mdmCheck" label={t('bp.mdmCheck')} issues={issues}>
          <select
            id="f-mdmCheck"
            value={f.mdmCheck}
            onChange={(e) => set('mdmCheck', e.target.value as Form['mdmCheck'])}
          >
            <option value="block">{t('bp.mdmCheck.block')}</option>
            <option value="warn">{t('bp.mdmCheck.warn')}</option>
            <option value="off">{t('bp.mdmCheck.off')}</option>
          </select>
        </Field>
        <Field id="finish" label={t('bp.finish')} issues={issues}>
          <select id="f-finish" value={f.finish} onChange={(e) => set('finish', e.target.value as Form['finish'])}>
            <option value="none">{t('bp.finish.none')}</option>
            <option value="restart">{t('bp.finish.restart')}</option>
            <option value="shutdown">{t('bp.finish.shutdown')}</option>
          </select>
        </Field>
      </fieldset>
      {warnings.length > 0 ? (
        <ul className="plain warnings">
          {warnings.map((w, k) => (
            <li key={k}>⚠ {w.message[lang]}</li>
          ))}
        </ul>
      ) : null}
      {error !== null ? <ErrorNote error={error} /> : null}
      <div className="form-actions">
        <span className={issues.length === 0 ? 'ok-text' : 'bad-text'} role="status" data-testid="validation">
          {issues.length === 0 ? `✓ ${t('bp.valid')}` : `✕ ${t('bp.issues', { n: issues.length })}`}
        </span>
        {saved ? <span className="ok-text">✓ {t('bp.saved')}</span> : null}
        {saved && credentials !== '' ? <span className="hint">{credentials}</span> : null}
        <button type="button" onClick={props.onCancel}>
          {t('common.close')}
        </button>
        <button type="submit" className="primary" disabled={issues.length > 0}>
          {t('common.save')}
        </button>
      </div>
    </form>
  );
}

export function BlueprintsScreen(): ReactNode {
  const { t, lang } = useI18n();
  const { client } = useApp();
  const [list, setList] = useState<Summary[]>([]);
  const [panes, setPanes] = useState<SkipPane[]>([]);
  const [identities, setIdentities] = useState<Identity[]>([]);
  const [editing, setEditing] = useState<{ form: Form; isNew: boolean; key: number } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const allKeys = useMemo(() => panes.map((p) => p.key), [panes]);

  const reload = useCallback((): void => {
    client.call('blueprints.list', {}).then(setList, setError);
  }, [client]);
  useEffect(() => {
    reload();
    client.call('skipPanes.list', {}).then((p) => setPanes([...p]), setError);
    client.call('identities.list', {}).then(setIdentities, setError);
  }, [client, reload]);

  const open = (name: string): void => {
    setError(null);
    client.call('blueprints.export', { name }).then((text) => {
      setEditing({ form: fromBlueprint(JSON.parse(text) as Json, allKeys), isNew: false, key: Date.now() });
    }, setError);
  };

  const importFile = async (file: File): Promise<void> => {
    setError(null);
    try {
      const j = JSON.parse(await file.text()) as Json;
      setEditing({ form: fromBlueprint(j, allKeys), isNew: true, key: Date.now() });
    } catch (e) {
      setError(e);
    }
  };

  return (
    <div className="screen blueprints">
      <div className="screen-head">
        <h2>{t('nav.blueprints')}</h2>
        <button
          type="button"
          className="primary"
          onClick={() => setEditing({ form: emptyForm(allKeys), isNew: true, key: Date.now() })}
        >
          {t('bp.new')}
        </button>
        <label className="file-button">
          {t('bp.importJson')}
          <input
            type="file"
            accept="application/json,.json"
            onChange={(e) => {
              const file = e.target.files?.[0];
              if (file !== undefined) void importFile(file);
              e.target.value = '';
            }}
          />
        </label>
      </div>
      {error !== null ? <ErrorNote error={error} /> : null}
      {list.length === 0 ? (
        <p className="empty">{t('bp.empty')}</p>
      ) : (
        <table className="list">
          <thead>
            <tr>
              <th scope="col">{t('bp.name')}</th>
              <th scope="col">{t('bp.identity')}</th>
              <th scope="col">{t('bp.supervise')}</th>
              <th scope="col">{t('bp.enrollment')}</th>
              <th scope="col">{t('common.updated')}</th>
              <th scope="col">{t('common.actions')}</th>
            </tr>
          </thead>
          <tbody>
            {list.map((b) => (
              <tr key={b.name}>
                <td>{b.name}</td>
                <td className="mono">{b.identity}</td>
                <td>{b.supervise ? t('common.yes') : t('common.no')}</td>
                <td>{t(`bp.enrollment.${b.enrollment}`)}</td>
                <td>{new Date(b.updatedAt).toLocaleString(lang)}</td>
                <td className="row-actions">
                  <button type="button" onClick={() => open(b.name)}>
                    {t('common.edit')}
                  </button>
                  <button
                    type="button"
                    onClick={() =>
                      client
                        .call('blueprints.export', { name: b.name })
                        .then((text) => download(`${b.name}.json`, text, 'application/json'), setError)
                    }
                  >
                    {t('bp.exportJson')}
                  </button>
                  <button
                    type="button"
                    className="danger"
                    onClick={() => {
                      if (window.confirm(t('bp.confirmDelete', { name: b.name })))
                        client.call('blueprints.delete', { name: b.name }).then(reload, setError);
                    }}
                  >
                    {t('common.delete')}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {editing !== null ? (
        <Editor
          key={editing.key}
          initial={editing.form}
          isNew={editing.isNew}
          panes={panes}
          identities={identities}
          onSaved={() => {
            reload();
            setEditing((e) => (e !== null ? { ...e, isNew: false } : e));
          }}
          onCancel={() => setEditing(null)}
        />
      ) : null}
    </div>
  );
}
