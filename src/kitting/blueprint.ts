/**
 * Blueprints: the recipe a technician applies to a cart of devices. The form mirrors mobiconnect's
 * DEP profile (seed `mobiconnect-hybrid-mdm-dep.ja.txt`, domain.md "Blueprints"), so every field has
 * the seed's Japanese name beside it in {@link FIELD_LABELS}.
 *
 * A blueprint file is JSON, `version: 1`. {@link validateBlueprint} reports every problem as a
 * field path (`organization.displayName`, `skipSetup.3`) with a code and a message in Japanese and
 * English; {@link parseBlueprint} returns the typed blueprint or throws `blueprint/invalid` with the
 * first problem. Secrets never live in a blueprint: the group's enrollment password is a reference
 * (`secret:ID`) into the vault, and {@link exportBlueprint} strips anything that looks like a secret.
 *
 * Cross-field rules (checked on the raw input, so they are reported together with field errors):
 * - Shared iPad needs supervision (seed: Shared iPad is an Apple School Manager, supervised feature);
 * - Shared iPad takes exactly one of quota-per-user / user count (seed "共有iPad構成の詳細");
 * - "MDM登録時に認証画面を表示しない" needs the group's user ID and password (seed, step 7);
 * - a profile fetched from the MDM needs the group and its credentials (domain.md, enrollment);
 * - `autoAdvance` is only honoured by supervised Apple TVs: a warning, not an error.
 */
import { X509Certificate } from 'node:crypto';
import { z } from 'zod';
import { KitError } from '../errors.ts';
import type { Lang } from '../i18n/messages.ts';
import { inspectTemplate, type TemplateProblem } from './naming.ts';
import { isSkipKey, normalizeSkipKey } from './skip-panes.ts';

/** Longest blueprint name (seed: プロファイル名, at most 128 characters). */
export const MAX_NAME_LENGTH = 128;

/** A message in both languages. */
export type Bilingual = Readonly<Record<Lang, string>>;

/** One problem found in a blueprint. */
export interface BlueprintIssue {
  /** Dotted field path (`organization.email`, `skipSetup.2`); `''` for the whole document. */
  readonly path: string;
  /** Machine-readable reason, e.g. `required`, `too-long`, `unknown-skip-key`. */
  readonly code: IssueCode;
  readonly message: Bilingual;
}

/** Result of {@link validateBlueprint}. `warnings` never make a blueprint invalid. */
export interface BlueprintValidation {
  readonly ok: boolean;
  readonly issues: readonly BlueprintIssue[];
  readonly warnings: readonly BlueprintIssue[];
}

/** Options for {@link validateBlueprint}. */
export interface ValidateOptions {
  /** Whether an identity with this id exists in the vault; without it the id is only syntax-checked. */
  readonly identityExists?: (id: string) => boolean;
}

// ---------------------------------------------------------------------------------------------
// Field formats

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const SECRET_REF_RE = /^secret:[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const PHONE_RE = /^\+?[0-9()\- ]{1,30}$/;
/** BCP 47-ish language as iOS takes it: `ja`, `en`, `en-GB`, `zh-Hans`. */
const LANGUAGE_RE = /^[a-z]{2,3}(-[A-Z][a-z]{3})?(-[A-Z]{2})?$/;
/** Apple locale identifier: `ja_JP`, `en_US`, `zh_Hans_CN`, `en`. */
const LOCALE_RE = /^[a-z]{2,3}(_[A-Z][a-z]{3})?(_([A-Z]{2}|[0-9]{3}))?$/;

/** Answers of {@link isTimeZone} (building an Intl formatter costs ~0.2 ms; every job parses its blueprint). */
const timeZones = new Map<string, boolean>();

/** Whether `tz` is an IANA time-zone name this runtime knows (`Asia/Tokyo`, `UTC`). */
export function isTimeZone(tz: string): boolean {
  if (!/^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/.test(tz)) return false;
  const known = timeZones.get(tz);
  if (known !== undefined) return known;
  let ok: boolean;
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    ok = true;
  } catch {
    ok = false;
  }
  if (timeZones.size < 1000) timeZones.set(tz, ok);
  return ok;
}

/** Whether `url` is an acceptable enrollment URL: https, or http://127.0.0.1 for development. */
export function isEnrollmentUrl(url: string): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  if (u.username !== '' || u.password !== '') return false;
  if (u.protocol === 'https:') return u.hostname !== '';
  return u.protocol === 'http:' && u.hostname === '127.0.0.1';
}

/**
 * The DER bytes of a certificate written as PEM or as base64 DER.
 * @throws KitError `blueprint/invalid` when the text is not a certificate.
 */
export function certificateDer(text: string): Buffer {
  const pem = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(text);
  const b64 = (pem?.[1] ?? text).replace(/\s+/g, '');
  if (b64 === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) {
    throw new KitError('blueprint/invalid', 'certificate is neither PEM nor base64 DER');
  }
  const der = Buffer.from(b64, 'base64');
  try {
    return Buffer.from(new X509Certificate(der).raw);
  } catch (err) {
    throw new KitError('blueprint/invalid', 'certificate bytes do not parse as X.509', { cause: err });
  }
}

function isCertificate(text: string): boolean {
  try {
    certificateDer(text);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Schema

const str = (max: number) => z.string().trim().min(1).max(max);
const optStr = (max: number) =>
  z.preprocess(
    (v) => (typeof v === 'string' && v.trim() === '' ? undefined : v),
    z.string().trim().max(max).optional(),
  );

/** A configuration profile the blueprint refers to: a file, or a profile stored in the station. */
export const profileRefSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('file'), path: str(4096) }),
  z.strictObject({ kind: z.literal('stored'), id: z.string().regex(ID_RE) }),
]);

const groupSchema = z.strictObject({
  groupId: str(256),
  hideAuthScreen: z.boolean().default(false),
  userId: optStr(256),
  /** Vault reference of the group's enrollment password (`secret:ID`), never the password. */
  passwordRef: z.string().regex(SECRET_REF_RE).optional(),
});

const sharedIpadSchema = z.discriminatedUnion('mode', [
  z.strictObject({ mode: z.literal('off') }),
  z.strictObject({
    mode: z.literal('on'),
    /** Storage quota per user in MB (seed: 1ユーザ当たりの割り当てサイズ). */
    quotaMb: z.int().min(1).max(16_000_000).optional(),
    /** Number of users (seed: ユーザ数). */
    userCount: z.int().min(1).max(999).optional(),
    /** Maximum users cached on the device (seed: 共有iPadのキャッシュユーザー数上限). */
    maxCachedUsers: z.int().min(1).max(999).optional(),
  }),
]);

const enrollmentSchema = z.discriminatedUnion('method', [
  z.strictObject({ method: z.literal('none') }),
  z.strictObject({
    method: z.literal('url'),
    url: z
      .string()
      .trim()
      .refine(isEnrollmentUrl, { params: { code: 'invalid-url' } }),
    anchorCertificates: z
      .array(z.string().refine(isCertificate, { params: { code: 'invalid-certificate' } }))
      .default([]),
    wifiProfile: profileRefSchema.optional(),
    group: groupSchema.optional(),
  }),
  z.strictObject({
    method: z.literal('staged'),
    source: z.discriminatedUnion('kind', [
      z.strictObject({ kind: z.literal('file'), path: str(4096) }),
      z.strictObject({ kind: z.literal('mdm') }),
    ]),
    group: groupSchema.optional(),
  }),
]);

const skipSetupSchema = z
  .union([z.literal('all'), z.array(z.string().refine(isSkipKey, { params: { code: 'unknown-skip-key' } }))])
  .transform((v) => (v === 'all' ? ('all' as const) : [...new Set(v.map((k) => normalizeSkipKey(k) ?? k))]));

const templateSchema = z.string().superRefine((t, ctx) => {
  const r = inspectTemplate(t);
  if ('problem' in r) ctx.addIssue({ code: 'custom', params: { code: 'invalid-template', problem: r.problem } });
});

/** The zod schema of a blueprint file (version 1). Cross-field rules live in {@link validateBlueprint}. */
export const blueprintSchema = z.strictObject({
  version: z.literal(1),
  id: z.string().regex(ID_RE).optional(),
  name: str(MAX_NAME_LENGTH),
  description: optStr(1024),
  organization: z.strictObject({
    /** Id of the supervision identity in the vault. */
    identityId: z.string().trim().regex(ID_RE),
    displayName: str(128),
    phone: optStr(64).pipe(z.string().regex(PHONE_RE).optional()),
    email: optStr(254).pipe(z.email().optional()),
    department: optStr(128),
    address: optStr(512),
  }),
  supervise: z.boolean().default(true),
  /** Default true, as Apple Configurator, go-ios and pymobiledevice3 do; false deletes existing pairings. */
  allowPairing: z.boolean().default(true),
  mandatoryEnrollment: z.boolean().default(true),
  mdmRemovable: z.boolean().default(false),
  sharedIpad: sharedIpadSchema.default({ mode: 'off' }),
  autoAdvance: z.boolean().default(false),
  skipSetup: skipSetupSchema.default('all'),
  enrollment: enrollmentSchema.default({ method: 'none' }),
  naming: z
    .strictObject({
      template: templateSchema,
      start: z.int().min(0).max(999_999_999).default(1),
    })
    .optional(),
  locale: z
    .strictObject({
      language: z.string().regex(LANGUAGE_RE),
      region: z.string().regex(LOCALE_RE),
      timeZone: z.string().refine(isTimeZone, { params: { code: 'invalid-time-zone' } }),
    })
    .default({ language: 'ja', region: 'ja_JP', timeZone: 'Asia/Tokyo' }),
  profiles: z.array(profileRefSchema).default([]),
  eraseIfNeeded: z.boolean().default(false),
  mdmCheck: z.enum(['block', 'warn', 'off']).default('block'),
  finish: z.enum(['none', 'restart', 'shutdown']).default('none'),
});

/** A valid blueprint (defaults filled in, skip keys normalised). */
export type Blueprint = z.output<typeof blueprintSchema>;
/** A blueprint as written in a file (optional fields may be missing). */
export type BlueprintInput = z.input<typeof blueprintSchema>;
/** A profile reference. */
export type ProfileRef = z.output<typeof profileRefSchema>;
/** The MDM group of an enrollment. */
export type EnrollmentGroup = z.output<typeof groupSchema>;

// ---------------------------------------------------------------------------------------------
// Labels and messages

/** Field names on screen, in the seed's wording where the DEP-profile form has the field. */
export const FIELD_LABELS: Readonly<Record<string, Bilingual>> = {
  '': { ja: 'ブループリント', en: 'Blueprint' },
  version: { ja: '形式のバージョン（version）', en: 'Format version (version)' },
  id: { ja: 'ID', en: 'ID' },
  name: { ja: 'ブループリント名', en: 'Blueprint name' },
  description: { ja: '説明', en: 'Description' },
  organization: { ja: '組織', en: 'Organization' },
  'organization.identityId': { ja: '監視用ID', en: 'Supervision identity' },
  'organization.displayName': { ja: '組織名称', en: 'Organization name' },
  'organization.phone': { ja: 'サポート用電話番号', en: 'Support phone number' },
  'organization.email': { ja: 'サポート用メールアドレス', en: 'Support email address' },
  'organization.department': { ja: '部署', en: 'Department' },
  'organization.address': { ja: '住所', en: 'Address' },
  supervise: { ja: '監視モードに設定', en: 'Supervise' },
  allowPairing: { ja: 'Macとの接続を許可', en: 'Allow pairing with a Mac or PC' },
  mandatoryEnrollment: { ja: 'MDM登録のスキップ不可', en: 'MDM enrollment cannot be skipped' },
  mdmRemovable: { ja: 'MDMプロファイル削除可能', en: 'MDM profile removable' },
  sharedIpad: { ja: '共有iPadとして構成', en: 'Shared iPad' },
  'sharedIpad.mode': { ja: '共有iPadとして構成', en: 'Shared iPad' },
  'sharedIpad.quotaMb': { ja: '1ユーザ当たりの割り当てサイズ（MB）', en: 'Storage quota per user (MB)' },
  'sharedIpad.userCount': { ja: 'ユーザ数', en: 'Number of users' },
  'sharedIpad.maxCachedUsers': { ja: '共有iPadのキャッシュユーザー数上限', en: 'Maximum cached users' },
  autoAdvance: { ja: '設定アシスタントで自動的に進む', en: 'Auto-advance Setup Assistant' },
  skipSetup: { ja: 'デバイス設定アシスタントでスキップさせる設定項目', en: 'Setup Assistant panes to skip' },
  enrollment: { ja: 'MDM登録の方法', en: 'Enrollment method' },
  'enrollment.method': { ja: 'MDM登録の方法', en: 'Enrollment method' },
  'enrollment.url': { ja: '登録URL', en: 'Enrollment URL' },
  'enrollment.anchorCertificates': { ja: 'アンカー証明書', en: 'Anchor certificates' },
  'enrollment.wifiProfile': { ja: 'Wi-Fiプロファイル', en: 'Wi-Fi profile' },
  'enrollment.source': { ja: '登録プロファイルの入手元', en: 'Enrollment profile source' },
  'enrollment.source.path': { ja: '登録プロファイルのファイル', en: 'Enrollment profile file' },
  'enrollment.group': { ja: '端末登録先グループ', en: 'Enrollment group' },
  'enrollment.group.groupId': { ja: '端末登録先グループ', en: 'Enrollment group' },
  'enrollment.group.hideAuthScreen': {
    ja: 'MDM登録時に認証画面を表示しない',
    en: 'Do not show the authentication screen during MDM enrollment',
  },
  'enrollment.group.userId': { ja: '登録先グループの認証用ユーザーID', en: 'Group enrollment user ID' },
  'enrollment.group.passwordRef': { ja: '登録先グループの認証用パスワード', en: 'Group enrollment password' },
  naming: { ja: '端末名', en: 'Device name' },
  'naming.template': { ja: '端末名のテンプレート', en: 'Device name template' },
  'naming.start': { ja: '連番の開始番号', en: 'Counter start' },
  locale: { ja: '言語と地域', en: 'Language and region' },
  'locale.language': { ja: '言語', en: 'Language' },
  'locale.region': { ja: '地域（ロケール）', en: 'Region (locale)' },
  'locale.timeZone': { ja: 'タイムゾーン', en: 'Time zone' },
  profiles: { ja: '追加の構成プロファイル', en: 'Extra configuration profiles' },
  eraseIfNeeded: { ja: '必要に応じて消去', en: 'Erase if needed' },
  mdmCheck: { ja: 'MDM登録済み端末の扱い', en: 'Devices already registered in the MDM' },
  finish: { ja: '完了後の動作', en: 'When finished' },
};

/** Every issue code a blueprint validation can report. */
export type IssueCode =
  | 'required'
  | 'wrong-type'
  | 'too-long'
  | 'too-small'
  | 'too-big'
  | 'not-integer'
  | 'invalid-email'
  | 'invalid-phone'
  | 'invalid-url'
  | 'invalid-certificate'
  | 'invalid-id'
  | 'invalid-secret-ref'
  | 'secret-inline'
  | 'unknown-identity'
  | 'unknown-skip-key'
  | 'invalid-template'
  | 'invalid-time-zone'
  | 'invalid-language'
  | 'invalid-locale'
  | 'invalid-choice'
  | 'invalid-version'
  | 'unknown-field'
  | 'shared-ipad-needs-supervision'
  | 'shared-ipad-one-of'
  | 'credentials-required'
  | 'group-required'
  | 'apple-tv-only'
  | 'invalid';

/** The label of a path: its own, else the nearest labelled parent (array indices ignored). */
export function labelFor(path: string): Bilingual {
  const segs = path.split('.').filter((s) => s !== '' && !/^\d+$/.test(s));
  for (let n = segs.length; n >= 0; n--) {
    const label = FIELD_LABELS[segs.slice(0, n).join('.')];
    if (label !== undefined) return label;
  }
  return { ja: path, en: path };
}

const TYPE_WORDS: Readonly<Record<string, Bilingual>> = {
  string: { ja: '文字列', en: 'text' },
  boolean: { ja: 'true または false', en: 'true or false' },
  number: { ja: '数値', en: 'a number' },
  int: { ja: '整数', en: 'a whole number' },
  array: { ja: '一覧（配列）', en: 'a list (array)' },
  object: { ja: '項目のまとまり（オブジェクト）', en: 'an object' },
};

const TEMPLATE_REASON: Readonly<Record<TemplateProblem['reason'], Bilingual>> = {
  empty: { ja: 'テンプレートが空です', en: 'the template is empty' },
  'unknown-placeholder': { ja: '使えない差し込み項目があります', en: 'it uses an unknown placeholder' },
  'unclosed-brace': { ja: '「{」が閉じていません', en: 'a "{" is not closed' },
  'stray-brace': {
    ja: '対応する「{」のない「}」があります（文字としての } は }} と書きます）',
    en: 'a "}" has no matching "{" (write }} for a literal brace)',
  },
  'bad-width': { ja: '連番の桁数は1〜9で指定してください', en: 'the counter width must be 1 to 9' },
  'control-character': {
    ja: '改行などの制御文字は使えません',
    en: 'control characters such as line breaks are not allowed',
  },
};

/** Parameters a message may use. */
export interface MessageParams {
  readonly expected?: string;
  readonly max?: number | string;
  readonly min?: number | string;
  readonly key?: string;
  readonly value?: string;
  readonly options?: string;
  readonly index?: number;
  readonly problem?: TemplateProblem;
}

/** The ja/en message of an issue at `path` (exported for the UI, which shows the same words). */
export function issueMessage(code: IssueCode, path: string, p: MessageParams = {}): Bilingual {
  const l = labelFor(path);
  const ja = `「${l.ja}」`;
  const en = l.en;
  switch (code) {
    case 'required':
      return { ja: `${ja}を入力してください。`, en: `${en} is required.` };
    case 'wrong-type': {
      const t = TYPE_WORDS[p.expected ?? ''] ?? { ja: '正しい形式', en: 'of the right type' };
      return { ja: `${ja}は${t.ja}で指定してください。`, en: `${en} must be ${t.en}.` };
    }
    case 'too-long':
      return {
        ja: `${ja}は${String(p.max)}文字以内で入力してください。`,
        en: `${en} must be at most ${String(p.max)} characters.`,
      };
    case 'too-small':
      return { ja: `${ja}は${String(p.min)}以上にしてください。`, en: `${en} must be at least ${String(p.min)}.` };
    case 'too-big':
      return { ja: `${ja}は${String(p.max)}以下にしてください。`, en: `${en} must be at most ${String(p.max)}.` };
    case 'not-integer':
      return { ja: `${ja}は整数で入力してください。`, en: `${en} must be a whole number.` };
    case 'invalid-email':
      return {
        ja: `${ja}の形式が正しくありません（例: support@example.jp）。`,
        en: `${en} is not a valid email address (e.g. support@example.com).`,
      };
    case 'invalid-phone':
      return {
        ja: `${ja}には数字と + - ( ) と空白だけを使ってください。`,
        en: `${en} may contain only digits, +, -, ( ) and spaces.`,
      };
    case 'invalid-url':
      return {
        ja: `${ja}は https:// で始まるURLにしてください（開発用に限り http://127.0.0.1 も使えます）。`,
        en: `${en} must be an https:// URL (http://127.0.0.1 is allowed for development).`,
      };
    case 'invalid-certificate':
      return {
        ja: `${ja}の${String((p.index ?? 0) + 1)}番目を証明書として読めません（PEM、またはDERをbase64にしたものを指定してください）。`,
        en: `${en} #${String((p.index ?? 0) + 1)} is not a certificate (give PEM, or DER in base64).`,
      };
    case 'invalid-id':
      return {
        ja: `${ja}には英数字と . _ - だけを使ってください（64文字以内）。`,
        en: `${en} may contain only letters, digits, ".", "_" and "-" (64 at most).`,
      };
    case 'invalid-secret-ref':
      return {
        ja: `${ja}には秘密情報の参照（secret:ID の形式）を指定してください。`,
        en: `${en} must be a secret reference (secret:ID).`,
      };
    case 'secret-inline':
      return {
        ja: 'パスワードをブループリントに直接書くことはできません。秘密情報として保存し、その参照（secret:ID）を「登録先グループの認証用パスワード」に指定してください。',
        en: 'A password cannot be written into a blueprint. Store it as a secret and put its reference (secret:ID) in "Group enrollment password".',
      };
    case 'unknown-identity':
      return { ja: `${ja}「${p.value ?? ''}」が見つかりません。`, en: `${en} "${p.value ?? ''}" does not exist.` };
    case 'unknown-skip-key':
      return {
        ja: `${ja}に不明な項目「${p.value ?? ''}」があります（"all" または一覧にあるキーを指定してください）。`,
        en: `${en} contains the unknown key "${p.value ?? ''}" (use "all" or keys from the catalogue).`,
      };
    case 'invalid-template': {
      const reason = p.problem !== undefined ? TEMPLATE_REASON[p.problem.reason] : TEMPLATE_REASON.empty;
      const what = p.problem?.placeholder !== undefined ? `（${p.problem.placeholder}）` : '';
      const whatEn = p.problem?.placeholder !== undefined ? ` ${p.problem.placeholder}` : '';
      return {
        ja: `${ja}：${reason.ja}${what}。使える差し込み項目は {serial} {model} {n} {n:3} {plan.name} {plan.assetTag} です。`,
        en: `${en}: ${reason.en}${whatEn}. Available: {serial} {model} {n} {n:3} {plan.name} {plan.assetTag}.`,
      };
    }
    case 'invalid-time-zone':
      return {
        ja: `${ja}「${p.value ?? ''}」はタイムゾーン名として認識できません（例: Asia/Tokyo）。`,
        en: `${en} "${p.value ?? ''}" is not a known time zone (e.g. Asia/Tokyo).`,
      };
    case 'invalid-language':
      return {
        ja: `${ja}は言語コードで指定してください（例: ja、en）。`,
        en: `${en} must be a language code (e.g. ja, en).`,
      };
    case 'invalid-locale':
      return { ja: `${ja}はロケールで指定してください（例: ja_JP）。`, en: `${en} must be a locale (e.g. ja_JP).` };
    case 'invalid-choice':
      return {
        ja: `${ja}は次のいずれかにしてください: ${p.options ?? ''}。`,
        en: `${en} must be one of: ${p.options ?? ''}.`,
      };
    case 'invalid-version':
      return {
        ja: 'このファイルの形式のバージョン（version）は 1 にしてください。',
        en: 'The format version (version) must be 1.',
      };
    case 'unknown-field':
      return {
        ja: `「${p.key ?? ''}」という項目はありません（綴りを確認してください）。`,
        en: `There is no field "${p.key ?? ''}" (check the spelling).`,
      };
    case 'shared-ipad-needs-supervision':
      return {
        ja: '共有iPadとして構成するには「監視モードに設定」をオンにしてください。',
        en: 'A Shared iPad must be supervised: turn on "Supervise".',
      };
    case 'shared-ipad-one-of':
      return {
        ja: '共有iPad構成の詳細は「1ユーザ当たりの割り当てサイズ」と「ユーザ数」のどちらか一方だけを指定してください。',
        en: 'For a Shared iPad give exactly one of "Storage quota per user" and "Number of users".',
      };
    case 'credentials-required':
      return {
        ja: `「MDM登録時に認証画面を表示しない」をオンにする場合、${ja}は必須です。`,
        en: `${en} is required when "Do not show the authentication screen during MDM enrollment" is on.`,
      };
    case 'group-required':
      return {
        ja: 'MDMから登録プロファイルを取得するには、端末登録先グループと認証用ユーザーID・パスワードが必要です。',
        en: 'Fetching the enrollment profile from the MDM needs the enrollment group with its user ID and password.',
      };
    case 'apple-tv-only':
      return {
        ja: '「設定アシスタントで自動的に進む」は監視対象のApple TVでのみ有効です。iPadでは無視されます。',
        en: '"Auto-advance Setup Assistant" only works on supervised Apple TVs; iPads ignore it.',
      };
    case 'invalid':
      return { ja: `${ja}の値が正しくありません。`, en: `${en} has an invalid value.` };
  }
}

// ---------------------------------------------------------------------------------------------
// Validation

type Path = readonly (string | number)[];

function valueAt(root: unknown, path: Path): unknown {
  let v: unknown = root;
  for (const seg of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

function dotted(path: Path): string {
  return path.map(String).join('.');
}

function issue(path: Path | string, code: IssueCode, params: MessageParams = {}): BlueprintIssue {
  const p = typeof path === 'string' ? path : dotted(path);
  return { path: p, code, message: issueMessage(code, p, params) };
}

/** Zod's issue, narrowed to the fields we read. */
interface ZodIssueLike {
  readonly code: string;
  readonly path: readonly PropertyKey[];
  readonly expected?: string;
  readonly format?: string;
  readonly origin?: string;
  readonly maximum?: number | bigint;
  readonly minimum?: number | bigint;
  readonly keys?: readonly string[];
  readonly values?: readonly unknown[];
  readonly options?: readonly unknown[];
  readonly params?: Readonly<Record<string, unknown>>;
  readonly errors?: readonly (readonly ZodIssueLike[])[];
}

function fromZod(raw: unknown, zi: ZodIssueLike): BlueprintIssue[] {
  const path: Path = zi.path.map((s) => (typeof s === 'number' ? s : String(s)));
  const last = path[path.length - 1];
  const value = valueAt(raw, path);
  const top = path.length === 0 ? '' : String(path[0]);
  switch (zi.code) {
    case 'unrecognized_keys':
      return (zi.keys ?? []).map((key) =>
        key === 'password' && top === 'enrollment'
          ? issue([...path, key], 'secret-inline')
          : issue([...path, key], 'unknown-field', { key }),
      );
    case 'invalid_type':
      if (value === undefined) return [issue(path, 'required')];
      if (zi.expected === 'int' && typeof value === 'number') return [issue(path, 'not-integer')];
      return [issue(path, 'wrong-type', { expected: zi.expected ?? '' })];
    case 'too_small':
      if (zi.origin === 'string') return [issue(path, 'required')];
      return [issue(path, 'too-small', { min: Number(zi.minimum) })];
    case 'too_big':
      if (zi.origin === 'string') return [issue(path, 'too-long', { max: Number(zi.maximum) })];
      return [issue(path, 'too-big', { max: Number(zi.maximum) })];
    case 'invalid_format': {
      if (zi.format === 'email') return [issue(path, 'invalid-email')];
      if (last === 'phone') return [issue(path, 'invalid-phone')];
      if (last === 'passwordRef') return [issue(path, 'invalid-secret-ref')];
      if (last === 'language') return [issue(path, 'invalid-language')];
      if (last === 'region') return [issue(path, 'invalid-locale')];
      if (last === 'identityId' || last === 'id') return [issue(path, 'invalid-id')];
      return [issue(path, 'invalid')];
    }
    case 'invalid_value':
      if (path.length === 1 && last === 'version') return [issue(path, 'invalid-version')];
      return [issue(path, 'invalid-choice', { options: (zi.values ?? []).map((v) => String(v)).join(', ') })];
    case 'invalid_union': {
      if (zi.options !== undefined && (zi.errors ?? []).length === 0) {
        if (value === undefined) return [issue(path, 'required')];
        return [issue(path, 'invalid-choice', { options: zi.options.map((v) => String(v)).join(', ') })];
      }
      // skipSetup: "all" or a list — report the list's problems when a list was given.
      if (top === 'skipSetup') {
        if (Array.isArray(value)) {
          const inner = (zi.errors ?? []).find((branch) => branch.every((e) => e.path.length > 0)) ?? [];
          return inner.flatMap((e) => fromZod(raw, { ...e, path: [...zi.path, ...e.path] }));
        }
        return [issue(path, 'invalid-choice', { options: '"all", [KEY, …]' })];
      }
      return [issue(path, 'invalid')];
    }
    case 'custom': {
      const code = zi.params?.code;
      if (code === 'unknown-skip-key') return [issue(path, 'unknown-skip-key', { value: String(value) })];
      if (code === 'invalid-template') {
        return [issue(path, 'invalid-template', { problem: zi.params?.problem as TemplateProblem })];
      }
      if (code === 'invalid-time-zone') return [issue(path, 'invalid-time-zone', { value: String(value) })];
      if (code === 'invalid-url') return [issue(path, 'invalid-url')];
      if (code === 'invalid-certificate') return [issue(path, 'invalid-certificate', { index: Number(last) })];
      return [issue(path, 'invalid')];
    }
    default:
      return [issue(path, 'invalid')];
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Cross-field rules, read defensively from the raw input so they show next to field errors. */
function crossChecks(raw: unknown, options: ValidateOptions): { issues: BlueprintIssue[]; warnings: BlueprintIssue[] } {
  const issues: BlueprintIssue[] = [];
  const warnings: BlueprintIssue[] = [];
  if (!isRecord(raw)) return { issues, warnings };

  const shared = raw.sharedIpad;
  if (isRecord(shared) && shared.mode === 'on') {
    if (raw.supervise === false) issues.push(issue('sharedIpad', 'shared-ipad-needs-supervision'));
    const hasQuota = shared.quotaMb !== undefined;
    const hasUsers = shared.userCount !== undefined;
    if (hasQuota === hasUsers) issues.push(issue('sharedIpad', 'shared-ipad-one-of'));
  }

  const enrollment = raw.enrollment;
  if (isRecord(enrollment)) {
    const group = enrollment.group;
    const blank = (v: unknown): boolean => v === undefined || (typeof v === 'string' && v.trim() === '');
    if (isRecord(group)) {
      if (group.hideAuthScreen === true) {
        if (blank(group.userId)) issues.push(issue('enrollment.group.userId', 'credentials-required'));
        if (blank(group.passwordRef)) issues.push(issue('enrollment.group.passwordRef', 'credentials-required'));
      }
    }
    const source = enrollment.source;
    if (enrollment.method === 'staged' && isRecord(source) && source.kind === 'mdm') {
      if (!isRecord(group) || blank(group.userId) || blank(group.passwordRef)) {
        issues.push(issue('enrollment.group', 'group-required'));
      }
    }
  }

  const org = raw.organization;
  if (options.identityExists !== undefined && isRecord(org) && typeof org.identityId === 'string') {
    const id = org.identityId.trim();
    if (ID_RE.test(id) && !options.identityExists(id)) {
      issues.push(issue('organization.identityId', 'unknown-identity', { value: id }));
    }
  }

  if (raw.autoAdvance === true) warnings.push(issue('autoAdvance', 'apple-tv-only'));
  return { issues, warnings };
}

function runValidation(raw: unknown, options: ValidateOptions): BlueprintValidation & { data?: Blueprint } {
  const parsed = blueprintSchema.safeParse(raw);
  const issues: BlueprintIssue[] = [];
  if (!parsed.success) {
    for (const zi of parsed.error.issues) issues.push(...fromZod(raw, zi as unknown as ZodIssueLike));
  }
  const cross = crossChecks(raw, options);
  const seen = new Set(issues.map((i) => `${i.path}\u0000${i.code}`));
  for (const i of cross.issues) {
    if (!seen.has(`${i.path}\u0000${i.code}`)) issues.push(i);
  }
  const result = { ok: issues.length === 0, issues, warnings: cross.warnings };
  return parsed.success && issues.length === 0 ? { ...result, data: parsed.data } : result;
}

/**
 * Checks a blueprint (already parsed from JSON) and reports every problem with its field path and
 * a ja/en message. Never throws.
 */
export function validateBlueprint(json: unknown, options: ValidateOptions = {}): BlueprintValidation {
  const { ok, issues, warnings } = runValidation(json, options);
  return { ok, issues, warnings };
}

/**
 * The typed blueprint, defaults filled in.
 * @throws KitError `blueprint/invalid` whose message is the first problem in `lang` and whose
 *   `details` carry `path`, `code`, `messageJa`, `messageEn` and `issueCount`.
 */
export function parseBlueprint(json: unknown, lang: Lang = 'en', options: ValidateOptions = {}): Blueprint {
  const r = runValidation(json, options);
  if (r.data !== undefined) return r.data;
  const first = r.issues[0] ?? issue('', 'invalid');
  throw new KitError('blueprint/invalid', `${first.path === '' ? '(document)' : first.path}: ${first.message[lang]}`, {
    details: {
      path: first.path,
      code: first.code,
      messageJa: first.message.ja,
      messageEn: first.message.en,
      issueCount: r.issues.length,
    },
  });
}

/**
 * Parses blueprint file text: JSON first (syntax errors located by line and column), then
 * {@link parseBlueprint}.
 * @throws KitError `blueprint/not-json` (details `line`, `column`) or `blueprint/invalid`.
 */
export function parseBlueprintJson(text: string): unknown {
  try {
    return JSON.parse(text.replace(/^\uFEFF/, '')) as unknown;
  } catch (err) {
    const { line, column } = jsonErrorPosition(text.replace(/^\uFEFF/, ''), err);
    throw new KitError('blueprint/not-json', `not JSON at line ${line}, column ${column}: ${(err as Error).message}`, {
      details: { line, column },
      cause: err,
    });
  }
}

/** The 1-based line and column of a `JSON.parse` failure (V8 reports a position or a line/column). */
export function jsonErrorPosition(text: string, err: unknown): { line: number; column: number } {
  const msg = err instanceof Error ? err.message : String(err);
  const lc = /line (\d+) column (\d+)/.exec(msg);
  if (lc !== null) return { line: Number(lc[1]), column: Number(lc[2]) };
  const pos = /position (\d+)/.exec(msg);
  const offset = pos !== null ? Number(pos[1]) : text.length;
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - (before.lastIndexOf('\n') + 1) + 1;
  return { line, column };
}

// ---------------------------------------------------------------------------------------------
// Export

const SECRET_KEYS = new Set(['password', 'passphrase', 'secret', 'token', 'privatekey', 'apikey']);

function stripSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stripSecrets);
  if (!isRecord(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (SECRET_KEYS.has(k.toLowerCase())) continue;
    out[k] = stripSecrets(v);
  }
  return out;
}

/**
 * The blueprint as a JSON document for export: `version` first, every default written out, and no
 * secret — only references such as `passwordRef` (any field named like a password, passphrase,
 * token or private key is dropped, even if an in-memory object carried one).
 */
export function exportBlueprint(bp: Blueprint): string {
  const { version, ...rest } = stripSecrets(bp) as Record<string, unknown>;
  return `${JSON.stringify({ version, ...rest }, null, 2)}\n`;
}
