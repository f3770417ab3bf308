/**
 * electron-builder.yml and what it packs, checked without downloading Electron: targets, hardened
 * runtime, entitlements (a valid plist), asarUnpack covering every native module present in
 * node_modules, the CLI launchers, and the packaged file list computed from the `files` patterns
 * over the build output (`npm run build` first, as `npm test` does).
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodePlist, isPlistDict } from '../../src/plist/index.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
// js-yaml: the YAML parser electron-builder itself reads this file with (a direct devDependency).
const yaml = createRequire(import.meta.url)('js-yaml') as { load(text: string): unknown };

interface Target {
  target: string;
  arch?: string | string[];
}
interface BuilderConfig {
  files: string[];
  asarUnpack: string[];
  extraResources: { from: string; to: string; filter: string[] }[];
  mac: {
    target: Target[];
    hardenedRuntime: boolean;
    entitlements: string;
    entitlementsInherit: string;
    notarize: boolean;
    icon: string;
  };
  win: { target: Target[]; icon: string };
  linux: { target: string[]; icon: string };
}

const config = yaml.load(fs.readFileSync(path.join(ROOT, 'electron-builder.yml'), 'utf8')) as BuilderConfig;

function walk(dir: string, base = dir): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p, base) : [path.relative(base, p).split(path.sep).join('/')];
  });
}

/** electron-builder's rule: a file is in when the last matching pattern is positive. */
function included(file: string, patterns: readonly string[]): boolean {
  let inside = false;
  for (const p of patterns) {
    const neg = p.startsWith('!');
    if (path.matchesGlob(file, neg ? p.slice(1) : p)) inside = !neg;
  }
  return inside;
}

describe('electron-builder.yml', () => {
  it('builds a universal dmg + zip with hardened runtime, entitlements and notarization; nsis; AppImage + deb', () => {
    expect(config.mac.target).toEqual([
      { target: 'dmg', arch: 'universal' },
      { target: 'zip', arch: 'universal' },
    ]);
    expect(config.mac.hardenedRuntime).toBe(true);
    expect(config.mac.notarize).toBe(true);
    expect(config.win.target.map((t) => t.target)).toEqual(['nsis']);
    expect(config.linux.target).toEqual(['AppImage', 'deb']);
  });

  it('has a valid entitlements plist with USB access and the JIT rights Electron needs', () => {
    expect(config.mac.entitlementsInherit).toBe(config.mac.entitlements);
    const plist = decodePlist(fs.readFileSync(path.join(ROOT, config.mac.entitlements)));
    expect(isPlistDict(plist)).toBe(true);
    if (isPlistDict(plist)) {
      expect(plist['com.apple.security.device.usb']).toBe(true);
      expect(plist['com.apple.security.cs.allow-jit']).toBe(true);
    }
  });

  it('has the icons it names (png 1024, icns, ico)', () => {
    const png = fs.readFileSync(path.join(ROOT, config.linux.icon));
    expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
    expect(png.readUInt32BE(16)).toBe(1024);
    expect(fs.readFileSync(path.join(ROOT, config.mac.icon)).subarray(0, 4).toString('latin1')).toBe('icns');
    expect(fs.readFileSync(path.join(ROOT, config.win.icon)).readUInt16LE(2)).toBe(1);
  });

  it('unpacks every native module present in node_modules from the asar', () => {
    const natives = walk(path.join(ROOT, 'node_modules'))
      .filter((f) => f.endsWith('.node'))
      .filter((f) => /^(better-sqlite3|usb|@node-usb)\//.test(f))
      .map((f) => `node_modules/${f}`);
    expect(natives.some((f) => f.startsWith('node_modules/better-sqlite3/'))).toBe(true);
    expect(natives.some((f) => f.startsWith('node_modules/@node-usb/'))).toBe(true);
    for (const f of natives) expect(included(f, config.asarUnpack), f).toBe(true);
  });

  it('ships the kitting CLI launchers (executable shell script and .cmd) as extra resources', () => {
    const res = config.extraResources[0];
    expect(res).toMatchObject({ from: 'resources/bin', to: 'bin' });
    const sh = path.join(ROOT, 'resources/bin/kitting');
    expect(fs.statSync(sh).mode & 0o111).not.toBe(0);
    const text = fs.readFileSync(sh, 'utf8');
    expect(text.startsWith('#!/bin/sh')).toBe(true);
    expect(text).toContain('ELECTRON_RUN_AS_NODE=1');
    expect(text).toContain('dist/cli/main.js');
    expect(fs.readFileSync(path.join(ROOT, 'resources/bin/kitting.cmd'), 'utf8')).toContain('ELECTRON_RUN_AS_NODE=1');
  });

  it('packs main, preload, the UI and the CLI, and no sources or tests', () => {
    expect(config.files).toEqual(expect.arrayContaining(['dist/**', 'dist-electron/**', 'package.json']));
    const candidates = [
      'package.json',
      ...walk(path.join(ROOT, 'dist')).map((f) => `dist/${f}`),
      ...walk(path.join(ROOT, 'dist-electron')).map((f) => `dist-electron/${f}`),
      ...walk(path.join(ROOT, 'src')).map((f) => `src/${f}`),
      ...walk(path.join(ROOT, 'test/unit')).map((f) => `test/unit/${f}`),
      ...walk(path.join(ROOT, 'electron')).map((f) => `electron/${f}`),
    ];
    const packed = candidates.filter((f) => included(f, config.files));
    for (const f of [
      'package.json',
      'dist-electron/main.js',
      'dist-electron/preload.cjs',
      'dist/cli/main.js',
      'dist/renderer/index.html',
    ]) {
      expect(packed, f).toContain(f);
    }
    expect(packed.filter((f) => f.endsWith('.ts') || f.startsWith('src/') || f.startsWith('test/'))).toEqual([]);
    expect(packed.filter((f) => f.endsWith('.map'))).toEqual([]);
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { main: string };
    expect(packed).toContain(pkg.main);
  });
});
