import forge from 'node-forge';
import { describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import {
  exportBlueprint,
  issueMessage,
  parseBlueprint,
  parseBlueprintJson,
  validateBlueprint,
  type Blueprint,
  type BlueprintIssue,
  type IssueCode,
} from '../../src/kitting/blueprint.ts';
import { checkSharedIpadQuota } from '../../src/kitting/cloud-config.ts';

function certificate(): { pem: string; derBase64: string } {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 1024, e: 0x10001 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '01';
  cert.validity.notBefore = new Date(Date.UTC(2024, 0, 1));
  cert.validity.notAfter = new Date(Date.UTC(2034, 0, 1));
  const attrs = [{ name: 'commonName', value: 'Test MDM anchor' }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  const der = forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes();
  return { pem: forge.pki.certificateToPem(cert), derBase64: forge.util.encode64(der) };
}
const CERT = certificate();

/** A valid blueprint; `patch` replaces top-level fields. */
function bp(patch: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 1,
    name: '3年1組 iPad',
    organization: { identityId: 'org-1', displayName: 'さくら小学校' },
    ...patch,
  };
}

function issuesOf(input: unknown): BlueprintIssue[] {
  return [...validateBlueprint(input).issues];
}

function expectIssue(input: unknown, path: string, code: IssueCode): void {
  const issues = issuesOf(input);
  expect(issues.map((i) => [i.path, i.code])).toContainEqual([path, code]);
}

const JAPANESE = /[\u3040-\u30ff\u4e00-\u9fff]/;

describe('blueprint schema: valid input', () => {
  it('fills the defaults of a minimal blueprint', () => {
    const b = parseBlueprint(bp());
    expect(b).toMatchObject({
      supervise: true,
      allowPairing: true,
      mandatoryEnrollment: true,
      mdmRemovable: false,
      sharedIpad: { mode: 'off' },
      autoAdvance: false,
      skipSetup: 'all',
      enrollment: { method: 'none' },
      locale: { language: 'ja', region: 'ja_JP', timeZone: 'Asia/Tokyo' },
      profiles: [],
      eraseIfNeeded: false,
      mdmCheck: 'block',
      finish: 'none',
    });
    expect(validateBlueprint(bp())).toEqual({ ok: true, issues: [], warnings: [] });
  });

  it('trims the name and accepts 128 characters', () => {
    expect(parseBlueprint(bp({ name: '  A  ' })).name).toBe('A');
    expect(validateBlueprint(bp({ name: 'あ'.repeat(128) })).ok).toBe(true);
  });

  it('normalises skip keys: OSShowCase alias, duplicates removed', () => {
    const b = parseBlueprint(bp({ skipSetup: ['Siri', 'OSShowCase', 'Siri', 'OSShowcase'] }));
    expect(b.skipSetup).toEqual(['Siri', 'OSShowcase']);
  });

  it('accepts an enrollment URL with PEM and base64 DER anchors, and the dev loopback URL', () => {
    const ok = bp({
      enrollment: {
        method: 'url',
        url: 'https://mdm.example.jp/enroll/group-7',
        anchorCertificates: [CERT.pem, CERT.derBase64],
        wifiProfile: { kind: 'file', path: 'wifi.mobileconfig' },
        group: { groupId: 'g7', hideAuthScreen: true, userId: 'enroll7', passwordRef: 'secret:group-7' },
      },
    });
    expect(validateBlueprint(ok).issues).toEqual([]);
    expect(validateBlueprint(bp({ enrollment: { method: 'url', url: 'http://127.0.0.1:8080/enroll' } })).ok).toBe(true);
  });
});

describe('blueprint schema: every field rule, by path and code', () => {
  it('name: empty, blank, missing, 129 characters', () => {
    expectIssue(bp({ name: '' }), 'name', 'required');
    expectIssue(bp({ name: '   ' }), 'name', 'required');
    const { name: _drop, ...noName } = bp();
    expectIssue(noName, 'name', 'required');
    expectIssue(bp({ name: 'x'.repeat(129) }), 'name', 'too-long');
  });

  it('version must be 1; unknown fields are reported', () => {
    expectIssue(bp({ version: 2 }), 'version', 'invalid-version');
    expectIssue(bp({ colour: 'red' }), 'colour', 'unknown-field');
  });

  it('organization: identity id, display name, phone, email', () => {
    expectIssue(bp({ organization: { identityId: 'org-1' } }), 'organization.displayName', 'required');
    expectIssue(
      bp({ organization: { identityId: 'org-1', displayName: 'x'.repeat(129) } }),
      'organization.displayName',
      'too-long',
    );
    expectIssue(
      bp({ organization: { identityId: 'has space', displayName: 'x' } }),
      'organization.identityId',
      'invalid-id',
    );
    expectIssue(
      bp({ organization: { identityId: 'o', displayName: 'x', email: 'not-an-email' } }),
      'organization.email',
      'invalid-email',
    );
    expectIssue(
      bp({ organization: { identityId: 'o', displayName: 'x', phone: '03-1234-abcd' } }),
      'organization.phone',
      'invalid-phone',
    );
    const ok = bp({
      organization: {
        identityId: 'o',
        displayName: 'x',
        phone: '+81 3-1234-5678',
        email: 'help@example.jp',
        department: '情報課',
        address: '東京都',
      },
    });
    expect(validateBlueprint(ok).issues).toEqual([]);
    // optional texts may be left blank
    expect(
      validateBlueprint(bp({ organization: { identityId: 'o', displayName: 'x', email: '', phone: '' } })).ok,
    ).toBe(true);
  });

  it('organization.identityId must exist in the vault when a lookup is given', () => {
    const r = validateBlueprint(bp(), { identityExists: (id) => id === 'other' });
    expect(r.issues.map((i) => [i.path, i.code])).toEqual([['organization.identityId', 'unknown-identity']]);
    expect(validateBlueprint(bp(), { identityExists: (id) => id === 'org-1' }).ok).toBe(true);
  });

  it('booleans and enums have types', () => {
    expectIssue(bp({ supervise: 'yes' }), 'supervise', 'wrong-type');
    expectIssue(bp({ mdmCheck: 'maybe' }), 'mdmCheck', 'invalid-choice');
    expectIssue(bp({ finish: 'reboot' }), 'finish', 'invalid-choice');
  });

  it('sharedIpad: exactly one of quota and user count, integers, supervision needed', () => {
    expectIssue(bp({ sharedIpad: { mode: 'on', quotaMb: 4000, userCount: 5 } }), 'sharedIpad', 'shared-ipad-one-of');
    expectIssue(bp({ sharedIpad: { mode: 'on' } }), 'sharedIpad', 'shared-ipad-one-of');
    expectIssue(bp({ sharedIpad: { mode: 'on', quotaMb: 1.5 } }), 'sharedIpad.quotaMb', 'not-integer');
    expectIssue(bp({ sharedIpad: { mode: 'on', userCount: 0 } }), 'sharedIpad.userCount', 'too-small');
    expectIssue(bp({ sharedIpad: { mode: 'sometimes' } }), 'sharedIpad.mode', 'invalid-choice');
    expectIssue(
      bp({ supervise: false, sharedIpad: { mode: 'on', userCount: 5 } }),
      'sharedIpad',
      'shared-ipad-needs-supervision',
    );
    expect(validateBlueprint(bp({ sharedIpad: { mode: 'on', quotaMb: 8000, maxCachedUsers: 4 } })).ok).toBe(true);
    expect(validateBlueprint(bp({ sharedIpad: { mode: 'on', userCount: 8 } })).ok).toBe(true);
  });

  it('sharedIpad quota rule per device storage: quota must be below storage − 26 GB', () => {
    const b = parseBlueprint(bp({ sharedIpad: { mode: 'on', quotaMb: 38_000 } }));
    const err = (() => {
      try {
        checkSharedIpadQuota(b, 64_000_000_000);
        return undefined;
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(KitError);
    expect((err as KitError).code).toBe('blueprint/shared-ipad-quota');
    expect((err as KitError).details).toMatchObject({ quotaMb: 38_000, limitMb: 37_999 });
    expect(() =>
      checkSharedIpadQuota(parseBlueprint(bp({ sharedIpad: { mode: 'on', quotaMb: 37_999 } })), 64_000_000_000),
    ).not.toThrow();
    expect(() =>
      checkSharedIpadQuota(parseBlueprint(bp({ sharedIpad: { mode: 'on', userCount: 30 } })), 32_000_000_000),
    ).not.toThrow();
  });

  it('hideAuthScreen needs the group user ID and password reference', () => {
    const hidden = (group: Record<string, unknown>) =>
      bp({ enrollment: { method: 'url', url: 'https://m.example.jp/e', group } });
    const issues = issuesOf(hidden({ groupId: 'g1', hideAuthScreen: true }));
    expect(issues.map((i) => [i.path, i.code])).toEqual([
      ['enrollment.group.userId', 'credentials-required'],
      ['enrollment.group.passwordRef', 'credentials-required'],
    ]);
    expectIssue(
      hidden({ groupId: 'g1', hideAuthScreen: true, userId: 'u1' }),
      'enrollment.group.passwordRef',
      'credentials-required',
    );
    expect(validateBlueprint(hidden({ groupId: 'g1', hideAuthScreen: false })).ok).toBe(true);
    expect(
      validateBlueprint(hidden({ groupId: 'g1', hideAuthScreen: true, userId: 'u1', passwordRef: 'secret:g1' })).ok,
    ).toBe(true);
  });

  it('a password is never accepted inline, only as a secret reference', () => {
    const withPassword = bp({
      enrollment: {
        method: 'url',
        url: 'https://m.example.jp/e',
        group: { groupId: 'g', userId: 'u', password: 'hunter2' },
      },
    });
    expectIssue(withPassword, 'enrollment.group.password', 'secret-inline');
    const plainRef = bp({
      enrollment: {
        method: 'url',
        url: 'https://m.example.jp/e',
        group: { groupId: 'g', userId: 'u', passwordRef: 'hunter2' },
      },
    });
    expectIssue(plainRef, 'enrollment.group.passwordRef', 'invalid-secret-ref');
  });

  it('enrollment: method, URL scheme, anchors, staged sources', () => {
    expectIssue(bp({ enrollment: { method: 'carrier-pigeon' } }), 'enrollment.method', 'invalid-choice');
    expectIssue(
      bp({ enrollment: { method: 'url', url: 'http://mdm.example.jp/enroll' } }),
      'enrollment.url',
      'invalid-url',
    );
    expectIssue(bp({ enrollment: { method: 'url', url: 'http://localhost/enroll' } }), 'enrollment.url', 'invalid-url');
    expectIssue(bp({ enrollment: { method: 'url', url: 'not a url' } }), 'enrollment.url', 'invalid-url');
    expectIssue(
      bp({
        enrollment: {
          method: 'url',
          url: 'https://m.example.jp/e',
          anchorCertificates: [CERT.pem, 'bm90IGEgY2VydA=='],
        },
      }),
      'enrollment.anchorCertificates.1',
      'invalid-certificate',
    );
    expectIssue(
      bp({ enrollment: { method: 'staged', source: { kind: 'file' } } }),
      'enrollment.source.path',
      'required',
    );
    expectIssue(
      bp({ enrollment: { method: 'staged', source: { kind: 'mdm' } } }),
      'enrollment.group',
      'group-required',
    );
    expect(
      validateBlueprint(
        bp({
          enrollment: {
            method: 'staged',
            source: { kind: 'mdm' },
            group: { groupId: 'g', userId: 'u', passwordRef: 'secret:g' },
          },
        }),
      ).ok,
    ).toBe(true);
    expect(
      validateBlueprint(bp({ enrollment: { method: 'staged', source: { kind: 'file', path: 'enroll.mobileconfig' } } }))
        .ok,
    ).toBe(true);
  });

  it('skipSetup: "all" or catalogue keys; unknown keys are errors at their index', () => {
    expectIssue(bp({ skipSetup: ['Siri', 'TotallyNotAPane'] }), 'skipSetup.1', 'unknown-skip-key');
    expectIssue(bp({ skipSetup: 'none' }), 'skipSetup', 'invalid-choice');
    const msg = issuesOf(bp({ skipSetup: ['Nope'] }))[0]?.message;
    expect(msg?.ja).toContain('Nope');
    expect(msg?.en).toContain('Nope');
  });

  it('naming: unknown placeholders and bad counters are errors', () => {
    expectIssue(bp({ naming: { template: 'iPad-{serial}-{colour}' } }), 'naming.template', 'invalid-template');
    expectIssue(bp({ naming: { template: 'iPad-{n:0}' } }), 'naming.template', 'invalid-template');
    expectIssue(bp({ naming: { template: 'iPad-{n' } }), 'naming.template', 'invalid-template');
    expectIssue(bp({ naming: { template: '' } }), 'naming.template', 'invalid-template');
    expectIssue(bp({ naming: { template: '{n}', start: -1 } }), 'naming.start', 'too-small');
    const m = issuesOf(bp({ naming: { template: '{colour}' } }))[0]?.message;
    expect(m?.ja).toContain('{colour}');
    expect(parseBlueprint(bp({ naming: { template: '{plan.name}' } })).naming).toEqual({
      template: '{plan.name}',
      start: 1,
    });
  });

  it('locale: language, region and IANA time zone', () => {
    const loc = (patch: Record<string, unknown>) =>
      bp({ locale: { language: 'ja', region: 'ja_JP', timeZone: 'Asia/Tokyo', ...patch } });
    expectIssue(loc({ timeZone: 'Asia/Atlantis' }), 'locale.timeZone', 'invalid-time-zone');
    expectIssue(loc({ timeZone: 'JST-9 ; rm' }), 'locale.timeZone', 'invalid-time-zone');
    expectIssue(loc({ language: 'Japanese' }), 'locale.language', 'invalid-language');
    expectIssue(loc({ region: 'ja-JP' }), 'locale.region', 'invalid-locale');
    expect(validateBlueprint(loc({ language: 'en', region: 'en_US', timeZone: 'America/New_York' })).ok).toBe(true);
    expect(validateBlueprint(loc({ language: 'zh-Hans', region: 'zh_Hans_CN', timeZone: 'UTC' })).ok).toBe(true);
  });

  it('profiles are references, not inline content', () => {
    expectIssue(bp({ profiles: [{ kind: 'file' }] }), 'profiles.0.path', 'required');
    expectIssue(bp({ profiles: [{ kind: 'stored', id: 'bad id' }] }), 'profiles.0.id', 'invalid-id');
    expect(
      validateBlueprint(
        bp({
          profiles: [
            { kind: 'stored', id: 'wifi-school' },
            { kind: 'file', path: 'x.mobileconfig' },
          ],
        }),
      ).ok,
    ).toBe(true);
  });

  it('autoAdvance is a warning (Apple TV only), never an error', () => {
    const r = validateBlueprint(bp({ autoAdvance: true }));
    expect(r.ok).toBe(true);
    expect(r.warnings.map((w) => [w.path, w.code])).toEqual([['autoAdvance', 'apple-tv-only']]);
  });

  it('a non-object document is one issue at the root', () => {
    expect(issuesOf(null).map((i) => [i.path, i.code])).toEqual([['', 'wrong-type']]);
    expect(issuesOf([]).map((i) => [i.path, i.code])).toEqual([['', 'wrong-type']]);
  });
});

describe('messages', () => {
  const everything = bp({
    version: 3,
    name: '',
    colour: 1,
    organization: { identityId: 'a b', displayName: 'x'.repeat(200), email: 'x', phone: 'y' },
    supervise: false,
    sharedIpad: { mode: 'on', quotaMb: 1, userCount: 2 },
    skipSetup: ['Nope'],
    enrollment: {
      method: 'url',
      url: 'ftp://x',
      anchorCertificates: ['zz'],
      group: { groupId: 'g', hideAuthScreen: true, password: 'p' },
    },
    naming: { template: '{x}' },
    locale: { language: 'x', region: 'y', timeZone: 'z' },
    mdmCheck: 1,
    autoAdvance: true,
  });

  it('every issue carries a Japanese and an English message', () => {
    const r = validateBlueprint(everything);
    expect(r.issues.length).toBeGreaterThan(15);
    for (const i of [...r.issues, ...r.warnings]) {
      expect(i.message.ja, i.path).toMatch(JAPANESE);
      expect(i.message.en.length, i.path).toBeGreaterThan(5);
      expect(i.message.en, i.path).not.toMatch(JAPANESE);
    }
  });

  it('every issue code has words in both languages', () => {
    const codes: IssueCode[] = [
      'required',
      'wrong-type',
      'too-long',
      'too-small',
      'too-big',
      'not-integer',
      'invalid-email',
      'invalid-phone',
      'invalid-url',
      'invalid-certificate',
      'invalid-id',
      'invalid-secret-ref',
      'secret-inline',
      'unknown-identity',
      'unknown-skip-key',
      'invalid-template',
      'invalid-time-zone',
      'invalid-language',
      'invalid-locale',
      'invalid-choice',
      'invalid-version',
      'unknown-field',
      'shared-ipad-needs-supervision',
      'shared-ipad-one-of',
      'credentials-required',
      'group-required',
      'apple-tv-only',
      'invalid',
    ];
    for (const code of codes) {
      const m = issueMessage(code, 'organization.displayName', {
        max: 128,
        min: 1,
        key: 'k',
        value: 'v',
        options: 'a, b',
        index: 0,
      });
      expect(m.ja, code).toMatch(JAPANESE);
      expect(m.en, code).toMatch(/[A-Za-z]/);
    }
  });

  it('uses the seed wording for field names', () => {
    expect(issuesOf(bp({ name: 'x'.repeat(129) }))[0]?.message.ja).toBe(
      '「ブループリント名」は128文字以内で入力してください。',
    );
    expect(issuesOf(bp({ organization: { identityId: 'o', displayName: 'x', email: 'x' } }))[0]?.message.ja).toContain(
      'サポート用メールアドレス',
    );
    const cred = issuesOf(
      bp({
        enrollment: { method: 'url', url: 'https://m.example.jp/e', group: { groupId: 'g', hideAuthScreen: true } },
      }),
    );
    expect(cred[0]?.message.ja).toContain('MDM登録時に認証画面を表示しない');
    expect(cred[0]?.message.ja).toContain('登録先グループの認証用ユーザーID');
  });

  it('parseBlueprint throws blueprint/invalid with the first issue in the requested language', () => {
    for (const lang of ['ja', 'en'] as const) {
      let caught: unknown;
      try {
        parseBlueprint(bp({ name: '' }), lang);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(KitError);
      const e = caught as KitError;
      expect(e.code).toBe('blueprint/invalid');
      expect(e.exitCode).toBe(2);
      expect(e.details).toMatchObject({ path: 'name', code: 'required', issueCount: 1 });
      expect(e.message).toContain(lang === 'ja' ? 'ブループリント名' : 'Blueprint name');
    }
  });
});

describe('JSON import and export', () => {
  const full = bp({
    id: 'grade3',
    description: '3年生用',
    organization: { identityId: 'org-1', displayName: 'さくら小学校', phone: '03-0000-0000', email: 'it@example.jp' },
    sharedIpad: { mode: 'on', userCount: 10, maxCachedUsers: 5 },
    skipSetup: ['Siri', 'Location'],
    enrollment: {
      method: 'url',
      url: 'https://mdm.example.jp/enroll',
      anchorCertificates: [CERT.pem],
      group: { groupId: 'g3', hideAuthScreen: true, userId: 'enroll-g3', passwordRef: 'secret:g3' },
    },
    naming: { template: 'iPad-{plan.assetTag}-{n:2}', start: 5 },
    profiles: [{ kind: 'stored', id: 'wifi' }],
    eraseIfNeeded: true,
    mdmCheck: 'warn',
    finish: 'shutdown',
  });

  it('round-trips through export and parse', () => {
    const b = parseBlueprint(full);
    const text = exportBlueprint(b);
    expect(text.startsWith('{\n  "version": 1,')).toBe(true);
    expect(parseBlueprint(JSON.parse(text))).toEqual(b);
  });

  it('export leaves secrets out and keeps only references', () => {
    const b = parseBlueprint(full);
    // An in-memory object may carry a resolved password (say, from the UI); export must not leak it.
    const leaky = structuredClone(b) as Blueprint & { token?: string };
    if (leaky.enrollment.method === 'url' && leaky.enrollment.group !== undefined) {
      Object.assign(leaky.enrollment.group, { password: 'hunter2', Passphrase: 'x' });
    }
    leaky.token = 'abc';
    const text = exportBlueprint(leaky);
    expect(text).not.toContain('hunter2');
    expect(text).not.toMatch(/"password"|"Passphrase"|"token"/);
    expect(text).toContain('"passwordRef": "secret:g3"');
    expect(parseBlueprint(JSON.parse(text))).toEqual(b);
  });

  it('locates JSON syntax errors by line and column', () => {
    let caught: unknown;
    try {
      parseBlueprintJson('{\n  "version": 1,\n  name: "x"\n}');
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(KitError);
    expect((caught as KitError).code).toBe('blueprint/not-json');
    expect((caught as KitError).details).toMatchObject({ line: 3, column: 3 });
    expect(parseBlueprintJson('\uFEFF{"a":1}')).toEqual({ a: 1 });
  });
});
