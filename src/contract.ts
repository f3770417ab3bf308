/**
 * The station API as data (architecture.md "contract.ts", issue #5): every command the CLI, the
 * Electron shell and the headless server call, each once, as `name → zod input schema + handler`,
 * and the payload types of the station's events.
 *
 * - {@link COMMANDS} is the list; {@link CommandName}, {@link CommandInput} and
 *   {@link CommandResult} are derived from it, so a binding (IPC channel `kit:<name>`, HTTP route,
 *   WebSocket message) cannot drift from the station.
 * - {@link dispatch} validates the input with zod and calls the station; invalid input is a
 *   `usage/invalid-argument` KitError whose message and `details.path` locate the first bad field.
 *   {@link dispatchEnvelope} answers `{ ok: true, result }` / `{ ok: false, error }` for bindings
 *   where thrown errors lose their fields (`ipcMain.handle`).
 * - {@link StationEvent} is the event union (past tense) of `station.on` / `station.events()`.
 *
 * The renderer imports only TYPES from this module (`import type`); its runtime imports are zod and
 * `errors.ts`, and the station is imported as a type, so nothing Node-only is pulled in at run time.
 */
import { z } from 'zod';
import { KitError, toKitError, type ErrorCode, type SerializedKitError } from './errors.ts';
import type { JobEvent } from './kitting/runner.ts';
import type { BatchCounts, HubId, QueuedDevices } from './kitting/scheduler.ts';
import type { Station } from './station.ts';
import type { SyncStatusView } from './mdm/station-sync.ts';

// ---- states and events --------------------------------------------------------------------------

/** Machine-readable device states (domain.md "Machine-readable states"). */
export const DEVICE_STATES = [
  'attached',
  'trust-pending',
  'locked',
  'ready',
  'running',
  'waiting',
  'done',
  'failed',
  'detached',
  'recovery',
] as const;
export type DeviceState = (typeof DEVICE_STATES)[number];

/**
 * What a person must do at a port, as a code the UI translates (`NEXT_ACTION_WORDS` in
 * `src/i18n/messages.ts`): tap Trust, unlock, connect to the internet, Activation Lock (the
 * owner's Apple ID or proof of purchase), confirm the erase, plug the device back in, take the
 * device out of recovery mode (`devices.leaveRecovery` with the state's `ecid`).
 */
export const NEXT_ACTIONS = [
  'tap-trust',
  'unlock',
  'needs-internet',
  'activation-lock',
  'confirm-erase',
  'reconnect',
  'leave-recovery',
] as const;
export type NextAction = (typeof NEXT_ACTIONS)[number];

/**
 * One device as the station tracks it (`devices.states`, `deviceStateChanged`).
 *
 * A device in recovery or DFU mode (state `recovery`, seen on the USB bus only) is keyed by its
 * UDID when the station saw it before in normal mode with the same ECID or serial number, else by
 * `ecid:<0x-hex ECID>` (`ecid:0x000005752935F194`), or `usb:<port path>` when its serial string
 * could not be read. Such `ecid:`/`usb:` entries are dropped once the device leaves the bus.
 */
export interface DeviceStateInfo {
  /** The UDID, or for a recovery/DFU device not seen before `ecid:<hex>` / `usb:<path>` (see above). */
  readonly udid: string;
  readonly state: DeviceState;
  /** What a person must do, when something is needed. */
  readonly nextAction?: NextAction;
  /** The job the device runs or last ran in this station. */
  readonly jobId?: string;
  /** The error code behind a `failed` or `waiting` state. */
  readonly code?: ErrorCode;
  /** Its hub (usbmuxd location's bus, or the USB port map's hub), when known. */
  readonly hub?: HubId | null;
  /** Recovery/DFU: where it is plugged in (port path and ja/en label), when on a numbered hub. */
  readonly port?: { readonly path: string; readonly label: { readonly ja: string; readonly en: string } } | null;
  /** Recovery/DFU: its ECID as `0x` + 16 hex digits (the input of `devices.leaveRecovery`). */
  readonly ecid?: string;
  readonly updatedAt: string;
}

/** Which batch an event belongs to. */
export interface BatchRef {
  readonly batchId: string;
  readonly mode: 'batch' | 'watch';
}

/** Every event of the station (past tense). Runner events keep their fields (see `runner.ts`). */
export type StationEvent =
  | {
      readonly type: 'deviceAttached';
      readonly udid: string;
      readonly deviceId: number;
      readonly locationId: number | null;
      readonly hub: HubId | null;
      readonly at: string;
    }
  | { readonly type: 'deviceDetached'; readonly udid: string; readonly at: string }
  | ({ readonly type: 'deviceStateChanged'; readonly at: string } & DeviceStateInfo)
  | JobEvent
  | ({
      readonly type: 'batchStarted';
      readonly blueprint: string;
      readonly maxParallel: number;
      readonly perHub: number | null;
      readonly at: string;
    } & BatchRef)
  | ({ readonly type: 'batchProgressed'; readonly at: string } & BatchRef & BatchCounts & QueuedDevices)
  | ({ readonly type: 'batchPaused'; readonly at: string } & BatchRef)
  | ({ readonly type: 'batchResumed'; readonly at: string } & BatchRef)
  | ({ readonly type: 'batchStopped'; readonly at: string } & BatchRef)
  | ({ readonly type: 'batchFinished'; readonly at: string } & BatchRef)
  | ({ readonly type: 'syncStateChanged'; readonly at: string } & SyncStatusView);

/** The `type` of every {@link StationEvent}. */
export type StationEventType = StationEvent['type'];

// ---- input schemas ------------------------------------------------------------------------------

const udid = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9-]+$/, 'a UDID is letters, digits and dashes');
const name = z.string().trim().min(1).max(128);
const serial = z.string().regex(/^[A-Za-z0-9]{1,64}$/, 'a serial number is 1–64 letters and digits');
/** A stored blueprint's name, or (CLI) a blueprint file path. */
const blueprintRef = z.string().trim().min(1).max(4096);
const cap = z.number().int().min(1).max(256);
const none = z.strictObject({});
/** An ECID as decimal (lockdown's `UniqueChipID`) or `0x` hex, parsed to a 64-bit bigint. */
const ecidText = z
  .string()
  .regex(/^(0x[0-9a-fA-F]{1,16}|[0-9]{1,20})$/, 'an ECID is decimal or 0x-hex')
  .transform((text, ctx) => {
    const value = BigInt(text);
    if (value > 0xffff_ffff_ffff_ffffn) {
      ctx.issues.push({ code: 'custom', message: 'an ECID is a 64-bit value', input: text });
      return z.NEVER;
    }
    return value;
  });

/** The typed confirmation of a destructive command: the person types ERASE. */
export const ERASE_CONFIRMATION = 'ERASE';

const batchStartInput = z.strictObject({
  /** A stored blueprint's name (or a file path, for the CLI). */
  blueprint: blueprintRef,
  /** The devices, or `all` attached now. */
  udids: z.union([z.literal('all'), z.array(udid).min(1).max(1000)]),
  maxParallel: cap.default(4),
  perHub: cap.optional(),
  /** The technician confirmed erasing devices that need it. */
  confirmedErase: z.boolean().default(false),
});

const watchSetInput = z.discriminatedUnion('enabled', [
  z.strictObject({
    enabled: z.literal(true),
    blueprint: blueprintRef,
    maxParallel: cap.default(4),
    perHub: cap.optional(),
    confirmedErase: z.boolean().default(false),
  }),
  z.strictObject({ enabled: z.literal(false) }),
]);

const settingsInput = z.strictObject({
  maxParallel: cap.optional(),
  perHub: cap.nullable().optional(),
  usbmuxdAddress: z.string().min(1).max(4096).nullable().optional(),
  language: z.enum(['ja', 'en']).optional(),
});

/** Station-wide settings (`settings.get` / `settings.set`). */
export interface StationSettings {
  readonly maxParallel: number;
  readonly perHub: number | null;
  /** null: `USBMUXD_SOCKET_ADDRESS` or the platform default. */
  readonly usbmuxdAddress: string | null;
  readonly language: 'ja' | 'en';
}

/** Input of `batch.start`. */
export type BatchStartInput = z.output<typeof batchStartInput>;
/** Input of `watch.set`. */
export type WatchSetInput = z.output<typeof watchSetInput>;
/** Input of `settings.set`. */
export type SettingsInput = z.output<typeof settingsInput>;

// ---- the command table --------------------------------------------------------------------------

/** One command: its input schema and how it calls the station. */
export interface CommandSpec<S extends z.ZodType, R> {
  readonly input: S;
  readonly run: (station: Station, input: z.output<S>) => Promise<R>;
  /** One line for the API documentation. */
  readonly summary: string;
}

function command<S extends z.ZodType, R>(
  summary: string,
  input: S,
  run: (station: Station, input: z.output<S>) => Promise<R>,
): CommandSpec<S, R> {
  return { summary, input, run };
}

/** A plist value as JSON: 64-bit integers as decimal text, data as base64. */
export type JsonPlist = string | number | boolean | null | JsonPlist[] | { [key: string]: JsonPlist };

function toJsonPlist(v: unknown): JsonPlist {
  if (v === undefined || v === null) return null;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Uint8Array) {
    let s = '';
    for (const b of v) s += String.fromCharCode(b);
    return btoa(s);
  }
  if (Array.isArray(v)) return v.map(toJsonPlist);
  if (typeof v === 'object') {
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, toJsonPlist(x)]));
  }
  return String(v);
}

/** Every station command. Names are `area.verb`; bindings prefix them (`kit:devices.list`). */
export const COMMANDS = {
  'devices.list': command('attached USB devices with their identity', none, (s) => s.listDevices()),
  'devices.states': command('every device the station tracks: state and next action', none, (s) =>
    Promise.resolve(s.deviceStates()),
  ),
  'devices.info': command(
    'lockdown values (pairs first if needed)',
    z.strictObject({ udid, domain: z.string().min(1).optional(), key: z.string().min(1).optional() }),
    async (s, i) =>
      toJsonPlist(
        await s.info(i.udid, {
          ...(i.domain !== undefined ? { domain: i.domain } : {}),
          ...(i.key !== undefined ? { key: i.key } : {}),
        }),
      ),
  ),
  'devices.pair': command(
    'pair (supervised with an identity)',
    z.strictObject({ udid, identityId: z.string().min(1).max(64).optional() }),
    (s, i) => s.pair(i.udid, i.identityId !== undefined ? { identityId: i.identityId } : {}),
  ),
  'devices.unpair': command('remove this host’s pairing', z.strictObject({ udid }), (s, i) => s.unpair(i.udid)),
  'devices.restart': command('restart the device', z.strictObject({ udid }), (s, i) => s.restart(i.udid)),
  'devices.shutdown': command('shut the device down', z.strictObject({ udid }), (s, i) => s.shutdown(i.udid)),
  'devices.erase': command(
    'erase all content and settings; needs the typed confirmation ERASE',
    z.strictObject({
      udids: z.array(udid).min(1).max(1000),
      confirmation: z.literal(ERASE_CONFIRMATION),
      wait: z.boolean().default(true),
    }),
    (s, i) => s.erase(i.udids, { wait: i.wait }),
  ),
  'batch.start': command('run a blueprint on devices (global and per-hub caps)', batchStartInput, (s, i) =>
    Promise.resolve(
      s.startBatch({
        blueprint: i.blueprint,
        udids: i.udids,
        maxParallel: i.maxParallel,
        confirmedErase: i.confirmedErase,
        ...(i.perHub !== undefined ? { perHub: i.perHub } : {}),
      }),
    ),
  ),
  'batch.pause': command('no new job starts; running jobs finish', none, (s) => Promise.resolve(s.pauseBatch())),
  'batch.resume': command('start queued devices again', none, (s) => Promise.resolve(s.resumeBatch())),
  'batch.stop': command('cancel running jobs (persisted) and end the batch', none, (s) => s.stopBatch()),
  'batch.status': command('the running batch or watch session, with its counts', none, (s) =>
    Promise.resolve(s.batchStatus()),
  ),
  'watch.set': command('auto-apply a blueprint to every attached device, or stop doing so', watchSetInput, (s, i) =>
    s.setWatch(i),
  ),
  'jobs.list': command(
    'jobs with their steps',
    z.strictObject({
      udid: udid.optional(),
      status: z.enum(['pending', 'running', 'waiting', 'done', 'failed', 'cancelled']).optional(),
    }),
    (s, i) =>
      Promise.resolve(
        s.jobs({
          ...(i.udid !== undefined ? { udid: i.udid } : {}),
          ...(i.status !== undefined ? { statuses: [i.status] } : {}),
        }),
      ),
  ),
  'jobs.retry': command(
    'run the job’s blueprint on its device again (queued in the running batch, else a new batch)',
    z.strictObject({ jobId: z.string().min(1).max(64) }),
    (s, i) => s.retryJob(i.jobId),
  ),
  'identities.list': command('organization identities (no secrets)', none, (s) => Promise.resolve(s.identities())),
  'blueprints.list': command('stored blueprints', none, (s) => Promise.resolve(s.blueprints())),
  'identities.create': command(
    'create an organization identity (RSA key + self-signed certificate)',
    z.strictObject({
      org: z.string().trim().min(1).max(200),
      country: z
        .string()
        .regex(/^[A-Za-z]{2}$/)
        .optional(),
    }),
    (s, i) =>
      s.createIdentity({ org: i.org, ...(i.country !== undefined ? { country: i.country.toUpperCase() } : {}) }),
  ),
  'identities.import': command(
    'import an identity from file bytes (.p12 + password, PEM, DER certificate + key)',
    z.strictObject({
      fileName: z.string().min(1).max(255),
      fileBase64: z
        .string()
        .min(1)
        .max(1024 * 1024),
      keyBase64: z
        .string()
        .min(1)
        .max(1024 * 1024)
        .optional(),
      password: z.string().max(1024).optional(),
      org: z.string().trim().min(1).max(200).optional(),
    }),
    (s, i) =>
      s.importIdentity({
        fileName: i.fileName,
        fileBase64: i.fileBase64,
        ...(i.keyBase64 !== undefined ? { keyBase64: i.keyBase64 } : {}),
        ...(i.password !== undefined && i.password !== '' ? { password: i.password } : {}),
        ...(i.org !== undefined ? { org: i.org } : {}),
      }),
  ),
  'identities.export': command(
    'export an identity as file bytes (p12 needs a password; DER gives certificate + key)',
    z.strictObject({
      id: z.string().min(1).max(64),
      format: z.enum(['p12', 'pem', 'der']),
      password: z.string().min(1).max(1024).optional(),
    }),
    (s, i) =>
      s.exportIdentity({ id: i.id, format: i.format, ...(i.password !== undefined ? { password: i.password } : {}) }),
  ),
  'messages.get': command(
    'the error words (title + what to do) of every code, in one language',
    z.strictObject({ lang: z.enum(['ja', 'en']) }),
    (s, i) => Promise.resolve(s.messages(i.lang)),
  ),
  'skipPanes.list': command('the Setup Assistant skip-pane catalogue with platforms and ja/en labels', none, (s) =>
    Promise.resolve(s.skipPanes()),
  ),
  'blueprints.validate': command(
    'check a blueprint without storing it: field issues with ja/en messages',
    z.strictObject({ blueprint: z.record(z.string(), z.unknown()) }),
    (s, i) => Promise.resolve(s.validateBlueprint(i.blueprint)),
  ),
  'devices.cloudConfiguration': command(
    'the device’s cloud configuration (Apple keys), or null',
    z.strictObject({ udid }),
    async (s, i) => toJsonPlist(await s.cloudConfiguration(i.udid)),
  ),
  'devices.profiles': command('installed configuration profiles', z.strictObject({ udid }), async (s, i) =>
    toJsonPlist(await s.profiles(i.udid)),
  ),
  'blueprints.export': command('a stored blueprint as JSON text, secrets left out', z.strictObject({ name }), (s, i) =>
    Promise.resolve(s.exportBlueprint(i.name)),
  ),
  'blueprints.import': command(
    'store a blueprint (field-level issues when invalid; MDM group credentials checked, "not checked" when offline)',
    z.strictObject({ blueprint: z.record(z.string(), z.unknown()), replace: z.boolean().default(false) }),
    (s, i) => s.importBlueprint(i.blueprint, { replace: i.replace }),
  ),
  'blueprints.delete': command('delete a stored blueprint', z.strictObject({ name }), (s, i) =>
    Promise.resolve(s.deleteBlueprint(i.name)),
  ),
  'plans.list': command('stored serial plans', none, (s) => Promise.resolve(s.plans())),
  'plans.import': command(
    'import a CSV plan (all or nothing)',
    z.strictObject({
      csvBase64: z
        .string()
        .min(1)
        .max(16 * 1024 * 1024),
      name: name.optional(),
      encoding: z.enum(['auto', 'utf-8', 'shift_jis']).default('auto'),
    }),
    (s, i) =>
      Promise.resolve(
        s.importPlan(i.csvBase64, { encoding: i.encoding, ...(i.name !== undefined ? { name: i.name } : {}) }),
      ),
  ),
  'plans.preview': command(
    'read and check a CSV plan without storing it: encoding, format, first rows, or every bad row',
    z.strictObject({
      csvBase64: z
        .string()
        .min(1)
        .max(16 * 1024 * 1024),
      name: name.optional(),
      encoding: z.enum(['auto', 'utf-8', 'shift_jis']).default('auto'),
    }),
    (s, i) =>
      Promise.resolve(
        s.previewPlan(i.csvBase64, { encoding: i.encoding, ...(i.name !== undefined ? { name: i.name } : {}) }),
      ),
  ),
  'plans.export': command(
    'the stored plans as one named-column CSV (base64)',
    z.strictObject({ encoding: z.enum(['utf-8', 'shift_jis']).default('utf-8') }),
    (s, i) => Promise.resolve(s.exportPlansCsv(i.encoding)),
  ),
  'report.csv': command(
    'the kitting report as CSV bytes (base64): UTF-8 with BOM or Shift_JIS, ja/en headers',
    z.strictObject({
      since: z.string().min(1).max(64).optional(),
      lang: z.enum(['ja', 'en']).default('ja'),
      encoding: z.enum(['utf-8', 'shift_jis']).default('utf-8'),
    }),
    (s, i) =>
      Promise.resolve(
        s.reportCsv({ lang: i.lang, encoding: i.encoding, ...(i.since !== undefined ? { since: i.since } : {}) }),
      ),
  ),
  'report.generate': command(
    'the kitting report: one row per finished job, hourly throughput',
    z.strictObject({ since: z.string().min(1).max(64).optional() }),
    (s, i) => Promise.resolve(s.report(i.since !== undefined ? { since: i.since } : {})),
  ),
  'station.info': command('where the station keeps its data (read-only, for the settings screen)', none, (s) =>
    Promise.resolve({ dataDir: s.dataDir }),
  ),
  'sync.status': command('MDM sync: state, queue length, delivered, last error, next try, offline since', none, (s) =>
    Promise.resolve(s.syncStatus()),
  ),
  'sync.configure': command(
    'set the MDM URL and station token (checked with the MDM first; stored sealed, never echoed)',
    z.strictObject({ url: z.string().trim().min(1).max(2048), token: z.string().min(1).max(4096) }),
    (s, i) => s.configureSync(i),
  ),
  'secrets.setGroupPassword': command(
    'store a group enrollment password sealed by the vault; answers its blueprint reference (never the password)',
    z.strictObject({
      id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'a secret id is letters, digits, dots, dashes'),
      password: z.string().min(1).max(1024),
    }),
    (s, i) => s.setGroupPassword(i.id, i.password),
  ),
  'sync.run': command('deliver queued results to the MDM now and refresh enrollment confirmations', none, (s) =>
    s.runSync(),
  ),
  'sync.groups': command('the MDM groups as last fetched, with the fetch time (offline blueprint editing)', none, (s) =>
    Promise.resolve(s.syncGroups()),
  ),
  'mdm.device': command(
    'whether the MDM holds a record of a serial, and its state',
    z.strictObject({ serial }),
    (s, i) => s.mdmDevice(i.serial),
  ),
  'mdm.inactivate': command(
    'inactivate a device at the MDM (forced needs force: true); audited',
    z.strictObject({ serial, force: z.boolean().default(false), confirmed: z.literal(true) }),
    (s, i) => s.mdmInactivate(i.serial, i.force),
  ),
  'mdm.delete': command(
    'delete an inactive device record at the MDM, freeing its license; audited',
    z.strictObject({ serial, confirmed: z.literal(true) }),
    (s, i) => s.mdmDelete(i.serial),
  ),
  'usb.status': command('whether USB (ports, recovery/DFU detection) works here, and why not', none, (s) =>
    s.usbStatus(),
  ),
  'usb.devices': command('Apple devices on the USB bus (recovery and DFU included) with their ports', none, (s) =>
    s.usbDevices(),
  ),
  'devices.leaveRecovery': command(
    'take a recovery-mode device out of recovery (it boots iOS); audited',
    z.strictObject({ ecid: ecidText }),
    (s, i) => s.leaveRecovery(i.ecid),
  ),
  'devices.enterRecovery': command(
    'reboot a device into recovery mode (disruptive: needs confirmed: true); audited',
    z.strictObject({ udid, confirmed: z.literal(true) }),
    (s, i) => s.enterRecovery(i.udid, { confirmed: i.confirmed }),
  ),
  'settings.get': command('station-wide settings', none, (s) => Promise.resolve(s.settings())),
  'settings.set': command('change station-wide settings (given keys only)', settingsInput, (s, i) =>
    Promise.resolve(s.updateSettings(i)),
  ),
} as const;

/** Every command name. */
export type CommandName = keyof typeof COMMANDS;
/** What a caller sends for a command (defaults may be left out). */
export type CommandInput<N extends CommandName> = z.input<(typeof COMMANDS)[N]['input']>;
/** What a command answers. */
export type CommandResult<N extends CommandName> = Awaited<ReturnType<(typeof COMMANDS)[N]['run']>>;

/** The command names, in table order. */
export const COMMAND_NAMES = Object.keys(COMMANDS) as CommandName[];

/** True when `name` is a command. */
export function isCommandName(name: string): name is CommandName {
  return Object.prototype.hasOwnProperty.call(COMMANDS, name);
}

/**
 * Parses a command's input. @throws KitError `usage/invalid-argument` located at the first bad
 * field (`details.path`, dotted; empty for the whole input), `usage/unknown-command`.
 */
export function parseInput<N extends CommandName>(
  command: N | string,
  input: unknown,
): z.output<(typeof COMMANDS)[N]['input']> {
  if (!isCommandName(command)) throw new KitError('usage/unknown-command', `no station command is named ${command}`);
  const spec = COMMANDS[command] as CommandSpec<z.ZodType, unknown>;
  const parsed = spec.input.safeParse(input ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = (issue?.path ?? []).map(String).join('.');
    throw new KitError(
      'usage/invalid-argument',
      `${command}: ${path === '' ? 'input' : path}: ${issue?.message ?? 'invalid'}`,
      { details: { command, path, issue: issue?.code ?? 'invalid', issues: parsed.error.issues.length } },
    );
  }
  return parsed.data as z.output<(typeof COMMANDS)[N]['input']>;
}

/** Validates `input` and calls the station. Throws the station's KitErrors and those of {@link parseInput}. */
export async function dispatch<N extends CommandName>(
  station: Station,
  command: N,
  input: unknown,
): Promise<CommandResult<N>> {
  const data = parseInput(command, input);
  const spec = COMMANDS[command] as CommandSpec<z.ZodType, unknown>;
  return (await spec.run(station, data)) as CommandResult<N>;
}

/** The answer of {@link dispatchEnvelope}: errors travel as data (their fields survive IPC). */
export type Envelope<R> =
  { readonly ok: true; readonly result: R } | { readonly ok: false; readonly error: SerializedKitError };

/** {@link dispatch} that never throws: `{ ok: true, result }` or `{ ok: false, error }` (a serialized KitError). */
export async function dispatchEnvelope(station: Station, command: string, input: unknown): Promise<Envelope<unknown>> {
  try {
    if (!isCommandName(command)) throw new KitError('usage/unknown-command', `no station command is named ${command}`);
    return { ok: true, result: await dispatch(station, command, input) };
  } catch (err) {
    return { ok: false, error: toKitError(err).toJSON() };
  }
}

// ---- wire format (headless server and Electron IPC; src/server/README.md) ----------------------

/** A command sent over the headless server's WebSocket (`GET /api/ws`). `id` is echoed in the answer. */
export interface WireRequest {
  readonly id: number | string;
  readonly command: CommandName;
  readonly input?: unknown;
}

/**
 * The answer to a {@link WireRequest}: the command's {@link Envelope} with the request's `id`
 * (`null` when the message could not be read at all). In JSON, BigInt values are decimal strings
 * and bytes are base64.
 */
export type WireResponse =
  | { readonly id: number | string | null; readonly ok: true; readonly result: unknown }
  | { readonly id: number | string | null; readonly ok: false; readonly error: SerializedKitError };

/** A station event pushed to every WebSocket (and to the Electron renderer on channel `kit:event`). */
export interface WireEvent {
  readonly event: StationEvent;
}

/** Prefix of every Electron IPC channel: `kit:<command>` for commands, `kit:event` for events. */
export const IPC_PREFIX = 'kit:';
/** The Electron IPC channel carrying {@link StationEvent}s to the renderer. */
export const IPC_EVENT_CHANNEL = 'kit:event';
