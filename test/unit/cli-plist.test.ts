/** `kitting plist print|convert`, run as a real process the way a user or a script runs it. */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PlistReal,
  decodeBinary,
  decodeXml,
  encodeBinary,
  encodeXml,
  plistEqual,
  type PlistDict,
} from '../../src/plist/index.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const NODE = path.join(ROOT, 'node_modules/.bin/node');
const FIXTURES = path.join(ROOT, 'test/fixtures/plist');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function kitting(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      NODE,
      ['bin/kitting.js', ...args],
      { cwd: ROOT, env: { ...process.env, LANG: 'en_US.UTF-8' } },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const sample: PlistDict = {
  DeviceName: 'Cart 7 / Slot 12 キッティング',
  ChipID: 33056,
  UniqueChipID: 2n ** 63n + 11n,
  TimeIntervalSince1970: 1718000000.5,
  Whole: new PlistReal(3),
  EscrowBag: Buffer.from('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', 'hex'),
  Activated: true,
  When: new Date('2024-05-06T07:08:09Z'),
  Families: [1, 2],
  Empty: {},
};

let dir: string;
let xmlFile: string;
let binFile: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-plist-'));
  xmlFile = path.join(dir, 'sample.plist');
  binFile = path.join(dir, 'sample.bplist');
  fs.writeFileSync(xmlFile, encodeXml(sample));
  fs.writeFileSync(binFile, encodeBinary(sample));
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('kitting plist print', () => {
  it('prints a readable dump of a binary plist', async () => {
    const r = await kitting('plist', 'print', binFile);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('"DeviceName" => "Cart 7 / Slot 12 キッティング"');
    expect(r.stdout).toContain('"ChipID" => 33056\n');
    expect(r.stdout).toContain('"UniqueChipID" => 9223372036854775819');
    expect(r.stdout).toContain('"TimeIntervalSince1970" => 1718000000.5 (real)');
    expect(r.stdout).toContain('"Whole" => 3 (real)');
    expect(r.stdout).toContain('"EscrowBag" => <32 bytes: 00112233445566778899aabbccddeeff0011223344556677…>');
    expect(r.stdout).toContain('"When" => 2024-05-06T07:08:09Z (date)');
    expect(r.stdout).toContain('"Families" => [\n    0 => 1\n    1 => 2\n  ]');
    expect(r.stdout).toContain('"Empty" => {}');
  });

  it('--json after the file and before the command give the same JSON', async () => {
    const after = await kitting('plist', 'print', xmlFile, '--json');
    const before = await kitting('--json', 'plist', 'print', xmlFile);
    expect(after.code).toBe(0);
    expect(before.stdout).toBe(after.stdout);
    const json = JSON.parse(after.stdout) as Record<string, unknown>;
    expect(json).toEqual({
      DeviceName: 'Cart 7 / Slot 12 キッティング',
      ChipID: 33056,
      UniqueChipID: '9223372036854775819',
      TimeIntervalSince1970: 1718000000.5,
      Whole: 3,
      EscrowBag: (sample.EscrowBag as Buffer).toString('base64'),
      Activated: true,
      When: '2024-05-06T07:08:09.000Z',
      Families: [1, 2],
      Empty: {},
    });
  });

  it('a broken file → exit 2 and a plist/malformed error document with --json', async () => {
    const broken = path.join(dir, 'broken.plist');
    fs.writeFileSync(
      broken,
      '<?xml version="1.0"?>\n<plist version="1.0">\n<dict>\n<key>a</key>\n<strin>x</strin>\n</dict>\n</plist>\n',
    );
    const r = await kitting('plist', 'print', broken, '--json');
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout) as { error: { code: string; message: string } };
    expect(doc.error.code).toBe('plist/malformed');
    expect(doc.error.message).toMatch(/unknown tag <strin>.*line 5, column 1/);
    expect(r.stderr).toContain('[plist/malformed]');
    const truncated = path.join(dir, 'truncated.bplist');
    fs.writeFileSync(truncated, encodeBinary(sample).subarray(0, 60));
    const t = await kitting('--json', 'plist', 'print', truncated);
    expect(t.code).toBe(2);
    expect((JSON.parse(t.stdout) as { error: { code: string } }).error.code).toBe('plist/malformed');
  });

  it('a missing file → exit 2 with io/read-failed', async () => {
    const r = await kitting('plist', 'print', path.join(dir, 'nope.plist'), '--json');
    expect(r.code).toBe(2);
    expect((JSON.parse(r.stdout) as { error: { code: string } }).error.code).toBe('io/read-failed');
  });

  it("prints a signed .mobileconfig's content and its signer", async () => {
    const r = await kitting('plist', 'print', path.join(FIXTURES, 'signed-ecdsa-ber-keyid.mobileconfig'));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^# signed profile; signer certificate SHA-256: [0-9a-f]{64}\n/);
    expect(r.stdout).toContain('"PayloadIdentifier" => "jp.example.kitting.test"');
    const j = await kitting('plist', 'print', path.join(FIXTURES, 'signed-ecdsa-ber-keyid.mobileconfig'), '--json');
    expect((JSON.parse(j.stdout) as PlistDict).PayloadType).toBe('Configuration');
  });
});

describe('kitting plist convert', () => {
  it('XML → binary → XML keeps every value and type (reals stay reals)', async () => {
    const bin = path.join(dir, 'out.bplist');
    const xml = path.join(dir, 'out.plist');
    const r1 = await kitting('plist', 'convert', xmlFile, '--to', 'binary', '--out', bin);
    expect(r1.code).toBe(0);
    expect(r1.stdout).toMatch(/^wrote .*out\.bplist \(binary, \d+ bytes\)\n$/);
    expect(fs.readFileSync(bin).subarray(0, 8).toString('latin1')).toBe('bplist00');
    expect(plistEqual(decodeBinary(fs.readFileSync(bin)), sample)).toBe(true);
    const r2 = await kitting('plist', 'convert', bin, '--to', 'xml', '--out', xml, '--json');
    expect(r2.code).toBe(0);
    expect(JSON.parse(r2.stdout)).toEqual({ out: xml, format: 'xml', bytes: fs.statSync(xml).size });
    expect(fs.readFileSync(xml, 'utf8')).toBe(encodeXml(sample).toString('utf8'));
    expect(decodeXml(fs.readFileSync(xml), { realsAsObjects: true })).toMatchObject({ Whole: new PlistReal(3) });
  });

  it('→ json writes the JSON form', async () => {
    const out = path.join(dir, 'out.json');
    const r = await kitting('plist', 'convert', binFile, '--to', 'json', '--out', out);
    expect(r.code).toBe(0);
    const json = JSON.parse(fs.readFileSync(out, 'utf8')) as Record<string, unknown>;
    expect(json.UniqueChipID).toBe('9223372036854775819');
    expect(json.When).toBe('2024-05-06T07:08:09.000Z');
  });

  it('converts a signed profile to its plain content', async () => {
    const out = path.join(dir, 'profile.plist');
    const r = await kitting(
      'plist',
      'convert',
      path.join(FIXTURES, 'signed-ecdsa-ber-keyid.mobileconfig'),
      '--to',
      'xml',
      '--out',
      out,
    );
    expect(r.code).toBe(0);
    expect((decodeXml(fs.readFileSync(out)) as PlistDict).PayloadIdentifier).toBe('jp.example.kitting.test');
  });

  it('a failed conversion leaves the destination untouched and no temp file behind', async () => {
    const out = path.join(dir, 'keep.plist');
    fs.writeFileSync(out, 'previous contents');
    const broken = path.join(dir, 'broken2.plist');
    fs.writeFileSync(broken, '<plist><array><true/></plist>');
    const r = await kitting('plist', 'convert', broken, '--to', 'binary', '--out', out);
    expect(r.code).toBe(2);
    expect(fs.readFileSync(out, 'utf8')).toBe('previous contents');
    // A destination folder that does not exist: io/write-failed, nothing created.
    const missing = path.join(dir, 'no-such-dir', 'x.plist');
    const w = await kitting('--json', 'plist', 'convert', xmlFile, '--to', 'binary', '--out', missing);
    expect(w.code).toBe(1);
    expect((JSON.parse(w.stdout) as { error: { code: string } }).error.code).toBe('io/write-failed');
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('rejects an unknown --to with exit 2', async () => {
    const r = await kitting('plist', 'convert', xmlFile, '--to', 'yaml', '--out', path.join(dir, 'x'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Allowed choices are xml, binary, json/);
  });
});
