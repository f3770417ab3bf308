/**
 * The supervision identity behind the `supervised` preset: a PKCS#12 file (what Apple Configurator
 * exports) read with node-forge. The device only ever stores the certificate (in the cloud
 * configuration's `SupervisorHostCertificates`), so only the certificate is taken; a key bag that
 * forge cannot turn into a key (e.g. ECDSA) does not matter.
 */
import { X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import { KitError } from '../errors.ts';

/** The certificate of a supervision identity. */
export interface SupervisionCertificate {
  /** DER certificate. */
  der: Buffer;
  /** Organization for `OrganizationName` (the certificate's O, else its CN, else a default). */
  organization: string;
}

function certBags(p12: forge.pkcs12.Pkcs12Pfx): forge.pkcs12.Bag[] {
  return p12.getBags({ bagType: forge.pki.oids.certBag as string })[forge.pki.oids.certBag as string] ?? [];
}

/**
 * Reads the certificate of the identity in a PKCS#12 file.
 *
 * @throws KitError `usage/invalid-argument` when the file is not a PKCS#12 with a certificate, or the
 *   password is wrong.
 */
export function readSupervisionP12(bytes: Buffer, password: string): SupervisionCertificate {
  let p12: forge.pkcs12.Pkcs12Pfx;
  try {
    const asn1 = forge.asn1.fromDer(forge.util.createBuffer(bytes.toString('binary')));
    try {
      p12 = forge.pkcs12.pkcs12FromAsn1(asn1, false, password);
    } catch {
      // Some encoders (and ECDSA key bags) trip forge's strict mode or key parsing.
      p12 = forge.pkcs12.pkcs12FromAsn1(asn1, password);
    }
  } catch (err) {
    throw new KitError(
      'usage/invalid-argument',
      `--identity-p12: not a readable PKCS#12 file or a wrong password (${err instanceof Error ? err.message : String(err)})`,
      { cause: err },
    );
  }
  const bag = certBags(p12).find((b) => b.cert !== undefined || b.asn1 !== undefined);
  if (bag === undefined) throw new KitError('usage/invalid-argument', '--identity-p12: the file holds no certificate');
  const der =
    bag.cert !== undefined
      ? Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(bag.cert)).getBytes(), 'binary')
      : Buffer.from(forge.asn1.toDer(bag.asn1 as forge.asn1.Asn1).getBytes(), 'binary');
  const x = new X509Certificate(der);
  const field = (name: string): string | undefined =>
    x.subject
      .split('\n')
      .find((l) => l.startsWith(`${name}=`))
      ?.slice(name.length + 1);
  return { der: x.raw, organization: field('O') ?? field('CN') ?? 'Simulated Organization' };
}
