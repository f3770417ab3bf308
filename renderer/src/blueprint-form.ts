/**
 * The blueprint editor's form state and its mapping to and from the blueprint file's shape
 * (`src/kitting/blueprint.ts`, validated by the station), plus the naming preview. Pure, so unit
 * tests check it against the station's own validator.
 */

/** A blueprint document as JSON. */
export type Json = Record<string, unknown>;

/** The editor's state; {@link toBlueprint} turns it into the blueprint file's shape. */
export interface Form {
  name: string;
  description: string;
  identityId: string;
  displayName: string;
  phone: string;
  email: string;
  department: string;
  address: string;
  supervise: boolean;
  allowPairing: boolean;
  mandatoryEnrollment: boolean;
  mdmRemovable: boolean;
  shared: boolean;
  sharedBy: 'quota' | 'users';
  quotaMb: string;
  userCount: string;
  maxCachedUsers: string;
  autoAdvance: boolean;
  skip: string[];
  enrollment: 'none' | 'url' | 'staged';
  url: string;
  anchors: string;
  stagedSource: 'mdm' | 'file';
  stagedPath: string;
  groupId: string;
  hideAuthScreen: boolean;
  groupUserId: string;
  /** The stored password's reference (`secret:<id>`) the blueprint already has, kept on save. */
  groupPasswordRef: string;
  /** A new group password typed in the editor (never pre-filled); stored sealed on save. */
  groupPassword: string;
  namingTemplate: string;
  namingStart: string;
  language: string;
  region: string;
  timeZone: string;
  profiles: string;
  eraseIfNeeded: boolean;
  mdmCheck: 'block' | 'warn' | 'off';
  finish: 'none' | 'restart' | 'shutdown';
}

export function emptyForm(allKeys: string[]): Form {
  return {
    name: '',
    description: '',
    identityId: '',
    displayName: '',
    phone: '',
    email: '',
    department: '',
    address: '',
    supervise: true,
    allowPairing: true,
    mandatoryEnrollment: true,
    mdmRemovable: false,
    shared: false,
    sharedBy: 'quota',
    quotaMb: '',
    userCount: '',
    maxCachedUsers: '',
    autoAdvance: false,
    skip: allKeys,
    enrollment: 'none',
    url: '',
    anchors: '',
    stagedSource: 'mdm',
    stagedPath: '',
    groupId: '',
    hideAuthScreen: false,
    groupUserId: '',
    groupPasswordRef: '',
    groupPassword: '',
    namingTemplate: '',
    namingStart: '1',
    language: 'ja',
    region: 'ja_JP',
    timeZone: 'Asia/Tokyo',
    profiles: '',
    eraseIfNeeded: false,
    mdmCheck: 'block',
    finish: 'none',
  };
}

const num = (s: string): number | string => (/^\d+$/.test(s.trim()) ? Number(s.trim()) : s);
const lines = (s: string): string[] =>
  s
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');

/**
 * The secret id a new group password is stored under: the blueprint's existing `secret:<id>` when
 * it has one (the password is replaced), else `group-<groupId>` reduced to the id's characters.
 */
export function groupSecretId(f: Form): string {
  const existing = /^secret:(.+)$/.exec(f.groupPasswordRef.trim());
  if (existing?.[1] !== undefined) return existing[1];
  const slug = f.groupId
    .trim()
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '');
  return `group-${slug}`.slice(0, 128);
}

/** The group password reference the blueprint gets: the one a typed password will be stored under, else the kept one. */
export function groupPasswordRefOf(f: Form): string {
  return f.groupPassword !== '' ? `secret:${groupSecretId(f)}` : f.groupPasswordRef.trim();
}

/** The form once a typed password was stored as `ref`: the ref is kept, the password forgotten. */
export function withStoredPassword(f: Form, ref: string): Form {
  return { ...f, groupPasswordRef: ref, groupPassword: '' };
}

export function toBlueprint(f: Form, allKeys: readonly string[]): Json {
  const passwordRef = groupPasswordRefOf(f);
  const group =
    f.groupId.trim() !== ''
      ? {
          groupId: f.groupId,
          hideAuthScreen: f.hideAuthScreen,
          ...(f.groupUserId.trim() !== '' ? { userId: f.groupUserId } : {}),
          ...(passwordRef !== '' ? { passwordRef } : {}),
        }
      : undefined;
  const enrollment: Json =
    f.enrollment === 'url'
      ? { method: 'url', url: f.url, anchorCertificates: lines(f.anchors), ...(group ? { group } : {}) }
      : f.enrollment === 'staged'
        ? {
            method: 'staged',
            source: f.stagedSource === 'mdm' ? { kind: 'mdm' } : { kind: 'file', path: f.stagedPath },
            ...(group ? { group } : {}),
          }
        : { method: 'none' };
  const everything = allKeys.length > 0 && allKeys.every((k) => f.skip.includes(k));
  return {
    version: 1,
    name: f.name,
    ...(f.description.trim() !== '' ? { description: f.description } : {}),
    organization: {
      identityId: f.identityId,
      displayName: f.displayName,
      phone: f.phone,
      email: f.email,
      department: f.department,
      address: f.address,
    },
    supervise: f.supervise,
    allowPairing: f.allowPairing,
    mandatoryEnrollment: f.mandatoryEnrollment,
    mdmRemovable: f.mdmRemovable,
    sharedIpad: f.shared
      ? {
          mode: 'on',
          ...(f.sharedBy === 'quota' && f.quotaMb.trim() !== '' ? { quotaMb: num(f.quotaMb) } : {}),
          ...(f.sharedBy === 'users' && f.userCount.trim() !== '' ? { userCount: num(f.userCount) } : {}),
          ...(f.maxCachedUsers.trim() !== '' ? { maxCachedUsers: num(f.maxCachedUsers) } : {}),
        }
      : { mode: 'off' },
    autoAdvance: f.autoAdvance,
    skipSetup: everything ? 'all' : f.skip,
    enrollment,
    ...(f.namingTemplate.trim() !== '' ? { naming: { template: f.namingTemplate, start: num(f.namingStart) } } : {}),
    locale: { language: f.language, region: f.region, timeZone: f.timeZone },
    profiles: lines(f.profiles).map((path) => ({ kind: 'file', path })),
    eraseIfNeeded: f.eraseIfNeeded,
    mdmCheck: f.mdmCheck,
    finish: f.finish,
  };
}

const str = (v: unknown, d = ''): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : d);
const obj = (v: unknown): Json => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {});

export function fromBlueprint(j: Json, allKeys: string[]): Form {
  const f = emptyForm(allKeys);
  const org = obj(j.organization);
  const shared = obj(j.sharedIpad);
  const en = obj(j.enrollment);
  const group = obj(en.group);
  const naming = obj(j.naming);
  const locale = obj(j.locale);
  const source = obj(en.source);
  return {
    ...f,
    name: str(j.name),
    description: str(j.description),
    identityId: str(org.identityId),
    displayName: str(org.displayName),
    phone: str(org.phone),
    email: str(org.email),
    department: str(org.department),
    address: str(org.address),
    supervise: j.supervise !== false,
    allowPairing: j.allowPairing !== false,
    mandatoryEnrollment: j.mandatoryEnrollment !== false,
    mdmRemovable: j.mdmRemovable === true,
    shared: shared.mode === 'on',
    sharedBy: shared.userCount !== undefined ? 'users' : 'quota',
    quotaMb: str(shared.quotaMb),
    userCount: str(shared.userCount),
    maxCachedUsers: str(shared.maxCachedUsers),
    autoAdvance: j.autoAdvance === true,
    skip:
      j.skipSetup === 'all' || j.skipSetup === undefined
        ? allKeys
        : Array.isArray(j.skipSetup)
          ? j.skipSetup.map((k) => str(k))
          : [],
    enrollment: en.method === 'url' || en.method === 'staged' ? en.method : 'none',
    url: str(en.url),
    anchors: Array.isArray(en.anchorCertificates) ? en.anchorCertificates.map((a) => str(a)).join('\n') : '',
    stagedSource: source.kind === 'file' ? 'file' : 'mdm',
    stagedPath: str(source.path),
    groupId: str(group.groupId),
    hideAuthScreen: group.hideAuthScreen === true,
    groupUserId: str(group.userId),
    groupPasswordRef: str(group.passwordRef),
    groupPassword: '',
    namingTemplate: str(naming.template),
    namingStart: str(naming.start, '1'),
    language: str(locale.language, 'ja'),
    region: str(locale.region, 'ja_JP'),
    timeZone: str(locale.timeZone, 'Asia/Tokyo'),
    profiles: Array.isArray(j.profiles) ? j.profiles.map((p) => str(obj(p).path ?? obj(p).id)).join('\n') : '',
    eraseIfNeeded: j.eraseIfNeeded === true,
    mdmCheck: j.mdmCheck === 'warn' || j.mdmCheck === 'off' ? j.mdmCheck : 'block',
    finish: j.finish === 'restart' || j.finish === 'shutdown' ? j.finish : 'none',
  };
}

/** The naming template with sample facts (what the station's renderName does, for the preview). */
export function previewName(
  template: string,
  n: number,
  facts: { serial: string; model: string; planName: string; assetTag: string },
): string {
  return template.replace(/\{\{|\}\}|\{([^{}]*)\}/g, (m, body: string | undefined) => {
    if (m === '{{') return '{';
    if (m === '}}') return '}';
    switch (body) {
      case 'serial':
        return facts.serial;
      case 'model':
        return facts.model;
      case 'n':
        return String(n);
      case 'plan.name':
        return facts.planName;
      case 'plan.assetTag':
        return facts.assetTag;
      default: {
        const w = /^n:(\d+)$/.exec(body ?? '');
        return w !== null ? String(n).padStart(Number(w[1]), '0') : m;
      }
    }
  });
}
