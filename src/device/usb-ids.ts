/**
 * Apple USB identities (protocols.md §8): which mode a product id means, and the iBoot/SecureROM
 * `KEY:VALUE` string a recovery or DFU device puts in its iSerialNumber descriptor (§8.3).
 *
 * Facts from libimobiledevice/libirecovery (`include/libirecovery.h` mode ids, `src/libirecovery.c`
 * `KIS_PRODUCT_ID` and `irecv_load_device_info_from_iboot_string`) and libimobiledevice/usbmuxd
 * (`src/usb.h` normal-mode and Mac-restore ranges).
 */

/** Apple's USB vendor id. */
export const APPLE_VENDOR_ID = 0x05ac;

/**
 * What an Apple USB device is doing, from its product id alone.
 * - `normal`: iOS running, reachable through usbmuxd (0x1290–0x12AF)
 * - `recovery`: iBoot recovery mode (0x1280–0x1283); takes iBoot commands (§8.2)
 * - `dfu`: SecureROM DFU (0x1227); `port-dfu`: Port DFU (0xF014); `wtf`: legacy WTF (0x1222)
 * - `kis`: KIS / debug USB (0x1881)
 * - `mac-restore`: an Apple-silicon Mac or T2 in restore/DFU (0x1901–0x1905, 0x8600)
 * - `other`: any other Apple product (keyboards, adapters, …)
 */
export type UsbMode = 'normal' | 'recovery' | 'dfu' | 'port-dfu' | 'wtf' | 'kis' | 'mac-restore' | 'other';

/** Every named product id of §8.1 with its mode (ranges expanded). */
export const APPLE_PRODUCT_MODES: ReadonlyMap<number, UsbMode> = new Map<number, UsbMode>([
  ...Array.from({ length: 0x12af - 0x1290 + 1 }, (_, i): [number, UsbMode] => [0x1290 + i, 'normal']),
  [0x1280, 'recovery'],
  [0x1281, 'recovery'],
  [0x1282, 'recovery'],
  [0x1283, 'recovery'],
  [0x1222, 'wtf'],
  [0x1227, 'dfu'],
  [0xf014, 'port-dfu'],
  [0x1881, 'kis'],
  [0x1901, 'mac-restore'],
  [0x1902, 'mac-restore'],
  [0x1903, 'mac-restore'],
  [0x1904, 'mac-restore'],
  [0x1905, 'mac-restore'],
  [0x8600, 'mac-restore'],
]);

/** The mode of an Apple product id (§8.1); `other` for anything not in the table. */
export function usbModeOf(productId: number): UsbMode {
  return APPLE_PRODUCT_MODES.get(productId) ?? 'other';
}

/** Modes whose iSerialNumber is an iBoot/SecureROM `KEY:VALUE` string carrying the ECID. */
export function hasIbootSerial(mode: UsbMode): boolean {
  return mode === 'recovery' || mode === 'dfu' || mode === 'port-dfu' || mode === 'wtf' || mode === 'kis';
}

/** The fields of an iBoot/SecureROM serial string (§8.3). Absent fields are undefined. */
export interface IbootInfo {
  /** Chip id (`CPID`, hex), e.g. 0x8020. */
  cpid: number | undefined;
  /** Chip revision (`CPRV`, hex). */
  cprv: number | undefined;
  /** Chip fuse mode (`CPFM`, hex). */
  cpfm: number | undefined;
  /** Security epoch (`SCEP`, hex). */
  scep: number | undefined;
  /** Board id (`BDID`, hex). */
  bdid: number | undefined;
  /** Exclusive chip id (`ECID`, 64-bit hex): lockdown's `UniqueChipID`. */
  ecid: bigint | undefined;
  /** iBoot flags (`IBFL`, hex). */
  ibfl: number | undefined;
  /** Serial number (`SRNM:[…]`): lockdown's `SerialNumber`. */
  serialNumber: string | undefined;
  /** `IMEI:[…]`. */
  imei: string | undefined;
  /** iBoot/SecureROM tag (`SRTG:[…]`), e.g. `iBoot-7429.12.15`. */
  srtg: string | undefined;
  /** ApNonce (`NONC`, hex), when the string carries it (usually in string descriptor 1). */
  apNonce: Buffer | undefined;
  /** SEP nonce (`SNON`, hex). */
  sepNonce: Buffer | undefined;
  /** `PWND:[…]` (a device running an exploit payload), when present. */
  pwnd: string | undefined;
}

const HEX_FIELDS = { CPID: 'cpid', CPRV: 'cprv', CPFM: 'cpfm', SCEP: 'scep', BDID: 'bdid', IBFL: 'ibfl' } as const;
const BRACKET_FIELDS = { SRNM: 'serialNumber', IMEI: 'imei', SRTG: 'srtg', PWND: 'pwnd' } as const;

/**
 * Parses an iBoot/SecureROM serial string (`CPID:8020 CPRV:11 … ECID:001A2B3C4D5E6F70 …
 * SRNM:[F2LXXXXXXXXX] SRTG:[iBoot-7429.12.15]`). Tokens are space-separated `KEY:VALUE`; bracketed
 * values lose their brackets; hex values are read like libirecovery's `%x` (leading hex digits);
 * the ECID is a bigint (it does not fit a JS number). Unknown keys are ignored; a string without
 * any known key gives all-undefined fields.
 */
export function parseIbootString(text: string): IbootInfo {
  const info: IbootInfo = {
    cpid: undefined,
    cprv: undefined,
    cpfm: undefined,
    scep: undefined,
    bdid: undefined,
    ecid: undefined,
    ibfl: undefined,
    serialNumber: undefined,
    imei: undefined,
    srtg: undefined,
    apNonce: undefined,
    sepNonce: undefined,
    pwnd: undefined,
  };
  for (const token of text.trim().split(/\s+/)) {
    const colon = token.indexOf(':');
    if (colon <= 0) continue;
    const key = token.slice(0, colon).toUpperCase();
    const value = token.slice(colon + 1);
    const hex = /^[0-9a-fA-F]+/.exec(value)?.[0];
    if (Object.hasOwn(HEX_FIELDS, key)) {
      if (hex !== undefined) info[HEX_FIELDS[key as keyof typeof HEX_FIELDS]] = Number.parseInt(hex.slice(-8), 16);
    } else if (key === 'ECID') {
      if (hex !== undefined && hex.length <= 16) info.ecid = BigInt(`0x${hex}`);
    } else if (Object.hasOwn(BRACKET_FIELDS, key)) {
      const inner = /^\[(.*)\]$/.exec(value)?.[1] ?? value;
      if (inner !== '') info[BRACKET_FIELDS[key as keyof typeof BRACKET_FIELDS]] = inner;
    } else if (key === 'NONC' || key === 'SNON') {
      if (hex !== undefined && hex.length % 2 === 0) {
        const bytes = Buffer.from(hex, 'hex');
        if (key === 'NONC') info.apNonce = bytes;
        else info.sepNonce = bytes;
      }
    }
  }
  return info;
}

/** An ECID the way irecovery prints it: `0x` and 16 upper-case hex digits. */
export function formatEcid(ecid: bigint): string {
  return `0x${ecid.toString(16).toUpperCase().padStart(16, '0')}`;
}

/**
 * Reads an ECID typed by a person or a script: `0x…` hex, plain decimal (lockdown's `UniqueChipID`,
 * `sim-ctl state`), or bare hex with a letter a–f (as irecovery and the USB string show it).
 * Undefined when it is not a 64-bit value.
 */
export function parseEcid(text: string): bigint | undefined {
  const t = text.trim();
  let value: bigint;
  if (/^0x[0-9a-f]{1,16}$/i.test(t)) value = BigInt(t);
  else if (/^[0-9]{1,20}$/.test(t)) value = BigInt(t);
  else if (/^[0-9a-f]{1,16}$/i.test(t)) value = BigInt(`0x${t}`);
  else return undefined;
  return value <= 0xffff_ffff_ffff_ffffn ? value : undefined;
}
