import path from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

/** The lint rules that keep the three roots and src/ layers apart (architecture.md) really fire. */
const root = path.resolve(import.meta.dirname, '../..');
const eslint = new ESLint({ cwd: root });

async function restrictedImports(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: path.join(root, file) });
  return (result?.messages ?? []).filter((m) => m.ruleId?.endsWith('no-restricted-imports')).map((m) => m.message);
}

describe('layer rules', () => {
  it('src/ never imports electron or react', async () => {
    expect(await restrictedImports('src/x.ts', "import 'electron';\n")).toHaveLength(1);
    expect(await restrictedImports('src/x.ts', "import { useState } from 'react';\nuseState();\n")).toHaveLength(1);
  });

  it('src/device/ never imports src/kitting/ or the simulator', async () => {
    expect(await restrictedImports('src/device/a.ts', "import '../kitting/steps.ts';\n")).toHaveLength(1);
    expect(await restrictedImports('src/device/a.ts', "import '../simulator/index.ts';\n")).toHaveLength(1);
    expect(await restrictedImports('src/device/a.ts', "import '../plist/index.ts';\n")).toHaveLength(0);
  });

  it('the simulator never imports the client, except the model catalogue', async () => {
    expect(await restrictedImports('src/simulator/a.ts', "import '../device/lockdown.ts';\n")).toHaveLength(1);
    expect(await restrictedImports('src/simulator/a.ts', "import '../device/models.ts';\n")).toHaveLength(0);
  });

  it('renderer/ imports only types from src/contract.ts and src/errors.ts', async () => {
    const ok = "import type { KitError } from '../src/errors.ts';\nexport type X = KitError;\n";
    expect(await restrictedImports('renderer/a.tsx', ok)).toHaveLength(0);
    const valueImport = "import { KitError } from '../src/errors.ts';\nexport const x = KitError;\n";
    expect(await restrictedImports('renderer/a.tsx', valueImport)).toHaveLength(1);
    expect(await restrictedImports('renderer/a.tsx', "import '../src/station.ts';\n")).toHaveLength(1);
    expect(await restrictedImports('renderer/a.tsx', "import 'node:fs';\n")).toHaveLength(1);
  });
});
