/**
 * Helpers of the mdm-loop tests: a station folder configured for sync against a reference MDM
 * server (URL in the settings, token and group passwords sealed by the test vault), and small
 * readers of the MDM facts a job recorded.
 */
import { UsbmuxClient } from '../../src/device/usbmux.ts';
import { DeviceWatcher } from '../../src/device/watcher.ts';
import { PassphraseVault } from '../../src/identity/vault.ts';
import { prepareStation, type PrepareDeviceResult, type PrepareEvent } from '../../src/kitting/prepare.ts';
import { MdmClient } from '../../src/mdm/client.ts';
import { saveGroupPassword, saveStationToken, saveUrl } from '../../src/mdm/secrets.ts';
import { listStepEvents } from '../../src/store/jobs.ts';
import { PASSPHRASE, type InProcessOptions, type PrepareEnv } from './prepare-env.ts';

/** Stores the MDM URL and token (as `kitting sync config` does) and group passwords by secret id. */
export async function configureSync(
  env: PrepareEnv,
  url: string,
  token: string,
  groupPasswords: Readonly<Record<string, string>> = {},
): Promise<void> {
  const db = env.db();
  try {
    const vault = await PassphraseVault.open({ dataDir: env.dataDir, passphrase: PASSPHRASE });
    await saveStationToken(db, vault, token);
    saveUrl(db, url);
    for (const [id, password] of Object.entries(groupPasswords)) await saveGroupPassword(db, vault, id, password);
  } finally {
    db.close();
  }
}

/** A client of the configured MDM (for the test's own checks). */
export function stationClient(url: string, token: string): MdmClient {
  return new MdmClient({ baseUrl: url, token, timeoutMs: 5_000 });
}

/** The `mdm` facts a job recorded (check-mdm), newest last. */
export function mdmFacts(env: PrepareEnv, jobId: string): Record<string, unknown>[] {
  const db = env.db();
  try {
    return listStepEvents(db, jobId)
      .filter((e) => e.kind === 'factsRecorded:mdm')
      .map((e) => e.details as Record<string, unknown>);
  } finally {
    db.close();
  }
}

/** {@link prepareInProcess} with the MDM options of issue #6 (`forceInactivate`). */
export async function prepareWithMdm(
  env: PrepareEnv,
  o: InProcessOptions & { forceInactivate?: boolean },
): Promise<{ results: PrepareDeviceResult[]; events: PrepareEvent[] }> {
  const usbmux = new UsbmuxClient(o.usbmuxd);
  const watcher = new DeviceWatcher(usbmux);
  await watcher.start();
  const events: PrepareEvent[] = [];
  try {
    const results = await prepareStation(
      { usbmux, watcher, dataDir: env.dataDir, pairTimeoutMs: 3_000, retry: { baseDelayMs: 50, maxDelayMs: 200 } },
      {
        udids: o.udids,
        blueprint: o.blueprint,
        confirmedErase: o.yes === true,
        maxParallel: o.maxParallel ?? 4,
        passphraseFile: env.passphraseFile,
        eraseReturnTimeoutMs: 20_000,
        returnTimeoutMs: o.returnTimeoutMs ?? 5_000,
        forceInactivate: o.forceInactivate === true,
        ...(o.activationUrl !== undefined ? { activationUrl: o.activationUrl } : {}),
      },
      (e) => events.push(e),
    );
    return { results, events };
  } finally {
    watcher.stop();
  }
}
