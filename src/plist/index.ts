/**
 * Property lists: the format every byte to an iPad is wrapped in (usbmuxd, lockdown, MDM profiles).
 *
 * Decision (measured with `bench/plist.ts`, see the figures there): the codec is our own. Both
 * formats are read by hand-written scanners straight into JS values: XML without a DOM (the `plist`
 * package goes through @xmldom/xmldom and is several times slower on device messages), binary with
 * lazy offset lookups, checked lengths and memoized scalars; the binary writer sizes its output
 * exactly in one pass and fills a single buffer. Correctness pointed the same way: `plist` 5's
 * parseBinary reads libplist's unsigned 64-bit integers as 0, rounds 64-bit ones past 2^53 and
 * overflows the stack on a reference cycle; none of the incumbents reports located errors
 * (byte offset, line/column) with our error codes, and none has `PlistReal`.
 *
 * Figures (`node_modules/.bin/node bench/plist.ts`, Node 22.23, 2-CPU dev container; corpus of 8
 * device documents, 67 KiB as XML / 24 KiB binary; MB/s of plist bytes; first, quietest run):
 *   XML decode      ours 112   plist.parse 6.7                               → 16.7× (target ≥ 3×)
 *     small lockdown/usbmux messages only: ours 97 vs 4.7                    → 20.6×
 *   binary decode   ours 208   bplist-parser 35   plist.parseBinary 82       → 2.5× the fastest
 *   binary encode   ours 97    bplist-creator 7.2 plist.buildBinary 33       → 2.9× the fastest
 *   XML encode      ours 190   plist.build 19                                → 9.9×
 * Over three runs (two under load average 6–9 from parallel test suites) the ratios ranged:
 * XML decode 11–19×, small messages 17–23×, binary decode 2.4–3.3×, binary encode 2.9–4.2×,
 * XML encode 8–14×. Absolute MB/s moved with the load; the ratios never fell below target.
 */
import { KitError } from '../errors.ts';
import { decodeBinary } from './binary.ts';
import { readSignedPlistWith } from './cms.ts';
import type { DecodeOptions, PlistValue } from './types.ts';
import { decodeXml } from './xml.ts';

export { PlistReal, PlistUid, isPlistDict, plistEqual } from './types.ts';
export type { DecodeOptions, PlistDict, PlistValue } from './types.ts';
export { decodeBinary, encodeBinary } from './binary.ts';
export { decodeXml, encodeXml } from './xml.ts';

function isBinaryPlist(bytes: Uint8Array): boolean {
  return (
    bytes.length >= 6 &&
    bytes[0] === 0x62 &&
    bytes[1] === 0x70 &&
    bytes[2] === 0x6c &&
    bytes[3] === 0x69 &&
    bytes[4] === 0x73 &&
    bytes[5] === 0x74
  );
}

/**
 * Decodes a property list, binary (`bplist00` magic) or XML (anything else).
 *
 * @throws KitError `plist/malformed` for malformed input (binary: `details.offset`; XML:
 *   `details.line`/`details.column`); a CMS-signed profile is reported as such (use
 *   {@link readSignedPlist}).
 * @throws KitError `plist/unsupported` for valid but unsupported content (binary null, sets).
 */
export function decodePlist(bytes: Uint8Array, options?: DecodeOptions): PlistValue {
  if (isBinaryPlist(bytes)) return decodeBinary(bytes, options);
  if (bytes[0] === 0x30 && (bytes[1] === 0x80 || bytes[1] === 0x82 || bytes[1] === 0x83 || bytes[1] === 0x84)) {
    throw new KitError(
      'plist/malformed',
      'this looks like CMS signed data (a signed profile), not a bare plist: read it with readSignedPlist',
      {
        details: { offset: 0 },
      },
    );
  }
  return decodeXml(bytes, options);
}

/**
 * Reads a signed property list (`.mobileconfig` in CMS/PKCS#7 SignedData, DER/BER or PEM): the
 * attached plist, decoded (with `options`, as {@link decodePlist}), and the DER certificates of its
 * signers. The signature is not verified.
 *
 * @throws KitError `cms/malformed` when the input is not SignedData with attached content (an
 *   unsigned plist gets a message saying so).
 * @throws KitError `plist/malformed` when the attached content is not a valid plist.
 */
export function readSignedPlist(
  bytes: Uint8Array,
  options?: DecodeOptions,
): { content: PlistValue; signerCertificatesDer: Buffer[] } {
  return readSignedPlistWith(bytes, (content) => decodePlist(content, options));
}
