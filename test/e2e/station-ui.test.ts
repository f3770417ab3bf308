/**
 * The UI end to end (issue #7 B): Debian Chromium (playwright-core) against `kitting serve --port 0
 * --simulate 8 --mdm-dev` with a fresh data folder. A technician's session in order: 8 tiles
 * appear; an identity and a blueprint are made through the UI; the batch runs and all 8 finish,
 * one of them unplugged mid-run (its tile asks for it back) and plugged back; a Shift_JIS CSV with
 * one bad row gets its line named; the language switches; the server refuses requests without the
 * token. Every screen is saved to test-results/screenshots/.
 */
import fs from 'node:fs';
import path from 'node:path';
import iconv from 'iconv-lite';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlClient } from '../../src/simulator/index.ts';
import { launchChromium } from '../helpers/browser.ts';
import { ROOT, buildRenderer, startServe, type ServeProcess } from './serve-process.ts';

const SHOTS = path.join(ROOT, 'test-results', 'screenshots');

let serve: ServeProcess;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function nav(screen: string): Promise<void> {
  await page.locator(`nav button[data-screen="${screen}"]`).click();
}

beforeAll(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  buildRenderer();
  serve = await startServe(8, ['--mdm-dev']);
  browser = await launchChromium();
  const context = await browser.newContext({ locale: 'ja-JP', viewport: { width: 1400, height: 900 } });
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(m.text());
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await serve?.stop();
});

describe('station UI', () => {
  it('shows a tile for each of the 8 virtual iPads, in Japanese by default', async () => {
    await page.goto(serve.url);
    await expect.poll(() => page.locator('li.tile').count(), { timeout: 30_000 }).toBe(8);
    expect(await page.locator('html').getAttribute('lang')).toBe('ja');
    await expect
      .poll(() => page.locator('li.tile .mono').first().textContent(), { timeout: 30_000 })
      .toMatch(/^[A-Z0-9]{10,12}$/);
    await expect.poll(() => page.locator('.link-open').count()).toBe(1);
    await shot('station-ja-idle');
  });

  it('creates an organization identity through the UI and shows its fingerprint', async () => {
    await nav('organizations');
    await page.locator('input[name="org"]').fill('テスト学園');
    await page.getByRole('button', { name: '監視用IDを作成' }).click();
    await expect.poll(() => page.locator('tr', { hasText: 'テスト学園' }).count(), { timeout: 30_000 }).toBe(1);
    const fp = await page.locator('tr', { hasText: 'テスト学園' }).locator('.fingerprint').textContent();
    expect(fp).toMatch(/^([0-9A-F]{2}:){7}[0-9A-F]{2}/);
    await shot('organizations-ja');
  });

  it('exports the identity as .p12 (a download) and refuses to import it again, in the station’s words', async () => {
    await page.locator('tr', { hasText: 'テスト学園' }).getByRole('button', { name: '書き出し' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.locator('input[type="password"]').fill('export-pass');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      dialog.getByRole('button', { name: '書き出し' }).click(),
    ]);
    expect(download.suggestedFilename()).toMatch(/\.p12$/);
    const p12 = fs.readFileSync(await download.path());
    expect(p12.length).toBeGreaterThan(1000);
    await page
      .locator('input[type="file"]')
      .first()
      .setInputFiles({ name: 'school.p12', mimeType: 'application/x-pkcs12', buffer: p12 });
    await page
      .locator('section', { hasText: 'ファイルから読み込む' })
      .locator('input[type="password"]')
      .fill('export-pass');
    await page.getByRole('button', { name: '読み込む', exact: true }).click();
    await expect
      .poll(() => page.locator('.error-note').textContent(), { timeout: 10_000 })
      .toContain('この監視用IDはすでに登録されています');
    expect(await page.locator('.error-note').textContent()).toContain('identity/duplicate');
  });

  it('creates a blueprint with the editor, validated by the station field by field', async () => {
    await nav('blueprints');
    await page.getByRole('button', { name: '新規作成' }).click();
    // Empty name and no identity: the station's validation names the fields.
    await expect.poll(() => page.locator('[data-field="name"] .field-error').count(), { timeout: 10_000 }).toBe(1);
    expect(await page.getByTestId('validation').textContent()).toContain('件の項目を修正してください');
    await shot('blueprint-editor-errors-ja');
    await page.locator('#f-name').fill('e2e-cart');
    const option = page.locator('#f-organization\\.identityId option', { hasText: 'テスト学園' });
    const value = await option.getAttribute('value');
    await page.locator('#f-organization\\.identityId').selectOption(value ?? '');
    await page.locator('#f-organization\\.displayName').fill('テスト学園 情報室');
    await page.locator('#f-naming\\.template').fill('iPad-{n:3}');
    expect(await page.locator('.preview').textContent()).toContain('iPad-001');
    await expect
      .poll(() => page.getByTestId('validation').textContent(), { timeout: 10_000 })
      .toContain('問題はありません');
    await shot('blueprint-editor-ja');
    await page.getByRole('button', { name: '保存', exact: true }).click();
    await expect
      .poll(() => page.locator('table.list tr', { hasText: 'e2e-cart' }).count(), { timeout: 10_000 })
      .toBe(1);
  });

  it('stores a group enrollment password typed in the editor sealed; the blueprint keeps only its reference', async () => {
    const password = 'demo-grade1-pass';
    await nav('blueprints');
    await page.getByRole('button', { name: '新規作成' }).click();
    await page.locator('#f-name').fill('e2e-grade1');
    const option = page.locator('#f-organization\\.identityId option', { hasText: 'テスト学園' });
    await page.locator('#f-organization\\.identityId').selectOption((await option.getAttribute('value')) ?? '');
    await page.locator('#f-organization\\.displayName').fill('テスト学園 1年');
    await page.getByRole('radio', { name: '登録URL（設定アシスタントで端末が登録）' }).check();
    await page.locator('#f-enrollment\\.url').fill('https://mdm.example.jp/enroll');
    await page.locator('#f-enrollment\\.group\\.groupId').fill('demo-school-grade1');
    await page.locator('[data-field="enrollment.group.hideAuthScreen"] input[type="checkbox"]').check();
    await page.locator('#f-enrollment\\.group\\.userId').fill('demo-grade1');
    const field = page.locator('#f-enrollment\\.group\\.passwordRef');
    expect(await field.getAttribute('type')).toBe('password');
    expect(await field.inputValue()).toBe('');
    await field.fill(password);
    await expect
      .poll(() => page.getByTestId('validation').textContent(), { timeout: 10_000 })
      .toContain('問題はありません');
    await page.getByRole('button', { name: '保存', exact: true }).click();
    await expect
      .poll(() => page.locator('table.list tr', { hasText: 'e2e-grade1' }).count(), { timeout: 10_000 })
      .toBe(1);

    const r = await fetch(`${serve.origin}/api/command/blueprints.export`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${serve.token}` },
      body: JSON.stringify({ name: 'e2e-grade1' }),
    });
    const exported = JSON.stringify(await r.json());
    expect(exported).not.toContain(password);
    expect(exported).toContain('secret:group-demo-school-grade1');
    const files = (dir: string): string[] =>
      fs
        .readdirSync(dir, { withFileTypes: true })
        .flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : [path.join(dir, e.name)]));
    for (const file of files(serve.dataDir)) expect(fs.readFileSync(file).includes(password), file).toBe(false);
  });

  it('runs the blueprint on all 8; one unplugged mid-run asks to be plugged back, then all finish', async () => {
    await nav('station');
    await expect.poll(() => page.locator('.batch-bar select option', { hasText: 'e2e-cart' }).count()).toBe(1);
    await page.locator('.batch-bar select').selectOption('e2e-cart');
    await page.getByRole('button', { name: 'すべて選択' }).click();
    expect(await page.locator('li.tile[aria-selected="true"]').count()).toBe(8);
    // One device answers slowly (every reply 100 ms late), so it is surely mid-job when unplugged:
    // with `--timing none` the others finish in about a second.
    const udid = (await page.locator('li.tile').last().getAttribute('data-udid')) ?? '';
    expect(udid).not.toBe('');
    const control = new ControlClient(serve.control);
    await control.fault(udid, 'delay-ms=100');
    await page.getByRole('button', { name: '準備を開始' }).click();

    const tile = page.locator(`li.tile[data-udid="${udid}"]`);
    await expect.poll(() => tile.getAttribute('data-state'), { timeout: 30_000 }).toBe('running');
    await control.request('POST', `/devices/${udid}/unplug`);
    await expect
      .poll(() => tile.getByTestId('next-action').textContent(), { timeout: 30_000 })
      .toBe('もう一度接続してください');
    await shot('station-ja-unplugged');
    await control.fault(udid, 'clear');
    await control.request('POST', `/devices/${udid}/replug`);

    const stationStates = async (): Promise<string> => {
      const r = await fetch(`${serve.origin}/api/command/devices.states`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${serve.token}` },
        body: '{}',
      });
      return JSON.stringify(await r.json());
    };
    await expect
      .poll(() => page.locator('li.tile[data-state="done"]').count(), {
        timeout: 150_000,
        interval: 1000,
        message: 'tiles done (the station says, on failure, below)',
      })
      .toBe(8)
      .catch(async (err: unknown) => {
        throw new Error(`${String(err)}\nstation: ${await stationStates()}\nlog: ${serve.log().slice(-3000)}`);
      });
    expect(await tile.getByTestId('next-action').textContent()).toBe('完了 — 取り外せます');
    await shot('station-ja-done');
  }, 180_000);

  it('opens the device detail with its properties and step timeline', async () => {
    await page.locator('li.tile').first().getByRole('button', { name: '詳細を見る' }).click();
    await expect.poll(() => page.locator('h2', { hasText: '端末の詳細' }).count()).toBe(1);
    await expect.poll(() => page.locator('.job tbody tr').count(), { timeout: 20_000 }).toBeGreaterThan(5);
    await expect.poll(() => page.locator('.props dd').nth(2).textContent(), { timeout: 20_000 }).not.toBe('—');
    await shot('device-detail-ja');
    await page.getByRole('button', { name: /ステーションに戻る/ }).click();
  });

  it('works from the keyboard: Space selects a tile, the erase dialog traps focus, wants the typed word, Escape restores focus', async () => {
    // Back from the detail screen: nothing is selected.
    expect(await page.locator('li.tile[aria-selected="true"]').count()).toBe(0);
    const first = page.locator('li.tile').first();
    await first.focus();
    await page.keyboard.press('Space');
    expect(await first.getAttribute('aria-selected')).toBe('true');
    expect(await page.locator('li.tile[aria-selected="true"]').count()).toBe(1);
    const eraseButton = page.getByRole('button', { name: '消去…' });
    await eraseButton.focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    const confirm = dialog.getByRole('button', { name: '消去する' });
    expect(await confirm.isDisabled()).toBe(true);
    await dialog.locator('input').fill('けす');
    expect(await confirm.isDisabled()).toBe(true);
    await dialog.locator('input').fill('消去');
    expect(await confirm.isDisabled()).toBe(false);
    // Tab cycles inside the dialog.
    for (let i = 0; i < 5; i++) await page.keyboard.press('Tab');
    expect(await page.evaluate("document.activeElement?.closest('[role=dialog]') !== null")).toBe(true);
    await shot('station-ja-erase-dialog');
    await page.keyboard.press('Escape');
    expect(await page.getByRole('dialog').count()).toBe(0);
    expect(await page.evaluate('document.activeElement?.textContent')).toBe('消去…');
    await page.getByRole('button', { name: '選択を解除' }).click();
  });

  it('names the bad row of a Shift_JIS CSV, then imports a good one', async () => {
    await nav('plans');
    const bad = iconv.encode(
      'シリアル番号,端末名,資産管理番号\r\nDMPXK1AAAA01,１年１組-01,A-001\r\nBAD!,１年１組-02,A-002\r\nDMPXK1AAAA03,１年１組-03,A-003\r\n',
      'shift_jis',
    );
    await page.getByTestId('plan-file').setInputFiles({ name: 'class1.csv', mimeType: 'text/csv', buffer: bad });
    await expect.poll(() => page.getByTestId('plan-bad-rows').count(), { timeout: 10_000 }).toBe(1);
    const rows = page.getByTestId('plan-bad-rows').locator('tbody tr');
    expect(await rows.count()).toBe(1);
    expect(await rows.first().textContent()).toContain('3行目');
    await shot('plans-bad-row-ja');
    const good = iconv.encode(
      'シリアル番号,端末名,資産管理番号\r\nDMPXK1AAAA01,１年１組-01,A-001\r\nDMPXK1AAAA02,１年１組-02,A-002\r\n',
      'shift_jis',
    );
    await page.getByTestId('plan-file').setInputFiles({ name: 'class1.csv', mimeType: 'text/csv', buffer: good });
    await expect.poll(() => page.getByTestId('plan-preview').textContent(), { timeout: 10_000 }).toContain('Shift_JIS');
    await page.getByRole('button', { name: '2行を読み込む' }).click();
    await expect.poll(() => page.locator('table.list tr', { hasText: 'class1' }).count(), { timeout: 10_000 }).toBe(1);
    await shot('plans-ja');
  });

  it('shows the report with the 8 results, charts and the port map', async () => {
    await nav('reports');
    await expect.poll(() => page.getByTestId('report-table').locator('tbody tr').count(), { timeout: 10_000 }).toBe(8);
    expect(await page.locator('figure.chart').count()).toBe(2);
    expect(await page.locator('.port-cell').count()).toBe(8);
    await shot('reports-ja');
  });

  it('shows the sync queue drained to the reference MDM and the MDM record of a prepared device', async () => {
    await nav('sync');
    const status = page.getByTestId('sync-status');
    await expect
      .poll(() => status.locator('dd[data-state]').getAttribute('data-state'), { timeout: 30_000 })
      .toBe('online');
    await expect.poll(() => page.getByTestId('sync-queue').textContent(), { timeout: 60_000 }).toBe('0');
    await expect
      .poll(async () => Number((await status.locator('dd').nth(2).textContent()) ?? '0'), { timeout: 60_000 })
      .toBeGreaterThanOrEqual(8);
    const token = await page.locator('input[name="mdm-token"]').inputValue();
    expect(token).toBe('');
    const serial = ((await page.evaluate(
      "fetch('/api/command/report.generate', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }).then((r) => r.json()).then((e) => e.result.devices[0].serial)",
    )) ?? '') as string;
    await page.locator('input[name="mdm-serial"]').fill(serial);
    await page.getByRole('button', { name: 'MDMで確認' }).click();
    await expect.poll(() => page.getByTestId('mdm-device').textContent(), { timeout: 10_000 }).toBeTruthy();
    await shot('sync-ja');
  });

  it('shows the settings with the data folder', async () => {
    await nav('settings');
    await expect.poll(() => page.getByTestId('data-dir').textContent(), { timeout: 10_000 }).toBe(serve.dataDir);
    await shot('settings-ja');
  });

  it('switches to English everywhere, with the lang attribute', async () => {
    await page.getByRole('button', { name: 'English' }).click();
    expect(await page.locator('html').getAttribute('lang')).toBe('en');
    await shot('settings-en');
    await nav('station');
    await expect
      .poll(() => page.locator('li.tile').first().getByTestId('next-action').textContent())
      .toBe('Done — unplug it');
    expect(await page.locator('nav').textContent()).toContain('Blueprints');
    await shot('station-en-done');
    for (const screen of ['blueprints', 'organizations', 'plans', 'sync', 'reports']) {
      await nav(screen);
      await page.waitForTimeout(300);
      await shot(`${screen}-en`);
      // No Japanese word left in the English UI (data such as the org name aside).
      const text = (await page.locator('main').innerText()).replace(
        /テスト学園[^\n]*|１年１組[^\n]*|class1[^\n]*/g,
        '',
      );
      expect(text, screen).not.toMatch(/[\u3040-\u30ff]/);
    }
  });

  it('has no page errors and no CSP violations', () => {
    expect(pageErrors).toEqual([]);
  });

  it('the headless server refuses requests without the token', async () => {
    const r = await fetch(`${serve.origin}/api/command/devices.states`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(r.status).toBe(401);
    const page2 = await (await browser.newContext()).newPage();
    const res = await page2.goto(serve.origin);
    expect(res?.status()).toBe(401);
    const ok = await fetch(`${serve.origin}/api/command/devices.states`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${serve.token}` },
      body: '{}',
    });
    expect(ok.status).toBe(200);
  });
});
