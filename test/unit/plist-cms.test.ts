/** Signed configuration profiles (CMS SignedData with the plist attached). */
import fs from 'node:fs';
import path from 'node:path';
import forge from 'node-forge';
import { beforeAll, describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import { decodePlist, encodeBinary, encodeXml, readSignedPlist, type PlistDict } from '../../src/plist/index.ts';

const FIXTURES = path.resolve(import.meta.dirname, '../fixtures/plist');

const profile: PlistDict = {
  PayloadContent: [{ PayloadType: 'com.apple.wifi.managed', SSID_STR: 'Cart-7', HIDDEN_NETWORK: false }],
  PayloadDisplayName: 'キッティング Wi-Fi',
  PayloadIdentifier: 'jp.example.kitting.wifi',
  PayloadType: 'Configuration',
  PayloadUUID: '0C7B0D5E-9A61-4E7C-8E02-1F1A2B3C4D5E',
  PayloadVersion: 1,
};

interface Identity {
  key: forge.pki.rsa.PrivateKey;
  cert: forge.pki.Certificate;
  der: Buffer;
}

function selfSigned(cn: string, serial: string): Identity {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 1024, e: 0x10001 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serial;
  cert.validity.notBefore = new Date('2024-01-01T00:00:00Z');
  cert.validity.notAfter = new Date('2034-01-01T00:00:00Z');
  const name = [{ name: 'commonName', value: cn }];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  const der = Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), 'binary');
  return { key: keys.privateKey, cert, der };
}

function signedData(content: Buffer, signer: Identity, extra: Identity[] = []): forge.pkcs7.PkcsSignedData {
  const p7 = forge.pkcs7.createSignedData();
  p7.content = forge.util.createBuffer(content.toString('binary'));
  p7.addCertificate(signer.cert);
  for (const e of extra) p7.addCertificate(e.cert);
  p7.addSigner({
    key: signer.key,
    certificate: signer.cert,
    digestAlgorithm: forge.pki.oids.sha256 as string,
    authenticatedAttributes: [
      { type: forge.pki.oids.contentType as string, value: forge.pki.oids.data as string },
      { type: forge.pki.oids.messageDigest as string },
      { type: forge.pki.oids.signingTime as string, value: new Date('2025-01-01T00:00:00Z') as unknown as string },
    ],
  });
  p7.sign();
  return p7;
}

function toDer(p7: forge.pkcs7.PkcsSignedData): Buffer {
  return Buffer.from(forge.asn1.toDer(p7.toAsn1()).getBytes(), 'binary');
}

function cmsErrorOf(bytes: Uint8Array): KitError {
  try {
    readSignedPlist(bytes);
  } catch (e) {
    expect(e).toBeInstanceOf(KitError);
    return e as KitError;
  }
  throw new Error('expected readSignedPlist to throw');
}

let signer: Identity;
let other: Identity;

beforeAll(() => {
  signer = selfSigned('Kitting Test Signer', '01a2');
  other = selfSigned('Unrelated Intermediate', '7f');
});

describe('readSignedPlist', () => {
  it('returns the attached XML plist and the signer certificate (DER)', () => {
    const der = toDer(signedData(encodeXml(profile), signer));
    const { content, signerCertificatesDer } = readSignedPlist(der);
    expect(content).toEqual(profile);
    expect(signerCertificatesDer).toHaveLength(1);
    expect((signerCertificatesDer[0] as Buffer).equals(signer.der)).toBe(true);
    const parsed = forge.pki.certificateFromAsn1(
      forge.asn1.fromDer((signerCertificatesDer[0] as Buffer).toString('binary')),
    );
    expect(parsed.subject.getField('CN').value).toBe('Kitting Test Signer');
  });

  it('returns only the signer when the SignedData carries other certificates too', () => {
    const der = toDer(signedData(encodeXml(profile), signer, [other]));
    const { signerCertificatesDer } = readSignedPlist(der);
    expect(signerCertificatesDer.map((c) => c.equals(signer.der))).toEqual([true]);
  });

  it('reads PEM input and a binary plist content', () => {
    const pem = forge.pkcs7.messageToPem(signedData(encodeBinary(profile), signer));
    expect(pem).toMatch(/^-----BEGIN PKCS7-----/);
    const { content, signerCertificatesDer } = readSignedPlist(Buffer.from(pem));
    expect(content).toEqual(profile);
    expect(signerCertificatesDer).toHaveLength(1);
  });

  it('reads BER with indefinite lengths, an ECDSA signer and a key-identifier signer id (OpenSSL output)', () => {
    const bytes = fs.readFileSync(path.join(FIXTURES, 'signed-ecdsa-ber-keyid.mobileconfig'));
    expect(bytes[1]).toBe(0x80); // indefinite length
    const { content, signerCertificatesDer } = readSignedPlist(bytes);
    expect((content as PlistDict).PayloadIdentifier).toBe('jp.example.kitting.test');
    expect((content as PlistDict).PayloadVersion).toBe(1);
    const expected = fs.readFileSync(path.join(FIXTURES, 'signed-ecdsa-ber-keyid.signer.der'));
    expect(signerCertificatesDer).toHaveLength(1);
    expect((signerCertificatesDer[0] as Buffer).equals(expected)).toBe(true);
  });

  it('an unsigned plist → cms/malformed saying it is unsigned', () => {
    for (const bytes of [encodeXml(profile), encodeBinary(profile)]) {
      const e = cmsErrorOf(bytes);
      expect(e.code).toBe('cms/malformed');
      expect(e.message).toMatch(/unsigned property list/);
    }
  });

  it('garbage, truncation, a detached signature and a wrong content type → cms/malformed', () => {
    const der = toDer(signedData(encodeXml(profile), signer));
    expect(cmsErrorOf(Buffer.from('hello')).code).toBe('cms/malformed');
    expect(cmsErrorOf(Buffer.alloc(0)).code).toBe('cms/malformed');
    for (const cut of [1, 10, 100, der.length - 1]) {
      const e = cmsErrorOf(der.subarray(0, cut));
      expect(e.code).toBe('cms/malformed');
      expect(typeof e.details?.offset).toBe('number');
    }
    // A lying length: the outer SEQUENCE claims 2^40 bytes.
    expect(cmsErrorOf(Buffer.from([0x30, 0x86, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00])).message).toMatch(
      /claims 1099511627776 bytes/,
    );

    const detached = forge.pkcs7.createSignedData();
    detached.content = forge.util.createBuffer(encodeXml(profile).toString('binary'));
    detached.addCertificate(signer.cert);
    detached.addSigner({ key: signer.key, certificate: signer.cert, digestAlgorithm: forge.pki.oids.sha256 as string });
    detached.sign({ detached: true });
    expect(cmsErrorOf(toDer(detached)).message).toMatch(/detached/);

    const envelopedOid = Buffer.from(der);
    const at = envelopedOid.indexOf(Buffer.from('2a864886f70d010702', 'hex'));
    envelopedOid[at + 8] = 0x03; // 1.2.840.113549.1.7.3 envelopedData
    expect(cmsErrorOf(envelopedOid).message).toMatch(/not signedData/);
  });

  it('signed content that is not a plist → plist/malformed', () => {
    const der = toDer(signedData(Buffer.from('just text, no plist'), signer));
    const e = cmsErrorOf(der);
    expect(e.code).toBe('plist/malformed');
  });

  it('decodePlist points at readSignedPlist for signed input', () => {
    const der = toDer(signedData(encodeXml(profile), signer));
    expect(() => decodePlist(der)).toThrow(/readSignedPlist/);
  });
});
