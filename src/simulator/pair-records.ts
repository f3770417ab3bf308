/**
 * The virtual usbmuxd's pair-record store, like Linux usbmuxd's `/var/lib/lockdown`: records are
 * checked to be plist dictionaries, re-stored as XML (`<UDID>.plist` when a folder is given) and
 * returned as stored. Errors are errno numbers, as Linux usbmuxd puts them in `Number`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { decodePlist, encodeXml, isPlistDict } from '../plist/index.ts';
import { Errno } from './framing.ts';

/** In-memory store, optionally mirrored in a folder. */
export class PairRecordStore {
  private readonly records = new Map<string, Buffer>();
  private readonly dir: string | undefined;

  constructor(dir?: string) {
    this.dir = dir;
    if (dir !== undefined) {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      for (const name of fs.readdirSync(dir)) {
        if (name.endsWith('.plist') && name !== 'SystemConfiguration.plist') {
          this.records.set(name.slice(0, -'.plist'.length), fs.readFileSync(path.join(dir, name)));
        }
      }
    }
  }

  private file(udid: string): string | undefined {
    // Never let a record id leave the folder.
    if (this.dir === undefined || !/^[A-Za-z0-9-]+$/.test(udid)) return undefined;
    return path.join(this.dir, `${udid}.plist`);
  }

  /** The stored record bytes, or undefined. */
  read(udid: string): Buffer | undefined {
    return this.records.get(udid);
  }

  /** Stores a record; returns 0 or an errno (EINVAL when the data is not a plist dictionary). */
  save(udid: string, data: Buffer): number {
    if (data.length < 8) return Errno.EINVAL;
    let xml: Buffer;
    try {
      const value = decodePlist(data);
      if (!isPlistDict(value)) return Errno.EINVAL;
      xml = encodeXml(value);
    } catch {
      return Errno.EINVAL;
    }
    this.records.set(udid, xml);
    const f = this.file(udid);
    if (f !== undefined) {
      // A pair record holds the host's and root's private keys and the escrow bag: owner-only, like
      // every secret file of the station (an existing file keeps its mode on write, hence chmod).
      fs.writeFileSync(f, xml, { mode: 0o600 });
      fs.chmodSync(f, 0o600);
    }
    return 0;
  }

  /** Deletes a record; returns 0 or ENOENT. */
  delete(udid: string): number {
    if (!this.records.delete(udid)) return Errno.ENOENT;
    const f = this.file(udid);
    if (f !== undefined) fs.rmSync(f, { force: true });
    return 0;
  }

  /**
   * The SystemBUID kept in the folder's `SystemConfiguration.plist` (as Linux usbmuxd keeps it), so
   * pair records saved by one run stay valid in the next; `fresh` is stored and returned when the
   * folder has none (or when there is no folder).
   */
  systemBuid(fresh: string): string {
    if (this.dir === undefined) return fresh;
    const file = path.join(this.dir, 'SystemConfiguration.plist');
    try {
      const v = decodePlist(fs.readFileSync(file));
      if (isPlistDict(v) && typeof v.SystemBUID === 'string' && v.SystemBUID !== '') return v.SystemBUID;
    } catch {
      // No (readable) configuration yet: write one below.
    }
    fs.writeFileSync(file, encodeXml({ SystemBUID: fresh }));
    return fresh;
  }

  /** UDIDs with a stored record. */
  udids(): string[] {
    return [...this.records.keys()];
  }
}
