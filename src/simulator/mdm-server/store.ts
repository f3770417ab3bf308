/**
 * The reference MDM server's own SQLite database (not the station's): groups with their enrollment
 * credentials and auto-applied service plan, registered devices and their enrollment, the
 * enrollments (one issued identity each), pre-assigned serials, kitting results keyed by idempotency
 * key, and a few settings (license total, server CA, device CA, secret).
 *
 * Licenses follow mobiconnect (seeds/digest.md): a device record consumes one license from its first
 * registration until the record is deleted; inactivation keeps it consumed.
 */
import Database from 'better-sqlite3';

type Db = InstanceType<typeof Database>;

/** A device's state under management (無効 = `inactive`). */
export type DeviceState = 'active' | 'inactive';

/** How far the device's own MDM enrollment went, from the server's view. */
export type EnrollmentStatus = 'profile-issued' | 'authenticated' | 'enrolled' | 'unenrolled';

/** A group row. */
export interface GroupRow {
  id: string;
  name: string;
  path: string;
  enrollUserId: string | null;
  enrollPassword: string | null;
  credentialsExpireAt: string | null;
  servicePlan: string | null;
}

/** A device row. */
export interface DeviceRow {
  serial: string;
  udid: string;
  groupId: string;
  state: DeviceState;
  product: string | null;
  osVersion: string | null;
  registeredAt: string;
  enrolledAt: string | null;
  lastCheckIn: string | null;
  licenseConsumed: boolean;
  servicePlan: string | null;
  lost: boolean;
  wiped: boolean;
  enrollmentStatus: EnrollmentStatus;
  enrollmentAt: string;
  enrollmentId: string | null;
  pushToken: string | null;
  pushMagic: string | null;
  inactivatedAt: string | null;
  inactivation: 'normal' | 'forced' | null;
}

/** An enrollment: one issued profile and identity. */
export interface EnrollmentRow {
  id: string;
  groupId: string;
  /** The device it was issued to (device enrollment), null for a station-fetched profile. */
  serial: string | null;
  udid: string | null;
  fingerprint: string;
  certificatePem: string;
  topic: string;
  createdAt: string;
}

/** A kitting result as stored. */
export interface NewResultRow {
  idempotencyKey: string;
  serial: string;
  body: string;
  receivedAt: string;
}

/** A stored kitting result. */
export interface ResultRow extends NewResultRow {
  /** How many times the same result came again after it was stored (answered as a duplicate). */
  duplicateReceipts: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS groups (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, path TEXT NOT NULL,
  enroll_user_id TEXT UNIQUE, enroll_password TEXT, credentials_expire_at TEXT, service_plan TEXT);
CREATE TABLE IF NOT EXISTS devices (
  serial TEXT PRIMARY KEY, udid TEXT NOT NULL, group_id TEXT NOT NULL, state TEXT NOT NULL,
  product TEXT, os_version TEXT, registered_at TEXT NOT NULL, enrolled_at TEXT, last_check_in TEXT,
  license_consumed INTEGER NOT NULL, service_plan TEXT, lost INTEGER NOT NULL DEFAULT 0,
  wiped INTEGER NOT NULL DEFAULT 0, enrollment_status TEXT NOT NULL, enrollment_at TEXT NOT NULL,
  enrollment_id TEXT, push_token TEXT, push_magic TEXT, inactivated_at TEXT, inactivation TEXT);
CREATE TABLE IF NOT EXISTS enrollments (
  id TEXT PRIMARY KEY, group_id TEXT NOT NULL, serial TEXT, udid TEXT, fingerprint TEXT NOT NULL UNIQUE,
  certificate_pem TEXT NOT NULL, topic TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS assignments (serial TEXT PRIMARY KEY, group_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
  idempotency_key TEXT PRIMARY KEY, serial TEXT NOT NULL, body TEXT NOT NULL, received_at TEXT NOT NULL,
  duplicate_receipts INTEGER NOT NULL DEFAULT 0);
`;

interface RawDevice {
  serial: string;
  udid: string;
  group_id: string;
  state: string;
  product: string | null;
  os_version: string | null;
  registered_at: string;
  enrolled_at: string | null;
  last_check_in: string | null;
  license_consumed: number;
  service_plan: string | null;
  lost: number;
  wiped: number;
  enrollment_status: string;
  enrollment_at: string;
  enrollment_id: string | null;
  push_token: string | null;
  push_magic: string | null;
  inactivated_at: string | null;
  inactivation: string | null;
}

function toDevice(r: RawDevice): DeviceRow {
  return {
    serial: r.serial,
    udid: r.udid,
    groupId: r.group_id,
    state: r.state === 'inactive' ? 'inactive' : 'active',
    product: r.product,
    osVersion: r.os_version,
    registeredAt: r.registered_at,
    enrolledAt: r.enrolled_at,
    lastCheckIn: r.last_check_in,
    licenseConsumed: r.license_consumed === 1,
    servicePlan: r.service_plan,
    lost: r.lost === 1,
    wiped: r.wiped === 1,
    enrollmentStatus: r.enrollment_status as EnrollmentStatus,
    enrollmentAt: r.enrollment_at,
    enrollmentId: r.enrollment_id,
    pushToken: r.push_token,
    pushMagic: r.push_magic,
    inactivatedAt: r.inactivated_at,
    inactivation: r.inactivation === 'normal' || r.inactivation === 'forced' ? r.inactivation : null,
  };
}

interface RawGroup {
  id: string;
  name: string;
  path: string;
  enroll_user_id: string | null;
  enroll_password: string | null;
  credentials_expire_at: string | null;
  service_plan: string | null;
}

function toGroup(r: RawGroup): GroupRow {
  return {
    id: r.id,
    name: r.name,
    path: r.path,
    enrollUserId: r.enroll_user_id,
    enrollPassword: r.enroll_password,
    credentialsExpireAt: r.credentials_expire_at,
    servicePlan: r.service_plan,
  };
}

/** The server's database; see the module comment. */
export class MdmStore {
  readonly db: Db;

  constructor(file: string) {
    this.db = new Database(file, { timeout: 5000 });
    if (file !== ':memory:') this.db.pragma('journal_mode = WAL');
    this.db.exec(SCHEMA);
    // A file written before `duplicate_receipts` existed gets the column (count 0).
    const columns = this.db.prepare("SELECT name FROM pragma_table_info('results')").all() as { name: string }[];
    if (!columns.some((c) => c.name === 'duplicate_receipts'))
      this.db.exec('ALTER TABLE results ADD COLUMN duplicate_receipts INTEGER NOT NULL DEFAULT 0');
  }

  close(): void {
    this.db.close();
  }

  /** Runs `fn` in one transaction. */
  tx<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  setting(key: string): string | undefined {
    const r = this.db.prepare('SELECT value FROM settings WHERE key = ?').get(key) as { value: string } | undefined;
    return r?.value;
  }

  setSetting(key: string, value: string): void {
    this.db
      .prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value')
      .run(key, value);
  }

  // groups

  groups(): GroupRow[] {
    return (this.db.prepare('SELECT * FROM groups ORDER BY path, id').all() as RawGroup[]).map(toGroup);
  }

  group(id: string): GroupRow | undefined {
    const r = this.db.prepare('SELECT * FROM groups WHERE id = ?').get(id) as RawGroup | undefined;
    return r === undefined ? undefined : toGroup(r);
  }

  groupByUserId(userId: string): GroupRow | undefined {
    const r = this.db.prepare('SELECT * FROM groups WHERE enroll_user_id = ?').get(userId) as RawGroup | undefined;
    return r === undefined ? undefined : toGroup(r);
  }

  /** Creates or replaces a group (devices keep their group id). */
  putGroup(g: GroupRow): void {
    this.db
      .prepare(
        `INSERT INTO groups (id, name, path, enroll_user_id, enroll_password, credentials_expire_at, service_plan)
         VALUES (@id, @name, @path, @enrollUserId, @enrollPassword, @credentialsExpireAt, @servicePlan)
         ON CONFLICT(id) DO UPDATE SET name = excluded.name, path = excluded.path,
           enroll_user_id = excluded.enroll_user_id, enroll_password = excluded.enroll_password,
           credentials_expire_at = excluded.credentials_expire_at, service_plan = excluded.service_plan`,
      )
      .run(g);
  }

  // devices

  devices(): DeviceRow[] {
    return (this.db.prepare('SELECT * FROM devices ORDER BY serial').all() as RawDevice[]).map(toDevice);
  }

  device(serial: string): DeviceRow | undefined {
    const r = this.db.prepare('SELECT * FROM devices WHERE serial = ?').get(serial) as RawDevice | undefined;
    return r === undefined ? undefined : toDevice(r);
  }

  deviceByUdid(udid: string): DeviceRow | undefined {
    const r = this.db.prepare('SELECT * FROM devices WHERE udid = ?').get(udid) as RawDevice | undefined;
    return r === undefined ? undefined : toDevice(r);
  }

  /** Inserts or replaces a whole device row. */
  putDevice(d: DeviceRow): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO devices (serial, udid, group_id, state, product, os_version, registered_at,
           enrolled_at, last_check_in, license_consumed, service_plan, lost, wiped, enrollment_status,
           enrollment_at, enrollment_id, push_token, push_magic, inactivated_at, inactivation)
         VALUES (@serial, @udid, @groupId, @state, @product, @osVersion, @registeredAt, @enrolledAt,
           @lastCheckIn, @licenseConsumed, @servicePlan, @lost, @wiped, @enrollmentStatus, @enrollmentAt,
           @enrollmentId, @pushToken, @pushMagic, @inactivatedAt, @inactivation)`,
      )
      .run({ ...d, licenseConsumed: d.licenseConsumed ? 1 : 0, lost: d.lost ? 1 : 0, wiped: d.wiped ? 1 : 0 });
  }

  deleteDevice(serial: string): void {
    this.db.prepare('DELETE FROM devices WHERE serial = ?').run(serial);
  }

  licensesConsumed(): number {
    const r = this.db.prepare('SELECT COUNT(*) AS n FROM devices WHERE license_consumed = 1').get() as { n: number };
    return r.n;
  }

  // enrollments and assignments

  putEnrollment(e: EnrollmentRow): void {
    this.db
      .prepare(
        `INSERT INTO enrollments (id, group_id, serial, udid, fingerprint, certificate_pem, topic, created_at)
         VALUES (@id, @groupId, @serial, @udid, @fingerprint, @certificatePem, @topic, @createdAt)`,
      )
      .run(e);
  }

  enrollmentByFingerprint(fingerprint: string): EnrollmentRow | undefined {
    const r = this.db
      .prepare(
        `SELECT id, group_id AS groupId, serial, udid, fingerprint, certificate_pem AS certificatePem, topic,
           created_at AS createdAt FROM enrollments WHERE fingerprint = ?`,
      )
      .get(fingerprint) as EnrollmentRow | undefined;
    return r;
  }

  assignment(serial: string): string | undefined {
    const r = this.db.prepare('SELECT group_id FROM assignments WHERE serial = ?').get(serial) as
      { group_id: string } | undefined;
    return r?.group_id;
  }

  assign(serial: string, groupId: string): void {
    this.db
      .prepare(
        'INSERT INTO assignments (serial, group_id) VALUES (?, ?) ON CONFLICT(serial) DO UPDATE SET group_id = excluded.group_id',
      )
      .run(serial, groupId);
  }

  // results

  result(key: string): ResultRow | undefined {
    return this.db
      .prepare(
        `SELECT idempotency_key AS idempotencyKey, serial, body, received_at AS receivedAt,
           duplicate_receipts AS duplicateReceipts FROM results WHERE idempotency_key = ?`,
      )
      .get(key) as ResultRow | undefined;
  }

  putResult(r: NewResultRow): void {
    this.db
      .prepare(
        'INSERT INTO results (idempotency_key, serial, body, received_at) VALUES (@idempotencyKey, @serial, @body, @receivedAt)',
      )
      .run(r);
  }

  /** Counts one more receipt of an already stored result (a replay answered as a duplicate). */
  noteDuplicate(key: string): void {
    this.db
      .prepare('UPDATE results SET duplicate_receipts = duplicate_receipts + 1 WHERE idempotency_key = ?')
      .run(key);
  }

  results(): ResultRow[] {
    return this.db
      .prepare(
        `SELECT idempotency_key AS idempotencyKey, serial, body, received_at AS receivedAt,
           duplicate_receipts AS duplicateReceipts FROM results ORDER BY rowid`,
      )
      .all() as ResultRow[];
  }
}
