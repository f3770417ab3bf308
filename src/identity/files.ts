/**
 * Writing files that hold secrets (vault metadata, exported identities): mode 0600, atomically
 * (a temporary file in the same folder, fsynced, then renamed or linked into place), so a crash
 * never leaves a half-written key file and no other user can read one even for a moment.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { KitError } from '../errors.ts';

function tempNameFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${crypto.randomBytes(6).toString('hex')}.tmp`);
}

function writeTemp(file: string, data: Buffer | string): string {
  const tmp = tempNameFor(file);
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return tmp;
}

/**
 * Writes `data` to `file` with mode 0600, replacing any existing file atomically.
 * Throws `io/write-failed` (with the file name; never the data).
 */
export function writePrivateFile(file: string, data: Buffer | string): void {
  let tmp: string | undefined;
  try {
    tmp = writeTemp(file, data);
    fs.renameSync(tmp, file);
    tmp = undefined;
  } catch (err) {
    throw new KitError('io/write-failed', `cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, {
      cause: err,
      details: { file },
    });
  } finally {
    if (tmp !== undefined) fs.rmSync(tmp, { force: true });
  }
}

/**
 * Creates `file` with mode 0600 only if it does not exist yet (atomic: a complete temporary file
 * is hard-linked into place). Returns false when another writer created it first.
 * Throws `io/write-failed` for any other failure.
 */
export function createPrivateFileExclusive(file: string, data: Buffer | string): boolean {
  let tmp: string | undefined;
  try {
    tmp = writeTemp(file, data);
    fs.linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new KitError('io/write-failed', `cannot create ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, {
      cause: err,
      details: { file },
    });
  } finally {
    if (tmp !== undefined) fs.rmSync(tmp, { force: true });
  }
}

/**
 * Reads a file given on the command line (an identity, a key, a password file).
 * Throws `io/read-failed` (exit 2, bad input) when it is missing or unreadable.
 */
export function readInputFile(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new KitError('io/read-failed', `cannot read ${file}: ${code ?? 'error'}`, {
      cause: err,
      details: { file },
    });
  }
}

/**
 * Reads a password or passphrase file: UTF-8, one trailing newline (LF or CRLF) removed, Unicode
 * NFC-normalized (a passphrase typed on macOS and on Windows must give the same key).
 */
export function readSecretFile(file: string): string {
  const text = readInputFile(file).toString('utf8');
  return text.replace(/\r?\n$/, '').normalize('NFC');
}
