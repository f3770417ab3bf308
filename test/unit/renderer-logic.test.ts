/**
 * The renderer's logic without a browser: the live view's event reducer, the blueprint form's
 * mapping checked by the station's own validator (the form must produce what the station accepts,
 * and read back what it exports), the naming preview against the station's renderName, and the
 * API client's WebSocket transport against a real WebSocket server (answers, pushed events,
 * reconnection after the server drops the link).
 */
import { describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket as WsSocket } from 'ws';
import type { StationEvent } from '../../src/contract.ts';
import { validateBlueprint, exportBlueprint, parseBlueprint } from '../../src/kitting/blueprint.ts';
import { renderName } from '../../src/kitting/naming.ts';
import { SKIP_PANES } from '../../src/kitting/skip-panes.ts';
import { applyEvent, blank, leaveRecoveryEcid, nextLine, type StationView } from '../../renderer/src/station-view.ts';
import {
  fromBlueprint,
  groupSecretId,
  previewName,
  toBlueprint,
  withStoredPassword,
} from '../../renderer/src/blueprint-form.ts';
import { webSocketClient } from '../../renderer/src/api.ts';

const at = '2026-01-01T00:00:00.000Z';
const empty: StationView = { devices: new Map(), batch: null, announcement: null };

describe('live view reducer', () => {
  it('follows a device through a job and a batch through its counts', () => {
    const events: StationEvent[] = [
      { type: 'deviceAttached', udid: 'U1', deviceId: 1, locationId: 65537, hub: '1', at },
      { type: 'batchStarted', batchId: 'b1', mode: 'batch', blueprint: 'cart', maxParallel: 4, perHub: null, at },
      { type: 'jobCreated', jobId: 'j1', udid: 'U1', at, blueprint: 'cart', seqN: 1 },
      { type: 'stepStarted', jobId: 'j1', udid: 'U1', at, stepId: 'pair', attempt: 1 },
      { type: 'deviceStateChanged', udid: 'U1', state: 'trust-pending', nextAction: 'tap-trust', updatedAt: at, at },
      { type: 'stepFinished', jobId: 'j1', udid: 'U1', at, stepId: 'pair', status: 'done', details: {} },
      {
        type: 'batchProgressed',
        batchId: 'b1',
        mode: 'batch',
        at,
        waiting: 0,
        queued: 0,
        running: 1,
        done: 2,
        failed: 0,
        throughputPerHour: 30,
        etaSeconds: 60,
        queuedUdids: [],
      },
    ];
    const v = events.reduce(applyEvent, empty);
    const d = v.devices.get('U1');
    expect(d?.state).toBe('trust-pending');
    expect(d?.nextAction).toBe('tap-trust');
    expect(d?.hub).toBe('1');
    expect(d?.step).toBe('pair');
    expect(d?.stepsFinished).toBe(3);
    expect(v.batch?.counts.done).toBe(2);
    expect(v.announcement?.state).toBe('trust-pending');
    const done = [
      { type: 'jobFinished', jobId: 'j1', udid: 'U1', at } as const,
      { type: 'deviceDetached', udid: 'U1', at } as const,
      { type: 'batchFinished', batchId: 'b1', mode: 'batch', at } as const,
    ].reduce(applyEvent, v);
    expect(done.devices.get('U1')?.stepsFinished).toBe(10);
    expect(done.devices.get('U1')?.attached).toBe(false);
    expect(done.batch).toBeNull();
  });
});

describe('tile line', () => {
  it('says queued for devices waiting their turn in the batch, ready outside it', () => {
    const started = applyEvent(empty, {
      type: 'batchStarted',
      batchId: 'b1',
      mode: 'batch',
      blueprint: 'cart',
      maxParallel: 1,
      perHub: null,
      at,
    });
    const v = applyEvent(started, {
      type: 'batchProgressed',
      batchId: 'b1',
      mode: 'batch',
      at,
      waiting: 2,
      queued: 2,
      running: 1,
      done: 0,
      failed: 0,
      throughputPerHour: 0,
      etaSeconds: null,
      queuedUdids: ['Q1', 'Q2'],
    });
    expect(v.batch?.queuedUdids).toEqual(['Q1', 'Q2']);
    expect(nextLine({ ...blank('Q1'), state: 'ready' }, v.batch)).toBe('queued');
    expect(nextLine(blank('Q2'), v.batch)).toBe('queued');
    expect(nextLine({ ...blank('R1'), state: 'running' }, v.batch)).toBe('wait');
    expect(nextLine({ ...blank('X1'), state: 'ready' }, v.batch)).toBe('ready');
    expect(nextLine({ ...blank('Q1'), state: 'ready' }, null)).toBe('ready');
    // a queued device that needs a person says what to do
    expect(nextLine({ ...blank('Q1'), state: 'locked', nextAction: 'unlock' }, v.batch)).toBe('unlock');
    // once it starts, the next count says so
    const later = applyEvent(v, {
      type: 'batchProgressed',
      batchId: 'b1',
      mode: 'batch',
      at,
      waiting: 1,
      queued: 1,
      running: 1,
      done: 1,
      failed: 0,
      throughputPerHour: 0,
      etaSeconds: null,
      queuedUdids: ['Q2'],
    });
    expect(nextLine({ ...blank('Q1'), state: 'running' }, later.batch)).toBe('wait');
    expect(nextLine(blank('Q2'), later.batch)).toBe('queued');
  });
});

describe('leave recovery button', () => {
  it('shows for a device in recovery with its ECID, and goes once it boots', () => {
    const ecid = '0x000005752935F194';
    const v = applyEvent(empty, {
      type: 'deviceStateChanged',
      udid: `ecid:${ecid}`,
      state: 'recovery',
      nextAction: 'leave-recovery',
      ecid,
      updatedAt: at,
      at,
    });
    const d = v.devices.get(`ecid:${ecid}`);
    expect(d !== undefined && leaveRecoveryEcid(d)).toBe(ecid);
    expect(d !== undefined && nextLine(d, null)).toBe('leave-recovery');
    expect(leaveRecoveryEcid({ ...blank('U1'), state: 'recovery' })).toBeNull();
    const booted = applyEvent(v, {
      type: 'deviceStateChanged',
      udid: `ecid:${ecid}`,
      state: 'attached',
      updatedAt: at,
      at,
    });
    const after = booted.devices.get(`ecid:${ecid}`);
    expect(after !== undefined && leaveRecoveryEcid(after)).toBeNull();
  });
});

describe('blueprint form', () => {
  const keys = SKIP_PANES.map((p) => p.key);
  const exists = { identityExists: (id: string) => id === 'school' };

  it('a new form is invalid until name and identity are set, then the station accepts it', () => {
    const form = fromBlueprint({}, keys);
    const bad = validateBlueprint(toBlueprint(form, keys), exists);
    expect(bad.ok).toBe(false);
    expect(bad.issues.map((i) => i.path)).toEqual(expect.arrayContaining(['name', 'organization.identityId']));
    const good = validateBlueprint(
      toBlueprint(
        { ...form, name: 'cart', identityId: 'school', displayName: 'テスト学園', namingTemplate: 'iPad-{n:3}' },
        keys,
      ),
      exists,
    );
    expect(good.issues).toEqual([]);
  });

  it('reads back what the station exports, field for field', () => {
    const json = {
      version: 1,
      name: 'shared-cart',
      organization: { identityId: 'school', displayName: '学園', phone: '03-0000-0000', department: '情報室' },
      supervise: true,
      allowPairing: false,
      sharedIpad: { mode: 'on', userCount: 30, maxCachedUsers: 5 },
      skipSetup: ['Siri', 'Privacy'],
      enrollment: {
        method: 'url',
        url: 'https://mdm.example.jp/enroll',
        group: { groupId: 'g1', hideAuthScreen: false, userId: 'u' },
      },
      naming: { template: '{plan.name}', start: 5 },
      mdmCheck: 'warn',
      finish: 'restart',
    };
    const exported = JSON.parse(exportBlueprint(parseBlueprint(json, 'en', exists))) as Record<string, unknown>;
    const again = toBlueprint(fromBlueprint(exported, keys), keys);
    expect(validateBlueprint(again, exists).issues).toEqual([]);
    expect(parseBlueprint(again, 'en', exists)).toEqual(parseBlueprint(json, 'en', exists));
  });

  it('a typed group password becomes only a secret: reference; a stored one is kept, never pre-filled', () => {
    const base = {
      ...fromBlueprint({}, keys),
      name: 'hidden-auth',
      identityId: 'school',
      displayName: '学園',
      enrollment: 'url' as const,
      url: 'https://mdm.example.jp/enroll',
      groupId: 'grade 5',
      hideAuthScreen: true,
      groupUserId: 'g5-user',
    };
    const missing = validateBlueprint(toBlueprint(base, keys), exists);
    expect(missing.issues.map((i) => i.path)).toContain('enrollment.group.passwordRef');

    const typed = { ...base, groupPassword: 'g5-pass' };
    expect(groupSecretId(typed)).toBe('group-grade-5');
    const json = toBlueprint(typed, keys);
    expect(JSON.stringify(json)).not.toContain('g5-pass');
    expect(validateBlueprint(json, exists).issues).toEqual([]);

    const stored = withStoredPassword(typed, 'secret:group-grade-5');
    expect(stored.groupPassword).toBe('');
    const saved = toBlueprint(stored, keys);
    expect(saved).toEqual(json);

    const reopened = fromBlueprint(saved, keys);
    expect(reopened.groupPassword).toBe('');
    expect(reopened.groupPasswordRef).toBe('secret:group-grade-5');
    expect(groupSecretId({ ...reopened, groupId: 'other' })).toBe('group-grade-5');
  });

  it('previews names as the station renders them', () => {
    const facts = { serial: 'DMPXK1ABCD12', model: 'iPad', planName: '1年1組-01', assetTag: 'A-1' };
    for (const template of ['iPad-{n:3}', '{serial}', '{model}-{n}', '{plan.name} ({plan.assetTag})', '{{x}}-{n:2}']) {
      expect(previewName(template, 7, facts), template).toBe(
        renderName(template, {
          serial: facts.serial,
          model: facts.model,
          n: 7,
          plan: { name: facts.planName, assetTag: facts.assetTag },
        }),
      );
    }
  });
});

describe('API client over WebSocket', () => {
  it('answers calls, passes station errors and events, and reconnects', async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    const addr = wss.address();
    const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
    const sockets: WsSocket[] = [];
    wss.on('connection', (s) => {
      sockets.push(s);
      s.on('message', (data) => {
        const m = JSON.parse(String(data)) as { id: number; command: string };
        if (m.command === 'settings.get')
          s.send(
            JSON.stringify({
              id: m.id,
              ok: true,
              result: { maxParallel: 4, perHub: null, usbmuxdAddress: null, language: 'ja' },
            }),
          );
        else
          s.send(
            JSON.stringify({ id: m.id, ok: false, error: { code: 'io/not-found', message: 'nope', retryable: false } }),
          );
      });
    });
    const client = webSocketClient(`ws://127.0.0.1:${port}/api/ws`);
    try {
      expect((await client.call('settings.get', {})).maxParallel).toBe(4);
      await expect(client.call('blueprints.export', { name: 'x' })).rejects.toMatchObject({ code: 'io/not-found' });
      const got: StationEvent[] = [];
      client.onEvent((e) => got.push(e));
      sockets[0]?.send(JSON.stringify({ event: { type: 'deviceDetached', udid: 'U1', at } }));
      await expect.poll(() => got.length).toBe(1);
      const states: string[] = [];
      client.onLink((s) => states.push(s));
      sockets[0]?.terminate();
      await expect.poll(() => states.includes('open'), { timeout: 5000 }).toBe(true);
      expect(states[0]).toBe('connecting');
      expect((await client.call('settings.get', {})).language).toBe('ja');
    } finally {
      client.close();
      await new Promise<void>((r) => wss.close(() => r()));
    }
  });
});
