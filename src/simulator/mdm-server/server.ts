/**
 * The reference MDM server: the station ↔ MDM contract (`resources/mdm-contract.openapi.json`) over
 * node:http on 127.0.0.1, with its own SQLite database ({@link MdmStore}). Three audiences:
 *
 * - the station (`/v1/...`, `Authorization: Bearer <token>`): groups, enrollment profiles, the
 *   registration check, inactivation and deletion, kitting results deduplicated by idempotency key;
 * - devices (`/MDMServiceConfig`, `/mdm/...`): service discovery, enrollment by a POST of CMS-signed
 *   MachineInfo (general URL with a Basic prompt, or a group-specific URL without), check-in
 *   (`Authenticate`, `TokenUpdate`, `CheckOut`) and the command endpoint, identified by the
 *   `Mdm-Signature` header (detached CMS by the identity the profile carried);
 * - tests and demos (`/admin/...`, `Authorization: Bearer <admin token>`): seeding, device flags,
 *   licenses, the device CA, the station token, fault injection. See README.md beside this file.
 */
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { createLogger } from '../../log.ts';
import { decodePlist, isPlistDict, type PlistValue } from '../../plist/index.ts';
import { chainsTo, verifyCms } from '../cms.ts';
import {
  createServerCa,
  enrollmentProfile,
  fingerprintOf,
  issueIdentity,
  signedProfile,
  trustProfile,
  type KeyAndCert,
} from './profile.ts';
import { MdmStore, type DeviceRow, type EnrollmentRow, type GroupRow } from './store.ts';

const log = createLogger('mdm-server');

/** The `code` values of the contract's error body `{error: {code, message}}`. */
export type MdmErrorCode =
  | 'mdm/unauthorized'
  | 'mdm/invalid-request'
  | 'mdm/not-found'
  | 'mdm/method-not-allowed'
  | 'mdm/payload-too-large'
  | 'mdm/wrong-credentials'
  | 'mdm/credentials-expired'
  | 'mdm/group-closed'
  | 'mdm/enrollment-credentials-required'
  | 'mdm/bad-signature'
  | 'mdm/untrusted-device'
  | 'mdm/already-registered'
  | 'mdm/no-license'
  | 'mdm/not-registered'
  | 'mdm/unknown-identity'
  | 'mdm/device-unreachable'
  | 'mdm/force-not-allowed'
  | 'mdm/already-inactive'
  | 'mdm/device-active'
  | 'mdm/injected-fault'
  | 'mdm/internal';

class HttpError extends Error {
  readonly status: number;
  readonly code: MdmErrorCode;
  readonly headers: Record<string, string>;
  constructor(status: number, code: MdmErrorCode, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

/** Default validity of new enrollment credentials: three months (mobiconnect's default). */
export const DEFAULT_CREDENTIALS_VALIDITY_MS = 92 * 86_400_000;
const MAX_BODY = 1024 * 1024;
const BASIC_CHALLENGE = 'Basic realm="Kitting Reference MDM enrollment"';

/** Options of {@link startMdmServer}. */
export interface MdmServerOptions {
  /** TCP port on `host`; 0 (default) picks a free one. */
  port?: number;
  /** Only loopback addresses are accepted (default `127.0.0.1`). */
  host?: string;
  /** SQLite file of the server (default: in memory, nothing kept). */
  dbFile?: string;
  /** The station's bearer token (default: a random one, see {@link MdmServer.token}). */
  token?: string;
  /** The admin API's bearer token (default: a random one). */
  adminToken?: string;
  /** PEM of the CA that must have issued the device certificates signing MachineInfo. */
  deviceCaPem?: string;
  /** Total licenses (service plan seats); default 100, or what the database already holds. */
  licenseTotal?: number;
  /** Creates two demo groups with credentials (see README.md). */
  seedDemo?: boolean;
}

/** Faults the admin API injects into the station (and optionally device) routes. */
export interface FaultConfig {
  /** The next N requests answer `failStatus` with `mdm/injected-fault`. */
  failNext?: number;
  /** 500, 502, 503 or 504 (default 503). */
  failStatus?: number;
  /** Every request waits this long before it is handled (0: no delay). */
  delayMs?: number;
  /** The next N requests are read and then their connection is destroyed without an answer. */
  dropNext?: number;
  /**
   * The next N requests (that pass the other faults and auth) are handled at once — a results
   * batch is committed — but their answer is held `lateAnswerMs` before it is sent: a client that
   * gives up first never learns that its batch went through.
   */
  lateAnswerNext?: number;
  /** How long a late answer is held (default 2000 ms). */
  lateAnswerMs?: number;
  /** Which routes: `station` (`/v1/...`, default), `device` (`/MDMServiceConfig`, `/mdm/...`), `all`. */
  scope?: 'station' | 'device' | 'all';
}

/** Input of {@link MdmAdmin.putGroup}. */
export interface GroupInput {
  id: string;
  name: string;
  /** Display path (`/School/Grade 1`); default `/<name>`. */
  path?: string;
  /** Enrollment credentials; null or absent: the group takes no new registrations. */
  credentials?: { userId: string; password: string; expiresAt?: string } | null;
  /** Service plan applied automatically at registration. */
  servicePlan?: string | null;
}

/** The admin state snapshot. */
export interface AdminState {
  groups: (GroupJson & { enrollUserId: string | null })[];
  devices: (DeviceJson & { lost: boolean; wiped: boolean; pushToken: string | null })[];
  licenses: { total: number; consumed: number };
  /** `duplicateReceipts`: how many times the stored result came again (answered as a duplicate). */
  results: { idempotencyKey: string; serial: string; receivedAt: string; duplicateReceipts: number; result: unknown }[];
  faults: Required<FaultConfig>;
  tokenRefused: boolean;
  deviceCaConfigured: boolean;
}

/** Typed admin helpers (the same operations as the `/admin/...` routes). */
export interface MdmAdmin {
  putGroup(g: GroupInput): GroupJson;
  /** The group-specific enrollment URL (no prompt) for the group's current credentials. */
  groupEnrollmentUrl(groupId: string): string;
  /** Pre-assigns a serial to a group: the general URL then needs no prompt for it. */
  assign(serial: string, groupId: string): void;
  markDevice(serial: string, flags: { lost?: boolean; wiped?: boolean }): DeviceJson;
  setLicenseTotal(total: number): void;
  setDeviceCa(pem: string): void;
  setFaults(f: FaultConfig): void;
  clearFaults(): void;
  /** Sets a new station token (and accepts it again after {@link MdmAdmin.refuseToken}). */
  setToken(token: string): void;
  /** Refuses the station token with 401 until {@link MdmAdmin.setToken}. */
  refuseToken(): void;
  state(): AdminState;
}

/** A running reference MDM server. */
export interface MdmServer {
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** The station's bearer token (current). */
  readonly token: string;
  readonly adminToken: string;
  /** The general device enrollment URL (`<url>/mdm/enroll`). */
  readonly enrollmentUrl: string;
  /** The server CA (PEM) that signs profiles: what a station pins as anchor certificate. */
  readonly serverCertificatePem: string;
  readonly admin: MdmAdmin;
  stop(): Promise<void>;
}

/** A group as `GET /v1/groups` lists it. */
export interface GroupJson {
  id: string;
  name: string;
  path: string;
  hasEnrollmentCredentials: boolean;
  credentialsExpireAt: string | null;
  credentialsExpired: boolean;
  servicePlan: string | null;
}

/** A device as `GET /v1/devices/{serial}` answers it. */
export interface DeviceJson {
  serial: string;
  udid: string;
  state: 'active' | 'inactive';
  groupId: string;
  licenseConsumed: boolean;
  servicePlan: string | null;
  registeredAt: string;
  enrolledAt: string | null;
  lastCheckIn: string | null;
  reachable: boolean;
  enrollment: { status: DeviceRow['enrollmentStatus']; at: string };
  inactivation: { kind: 'normal' | 'forced'; at: string } | null;
}

// request schemas

const serialSchema = z.string().regex(/^[A-Za-z0-9]{1,64}$/, 'a serial number of 1–64 letters and digits');
const idSchema = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, '1–64 letters, digits, ".", "_" or "-"');
const credentialsBody = z.strictObject({ userId: z.string().min(1).max(128), password: z.string().min(1).max(256) });
const inactivateBody = z.strictObject({ force: z.boolean() });
const stepSchema = z.strictObject({
  name: z.string().min(1).max(64),
  status: z.enum(['pending', 'running', 'done', 'skipped', 'failed', 'waiting']),
  ms: z.number().int().nonnegative().optional(),
  errorCode: z.string().min(1).max(128).optional(),
});
const resultSchema = z.strictObject({
  idempotencyKey: z.string().min(1).max(200),
  serial: serialSchema,
  udid: z.string().min(1).max(64).optional(),
  outcome: z.enum(['done', 'failed', 'cancelled']),
  finishedAt: z.iso.datetime({ offset: true }),
  blueprint: z.string().min(1).max(128).optional(),
  deviceName: z.string().min(1).max(255).optional(),
  groupId: idSchema.optional(),
  errorCode: z.string().min(1).max(128).optional(),
  steps: z.array(stepSchema).max(32).optional(),
});
const resultsBody = z.strictObject({ results: z.array(z.unknown()).min(1).max(500) });
const machineInfoSchema = z.looseObject({
  UDID: z.string().min(1).max(64),
  SERIAL: serialSchema,
  PRODUCT: z.string().min(1).max(64),
  VERSION: z.string().max(64).optional(),
  OS_VERSION: z.string().max(64).optional(),
  LANGUAGE: z.string().max(64).optional(),
});
const checkinSchema = z.discriminatedUnion('MessageType', [
  z.looseObject({
    MessageType: z.literal('Authenticate'),
    UDID: z.string().min(1).max(64),
    Topic: z.string().min(1),
    SerialNumber: serialSchema.optional(),
    OSVersion: z.string().optional(),
    ProductName: z.string().optional(),
  }),
  z.looseObject({
    MessageType: z.literal('TokenUpdate'),
    UDID: z.string().min(1).max(64),
    Topic: z.string().min(1),
    Token: z.instanceof(Buffer),
    PushMagic: z.string().min(1),
    UnlockToken: z.instanceof(Buffer).optional(),
  }),
  z.looseObject({ MessageType: z.literal('CheckOut'), UDID: z.string().min(1).max(64), Topic: z.string().min(1) }),
]);
const commandReportSchema = z.looseObject({ UDID: z.string().min(1).max(64), Status: z.string().min(1) });
const groupInputSchema = z.strictObject({
  id: idSchema,
  name: z.string().min(1).max(128),
  path: z.string().min(1).max(512).optional(),
  credentials: z
    .strictObject({
      userId: z.string().min(1).max(128),
      password: z.string().min(1).max(256),
      expiresAt: z.iso.datetime({ offset: true }).optional(),
    })
    .nullable()
    .optional(),
  servicePlan: z.string().min(1).max(128).nullable().optional(),
});
const faultSchema = z.strictObject({
  failNext: z.number().int().min(0).max(10_000).optional(),
  failStatus: z.union([z.literal(500), z.literal(502), z.literal(503), z.literal(504)]).optional(),
  delayMs: z.number().int().min(0).max(60_000).optional(),
  dropNext: z.number().int().min(0).max(10_000).optional(),
  lateAnswerNext: z.number().int().min(0).max(10_000).optional(),
  lateAnswerMs: z.number().int().min(1).max(60_000).optional(),
  scope: z.enum(['station', 'device', 'all']).optional(),
});
const markSchema = z.strictObject({ lost: z.boolean().optional(), wiped: z.boolean().optional() });
const licenseSchema = z.strictObject({ total: z.number().int().min(0).max(1_000_000) });
const tokenSchema = z.strictObject({ token: z.string().min(16).max(512) });
const caSchema = z.strictObject({ pem: z.string().includes('-----BEGIN CERTIFICATE-----') });
const assignSchema = z.strictObject({ serial: serialSchema, groupId: idSchema });

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = issue === undefined || issue.path.length === 0 ? what : `${what}.${issue.path.join('.')}`;
  throw new HttpError(400, 'mdm/invalid-request', `${where}: ${issue?.message ?? 'invalid'}`);
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

function bearer(req: http.IncomingMessage): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return m?.[1];
}

function basic(req: http.IncomingMessage): { userId: string; password: string } | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(req.headers.authorization ?? '');
  if (m?.[1] === undefined) return undefined;
  const text = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon <= 0) return undefined;
  return { userId: text.slice(0, colon), password: text.slice(colon + 1) };
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) tooLarge = true;
      else chunks.push(c);
    });
    req.on('end', () => {
      if (tooLarge) reject(new HttpError(413, 'mdm/payload-too-large', `the body is larger than ${MAX_BODY} bytes`));
      else resolve(Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

function jsonBody(body: Buffer): unknown {
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    throw new HttpError(400, 'mdm/invalid-request', 'the body is not JSON');
  }
}

function isExpired(g: GroupRow, now = Date.now()): boolean {
  return g.credentialsExpireAt !== null && Date.parse(g.credentialsExpireAt) <= now;
}

function groupJson(g: GroupRow): GroupJson {
  return {
    id: g.id,
    name: g.name,
    path: g.path,
    hasEnrollmentCredentials: g.enrollUserId !== null && g.enrollPassword !== null,
    credentialsExpireAt: g.credentialsExpireAt,
    credentialsExpired: isExpired(g),
    servicePlan: g.servicePlan,
  };
}

/** Reachable = the device checked in (Authenticate or TokenUpdate) and is not lost, wiped or checked out. */
function reachable(d: DeviceRow): boolean {
  return (
    d.state === 'active' &&
    !d.lost &&
    !d.wiped &&
    (d.enrollmentStatus === 'authenticated' || d.enrollmentStatus === 'enrolled')
  );
}

function deviceJson(d: DeviceRow): DeviceJson {
  return {
    serial: d.serial,
    udid: d.udid,
    state: d.state,
    groupId: d.groupId,
    licenseConsumed: d.licenseConsumed,
    servicePlan: d.servicePlan,
    registeredAt: d.registeredAt,
    enrolledAt: d.enrolledAt,
    lastCheckIn: d.lastCheckIn,
    reachable: reachable(d),
    enrollment: { status: d.enrollmentStatus, at: d.enrollmentAt },
    inactivation:
      d.inactivation !== null && d.inactivatedAt !== null ? { kind: d.inactivation, at: d.inactivatedAt } : null,
  };
}

/** Canonical JSON (sorted keys) so a replayed result compares equal whatever its key order. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

const NO_FAULTS: Required<FaultConfig> = {
  failNext: 0,
  failStatus: 503,
  delayMs: 0,
  dropNext: 0,
  lateAnswerNext: 0,
  lateAnswerMs: 2000,
  scope: 'station',
};

class ReferenceMdm {
  readonly store: MdmStore;
  readonly ca: KeyAndCert;
  token: string;
  readonly adminToken: string;
  tokenRefused = false;
  faults: Required<FaultConfig> = { ...NO_FAULTS };
  baseUrl = '';
  private readonly secret: string;

  constructor(store: MdmStore, ca: KeyAndCert, token: string, adminToken: string) {
    this.store = store;
    this.ca = ca;
    this.token = token;
    this.adminToken = adminToken;
    let secret = store.setting('secret');
    if (secret === undefined) {
      secret = randomBytes(32).toString('hex');
      store.setSetting('secret', secret);
    }
    this.secret = secret;
  }

  get licenseTotal(): number {
    return Number(this.store.setting('licenseTotal') ?? '100');
  }

  get deviceCaPem(): string | undefined {
    return this.store.setting('deviceCaPem');
  }

  groupKey(g: GroupRow): string {
    return createHmac('sha256', this.secret)
      .update(`${g.id}\n${g.enrollUserId ?? ''}\n${g.enrollPassword ?? ''}`)
      .digest('base64url')
      .slice(0, 24);
  }

  groupEnrollmentUrl(g: GroupRow): string {
    return `${this.baseUrl}/mdm/enroll/groups/${encodeURIComponent(g.id)}/${this.groupKey(g)}`;
  }

  putGroup(input: GroupInput): GroupJson {
    const g = parse(groupInputSchema, input, 'group');
    const creds = g.credentials ?? null;
    const row: GroupRow = {
      id: g.id,
      name: g.name,
      path: g.path ?? `/${g.name}`,
      enrollUserId: creds?.userId ?? null,
      enrollPassword: creds?.password ?? null,
      credentialsExpireAt:
        creds === null
          ? null
          : (creds.expiresAt ?? new Date(Date.now() + DEFAULT_CREDENTIALS_VALIDITY_MS).toISOString()),
      servicePlan: g.servicePlan ?? null,
    };
    const other = creds === null ? undefined : this.store.groupByUserId(creds.userId);
    if (other !== undefined && other.id !== row.id)
      throw new HttpError(
        400,
        'mdm/invalid-request',
        `user ID "${creds?.userId}" already belongs to group ${other.id}`,
      );
    this.store.putGroup(row);
    return groupJson(row);
  }

  /** Checks a group's credentials as the contract says: 401 wrong, 403 expired or none. */
  checkCredentials(g: GroupRow, creds: { userId: string; password: string }, wwwAuth: boolean): void {
    if (g.enrollUserId === null || g.enrollPassword === null)
      throw new HttpError(
        403,
        'mdm/group-closed',
        `group ${g.id} has no enrollment credentials: it takes no new registrations`,
      );
    if (!sameSecret(creds.userId, g.enrollUserId) || !sameSecret(creds.password, g.enrollPassword))
      throw new HttpError(
        401,
        'mdm/wrong-credentials',
        `wrong enrollment user ID or password for group ${g.id}`,
        wwwAuth ? { 'WWW-Authenticate': BASIC_CHALLENGE } : {},
      );
    if (isExpired(g))
      throw new HttpError(
        403,
        'mdm/credentials-expired',
        `the enrollment credentials of group ${g.id} expired at ${g.credentialsExpireAt ?? ''}: issue new ones in the MDM`,
      );
  }

  /** Refuses a new registration into a group without valid credentials (seed rules). */
  groupOpen(g: GroupRow): void {
    if (g.enrollUserId === null || g.enrollPassword === null)
      throw new HttpError(
        403,
        'mdm/group-closed',
        `group ${g.id} has no enrollment credentials: it takes no new registrations`,
      );
    if (isExpired(g))
      throw new HttpError(
        403,
        'mdm/credentials-expired',
        `the enrollment credentials of group ${g.id} expired at ${g.credentialsExpireAt ?? ''}`,
      );
  }

  /**
   * Registers (or re-registers) a device in a group, in one transaction: an active device is refused
   * (the same device cannot be registered twice); a new record needs a free license; an inactive
   * record keeps its license.
   */
  register(
    info: { serial: string; udid: string; product: string | null; osVersion: string | null },
    group: GroupRow,
    enrollmentId: string,
  ): DeviceRow {
    return this.store.tx(() => {
      const now = new Date().toISOString();
      const existing = this.store.device(info.serial);
      if (existing?.state === 'active' && existing.enrollmentId !== enrollmentId)
        throw new HttpError(
          409,
          'mdm/already-registered',
          `device ${info.serial} is already registered and active in group ${existing.groupId}: inactivate it in the MDM before registering it again (the same device cannot be registered twice)`,
        );
      if (existing === undefined && this.store.licensesConsumed() >= this.licenseTotal)
        throw new HttpError(
          409,
          'mdm/no-license',
          `no license left (${this.licenseTotal} in use): delete inactive devices or add licenses`,
        );
      const row: DeviceRow = {
        serial: info.serial,
        udid: info.udid,
        groupId: group.id,
        state: 'active',
        product: info.product,
        osVersion: info.osVersion,
        registeredAt: existing?.state === 'active' ? existing.registeredAt : now,
        enrolledAt: existing?.state === 'active' ? existing.enrolledAt : null,
        lastCheckIn: existing?.lastCheckIn ?? null,
        licenseConsumed: true,
        servicePlan: group.servicePlan,
        lost: false,
        wiped: false,
        enrollmentStatus: existing?.state === 'active' ? existing.enrollmentStatus : 'profile-issued',
        enrollmentAt: existing?.state === 'active' ? existing.enrollmentAt : now,
        enrollmentId,
        pushToken: existing?.state === 'active' ? existing.pushToken : null,
        pushMagic: existing?.state === 'active' ? existing.pushMagic : null,
        inactivatedAt: null,
        inactivation: null,
      };
      this.store.putDevice(row);
      return row;
    });
  }

  async issueProfile(
    group: GroupRow,
    device: { serial: string; udid: string } | null,
  ): Promise<{ bytes: Buffer; enrollment: EnrollmentRow }> {
    const id = randomUUID();
    const identity = await issueIdentity(this.ca, id);
    const enrollment: EnrollmentRow = {
      id,
      groupId: group.id,
      serial: device?.serial ?? null,
      udid: device?.udid ?? null,
      fingerprint: identity.fingerprint,
      certificatePem: identity.certificatePem,
      topic: `com.apple.mgmt.External.${this.store.setting('topicUuid') ?? ''}`,
      createdAt: new Date().toISOString(),
    };
    const profile = enrollmentProfile({
      baseUrl: this.baseUrl,
      enrollmentId: id,
      groupId: group.id,
      groupName: group.name,
      topic: enrollment.topic,
      identity,
    });
    this.store.putEnrollment(enrollment);
    return { bytes: signedProfile(profile, this.ca), enrollment };
  }

  adminState(): AdminState {
    return {
      groups: this.store.groups().map((g) => ({ ...groupJson(g), enrollUserId: g.enrollUserId })),
      devices: this.store
        .devices()
        .map((d) => ({ ...deviceJson(d), lost: d.lost, wiped: d.wiped, pushToken: d.pushToken })),
      licenses: { total: this.licenseTotal, consumed: this.store.licensesConsumed() },
      results: this.store.results().map((r) => ({
        idempotencyKey: r.idempotencyKey,
        serial: r.serial,
        receivedAt: r.receivedAt,
        duplicateReceipts: r.duplicateReceipts,
        result: JSON.parse(r.body) as unknown,
      })),
      faults: { ...this.faults },
      tokenRefused: this.tokenRefused,
      deviceCaConfigured: this.deviceCaPem !== undefined,
    };
  }

  markDevice(serial: string, flags: { lost?: boolean; wiped?: boolean }): DeviceJson {
    const f = parse(markSchema, flags, 'body');
    const d = this.store.device(serial);
    if (d === undefined) throw new HttpError(404, 'mdm/not-found', `no device ${serial}`);
    if (f.lost !== undefined) d.lost = f.lost;
    if (f.wiped !== undefined) d.wiped = f.wiped;
    this.store.putDevice(d);
    return deviceJson(d);
  }

  setDeviceCa(pem: string): void {
    const p = parse(caSchema, { pem }, 'body');
    this.store.setSetting('deviceCaPem', p.pem);
  }
}

type Handler = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  body: Buffer,
  params: string[],
) => Promise<void> | void;

interface Route {
  method: string;
  pattern: RegExp;
  audience: 'station' | 'device' | 'admin';
  handler: Handler;
}

function sendJson(
  res: http.ServerResponse,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(value);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function sendError(res: http.ServerResponse, e: HttpError): void {
  sendJson(res, e.status, { error: { code: e.code, message: e.message } }, e.headers);
}

function sendProfile(res: http.ServerResponse, bytes: Buffer): void {
  res.writeHead(200, {
    'Content-Type': 'application/x-apple-aspen-config',
    'Content-Length': bytes.length,
    'Content-Disposition': 'attachment; filename="enrollment.mobileconfig"',
  });
  res.end(bytes);
}

function routes(m: ReferenceMdm): Route[] {
  const r: Route[] = [];
  const add = (method: string, pattern: RegExp, audience: Route['audience'], handler: Handler): void => {
    r.push({ method, pattern, audience, handler });
  };
  const param = (p: string[], i: number): string => decodeURIComponent(p[i] ?? '');
  const groupOr404 = (id: string): GroupRow => {
    const g = m.store.group(parse(idSchema, id, 'group id'));
    if (g === undefined) throw new HttpError(404, 'mdm/not-found', `no group ${id}`);
    return g;
  };
  const deviceOr404 = (serial: string): DeviceRow => {
    const d = m.store.device(parse(serialSchema, serial, 'serial'));
    if (d === undefined) throw new HttpError(404, 'mdm/not-found', `device ${serial} is not registered`);
    return d;
  };

  // station API
  add('GET', /^\/v1\/groups$/, 'station', (_q, res) => {
    sendJson(res, 200, { groups: m.store.groups().map(groupJson) });
  });
  add('POST', /^\/v1\/groups\/([^/]+)\/enrollment-profile$/, 'station', async (_q, res, body, p) => {
    const g = groupOr404(param(p, 0));
    m.checkCredentials(g, parse(credentialsBody, jsonBody(body), 'body'), false);
    const { bytes } = await m.issueProfile(g, null);
    sendProfile(res, bytes);
  });
  add('POST', /^\/v1\/groups\/([^/]+)\/enrollment-url$/, 'station', (_q, res, body, p) => {
    const g = groupOr404(param(p, 0));
    m.checkCredentials(g, parse(credentialsBody, jsonBody(body), 'body'), false);
    sendJson(res, 200, {
      groupId: g.id,
      url: m.groupEnrollmentUrl(g),
      generalUrl: `${m.baseUrl}/mdm/enroll`,
      credentialsExpireAt: g.credentialsExpireAt,
    });
  });
  add('GET', /^\/v1\/devices\/([^/]+)$/, 'station', (_q, res, _b, p) => {
    sendJson(res, 200, deviceJson(deviceOr404(param(p, 0))));
  });
  add('POST', /^\/v1\/devices\/([^/]+)\/inactivate$/, 'station', (_q, res, body, p) => {
    const { force } = parse(inactivateBody, jsonBody(body), 'body');
    const out = m.store.tx(() => {
      const d = deviceOr404(param(p, 0));
      if (d.state === 'inactive')
        throw new HttpError(409, 'mdm/already-inactive', `device ${d.serial} is already inactive (無効)`);
      const canReach = reachable(d);
      if (force && canReach)
        throw new HttpError(
          409,
          'mdm/force-not-allowed',
          `device ${d.serial} can still be reached: use a normal inactivation (never force when a normal inactivation is possible; forced inactivation leaves restrictions and settings on the device)`,
        );
      if (!force && !canReach)
        throw new HttpError(
          409,
          'mdm/device-unreachable',
          `device ${d.serial} cannot receive jobs (lost, broken, wiped or never checked in): use a forced inactivation`,
        );
      const now = new Date().toISOString();
      d.state = 'inactive';
      d.inactivatedAt = now;
      d.inactivation = force ? 'forced' : 'normal';
      if (!force) {
        d.enrollmentStatus = 'unenrolled';
        d.enrollmentAt = now;
      }
      m.store.putDevice(d);
      return d;
    });
    sendJson(res, 200, deviceJson(out));
  });
  add('DELETE', /^\/v1\/devices\/([^/]+)$/, 'station', (_q, res, _b, p) => {
    const out = m.store.tx(() => {
      const d = deviceOr404(param(p, 0));
      if (d.state === 'active')
        throw new HttpError(409, 'mdm/device-active', `device ${d.serial} is active: inactivate it before deleting it`);
      m.store.deleteDevice(d.serial);
      return d;
    });
    sendJson(res, 200, {
      deleted: out.serial,
      licenseFreed: out.licenseConsumed,
      licenses: { total: m.licenseTotal, consumed: m.store.licensesConsumed() },
    });
  });
  add('POST', /^\/v1\/kitting-results$/, 'station', (_q, res, body) => {
    const batch = parse(resultsBody, jsonBody(body), 'body');
    const accepted: string[] = [];
    const duplicates: string[] = [];
    const rejected: { key: string | null; index: number; reason: string }[] = [];
    m.store.tx(() => {
      batch.results.forEach((raw, index) => {
        const keyOf =
          raw !== null &&
          typeof raw === 'object' &&
          typeof (raw as { idempotencyKey?: unknown }).idempotencyKey === 'string'
            ? (raw as { idempotencyKey: string }).idempotencyKey
            : null;
        const parsed = resultSchema.safeParse(raw);
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          const where = issue === undefined || issue.path.length === 0 ? 'result' : issue.path.join('.');
          rejected.push({ key: keyOf, index, reason: `${where}: ${issue?.message ?? 'invalid'}` });
          return;
        }
        const v = parsed.data;
        const text = canonical(v);
        const prior = m.store.result(v.idempotencyKey);
        if (prior !== undefined) {
          if (prior.body === text) {
            duplicates.push(v.idempotencyKey);
            m.store.noteDuplicate(v.idempotencyKey);
          } else
            rejected.push({
              key: v.idempotencyKey,
              index,
              reason: 'idempotency key already used for a different result',
            });
          return;
        }
        m.store.putResult({
          idempotencyKey: v.idempotencyKey,
          serial: v.serial,
          body: text,
          receivedAt: new Date().toISOString(),
        });
        accepted.push(v.idempotencyKey);
      });
    });
    sendJson(res, 200, { accepted, duplicates, rejected });
  });

  // devices
  add('GET', /^\/MDMServiceConfig$/, 'device', (_q, res) => {
    sendJson(res, 200, {
      dep_enrollment_url: `${m.baseUrl}/mdm/enroll`,
      dep_anchor_certs_url: `${m.baseUrl}/mdm/anchor-certs`,
      trust_profile_url: `${m.baseUrl}/mdm/trust-profile`,
    });
  });
  add('GET', /^\/mdm\/anchor-certs$/, 'device', (_q, res) => {
    sendJson(res, 200, [pemToBase64Der(m.ca.certificatePem)]);
  });
  add('GET', /^\/mdm\/trust-profile$/, 'device', (_q, res) => {
    sendProfile(res, signedProfile(trustProfile(m.ca), m.ca));
  });
  const enroll = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    body: Buffer,
    groupPath: { id: string; key: string } | null,
  ): Promise<void> => {
    const info = verifyMachineInfo(m, req, body);
    let group: GroupRow | undefined;
    const creds = basic(req);
    if (creds !== undefined) {
      const g = m.store.groupByUserId(creds.userId);
      if (g === undefined)
        throw new HttpError(401, 'mdm/wrong-credentials', 'unknown enrollment user ID or wrong password', {
          'WWW-Authenticate': BASIC_CHALLENGE,
        });
      m.checkCredentials(g, creds, true);
      group = g;
    } else if (groupPath !== null) {
      const g = m.store.group(groupPath.id);
      if (g === undefined) throw new HttpError(404, 'mdm/not-found', `no group ${groupPath.id}`);
      // A key made from older credentials: the device asks for the credentials again (seed).
      if (!sameSecret(groupPath.key, m.groupKey(g)))
        throw new HttpError(
          401,
          'mdm/enrollment-credentials-required',
          'this group URL no longer matches the group credentials: enter the enrollment user ID and password',
          {
            'WWW-Authenticate': BASIC_CHALLENGE,
          },
        );
      group = g;
    } else {
      const assigned = m.store.assignment(info.serial);
      group = assigned === undefined ? undefined : m.store.group(assigned);
      if (group === undefined)
        throw new HttpError(
          401,
          'mdm/enrollment-credentials-required',
          'enter the group enrollment user ID and password',
          {
            'WWW-Authenticate': BASIC_CHALLENGE,
          },
        );
    }
    m.groupOpen(group);
    const existing = m.store.device(info.serial);
    if (existing?.state === 'active')
      throw new HttpError(
        409,
        'mdm/already-registered',
        `device ${info.serial} is already registered and active in group ${existing.groupId}: inactivate it in the MDM before registering it again (the same device cannot be registered twice)`,
      );
    const issued = await m.issueProfile(group, { serial: info.serial, udid: info.udid });
    m.register(info, group, issued.enrollment.id);
    log.info('device enrolled', { serial: info.serial, group: group.id });
    sendProfile(res, issued.bytes);
  };
  add('POST', /^\/mdm\/enroll$/, 'device', (req, res, body) => enroll(req, res, body, null));
  add('POST', /^\/mdm\/enroll\/groups\/([^/]+)\/([^/]+)$/, 'device', (req, res, body, p) =>
    enroll(req, res, body, { id: param(p, 0), key: param(p, 1) }),
  );
  const checkin: Handler = (req, res, body) => {
    const enrollment = identify(m, req, body);
    const msg = parse(checkinSchema, plistBody(body), 'check-in');
    if (msg.Topic !== enrollment.topic)
      throw new HttpError(400, 'mdm/invalid-request', `check-in Topic ${msg.Topic} is not this server's`);
    if (enrollment.udid !== null && enrollment.udid !== msg.UDID)
      throw new HttpError(401, 'mdm/unknown-identity', 'this identity was issued to another device');
    const now = new Date().toISOString();
    m.store.tx(() => {
      if (msg.MessageType === 'Authenticate') {
        const serial = msg.SerialNumber ?? m.store.deviceByUdid(msg.UDID)?.serial;
        if (serial === undefined)
          throw new HttpError(400, 'mdm/invalid-request', 'Authenticate without SerialNumber for an unknown device');
        if (enrollment.serial !== null && enrollment.serial !== serial)
          throw new HttpError(401, 'mdm/unknown-identity', 'this identity was issued to another device');
        const group = m.store.group(enrollment.groupId);
        if (group === undefined)
          throw new HttpError(404, 'mdm/not-found', `group ${enrollment.groupId} no longer exists`);
        const d = m.register(
          { serial, udid: msg.UDID, product: msg.ProductName ?? null, osVersion: msg.OSVersion ?? null },
          group,
          enrollment.id,
        );
        d.enrollmentStatus = 'authenticated';
        d.enrollmentAt = now;
        d.lastCheckIn = now;
        m.store.putDevice(d);
        return;
      }
      const d = m.store.deviceByUdid(msg.UDID);
      if (d === undefined || d.state !== 'active' || d.enrollmentId !== enrollment.id)
        throw new HttpError(409, 'mdm/not-registered', `device ${msg.UDID} has not authenticated with this identity`);
      if (msg.MessageType === 'TokenUpdate') {
        if (d.enrollmentStatus !== 'authenticated' && d.enrollmentStatus !== 'enrolled')
          throw new HttpError(409, 'mdm/not-registered', `device ${msg.UDID} sent TokenUpdate before Authenticate`);
        if (d.enrollmentStatus !== 'enrolled') {
          d.enrollmentStatus = 'enrolled';
          d.enrollmentAt = now;
        }
        d.enrolledAt ??= now;
        d.pushToken = msg.Token.toString('hex');
        d.pushMagic = msg.PushMagic;
      } else {
        d.enrollmentStatus = 'unenrolled';
        d.enrollmentAt = now;
      }
      d.lastCheckIn = now;
      m.store.putDevice(d);
    });
    log.info('check-in', { type: msg.MessageType, udid: msg.UDID });
    res.writeHead(200, { 'Content-Length': 0 });
    res.end();
  };
  add('PUT', /^\/mdm\/checkin$/, 'device', checkin);
  add('POST', /^\/mdm\/checkin$/, 'device', checkin);
  const server: Handler = (req, res, body) => {
    const enrollment = identify(m, req, body);
    const report = parse(commandReportSchema, plistBody(body), 'command report');
    const d = m.store.deviceByUdid(report.UDID);
    if (d === undefined || d.enrollmentId !== enrollment.id)
      throw new HttpError(401, 'mdm/unknown-identity', 'this identity does not belong to that device');
    d.lastCheckIn = new Date().toISOString();
    m.store.putDevice(d);
    // No commands are queued by the reference server: an empty 200 answers "nothing to do".
    res.writeHead(200, { 'Content-Length': 0 });
    res.end();
  };
  add('PUT', /^\/mdm\/server$/, 'device', server);
  add('POST', /^\/mdm\/server$/, 'device', server);

  // admin
  add('GET', /^\/admin\/state$/, 'admin', (_q, res) => sendJson(res, 200, m.adminState()));
  add('POST', /^\/admin\/groups$/, 'admin', (_q, res, body) => {
    sendJson(res, 200, m.putGroup(parse(groupInputSchema, jsonBody(body), 'body')));
  });
  add('GET', /^\/admin\/groups\/([^/]+)\/enrollment-url$/, 'admin', (_q, res, _b, p) => {
    sendJson(res, 200, { url: m.groupEnrollmentUrl(groupOr404(param(p, 0))) });
  });
  add('POST', /^\/admin\/assignments$/, 'admin', (_q, res, body) => {
    const a = parse(assignSchema, jsonBody(body), 'body');
    groupOr404(a.groupId);
    m.store.assign(a.serial, a.groupId);
    sendJson(res, 200, a);
  });
  add('POST', /^\/admin\/devices\/([^/]+)\/mark$/, 'admin', (_q, res, body, p) => {
    sendJson(res, 200, m.markDevice(param(p, 0), parse(markSchema, jsonBody(body), 'body')));
  });
  add('PUT', /^\/admin\/licenses$/, 'admin', (_q, res, body) => {
    const { total } = parse(licenseSchema, jsonBody(body), 'body');
    m.store.setSetting('licenseTotal', String(total));
    sendJson(res, 200, { total, consumed: m.store.licensesConsumed() });
  });
  add('PUT', /^\/admin\/device-ca$/, 'admin', (_q, res, body) => {
    const { pem } = parse(caSchema, jsonBody(body), 'body');
    m.setDeviceCa(pem);
    res.writeHead(204);
    res.end();
  });
  add('PUT', /^\/admin\/faults$/, 'admin', (_q, res, body) => {
    const f = parse(faultSchema, jsonBody(body), 'body');
    m.faults = { ...NO_FAULTS, ...f };
    sendJson(res, 200, m.faults);
  });
  add('DELETE', /^\/admin\/faults$/, 'admin', (_q, res) => {
    m.faults = { ...NO_FAULTS };
    sendJson(res, 200, m.faults);
  });
  add('PUT', /^\/admin\/token$/, 'admin', (_q, res, body) => {
    const { token } = parse(tokenSchema, jsonBody(body), 'body');
    m.token = token;
    m.tokenRefused = false;
    res.writeHead(204);
    res.end();
  });
  add('POST', /^\/admin\/token\/refuse$/, 'admin', (_q, res) => {
    m.tokenRefused = true;
    res.writeHead(204);
    res.end();
  });
  return r;
}

function pemToBase64Der(pem: string): string {
  return pem.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, '');
}

function plistBody(body: Buffer): PlistValue {
  try {
    return decodePlist(body);
  } catch {
    throw new HttpError(400, 'mdm/invalid-request', 'the body is not a property list');
  }
}

/** Verifies the enrollment POST: CMS signature, chain to the device CA, MachineInfo fields. */
function verifyMachineInfo(
  m: ReferenceMdm,
  req: http.IncomingMessage,
  body: Buffer,
): { serial: string; udid: string; product: string | null; osVersion: string | null } {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/pkcs7-signature')
    throw new HttpError(
      400,
      'mdm/bad-signature',
      `expected Content-Type application/pkcs7-signature, got ${type === '' ? 'none' : String(type)}`,
    );
  const verdict = verifyCms(body);
  if (!verdict.ok) {
    const malformed = !/does not verify|does not match/.test(verdict.reason);
    throw new HttpError(
      malformed ? 400 : 403,
      malformed ? 'mdm/bad-signature' : 'mdm/untrusted-device',
      `MachineInfo signature: ${verdict.reason}`,
    );
  }
  const caPem = m.deviceCaPem;
  if (caPem === undefined)
    throw new HttpError(
      403,
      'mdm/untrusted-device',
      'no device CA is configured: the server trusts no device (--device-ca or PUT /admin/device-ca)',
    );
  if (!chainsTo(verdict.value.signerCertificate, caPem, verdict.value.certificates))
    throw new HttpError(403, 'mdm/untrusted-device', 'the MachineInfo signer was not issued by the trusted device CA');
  const content = plistBody(verdict.value.content);
  const info = parse(machineInfoSchema, isPlistDict(content) ? content : {}, 'MachineInfo');
  return { serial: info.SERIAL, udid: info.UDID, product: info.PRODUCT, osVersion: info.OS_VERSION ?? null };
}

/** The enrollment whose identity signed this check-in (`Mdm-Signature`, detached CMS, base64). */
function identify(m: ReferenceMdm, req: http.IncomingMessage, body: Buffer): EnrollmentRow {
  const header = req.headers['mdm-signature'];
  if (typeof header !== 'string' || header.trim() === '')
    throw new HttpError(401, 'mdm/unknown-identity', 'no Mdm-Signature header (the profile sets SignMessage)');
  const verdict = verifyCms(Buffer.from(header.replace(/\s/g, ''), 'base64'), body);
  if (!verdict.ok) throw new HttpError(401, 'mdm/unknown-identity', `Mdm-Signature: ${verdict.reason}`);
  const e = m.store.enrollmentByFingerprint(fingerprintOf(verdict.value.signerCertificate));
  if (e === undefined)
    throw new HttpError(401, 'mdm/unknown-identity', 'the signing identity was not issued by this server');
  return e;
}

function inScope(scope: FaultConfig['scope'], audience: Route['audience']): boolean {
  if (audience === 'admin') return false;
  return scope === 'all' || scope === audience;
}

/**
 * Holds `res`'s answer for `ms` (the `lateAnswerNext` fault): the handler runs and commits now,
 * but its `end()` — which sends the status line, headers and body, as every answer of this server
 * is written by one `end()` — happens only when the timer fires, unless the client, tired of
 * waiting, has closed the connection first and the answer is lost. (Corking the socket would not
 * do: `end()` uncorks it fully.)
 */
function holdAnswer(res: http.ServerResponse, ms: number): void {
  const end = res.end;
  res.end = ((...args: unknown[]) => {
    const timer = setTimeout(() => {
      if (!res.destroyed) Reflect.apply(end, res, args);
    }, ms);
    res.once('close', () => clearTimeout(timer));
    return res;
  }) as typeof res.end;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/**
 * Starts the reference MDM server on 127.0.0.1 (see the module comment). Resolves once it listens.
 */
export async function startMdmServer(options: MdmServerOptions = {}): Promise<MdmServer> {
  const host = options.host ?? '127.0.0.1';
  if (!LOOPBACK.has(host)) throw new Error(`the reference MDM server binds loopback only, not ${host}`);
  const store = new MdmStore(options.dbFile ?? ':memory:');
  try {
    let caJson = store.setting('serverCa');
    if (caJson === undefined) {
      caJson = JSON.stringify(await createServerCa());
      store.setSetting('serverCa', caJson);
    }
    if (store.setting('topicUuid') === undefined) store.setSetting('topicUuid', randomUUID().toUpperCase());
    const ca = JSON.parse(caJson) as KeyAndCert;
    const m = new ReferenceMdm(
      store,
      ca,
      options.token ?? randomBytes(24).toString('base64url'),
      options.adminToken ?? randomBytes(24).toString('base64url'),
    );
    if (options.licenseTotal !== undefined)
      store.setSetting(
        'licenseTotal',
        String(parse(licenseSchema, { total: options.licenseTotal }, 'licenseTotal').total),
      );
    if (options.deviceCaPem !== undefined) m.setDeviceCa(options.deviceCaPem);
    if (options.seedDemo === true) seedDemo(m);
    const table = routes(m);
    const server = http.createServer((req, res) => {
      void handle(m, table, req, res);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const port = (server.address() as AddressInfo).port;
    m.baseUrl = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
    const admin: MdmAdmin = {
      putGroup: (g) => m.putGroup(g),
      groupEnrollmentUrl: (id) => {
        const g = m.store.group(id);
        if (g === undefined) throw new Error(`no group ${id}`);
        return m.groupEnrollmentUrl(g);
      },
      assign: (serial, groupId) => {
        const a = parse(assignSchema, { serial, groupId }, 'assignment');
        m.store.assign(a.serial, a.groupId);
      },
      markDevice: (serial, flags) => m.markDevice(serial, flags),
      setLicenseTotal: (total) =>
        m.store.setSetting('licenseTotal', String(parse(licenseSchema, { total }, 'licenses').total)),
      setDeviceCa: (pem) => m.setDeviceCa(pem),
      setFaults: (f) => {
        m.faults = { ...NO_FAULTS, ...parse(faultSchema, f, 'faults') };
      },
      clearFaults: () => {
        m.faults = { ...NO_FAULTS };
      },
      setToken: (token) => {
        m.token = parse(tokenSchema, { token }, 'token').token;
        m.tokenRefused = false;
      },
      refuseToken: () => {
        m.tokenRefused = true;
      },
      state: () => m.adminState(),
    };
    let stopped = false;
    return {
      url: m.baseUrl,
      get token() {
        return m.token;
      },
      adminToken: m.adminToken,
      enrollmentUrl: `${m.baseUrl}/mdm/enroll`,
      serverCertificatePem: ca.certificatePem,
      admin,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        store.close();
      },
    };
  } catch (err) {
    store.close();
    throw err;
  }
}

function seedDemo(m: ReferenceMdm): void {
  const expires = new Date(Date.now() + DEFAULT_CREDENTIALS_VALIDITY_MS).toISOString();
  m.putGroup({
    id: 'demo-school',
    name: 'Demo School',
    path: '/Demo School',
    credentials: { userId: 'demo-school', password: 'demo-school-pass', expiresAt: expires },
    servicePlan: 'Education',
  });
  m.putGroup({
    id: 'demo-school-grade1',
    name: 'Grade 1',
    path: '/Demo School/Grade 1',
    credentials: { userId: 'demo-grade1', password: 'demo-grade1-pass', expiresAt: expires },
    servicePlan: 'Education',
  });
  m.putGroup({ id: 'demo-closed', name: 'Closed group', path: '/Demo School/Closed', credentials: null });
}

async function handle(
  m: ReferenceMdm,
  table: Route[],
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const method = req.method ?? 'GET';
  try {
    let params: string[] = [];
    let pathMatched = false;
    const route = table.find((r) => {
      const match = r.pattern.exec(url.pathname);
      if (match === null) return false;
      pathMatched = true;
      if (r.method !== method) return false;
      params = match.slice(1);
      return true;
    });
    let body: Buffer;
    try {
      body = await readBody(req);
    } catch (err) {
      if (err instanceof HttpError) throw err;
      return;
    }
    if (route === undefined) {
      if (pathMatched)
        throw new HttpError(405, 'mdm/method-not-allowed', `${method} is not allowed on ${url.pathname}`);
      throw new HttpError(404, 'mdm/not-found', `no route ${method} ${url.pathname}`);
    }
    const faults = m.faults;
    if (inScope(faults.scope, route.audience)) {
      if (faults.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, faults.delayMs));
      if (faults.dropNext > 0) {
        faults.dropNext--;
        req.socket.destroy();
        return;
      }
      if (faults.failNext > 0) {
        faults.failNext--;
        throw new HttpError(faults.failStatus, 'mdm/injected-fault', 'fault injected by the admin API');
      }
    }
    if (route.audience === 'station') {
      const t = bearer(req);
      if (t === undefined || m.tokenRefused || !sameSecret(t, m.token))
        throw new HttpError(
          401,
          'mdm/unauthorized',
          m.tokenRefused ? 'the station token was revoked: set a new one' : 'missing or wrong bearer token',
          {
            'WWW-Authenticate': 'Bearer realm="kitting-mdm"',
          },
        );
    } else if (route.audience === 'admin') {
      const t = bearer(req);
      if (t === undefined || !sameSecret(t, m.adminToken))
        throw new HttpError(401, 'mdm/unauthorized', 'missing or wrong admin token', {
          'WWW-Authenticate': 'Bearer realm="kitting-mdm-admin"',
        });
    }
    if (inScope(faults.scope, route.audience) && faults.lateAnswerNext > 0) {
      faults.lateAnswerNext--;
      holdAnswer(res, faults.lateAnswerMs);
    }
    await route.handler(req, res, body, params);
  } catch (err) {
    if (res.headersSent || res.destroyed) return;
    if (err instanceof HttpError) {
      if (err.status >= 500 || err.status === 401)
        log.info('request refused', { method, path: url.pathname, status: err.status });
      sendError(res, err);
      return;
    }
    log.error('request failed', { method, path: url.pathname, err });
    sendError(res, new HttpError(500, 'mdm/internal', 'internal error of the reference MDM server'));
  }
}
