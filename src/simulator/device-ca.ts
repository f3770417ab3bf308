/**
 * The simulated Apple device CA: one CA certificate per simulator (RSA 2048, SHA-256), and a leaf
 * certificate per device for the device's own RSA key, as a real iPad carries a device identity
 * issued by Apple. A test MDM verifies MachineInfo signatures against {@link DeviceCa.certificatePem}.
 */
import forge from 'node-forge';
import { createCertificate, createSelfSignedCa } from './certificates.ts';

/** A device's identity certificate and key (PEM). */
export interface DeviceIdentityCert {
  certificatePem: string;
  privateKeyPem: string;
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
    const ca = await createSelfSignedCa([
      { name: 'commonName', value: 'Simulated Apple iPhone Device CA' },
      { name: 'organizationName', value: 'Kitting Station Simulator' },
    ]);
    return new DeviceCa(ca.certificate, ca.privateKey);
  }

  /**
   * The device certificate for `udid` and its key (`privateKeyPem`, PKCS#8 PEM of the device's RSA
   * key): issued once per UDID and reused.
   */
  issue(udid: string, publicKeyPem: string, privateKeyPem: string): DeviceIdentityCert {
    let pem = this.issued.get(udid);
    if (pem === undefined) {
      const cert = createCertificate({
        publicKeyPem,
        subject: [{ name: 'commonName', value: udid }],
        issuer: this.cert.subject.attributes,
        years: 5,
        extensions: [
          { name: 'basicConstraints', cA: false, critical: true },
          { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        ],
        signingKey: this.key,
      });
      pem = forge.pki.certificateToPem(cert);
      this.issued.set(udid, pem);
    }
    return { certificatePem: pem, privateKeyPem };
  }
}
