/**
 * Reading identity files in every form the station accepts, and validating what they hold:
 * - PKCS#12 (`.p12`/`.pfx`) with a password (Apple Configurator, Keychain, openssl, legacy or not);
 * - PEM: certificate and key in one file, or the key in a second file (`--key`); keys PKCS#1
 *   (`RSA PRIVATE KEY`), PKCS#8 (`PRIVATE KEY`) or encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`, password);
 * - DER: certificate file plus a key file (`--key`, PKCS#1 or PKCS#8 DER), as Apple Configurator
 *   and go-ios write them.
 * The form is recognised from the content, not the file name.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import { KitError } from '../errors.ts';
import { inspectCertificate, type CertificateInfo } from './certificate.ts';
import { readInputFile } from './files.ts';
import { looksLikePkcs12, parsePkcs12 } from './pkcs12.ts';

/** The smallest RSA modulus accepted (domain.md: RSA 2048 or larger). */
export const MIN_RSA_BITS = 2048;

/** A certificate and its private key, checked to belong together. */
export interface IdentityMaterial {
  readonly certificateDer: Buffer;
  readonly privateKey: crypto.KeyObject;
  readonly info: CertificateInfo;
}

interface Found {
  certificates: Buffer[];
  keys: crypto.KeyObject[];
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;

function keyError(err: unknown, source: string): KitError {
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : '';
  if (
    code === 'ERR_MISSING_PASSPHRASE' ||
    code === 'ERR_OSSL_BAD_DECRYPT' ||
    /bad decrypt|passphrase|password/i.test(message)
  ) {
    return new KitError(
      'identity/wrong-password',
      `${source}: the private key is encrypted and the password does not open it`,
      {
        details: { file: source },
      },
    );
  }
  return new KitError('identity/corrupt-file', `${source}: the private key is unreadable`, {
    cause: err,
    details: { file: source },
  });
}

function certificateFrom(der: Buffer, source: string): Buffer {
  inspectCertificate(der, source);
  return der;
}

function readPem(text: string, password: string | undefined, source: string): Found {
  const found: Found = { certificates: [], keys: [] };
  const begun = text.match(/-----BEGIN [A-Z0-9 ]+-----/g)?.length ?? 0;
  const complete = [...text.matchAll(PEM_BLOCK)].length;
  if (begun !== complete) {
    throw new KitError('identity/corrupt-file', `${source}: a PEM block is not terminated (truncated file?)`, {
      details: { file: source },
    });
  }
  for (const m of text.matchAll(PEM_BLOCK)) {
    const [block, label = '', body = ''] = m;
    if (label === 'CERTIFICATE' || label === 'X509 CERTIFICATE') {
      const base64 = body
        .split(/\r?\n/)
        .filter((line) => !line.includes(':'))
        .join('');
      found.certificates.push(certificateFrom(Buffer.from(base64, 'base64'), source));
    } else if (label.endsWith('PRIVATE KEY')) {
      try {
        found.keys.push(crypto.createPrivateKey({ key: block, format: 'pem', passphrase: password ?? '' }));
      } catch (err) {
        throw keyError(err, source);
      }
    }
  }
  return found;
}

function readDerKey(bytes: Buffer, password: string | undefined): crypto.KeyObject | undefined {
  const attempts: crypto.PrivateKeyInput[] = [
    { key: bytes, format: 'der', type: 'pkcs8' },
    { key: bytes, format: 'der', type: 'pkcs1' },
    { key: bytes, format: 'der', type: 'sec1' },
  ];
  if (password !== undefined) attempts.unshift({ key: bytes, format: 'der', type: 'pkcs8', passphrase: password });
  for (const input of attempts) {
    try {
      return crypto.createPrivateKey(input);
    } catch {
      // try the next encoding
    }
  }
  return undefined;
}

/** Everything one file holds (certificates and keys), whatever its form. */
function readOne(file: string, password: string | undefined): Found {
  const bytes = readInputFile(file);
  const source = path.basename(file);
  const head = bytes.subarray(0, 4096).toString('latin1');
  if (head.includes('-----BEGIN ')) {
    const found = readPem(bytes.toString('utf8'), password, source);
    if (found.certificates.length === 0 && found.keys.length === 0) {
      throw new KitError('identity/corrupt-file', `${source}: no complete PEM certificate or key`, {
        details: { file: source },
      });
    }
    return found;
  }
  if (looksLikePkcs12(bytes)) return parsePkcs12(bytes, password ?? '', source);
  try {
    return { certificates: [certificateFrom(bytes, source)], keys: [] };
  } catch {
    // not a DER certificate: maybe a DER key
  }
  const key = readDerKey(bytes, password);
  if (key !== undefined) return { certificates: [], keys: [key] };
  throw new KitError(
    'identity/corrupt-file',
    `${source}: not a PKCS#12, PEM or DER certificate or key (truncated or damaged?)`,
    { details: { file: source } },
  );
}

/** Options of {@link readIdentityFiles}. */
export interface ReadIdentityOptions {
  /** For a .p12 or an encrypted key. */
  readonly password?: string;
  /** A separate key file (PEM or DER) for a certificate-only file. */
  readonly keyFile?: string;
  /** "Now" for the expiry check (default: the current time). */
  readonly now?: Date;
}

/**
 * Reads an identity from `file` (and `keyFile`) and validates it with {@link validateMaterial}.
 * Throws `io/read-failed`, `identity/corrupt-file`, `identity/wrong-password` and the codes of
 * {@link validateMaterial}. Never logs or echoes the password or the key.
 */
export function readIdentityFiles(file: string, options: ReadIdentityOptions = {}): IdentityMaterial {
  const main = readOne(file, options.password);
  const extra =
    options.keyFile === undefined ? { certificates: [], keys: [] } : readOne(options.keyFile, options.password);
  return validateMaterial(
    [...main.certificates, ...extra.certificates],
    [...main.keys, ...extra.keys],
    path.basename(file),
    options.now,
  );
}

/**
 * Picks the certificate that belongs to the key and checks it can serve as a supervision identity.
 * Throws, in this order: `identity/missing-certificate`, `identity/missing-key`,
 * `identity/unsupported-key` (not RSA), `identity/weak-key` (RSA < 2048), `identity/key-mismatch`,
 * `identity/expired`.
 */
export function validateMaterial(
  certificates: readonly Buffer[],
  keys: readonly crypto.KeyObject[],
  source: string,
  now: Date = new Date(),
): IdentityMaterial {
  const details = { file: source };
  if (certificates.length === 0) {
    throw new KitError('identity/missing-certificate', `${source}: no certificate found`, { details });
  }
  if (keys.length === 0) throw new KitError('identity/missing-key', `${source}: no private key found`, { details });
  for (const key of keys) {
    if (key.asymmetricKeyType !== 'rsa') {
      throw new KitError(
        'identity/unsupported-key',
        `${source}: ${String(key.asymmetricKeyType)} key; supervision identities are RSA`,
        {
          details,
        },
      );
    }
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) {
      throw new KitError('identity/weak-key', `${source}: RSA ${bits}-bit key; at least ${MIN_RSA_BITS} bits needed`, {
        details: { ...details, bits },
      });
    }
  }
  for (const der of certificates) {
    const x509 = new crypto.X509Certificate(der);
    const key = keys.find((k) => x509.checkPrivateKey(k));
    if (key === undefined) continue;
    const info = inspectCertificate(der, source);
    if (info.notAfter.getTime() <= now.getTime()) {
      throw new KitError('identity/expired', `${source}: the certificate expired on ${info.notAfter.toISOString()}`, {
        details: { ...details, notAfter: info.notAfter.toISOString() },
      });
    }
    return { certificateDer: der, privateKey: key, info };
  }
  throw new KitError('identity/key-mismatch', `${source}: the private key does not belong to the certificate`, {
    details,
  });
}
