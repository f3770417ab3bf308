/**
 * The simulated Apple device CA: one CA certificate per simulator (RSA 2048, SHA-256), and a leaf
 * certificate per device for the device's own RSA key, as a real iPad carries a device identity
 * issued by Apple. A test MDM verifies MachineInfo signatures against {@link DeviceCa.certificatePem}.
 */
import { generateKeyPair, randomBytes } from 'node:crypto';
import forge from 'node-forge';

/** A device's identity certificate and key (PEM). */
export interface DeviceIdentityCert {
  certificatePem: string;
  privateKeyPem: string;
}

function rsaKeyPair(): Promise<{ publicKeyPem: string; privateKeyPem: string }> {
  return new Promise((resolve, reject) => {
    generateKeyPair('rsa', { modulusLength: 2048, publicExponent: 0x10001 }, (err, publicKey, privateKey) => {
      if (err !== null) {
        reject(err);
        return;
      }
      resolve({
        publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
        privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      });
    });
  });
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f;
  return b.toString('hex');
}

/** The simulator's device CA; see the module comment. */
export class DeviceCa {
  /** The CA certificate (PEM) a test MDM trusts. */
  readonly certificatePem: string;
  private readonly cert: forge.pki.Certificate;
  private readonly key: forge.pki.rsa.PrivateKey;
  private readonly issued = new Map<string, string>();

  private constructor(cert: forge.pki.Certificate, key: forge.pki.rsa.PrivateKey) {
    this.cert = cert;
    this.key = key;
    this.certificatePem = forge.pki.certificateToPem(cert);
  }

  /** Generates a new CA (10 years, `CN=Simulated Apple iPhone Device CA`). */
  static async create(): Promise<DeviceCa> {
    const pair = await rsaKeyPair();
    const key = forge.pki.privateKeyFromPem(pair.privateKeyPem) as forge.pki.rsa.PrivateKey;
    const cert = forge.pki.createCertificate();
    cert.publicKey = forge.pki.publicKeyFromPem(pair.publicKeyPem);
    cert.serialNumber = serial();
    cert.validity.notBefore = new Date(Date.now() - 60_000);
    cert.validity.notAfter = new Date(Date.now() + 10 * 365 * 86_400_000);
    const name = [
      { name: 'commonName', value: 'Simulated Apple iPhone Device CA' },
      { name: 'organizationName', value: 'Kitting Station Simulator' },
    ];
    cert.setSubject(name);
    cert.setIssuer(name);
    cert.setExtensions([
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      { name: 'subjectKeyIdentifier' },
    ]);
    cert.sign(key, forge.md.sha256.create());
    return new DeviceCa(cert, key);
  }

  /**
   * The device certificate for `udid` and its key (`privateKeyPem`, PKCS#8 PEM of the device's RSA
   * key): issued once per UDID and reused.
   */
  issue(udid: string, publicKeyPem: string, privateKeyPem: string): DeviceIdentityCert {
    let pem = this.issued.get(udid);
    if (pem === undefined) {
      const cert = forge.pki.createCertificate();
      cert.publicKey = forge.pki.publicKeyFromPem(publicKeyPem);
      cert.serialNumber = serial();
      cert.validity.notBefore = new Date(Date.now() - 60_000);
      cert.validity.notAfter = new Date(Date.now() + 5 * 365 * 86_400_000);
      cert.setSubject([{ name: 'commonName', value: udid }]);
      cert.setIssuer(this.cert.subject.attributes);
      cert.setExtensions([
        { name: 'basicConstraints', cA: false, critical: true },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      ]);
      cert.sign(this.key, forge.md.sha256.create());
      pem = forge.pki.certificateToPem(cert);
      this.issued.set(udid, pem);
    }
    return { certificatePem: pem, privateKeyPem };
  }
}
