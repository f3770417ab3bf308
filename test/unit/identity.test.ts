import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import forge from 'node-forge';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import { createSupervisionCertificate, displayFingerprint, fingerprintOf } from '../../src/identity/certificate.ts';
import { IdentityService, makeIdentityId } from '../../src/identity/identity.ts';
import { MIN_SCRYPT, PassphraseVault } from '../../src/identity/vault.ts';
import { openStationDatabase, type Db } from '../../src/store/db.ts';
import { listAudit } from '../../src/store/audit.ts';
import { countIdentities } from '../../src/store/identities.ts';

/** Fixtures made by openssl, shared read-only by every test. */
let fx: string;
/** Per-test folders. */
const cleanup: string[] = [];
const dbs: Db[] = [];

function openssl(args: string[], input?: string): string {
  const r = spawnSync('openssl', args, { cwd: fx, encoding: 'utf8', input });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function f(name: string): string {
  return path.join(fx, name);
}

beforeAll(() => {
  fx = fs.mkdtempSync(path.join(os.tmpdir(), 'kit-id-fx-'));
  fs.writeFileSync(f('pw.txt'), 'secret-pw');
  // A: an identity made by openssl (key PKCS#8 PEM, self-signed certificate with an org).
  openssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'a.key',
    '-out',
    'a.crt',
    '-days',
    '365',
    '-subj',
    '/C=JP/O=テスト学園/CN=Apple Configurator: テスト学園 (6D1E6E38-5A1B-4C53-9A55-0C1F0B6B7E11)',
    '-utf8',
  ]);
  openssl(['x509', '-in', 'a.crt', '-outform', 'DER', '-out', 'a.der']);
  openssl(['rsa', '-in', 'a.key', '-traditional', '-out', 'a.pkcs1.pem']);
  openssl(['rsa', '-in', 'a.key', '-traditional', '-outform', 'DER', '-out', 'a.pkcs1.der']);
  openssl(['pkcs8', '-topk8', '-nocrypt', '-in', 'a.key', '-outform', 'DER', '-out', 'a.pkcs8.der']);
  openssl(['pkcs12', '-export', '-inkey', 'a.key', '-in', 'a.crt', '-out', 'a.p12', '-passout', 'pass:secret-pw']);
  openssl([
    'pkcs12',
    '-export',
    '-legacy',
    '-inkey',
    'a.key',
    '-in',
    'a.crt',
    '-out',
    'a-legacy.p12',
    '-passout',
    'pass:secret-pw',
  ]);
  openssl(['pkcs12', '-export', '-nokeys', '-in', 'a.crt', '-out', 'a-nokey.p12', '-passout', 'pass:secret-pw']);
  fs.writeFileSync(f('a-ja-pw.txt'), '学園のパスワード');
  openssl(['pkcs12', '-export', '-inkey', 'a.key', '-in', 'a.crt', '-out', 'a-ja.p12', '-passout', 'file:a-ja-pw.txt']);
  fs.writeFileSync(
    f('a-both-pkcs1.pem'),
    fs.readFileSync(f('a.crt'), 'utf8') + fs.readFileSync(f('a.pkcs1.pem'), 'utf8'),
  );
  fs.writeFileSync(f('a-both-pkcs8.pem'), fs.readFileSync(f('a.crt'), 'utf8') + fs.readFileSync(f('a.key'), 'utf8'));
  // B: another key, to pair with A's certificate.
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'b.key']);
  fs.writeFileSync(f('a-crt-b-key.pem'), fs.readFileSync(f('a.crt'), 'utf8') + fs.readFileSync(f('b.key'), 'utf8'));
  // Weak: RSA 1024.
  openssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:1024',
    '-nodes',
    '-keyout',
    'weak.key',
    '-out',
    'weak.crt',
    '-days',
    '365',
    '-subj',
    '/O=Weak/CN=Weak',
  ]);
  // Expired: issued 20 years ago for 10 years.
  const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const old = createSupervisionCertificate({
    org: 'Old School',
    publicKey,
    privateKey,
    now: new Date(Date.UTC(2005, 3, 1)),
  });
  fs.writeFileSync(
    f('expired.pem'),
    new crypto.X509Certificate(old).toString() + privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  );
  // Damaged files.
  const p12 = fs.readFileSync(f('a.p12'));
  fs.writeFileSync(f('truncated.p12'), p12.subarray(0, Math.floor(p12.length / 2)));
  const pem = fs.readFileSync(f('a-both-pkcs8.pem'), 'utf8');
  fs.writeFileSync(f('truncated.pem'), pem.slice(0, Math.floor(pem.length * 0.7)));
  fs.writeFileSync(f('noise.bin'), crypto.randomBytes(700));
});

afterAll(() => {
  fs.rmSync(fx, { recursive: true, force: true });
});

afterEach(() => {
  for (const db of dbs.splice(0)) if (db.open) db.close();
  for (const d of cleanup.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

interface Station {
  dir: string;
  db: Db;
  service: IdentityService;
}

function station(options: { isInUse?: (id: string) => boolean } = {}): Station {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kit-id-'));
  cleanup.push(dir);
  const db = openStationDatabase(path.join(dir, 'data'));
  dbs.push(db);
  const service = new IdentityService({
    db,
    vault: () =>
      PassphraseVault.open({
        dataDir: path.join(dir, 'data'),
        passphrase: 'station passphrase',
        createWith: MIN_SCRYPT,
      }),
    actor: 'test',
    ...options,
  });
  return { dir, db, service };
}

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    return err instanceof KitError ? err.code : `not a KitError: ${String(err)}`;
  }
  return 'did not throw';
}

async function errorOf(p: Promise<unknown>): Promise<KitError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof KitError) return err;
    throw err;
  }
  throw new Error('did not throw');
}

function sha256File(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Byte strings only the private key holds (d, p, q, dq and a late PEM line): never in a data-folder file. */
function privateNeedles(k: crypto.KeyObject): Buffer[] {
  const jwk = k.export({ format: 'jwk' });
  const parts = [jwk.d, jwk.p, jwk.q, jwk.dq].map((v) => Buffer.from(v ?? '', 'base64url').subarray(0, 32));
  const der = k.export({ type: 'pkcs8', format: 'der' });
  for (const part of parts) {
    expect(part.length).toBe(32);
    expect(der.includes(part)).toBe(true);
  }
  const pemLines = k.export({ type: 'pkcs8', format: 'pem' }).toString().trim().split('\n');
  return [...parts, Buffer.from(pemLines[pemLines.length - 3] ?? 'missing line')];
}

function allFiles(root: string): string[] {
  return fs
    .readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name));
}

describe('create', () => {
  it('issues an Apple Configurator-shaped RSA 2048 / SHA-256 certificate valid for 10 years', async () => {
    const { service, dir } = station();
    const before = Date.now();
    const summary = await service.create({ org: 'テスト学園', country: 'JP' });
    expect(summary.id).toMatch(/^identity-[0-9a-f]{6}$/);
    expect(summary.org).toBe('テスト学園');
    const details = service.get(summary.id);
    expect(summary.fingerprint).toBe(fingerprintOf(details.certificateDer));
    expect(summary.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(details.fingerprintDisplay).toBe(displayFingerprint(summary.fingerprint));
    expect(details.subject.CN).toMatch(
      /^Apple Configurator: テスト学園 \([0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\)$/,
    );
    expect(details.subject).toMatchObject({ O: 'テスト学園', C: 'JP' });
    const years = (Date.parse(summary.notAfter) - Date.parse(summary.notBefore)) / (365.25 * 86_400_000);
    expect(years).toBeGreaterThan(9.99);
    expect(years).toBeLessThan(10.01);
    expect(Date.parse(summary.notBefore)).toBeLessThanOrEqual(before);

    const certFile = path.join(dir, 'created.der');
    fs.writeFileSync(certFile, details.certificateDer);
    const text = openssl([
      'x509',
      '-inform',
      'DER',
      '-in',
      certFile,
      '-noout',
      '-text',
      '-fingerprint',
      '-sha256',
      '-nameopt',
      'utf8',
    ]);
    expect(text).toContain('Signature Algorithm: sha256WithRSAEncryption');
    expect(text).toContain('Public-Key: (2048 bit)');
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment/);
    expect(text).toMatch(/X509v3 Extended Key Usage:\s+Code Signing/);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toContain('X509v3 Subject Key Identifier');
    expect(text).toContain(`sha256 Fingerprint=${details.fingerprintDisplay}`);
    const subject = /Subject: (.*)/.exec(text)?.[1];
    expect(/Issuer: (.*)/.exec(text)?.[1]).toBe(subject);
    const serial = new crypto.X509Certificate(details.certificateDer).serialNumber;
    expect(serial.length).toBeLessThanOrEqual(32);
    expect(parseInt(serial.slice(0, 2), 16)).toBeLessThan(0x80);
  });

  it('uses the given id, slugs ASCII names, and refuses bad ids, weak sizes and taken ids', async () => {
    const { service, db } = station();
    expect(makeIdentityId('Sakura Gakuen (本校)')).toMatch(/^sakura-gakuen-[0-9a-f]{6}$/);
    expect((await service.create({ org: 'Sakura', id: 'sakura-main' })).id).toBe('sakura-main');
    expect(await codeOf(service.create({ org: 'Sakura', id: 'Sakura_Main' }))).toBe('usage/invalid-argument');
    expect(await codeOf(service.create({ org: 'Sakura', keyBits: 1024 }))).toBe('identity/weak-key');
    expect(await codeOf(service.create({ org: 'Sakura', id: 'sakura-main' }))).toBe('identity/duplicate');
    expect(await codeOf(service.create({ org: '  ' }))).toBe('usage/invalid-argument');
    expect(countIdentities(db)).toBe(1);
  });

  it('keeps the private key only as vault ciphertext: no key bytes in any file of the data folder', async () => {
    const { service, dir, db } = station();
    const { id } = await service.create({ org: 'Sakura' });
    await service.importFile(f('a.p12'), { password: 'secret-pw' });
    const keys = [(await service.unlock(id)).privateKey, crypto.createPrivateKey(fs.readFileSync(f('a.key')))];
    db.close();
    const needles = keys.flatMap(privateNeedles);
    for (const file of allFiles(path.join(dir, 'data'))) {
      const bytes = fs.readFileSync(file);
      for (const needle of needles) expect(bytes.includes(needle), file).toBe(false);
    }
  });
});

describe('import', () => {
  const aFingerprint = (): string => sha256File(f('a.der'));

  it.each([
    ['openssl 3 default .p12 (AES-256, SHA-256 MAC)', 'a.p12', { password: 'secret-pw' }],
    ['openssl -legacy .p12 (RC2/3DES, SHA-1 MAC)', 'a-legacy.p12', { password: 'secret-pw' }],
    ['PEM certificate + PKCS#1 key in one file', 'a-both-pkcs1.pem', {}],
    ['PEM certificate + PKCS#8 key in one file', 'a-both-pkcs8.pem', {}],
    ['PEM certificate + PKCS#1 PEM key file', 'a.crt', { keyFile: 'a.pkcs1.pem' }],
    ['DER certificate + PKCS#1 DER key', 'a.der', { keyFile: 'a.pkcs1.der' }],
    ['DER certificate + PKCS#8 DER key', 'a.der', { keyFile: 'a.pkcs8.der' }],
  ] as const)('reads %s', async (_what, file, opts) => {
    const { service } = station();
    const input = 'keyFile' in opts ? { keyFile: f(opts.keyFile) } : opts;
    const summary = await service.importFile(f(file), input);
    expect(summary.fingerprint).toBe(aFingerprint());
    expect(summary.org).toBe('テスト学園');
    const unlocked = await service.unlock(summary.id);
    expect(unlocked.privateKey.export({ type: 'pkcs8', format: 'der' })).toEqual(fs.readFileSync(f('a.pkcs8.der')));
  });

  it('reads a .p12 whose password is Japanese', async () => {
    const { service } = station();
    const summary = await service.importFile(f('a-ja.p12'), { password: '学園のパスワード' });
    expect(summary.fingerprint).toBe(aFingerprint());
  });

  it.each([
    ['a wrong .p12 password', 'a.p12', { password: 'nope' }, 'identity/wrong-password'],
    ['a missing .p12 password', 'a-legacy.p12', {}, 'identity/wrong-password'],
    ['a truncated .p12', 'truncated.p12', { password: 'secret-pw' }, 'identity/corrupt-file'],
    ['a truncated PEM', 'truncated.pem', {}, 'identity/corrupt-file'],
    ['random bytes', 'noise.bin', {}, 'identity/corrupt-file'],
    ['a certificate without a key', 'a.crt', {}, 'identity/missing-key'],
    ['a .p12 without a key bag', 'a-nokey.p12', { password: 'secret-pw' }, 'identity/missing-key'],
    ['a key without a certificate', 'a.pkcs8.der', {}, 'identity/missing-certificate'],
    ['a key that does not match', 'a-crt-b-key.pem', {}, 'identity/key-mismatch'],
    ['a DER certificate with the wrong key file', 'a.der', { keyFile: 'b.key' }, 'identity/key-mismatch'],
    ['an expired certificate', 'expired.pem', {}, 'identity/expired'],
    ['an RSA 1024 key', 'weak.crt', { keyFile: 'weak.key' }, 'identity/weak-key'],
  ] as const)('refuses %s and stores nothing', async (_what, file, opts, code) => {
    const { service, db } = station();
    const input = 'keyFile' in opts ? { keyFile: f(opts.keyFile) } : opts;
    const err = await errorOf(service.importFile(f(file), input));
    expect(err.code).toBe(code);
    expect(err.exitCode).toBe(2);
    expect(countIdentities(db)).toBe(0);
    expect(listAudit(db)).toEqual([]);
    expect(err.message).not.toContain('secret-pw');
  });

  it('names the damaged file in the error', async () => {
    const { service } = station();
    const err = await errorOf(service.importFile(f('truncated.p12'), { password: 'secret-pw' }));
    expect(err.message).toContain('truncated.p12');
    expect(err.details).toMatchObject({ file: 'truncated.p12' });
  });

  it('refuses the same certificate twice (any form) and keeps the first', async () => {
    const { service, db } = station();
    const first = await service.importFile(f('a.p12'), { password: 'secret-pw' });
    const err = await errorOf(service.importFile(f('a.der'), { keyFile: f('a.pkcs1.der') }));
    expect(err.code).toBe('identity/duplicate');
    expect(err.details).toMatchObject({ id: first.id });
    expect(countIdentities(db)).toBe(1);
    expect(listAudit(db).map((e) => e.action)).toEqual(['identity/imported']);
  });

  it('reports a missing input file as bad input (exit 2)', async () => {
    const { service } = station();
    const err = await errorOf(service.importFile(f('no-such.p12'), { password: 'x' }));
    expect(err.code).toBe('io/read-failed');
    expect(err.exitCode).toBe(2);
  });
});

describe('export', () => {
  it.each(['3des', 'aes256'] as const)(
    'p12 (%s) → import again: same fingerprint, and the re-imported key signs for the original certificate',
    async (algorithm) => {
      const a = station();
      const created = await a.service.create({ org: 'Sakura Gakuen', country: 'JP' });
      const out = path.join(a.dir, `export-${algorithm}.p12`);
      expect(
        await a.service.export(created.id, { out, format: 'p12', password: 'export-pw', p12Algorithm: algorithm }),
      ).toEqual([out]);
      expect(fs.statSync(out).mode & 0o777).toBe(0o600);

      const info = spawnSync('openssl', ['pkcs12', '-in', out, '-info', '-noout', '-passin', 'pass:export-pw'], {
        encoding: 'utf8',
      });
      expect(info.status, info.stderr).toBe(0);
      expect(info.stderr + info.stdout).toContain(algorithm === 'aes256' ? 'MAC: sha256' : 'MAC: sha1');
      expect(info.stderr + info.stdout).toContain(
        algorithm === 'aes256' ? 'AES-256-CBC' : 'pbeWithSHA1And3-KeyTripleDES-CBC',
      );

      const b = station();
      const again = await b.service.importFile(out, { password: 'export-pw' });
      expect(again.fingerprint).toBe(created.fingerprint);
      expect(again.org).toBe('Sakura Gakuen');
      const challenge = crypto.randomBytes(8);
      const signature = crypto.sign('sha256', challenge, (await b.service.unlock(again.id)).privateKey);
      const original = new crypto.X509Certificate(a.service.get(created.id).certificateDer);
      expect(crypto.verify('sha256', challenge, original.publicKey, signature)).toBe(true);
      expect(await codeOf(b.service.importFile(out, { password: 'wrong' }))).toBe('identity/wrong-password');
    },
  );

  it('pem: certificate + PKCS#8 key, encrypted when a password is given, readable by openssl', async () => {
    const { service, dir } = station();
    const { id, fingerprint } = await service.create({ org: 'Sakura' });
    const plain = path.join(dir, 'plain.pem');
    const locked = path.join(dir, 'locked.pem');
    await service.export(id, { out: plain, format: 'pem' });
    await service.export(id, { out: locked, format: 'pem', password: 'pem-pw' });
    const plainText = fs.readFileSync(plain, 'utf8');
    expect(plainText).toMatch(/^-----BEGIN CERTIFICATE-----[\s\S]+-----BEGIN PRIVATE KEY-----/);
    expect(fs.readFileSync(locked, 'utf8')).toContain('-----BEGIN ENCRYPTED PRIVATE KEY-----');
    for (const file of [plain, locked]) expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    openssl(['pkey', '-in', locked, '-passin', 'pass:pem-pw', '-noout']);
    const other = station();
    expect((await other.service.importFile(locked, { password: 'pem-pw' })).fingerprint).toBe(fingerprint);
    expect(await codeOf(station().service.importFile(locked, { password: 'bad' }))).toBe('identity/wrong-password');
  });

  it('der: certificate in OUT and PKCS#1 key in OUT.key, both 0600, importable with --key', async () => {
    const { service, dir } = station();
    const { id, fingerprint } = await service.create({ org: 'Sakura' });
    const out = path.join(dir, 'sakura.der');
    expect(await service.export(id, { out, format: 'der' })).toEqual([out, `${out}.key`]);
    for (const file of [out, `${out}.key`]) expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(sha256File(out)).toBe(fingerprint);
    openssl(['rsa', '-inform', 'DER', '-in', `${out}.key`, '-check', '-noout']);
    expect(
      crypto.createPrivateKey({ key: fs.readFileSync(`${out}.key`), format: 'der', type: 'pkcs1' }).asymmetricKeyType,
    ).toBe('rsa');
    expect((await station().service.importFile(out, { keyFile: `${out}.key` })).fingerprint).toBe(fingerprint);
    expect(await codeOf(service.export(id, { out, format: 'der', password: 'x' }))).toBe('usage/invalid-argument');
  });

  it('needs a password for p12, and an existing identity', async () => {
    const { service, dir } = station();
    const { id } = await service.create({ org: 'Sakura' });
    expect(await codeOf(service.export(id, { out: path.join(dir, 'x.p12'), format: 'p12' }))).toBe(
      'usage/invalid-argument',
    );
    expect(await codeOf(service.export('nobody', { out: path.join(dir, 'y.p12'), password: 'p' }))).toBe(
      'identity/not-found',
    );
    expect(fs.existsSync(path.join(dir, 'x.p12'))).toBe(false);
  });

  it('imports an Apple Configurator-style identity created here into openssl and back', async () => {
    const { service, dir } = station();
    const { id, fingerprint } = await service.create({ org: 'テスト学園' });
    const out = path.join(dir, 'ac.p12');
    await service.export(id, { out, password: 'pw-ac' });
    const pem = openssl(['pkcs12', '-in', out, '-nodes', '-passin', 'pass:pw-ac']);
    const cert = new crypto.X509Certificate(
      /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)?.[0] ?? '',
    );
    expect(fingerprintOf(cert.raw)).toBe(fingerprint);
    // Keychain Access shows the friendly name: the certificate's CN as a BMPString (openssl 3.0 prints
    // BMPStrings lossily, so read it back with forge).
    const p12 = forge.pkcs12.pkcs12FromAsn1(
      forge.asn1.fromDer(fs.readFileSync(out).toString('binary')),
      false,
      'pw-ac',
    );
    const names = p12.safeContents.flatMap((sc) => sc.safeBags.map((b) => b.attributes.friendlyName?.[0]));
    expect(names).toEqual([service.get(id).subject.CN, service.get(id).subject.CN]);
  });
});

describe('CMS signer', () => {
  it('signs with the content attached and the signer certificate embedded (openssl cms -verify)', async () => {
    const { service, dir } = station();
    const { id } = await service.importFile(f('a.p12'), { password: 'secret-pw' });
    const sign = await service.signer(id);
    const challenge = crypto.randomBytes(8);
    const cms = path.join(dir, 'challenge.cms');
    fs.writeFileSync(cms, sign(challenge));
    const signerOut = path.join(dir, 'signer.pem');
    const content = path.join(dir, 'content.bin');
    const r = spawnSync(
      'openssl',
      ['cms', '-verify', '-noverify', '-inform', 'DER', '-in', cms, '-out', content, '-signer', signerOut],
      {
        encoding: 'utf8',
      },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('Verification successful');
    expect(fs.readFileSync(content)).toEqual(challenge);
    expect(new crypto.X509Certificate(fs.readFileSync(signerOut)).raw).toEqual(fs.readFileSync(f('a.der')));
    const printed = openssl(['cms', '-cmsout', '-print', '-inform', 'DER', '-in', cms]);
    expect(printed).toContain('eContentType: pkcs7-data');
    expect(printed).toMatch(/digestAlgorithm:\s+algorithm: sha256/);
    for (const attr of ['contentType', 'signingTime', 'messageDigest']) expect(printed).toContain(attr);
    // The signature really covers the content: another challenge in the same envelope fails.
    const tampered = Buffer.from(fs.readFileSync(cms));
    const at = tampered.indexOf(challenge);
    tampered[at] = (tampered[at] ?? 0) ^ 0xff;
    fs.writeFileSync(cms, tampered);
    expect(
      spawnSync('openssl', ['cms', '-verify', '-noverify', '-inform', 'DER', '-in', cms, '-out', content]).status,
    ).not.toBe(0);
  });
});

describe('unlock, list and delete', () => {
  it('lists without a passphrase, oldest first, with the fields of cli.md', async () => {
    const { service, db } = station();
    const one = await service.create({ org: 'One', id: 'one' });
    const two = await service.importFile(f('a.p12'), { password: 'secret-pw', id: 'two' });
    const readOnly = new IdentityService({
      db,
      vault: () => Promise.reject(new KitError('vault/passphrase-required', 'no passphrase in this test')),
    });
    expect(readOnly.list()).toEqual([one, two]);
    expect(Object.keys(readOnly.list()[0] ?? {}).sort()).toEqual(['fingerprint', 'id', 'notAfter', 'notBefore', 'org']);
    expect(await codeOf(readOnly.unlock('one'))).toBe('vault/passphrase-required');
    expect(await codeOf(readOnly.unlock('three'))).toBe('identity/not-found');
  });

  it('refuses to delete an identity a blueprint uses (injected check or blueprints table)', async () => {
    const used = new Set(['in-use']);
    const { service, db } = station({ isInUse: (id) => used.has(id) });
    await service.create({ org: 'A', id: 'in-use' });
    await service.create({ org: 'B', id: 'by-table' });
    await service.create({ org: 'C', id: 'free' });
    expect(await codeOf(() => service.delete('in-use'))).toBe('identity/in-use');
    db.exec(`INSERT INTO blueprints (name, json, identity_id, created_at, updated_at)
             VALUES ('cart-1', '{}', 'by-table', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z');`);
    expect(await codeOf(() => service.delete('by-table'))).toBe('identity/in-use');
    expect(new KitError('identity/in-use', 'x').exitCode).toBe(1);
    service.delete('free');
    expect(service.list().map((i) => i.id)).toEqual(['in-use', 'by-table']);
    expect(await codeOf(() => service.delete('free'))).toBe('identity/not-found');
    expect(listAudit(db, { subject: 'free' }).map((e) => e.action)).toEqual(['identity/deleted', 'identity/created']);
  });

  it('reports a stored key that was tampered with as vault/corrupt', async () => {
    const { service, db } = station();
    const { id } = await service.create({ org: 'A' });
    db.prepare('UPDATE identities SET encrypted_key = ? WHERE id = ?').run(
      Buffer.from('KSV\u0001' + 'x'.repeat(60)),
      id,
    );
    expect(await codeOf(service.unlock(id))).toBe('vault/corrupt');
  });
});
