import crypto from 'node:crypto';
import forge from 'node-forge';
import { describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import {
  certificateFacts,
  generatePairRecord,
  newHostKeys,
  sharedHostKeys,
  pairRecordFromPlist,
  pairRecordToPlist,
  pairRequestRecord,
} from '../../src/device/pairing.ts';
import { deviceTlsOptions, majorVersion } from '../../src/device/tls.ts';
import { decodePlist, encodeBinary, encodeXml, isPlistDict, type PlistDict } from '../../src/plist/index.ts';

const deviceKeys = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const devicePublicKey = Buffer.from(deviceKeys.publicKey.export({ type: 'pkcs1', format: 'pem' }).toString());

function extensions(
  pem: Buffer,
): Record<string, { critical?: boolean; cA?: boolean; digitalSignature?: boolean; keyEncipherment?: boolean }> {
  const cert = forge.pki.certificateFromPem(pem.toString());
  const out: Record<string, { critical?: boolean }> = {};
  for (const ext of cert.extensions as { name: string; critical?: boolean }[]) out[ext.name] = ext;
  return out;
}

const generated = await generatePairRecord({
  devicePublicKey,
  systemBuid: 'BUID-1',
  wifiMacAddress: 'aa:bb:cc:dd:ee:ff',
});

describe('pair record generation (§3.2)', () => {
  const record = generated;

  it('makes SHA-256 certificates with serial 0, empty DNs and ten years of validity', () => {
    for (const pem of [record.rootCertificate, record.hostCertificate, record.deviceCertificate]) {
      const f = certificateFacts(pem);
      expect(f.serial).toBe('00');
      expect(f.signatureHash).toBe('sha256');
      expect(f.subjectEmpty).toBe(true);
      expect(f.issuerEmpty).toBe(true);
      const years = (f.notAfter.getTime() - f.notBefore.getTime()) / (365 * 24 * 3600 * 1000);
      expect(Math.round(years)).toBe(10);
      expect(forge.pki.certificateFromPem(pem.toString()).version).toBe(2);
    }
  });

  it('uses RSA 2048 keys, PKCS#8 PEM, and an uppercase UUID HostID', () => {
    expect(record.hostId).toMatch(/^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/);
    for (const pem of [record.hostPrivateKey, record.rootPrivateKey]) {
      expect(pem.toString()).toMatch(/^-----BEGIN PRIVATE KEY-----/);
      const key = crypto.createPrivateKey(pem);
      expect(key.asymmetricKeyDetails?.modulusLength).toBe(2048);
      expect(key.asymmetricKeyDetails?.publicExponent).toBe(65537n);
    }
  });

  it('sets the extensions: root CA:TRUE critical; host and device CA:FALSE + KU critical', () => {
    const root = extensions(record.rootCertificate);
    expect(root.basicConstraints).toMatchObject({ cA: true, critical: true });
    for (const pem of [record.hostCertificate, record.deviceCertificate]) {
      const ext = extensions(pem);
      expect(ext.basicConstraints).toMatchObject({ cA: false, critical: true });
      expect(ext.keyUsage).toMatchObject({ digitalSignature: true, keyEncipherment: true, critical: true });
    }
  });

  it('puts the device public key in the device certificate, and signs host and device with the root key', () => {
    const rootKey = new crypto.X509Certificate(record.rootCertificate).publicKey;
    expect(new crypto.X509Certificate(record.hostCertificate).verify(rootKey)).toBe(true);
    expect(new crypto.X509Certificate(record.deviceCertificate).verify(rootKey)).toBe(true);
    expect(
      certificateFacts(record.deviceCertificate).publicKeySpki.equals(
        deviceKeys.publicKey.export({ type: 'spki', format: 'der' }),
      ),
    ).toBe(true);
    const hostKey = crypto.createPublicKey(crypto.createPrivateKey(record.hostPrivateKey));
    expect(
      certificateFacts(record.hostCertificate).publicKeySpki.equals(hostKey.export({ type: 'spki', format: 'der' })),
    ).toBe(true);
  });

  it('can sign with SHA-1 and accepts an SPKI device key', async () => {
    const spki = deviceKeys.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const old = await generatePairRecord({ devicePublicKey: spki, systemBuid: 'B', hash: 'sha1' });
    expect(certificateFacts(old.hostCertificate).signatureHash).toBe('sha1');
  });

  it('reuses the shared root and host keys with a new HostID per pairing', async () => {
    const keys = await sharedHostKeys();
    expect(await sharedHostKeys()).toBe(keys);
    const a = await generatePairRecord({ devicePublicKey, systemBuid: 'B', keys });
    const b = await generatePairRecord({ devicePublicKey, systemBuid: 'B', keys });
    expect(a.hostId).not.toBe(b.hostId);
    expect(a.hostPrivateKey.equals(b.hostPrivateKey)).toBe(true);
    expect(
      certificateFacts(a.hostCertificate).publicKeySpki.equals(
        keys.host.publicKey.export({ type: 'spki', format: 'der' }),
      ),
    ).toBe(true);
    const fresh = await newHostKeys();
    expect(fresh.root.privateKey.equals(keys.root.privateKey)).toBe(false);
  });

  it('with the same keys makes root and host certificates once (per hash); each device certificate is its own, signed by that root', async () => {
    const keys = await newHostKeys();
    const otherDevice = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    const a = await generatePairRecord({ devicePublicKey, systemBuid: 'B', keys });
    const b = await generatePairRecord({
      devicePublicKey: otherDevice.export({ type: 'pkcs1', format: 'pem' }).toString(),
      systemBuid: 'B',
      keys,
    });
    expect(b.rootCertificate.equals(a.rootCertificate)).toBe(true);
    expect(b.hostCertificate.equals(a.hostCertificate)).toBe(true);
    expect(b.deviceCertificate.equals(a.deviceCertificate)).toBe(false);
    const root = new crypto.X509Certificate(a.rootCertificate);
    for (const r of [a, b]) {
      expect(new crypto.X509Certificate(r.deviceCertificate).verify(root.publicKey)).toBe(true);
      expect(new crypto.X509Certificate(r.hostCertificate).verify(root.publicKey)).toBe(true);
    }
    expect(new crypto.X509Certificate(b.deviceCertificate).publicKey.equals(otherDevice)).toBe(true);
    // Another hash gets its own pair of host-side certificates, signed with it.
    const sha1 = await generatePairRecord({ devicePublicKey, systemBuid: 'B', keys, hash: 'sha1' });
    expect(sha1.rootCertificate.equals(a.rootCertificate)).toBe(false);
    expect(certificateFacts(sha1.rootCertificate).signatureHash).toBe('sha1');
    expect(certificateFacts(sha1.deviceCertificate).signatureHash).toBe('sha1');
  });

  it('refuses a DevicePublicKey that is not an RSA key', async () => {
    const ec = crypto
      .generateKeyPairSync('ec', { namedCurve: 'P-256' })
      .publicKey.export({ type: 'spki', format: 'pem' })
      .toString();
    await expect(generatePairRecord({ devicePublicKey: ec, systemBuid: 'B' })).rejects.toThrow(KitError);
    await expect(generatePairRecord({ devicePublicKey: 'junk', systemBuid: 'B' })).rejects.toThrow(/DevicePublicKey/);
  });
});

const stored = {
  ...(await generatePairRecord({ devicePublicKey, systemBuid: 'BUID-2' })),
  escrowBag: Buffer.alloc(32, 7),
  wifiMacAddress: 'aa:bb:cc:dd:ee:01',
};

describe('pair record storage shapes', () => {
  const record = stored;

  it('round-trips through a binary plist with Apple key names (libimobiledevice style)', () => {
    const dict = pairRecordToPlist(record);
    expect(Object.keys(dict).sort()).toEqual([
      'DeviceCertificate',
      'EscrowBag',
      'HostCertificate',
      'HostID',
      'HostPrivateKey',
      'RootCertificate',
      'RootPrivateKey',
      'SystemBUID',
      'WiFiMACAddress',
    ]);
    const back = decodePlist(encodeBinary(dict));
    expect(isPlistDict(back)).toBe(true);
    expect(pairRecordFromPlist(back as PlistDict)).toEqual(record);
  });

  it('reads a go-ios style record: XML, PKCS#1 keys', () => {
    const pkcs1 = (pem: Buffer): Buffer =>
      Buffer.from(crypto.createPrivateKey(pem).export({ type: 'pkcs1', format: 'pem' }).toString());
    const goIos = {
      ...pairRecordToPlist(record),
      HostPrivateKey: pkcs1(record.hostPrivateKey),
      RootPrivateKey: pkcs1(record.rootPrivateKey),
    };
    const parsed = pairRecordFromPlist(decodePlist(encodeXml(goIos)) as PlistDict, 'U');
    expect(parsed.hostPrivateKey.toString()).toContain('BEGIN RSA PRIVATE KEY');
    const opts = deviceTlsOptions(parsed, '17.5');
    expect(crypto.createPrivateKey(opts.key as Buffer).asymmetricKeyType).toBe('rsa');
  });

  it('rejects records of the wrong shape with pairing/invalid-record naming the field', () => {
    const base = pairRecordToPlist(record);
    const cases: [PlistDict, string][] = [
      [{ ...base, HostID: 42 }, 'HostID'],
      [(({ HostCertificate: _h, ...rest }) => rest)(base), 'HostCertificate'],
      [{ ...base, HostPrivateKey: Buffer.from('not a key') }, 'HostPrivateKey'],
      [
        { ...base, DeviceCertificate: Buffer.from('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n') },
        'DeviceCertificate',
      ],
    ];
    for (const [dict, field] of cases) {
      let caught: unknown;
      try {
        pairRecordFromPlist(dict, 'U');
      } catch (err) {
        caught = err;
      }
      expect(caught, field).toBeInstanceOf(KitError);
      expect((caught as KitError).code).toBe('pairing/invalid-record');
      expect((caught as KitError).details?.field).toBe(field);
    }
  });

  it('never sends private keys in the Pair request record', () => {
    expect(Object.keys(pairRequestRecord(record)).sort()).toEqual([
      'DeviceCertificate',
      'HostCertificate',
      'HostID',
      'RootCertificate',
      'SystemBUID',
    ]);
  });
});

describe('session TLS options (§3.5)', () => {
  it('lowers the security level, never verifies the device and picks the range by iOS version', () => {
    const r = { hostCertificate: Buffer.from('c'), hostPrivateKey: Buffer.from('k') };
    expect(deviceTlsOptions(r, '9.3.5')).toMatchObject({
      minVersion: 'TLSv1',
      rejectUnauthorized: false,
      ciphers: 'DEFAULT:@SECLEVEL=0',
    });
    expect(deviceTlsOptions(r, '17.5').minVersion).toBe('TLSv1.2');
    expect((deviceTlsOptions(r, '17.5').secureOptions ?? 0) & crypto.constants.SSL_OP_LEGACY_SERVER_CONNECT).not.toBe(
      0,
    );
    expect(deviceTlsOptions(r, undefined).minVersion).toBe('TLSv1');
    expect(majorVersion('10.0')).toBe(10);
    expect(majorVersion('x')).toBeUndefined();
  });
});
