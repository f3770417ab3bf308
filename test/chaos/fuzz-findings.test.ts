/**
 * Regressions for what the fuzzers found (test/chaos/fuzz.test.ts), each reduced to a small input.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import { createSupervisionCertificate, inspectCertificate } from '../../src/identity/certificate.ts';
import { readIdentityFiles } from '../../src/identity/material.ts';

describe('fuzz findings', () => {
  it('a certificate whose public key does not decode is identity/corrupt-file, not a bare OpenSSL error', () => {
    const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const der = createSupervisionCertificate({ org: 'Fuzz', publicKey, privateKey });
    // SPKI: BIT STRING (03 82 01 0f 00) holding the RSAPublicKey SEQUENCE (30 82 01 0a): make it a SET.
    const at = der.indexOf(Buffer.from('0382010f00308201', 'hex'));
    expect(at).toBeGreaterThan(0);
    const bad = Buffer.from(der);
    bad[at + 5] = 0x31;
    const thrown = (() => {
      try {
        inspectCertificate(bad, 'bad.cer');
        return undefined;
      } catch (err) {
        return err;
      }
    })();
    expect(thrown).toBeInstanceOf(KitError);
    expect((thrown as KitError).code).toBe('identity/corrupt-file');

    // The same bytes through the file reader (PEM), where the fuzzer met it.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kit-fuzz-finding-'));
    try {
      const file = path.join(dir, 'bad.pem');
      fs.writeFileSync(
        file,
        `-----BEGIN CERTIFICATE-----\n${bad.toString('base64')}\n-----END CERTIFICATE-----\n${privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()}`,
      );
      expect(() => readIdentityFiles(file)).toThrow(expect.objectContaining({ code: 'identity/corrupt-file' }));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
