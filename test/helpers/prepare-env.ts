/**
 * A station set up for `prepare` tests: a fresh data folder with a vault (scrypt at its floor, so
 * tests stay fast), one supervision identity, its .p12 for the simulator's `supervised` preset, and
 * blueprint files. Everything lives in one unique temp folder, removed by {@link PrepareEnv.cleanup}.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UsbmuxClient } from '../../src/device/usbmux.ts';
import { DeviceWatcher } from '../../src/device/watcher.ts';
import { IdentityService } from '../../src/identity/identity.ts';
import { MIN_SCRYPT, PassphraseVault } from '../../src/identity/vault.ts';
import type { BlueprintInput } from '../../src/kitting/blueprint.ts';
import { prepareStation, type PrepareDeviceResult, type PrepareEvent } from '../../src/kitting/prepare.ts';
import { openStationDatabase, type Db } from '../../src/store/db.ts';
import { listJobs, listStepEvents, type JobRecord } from '../../src/store/jobs.ts';
import { KITTING, NODE, profileBytes, run, type RunResult } from './sim-process.ts';

/** The passphrase every test vault uses. */
export const PASSPHRASE = 'prepare-test-passphrase';

/** A prepared station folder. */
export interface PrepareEnv {
  readonly dir: string;
  readonly dataDir: string;
  readonly passphraseFile: string;
  readonly identityId: string;
  /** The identity as .p12 (for `--identity-p12` / `identityP12`). */
  readonly p12: Buffer;
  readonly p12Password: string;
  /** Writes a blueprint file (defaults below, `overrides` on top) and returns its path. */
  blueprint(name: string, overrides?: Partial<BlueprintInput>): string;
  /** Writes an unsigned profile file and returns its path (relative names resolve from `dir`). */
  profile(file: string, identifier: string): string;
  /** Runs `kitting --data-dir … --passphrase-file … args` against `usbmuxd`. */
  kitting(usbmuxd: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<RunResult>;
  /** Opens the station database (close it after use). */
  db(): Db;
  /** `PRAGMA integrity_check` of the station database (`ok` when sound). */
  integrity(): unknown;
  /** Every job with its steps. */
  jobs(): JobRecord[];
  /** Kinds of the step events of a job (`stepStarted`… are not stored; these are the store's kinds). */
  stepEventKinds(jobId: string): string[];
  cleanup(): void;
}

/**
 * Creates a station folder with one identity (org `org`, id `test-org`); with `identity: false` the
 * folder has no vault and no identity yet (the `identityId`, `p12` fields are then empty).
 */
export async function createPrepareEnv(
  org = 'Prepare Test School',
  options: { identity?: boolean } = {},
): Promise<PrepareEnv> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kitting-prepare-'));
  const dataDir = path.join(dir, 'data');
  const passphraseFile = path.join(dir, 'passphrase');
  fs.writeFileSync(passphraseFile, PASSPHRASE, { mode: 0o600 });
  let identityId = '';
  const p12Password = 'p12-password';
  const p12File = path.join(dir, 'identity.p12');
  fs.writeFileSync(p12File, '');
  if (options.identity !== false) {
    const db = openStationDatabase(dataDir);
    try {
      const service = new IdentityService({
        db,
        vault: () => PassphraseVault.open({ dataDir, passphrase: PASSPHRASE, createWith: MIN_SCRYPT }),
      });
      identityId = (await service.create({ org, id: 'test-org' })).id;
      await service.export(identityId, { out: p12File, format: 'p12', password: p12Password });
    } finally {
      db.close();
    }
  }
  const p12 = fs.readFileSync(p12File);
  const openDb = (): Db => openStationDatabase(dataDir);
  return {
    dir,
    dataDir,
    passphraseFile,
    identityId,
    p12,
    p12Password,
    blueprint(name, overrides = {}) {
      const bp: BlueprintInput = {
        version: 1,
        name,
        organization: { identityId, displayName: org },
        supervise: true,
        allowPairing: true,
        skipSetup: 'all',
        enrollment: { method: 'none' },
        naming: { template: 'CART-{serial}', start: 1 },
        locale: { language: 'ja', region: 'ja_JP', timeZone: 'Asia/Tokyo' },
        profiles: [],
        eraseIfNeeded: true,
        finish: 'none',
        ...overrides,
      };
      const file = path.join(dir, `${name}.json`);
      fs.writeFileSync(file, JSON.stringify(bp, null, 2));
      return file;
    },
    profile(file, identifier) {
      const full = path.join(dir, file);
      fs.writeFileSync(full, profileBytes(identifier));
      return full;
    },
    kitting(usbmuxd, args, env = {}) {
      return run(NODE, [KITTING, '--data-dir', dataDir, '--passphrase-file', passphraseFile, ...args], {
        env: { USBMUXD_SOCKET_ADDRESS: usbmuxd, KITTING_LOG: 'error', ...env },
        timeoutMs: 120_000,
      });
    },
    db: openDb,
    integrity() {
      const db = openDb();
      try {
        return db.pragma('integrity_check', { simple: true });
      } finally {
        db.close();
      }
    },
    jobs() {
      const d = openDb();
      try {
        return listJobs(d);
      } finally {
        d.close();
      }
    },
    stepEventKinds(jobId) {
      const d = openDb();
      try {
        return listStepEvents(d, jobId).map((e) => e.kind);
      } finally {
        d.close();
      }
    },
    cleanup() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Options of {@link prepareInProcess}. */
export interface InProcessOptions {
  readonly usbmuxd: string;
  readonly udids: readonly string[] | 'all';
  readonly blueprint: string;
  readonly yes?: boolean;
  readonly maxParallel?: number;
  readonly activationUrl?: string;
  readonly returnTimeoutMs?: number;
  readonly pairTimeoutMs?: number;
  readonly signal?: AbortSignal;
  readonly onEvent?: (e: PrepareEvent) => void;
}

/** Runs the station's prepare in this process (usbmux client + watcher of its own); returns results and events. */
export async function prepareInProcess(
  env: PrepareEnv,
  o: InProcessOptions,
): Promise<{ results: PrepareDeviceResult[]; events: PrepareEvent[] }> {
  const usbmux = new UsbmuxClient(o.usbmuxd);
  const watcher = new DeviceWatcher(usbmux);
  await watcher.start();
  const events: PrepareEvent[] = [];
  try {
    const results = await prepareStation(
      {
        usbmux,
        watcher,
        dataDir: env.dataDir,
        pairTimeoutMs: o.pairTimeoutMs ?? 3_000,
        retry: { baseDelayMs: 50, maxDelayMs: 200 },
      },
      {
        udids: o.udids,
        blueprint: o.blueprint,
        confirmedErase: o.yes === true,
        maxParallel: o.maxParallel ?? 4,
        passphraseFile: env.passphraseFile,
        eraseReturnTimeoutMs: 20_000,
        returnTimeoutMs: o.returnTimeoutMs ?? 5_000,
        ...(o.activationUrl !== undefined ? { activationUrl: o.activationUrl } : {}),
        ...(o.signal !== undefined ? { signal: o.signal } : {}),
      },
      (e) => {
        events.push(e);
        o.onEvent?.(e);
      },
    );
    return { results, events };
  } finally {
    watcher.stop();
  }
}
