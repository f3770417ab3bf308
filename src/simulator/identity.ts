/**
 * Believable, deterministic identities for virtual devices: product type, serial number, UDID,
 * ECID, MAC addresses, OS version. The same seed and index always give the same identity.
 */
import { createHash } from 'node:crypto';
import { PRODUCT_MODELS, type ProductModel } from '../device/models.ts';

/** A deterministic byte stream derived from a seed string (SHA-256 in counter mode). */
export class SeededRandom {
  private readonly seed: string;
  private counter = 0;
  private pool: Buffer = Buffer.alloc(0);

  constructor(seed: string) {
    this.seed = seed;
  }

  /** `n` pseudo-random bytes. */
  bytes(n: number): Buffer {
    while (this.pool.length < n) {
      const block = createHash('sha256').update(`${this.seed}\u0000${this.counter++}`).digest();
      this.pool = Buffer.concat([this.pool, block]);
    }
    const out = this.pool.subarray(0, n);
    this.pool = this.pool.subarray(n);
    return Buffer.from(out);
  }

  /** A uniform integer in [0, max). */
  int(max: number): number {
    return this.bytes(4).readUInt32BE(0) % max;
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    const item = items[this.int(items.length)];
    if (item === undefined) throw new RangeError('pick from an empty list');
    return item;
  }

  /** A random uppercase 8-4-4-4-12 UUID (version 4 layout). */
  uuid(): string {
    const b = this.bytes(16);
    b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
    b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
    const h = b.toString('hex').toUpperCase();
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
}

/** ProductVersion/BuildVersion pairs Apple shipped (iOS/iPadOS 17, 18, 26). */
export const OS_RELEASES: readonly { readonly version: string; readonly build: string }[] = [
  { version: '17.5.1', build: '21F90' },
  { version: '17.6.1', build: '21G93' },
  { version: '18.0', build: '22A3354' },
  { version: '18.1', build: '22B83' },
  { version: '18.2', build: '22C152' },
  { version: '18.3', build: '22D63' },
  { version: '18.4', build: '22E240' },
  { version: '18.5', build: '22F76' },
  { version: '18.6', build: '22G86' },
  { version: '26.0', build: '23A341' },
  { version: '26.0.1', build: '23A355' },
  { version: '26.1', build: '23B85' },
];

/** Everything fixed about one piece of hardware. */
export interface DeviceIdentity {
  udid: string;
  serial: string;
  ecid: bigint;
  productType: string;
  model: ProductModel;
  productVersion: string;
  buildVersion: string;
  wifiAddress: string;
  bluetoothAddress: string;
  /** Raw die id (lockdown `DieID`). */
  dieId: bigint;
  /** Storage size in bytes (lockdown `com.apple.disk_usage` `TotalDiskCapacity`). */
  diskCapacity: number;
  /** Color code (lockdown `DeviceColor`). */
  deviceColor: string;
  /** Enclosure color code (lockdown `DeviceEnclosureColor`). */
  enclosureColor: string;
  /** Model number (lockdown `ModelNumber`, e.g. `MPQ03`). */
  modelNumber: string;
  /** Region (lockdown `RegionInfo`, e.g. `J/A`). */
  regionInfo: string;
}

/**
 * Serial numbers. Until spring 2021 Apple used 12 characters `FFF Y W NNN MMMM` (factory, half-year,
 * week in the half-year, unit, model/config); products launched since (iPhone 13 / iPadOS 15
 * generation on) get randomized 10-character serials. Neither uses vowels, so O/0 and I/1 never clash.
 */
const SERIAL_ALPHABET = '0123456789BCDFGHJKLMNPQRTVWXYZ';
/** Half-year codes, two per year over a decade (2019: Y Z, 2020: C D, 2021: F G). */
const SERIAL_HALF_YEARS_2019_2021 = 'YZCDFG';
/** Week-in-half-year codes (1–27). */
const SERIAL_WEEK = '123456789CDFGHJKLMNPQRTVWXY';
/** Factory codes seen on iPads and iPhones (positions 1–3). */
const FACTORIES = ['DMP', 'DLX', 'F4G', 'F9F', 'GG7', 'DMQ', 'DNP', 'H4H', 'G6T', 'F17', 'DX3', 'C39'];
/** Apple OUIs for Wi-Fi/Bluetooth MACs. */
const APPLE_OUIS = ['f0:d1:a9', 'a4:83:e7', '3c:22:fb', 'bc:d0:74', '8c:85:90', 'dc:a9:04', '68:fe:f7', '90:81:2a'];
const STORAGE_GB = [64, 128, 256, 512];
const REGIONS = ['J/A', 'LL/A', 'ZA/A', 'B/A', 'FD/A'];

function serialNumber(rng: SeededRandom, productType: string, model: ProductModel): string {
  const chars = (alphabet: string, n: number): string =>
    Array.from({ length: n }, () => alphabet[rng.int(alphabet.length)] ?? '0').join('');
  if (model.firstMajor >= 15) return chars(SERIAL_ALPHABET.slice(1), 1) + chars(SERIAL_ALPHABET, 9);
  // The last four characters encode the model configuration: stable per product type.
  const cfg = createHash('sha1').update(productType).digest();
  const configCode = Array.from(cfg.subarray(0, 4), (b) => SERIAL_ALPHABET[b % SERIAL_ALPHABET.length] ?? '0').join('');
  return `${rng.pick(FACTORIES)}${chars(SERIAL_HALF_YEARS_2019_2021, 1)}${chars(SERIAL_WEEK, 1)}${chars(SERIAL_ALPHABET, 3)}${configCode}`;
}

function mac(rng: SeededRandom): string {
  const tail = Array.from(rng.bytes(3), (b) => b.toString(16).padStart(2, '0')).join(':');
  return `${rng.pick(APPLE_OUIS)}:${tail}`;
}

/** Product types eligible for a fleet: iPads first and most likely (it is an iPad kitting station). */
function pickProductType(rng: SeededRandom): string {
  const all = Object.keys(PRODUCT_MODELS);
  const ipads = all.filter((p) => PRODUCT_MODELS[p]?.deviceClass === 'iPad');
  // Roughly 5 in 6 devices are iPads; the rest iPhones.
  return rng.int(6) === 0 ? rng.pick(all.filter((p) => !ipads.includes(p))) : rng.pick(ipads);
}

/** An OS release the model supports. */
function pickRelease(rng: SeededRandom, model: ProductModel): { version: string; build: string } {
  const ok = OS_RELEASES.filter((r) => {
    const major = Number(r.version.split('.')[0]);
    return major >= model.firstMajor && (model.lastMajor === undefined || major <= model.lastMajor);
  });
  return rng.pick(ok.length > 0 ? ok : OS_RELEASES);
}

/** The identity of device number `index` of a fleet seeded with `seed`. */
export function generateIdentity(seed: string, index: number, productType?: string): DeviceIdentity {
  const rng = new SeededRandom(`${seed}/device/${index}`);
  const chosen =
    productType !== undefined && PRODUCT_MODELS[productType] !== undefined ? productType : pickProductType(rng);
  const model = PRODUCT_MODELS[chosen];
  if (model === undefined) throw new RangeError(`unknown product type ${chosen}`);
  // ECIDs are 52–56-bit numbers; most exceed 2^53, so JS numbers cannot hold them.
  const ecidBytes = rng.bytes(8);
  ecidBytes[0] = 0;
  ecidBytes[1] = (ecidBytes[1] ?? 0) | 0x10;
  const ecid = ecidBytes.readBigUInt64BE(0);
  const udid =
    model.chipId >= 0x8020
      ? `0000${model.chipId.toString(16).toUpperCase().padStart(4, '0')}-${ecid.toString(16).toUpperCase().padStart(16, '0')}`
      : rng.bytes(20).toString('hex');
  const release = pickRelease(rng, model);
  return {
    udid,
    serial: serialNumber(rng, chosen, model),
    ecid,
    productType: chosen,
    model,
    productVersion: release.version,
    buildVersion: release.build,
    wifiAddress: mac(rng),
    bluetoothAddress: mac(rng),
    dieId: rng.bytes(8).readBigUInt64BE(0) >> 8n,
    diskCapacity: rng.pick(STORAGE_GB) * 1_000_000_000,
    deviceColor: rng.pick(['1', '2', '#e1e4e3', '#3b3b3c']),
    enclosureColor: rng.pick(['1', '2', '#d7d9d8', '#e3c8ca', '#b9b7ba']),
    modelNumber: `M${Array.from({ length: 4 }, () => SERIAL_ALPHABET[rng.int(SERIAL_ALPHABET.length)] ?? '0').join('')}`,
    regionInfo: rng.pick(REGIONS),
  };
}
