/**
 * Plist codec throughput, ours against the incumbents, on one device-like corpus in one run:
 * the recorded usbmuxd/lockdown messages, a pair record, a lockdown GetValue all-values reply
 * (nested dicts, data, integers) and an installed-apps listing. Figures are MB/s of plist bytes
 * (the XML or binary size of each document), the best of several timed rounds.
 *
 * `npm run bench plist` (via bench/run.ts) or standalone: `node_modules/.bin/node bench/plist.ts`.
 */
import fs from 'node:fs';
import path from 'node:path';
import bplistCreator from 'bplist-creator';
import { parseBuffer as bplistParse } from 'bplist-parser';
import * as plistPkg from 'plist';
import {
  decodeBinary,
  decodePlist,
  decodeXml,
  encodeBinary,
  encodeXml,
  isPlistDict,
  type PlistDict,
  type PlistValue,
} from '../src/plist/index.ts';
import type { BenchResult } from './types.ts';

const RECORDED = path.resolve(import.meta.dirname, '../../shared/fixtures/recorded');

interface Doc {
  name: string;
  value: PlistValue;
  xml: Buffer;
  bin: Buffer;
}

function recorded(name: string, skip: number): PlistValue {
  return decodePlist(fs.readFileSync(path.join(RECORDED, name)).subarray(skip));
}

/** A GetValue reply without a key: ~90 properties as an iPad returns them. */
function getValueAll(): PlistDict {
  const bytes = (n: number, seed: number): Buffer =>
    Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));
  const value: PlistDict = {
    ActivationState: 'Activated',
    ActivationStateAcknowledged: true,
    BasebandActivationTicketVersion: 'V2',
    BasebandCertId: 2315222105,
    BasebandChipID: 7278817,
    BasebandKeyHashInformation: {
      AKeyStatus: 2,
      SKeyHash: bytes(20, 3),
      SKeyStatus: 0,
    },
    BasebandMasterKeyHash: '8CB15EE4C8002199070D9500BB8FB183B02713A5CA2A6B92DB5E75CE15536182',
    BasebandRegionSKU: bytes(4, 9),
    BasebandSerialNumber: bytes(4, 11),
    BasebandStatus: 'BBInfoAvailable',
    BasebandVersion: '5.00.00',
    BluetoothAddress: 'a4:83:e7:11:22:33',
    BoardId: 2,
    BrickState: false,
    BuildVersion: '21F90',
    CPUArchitecture: 'arm64e',
    CarrierBundleInfoArray: [],
    CertID: 3166287646,
    ChipID: 33056,
    ChipSerialNo: bytes(4, 5),
    DeviceClass: 'iPad',
    DeviceColor: '#e1e4e3',
    DeviceName: 'Cart 7 / Slot 12',
    DieID: 7279281635795574,
    EthernetAddress: 'a4:83:e7:11:22:34',
    FirmwareVersion: 'iBoot-10151.122.1',
    FusingStatus: 3,
    HardwareModel: 'J308AP',
    HardwarePlatform: 't8103',
    HasSiDP: true,
    HostAttached: true,
    HumanReadableProductVersionString: '17.5.1',
    IntegratedCircuitCardIdentity: '8981100022222222222',
    InternationalMobileEquipmentIdentity: '356789012345678',
    InternationalMobileSubscriberIdentity: '440101234567890',
    MLBSerialNumber: 'F0Y1234567890ABCD',
    MobileEquipmentIdentifier: '35678901234567',
    MobileSubscriberCountryCode: '440',
    MobileSubscriberNetworkCode: '10',
    ModelNumber: 'MHQY3',
    NonVolatileRAM: {
      'auto-boot': bytes(4, 1),
      'backlight-level': bytes(4, 2),
      'boot-args': bytes(0, 0),
      bootdelay: bytes(1, 4),
      'com.apple.System.tz0-size': bytes(6, 5),
      'oblit-inprogress': bytes(5, 6),
      obliteration: bytes(46, 7),
      usbcfwflasherResult: bytes(40, 8),
    },
    PartitionType: 'GUID_partition_scheme',
    PasswordProtected: false,
    PkHash: bytes(32, 12),
    ProductName: 'iPhone OS',
    ProductType: 'iPad13,4',
    ProductVersion: '17.5.1',
    ProductionSOC: true,
    ProtocolVersion: '2',
    ProximitySensorCalibration: bytes(72, 13),
    RegionInfo: 'J/A',
    SIMStatus: 'kCTSIMSupportSIMStatusReady',
    SIMTrayStatus: 'kCTSIMSupportSIMTrayInsertedWithSIM',
    SerialNumber: 'DMPXK2ABCDEF',
    SoftwareBehavior: bytes(16, 14),
    SoftwareBundleVersion: '',
    SupportedDeviceFamilies: [1, 2],
    TelephonyCapability: true,
    TimeIntervalSince1970: 1718000000.123456,
    TimeZone: 'Asia/Tokyo',
    TimeZoneOffsetFromUTC: 32400,
    TrustedHostAttached: true,
    UniqueChipID: 6542215473238062,
    UniqueDeviceID: '00008103-000A1B2C3D4E5F60',
    UseRaptorCerts: true,
    Uses24HourClock: true,
    WiFiAddress: 'a4:83:e7:11:22:35',
    WirelessBoardSerialNumber: 'F0Y9876543210',
    kCTPostponementInfoPRIVersion: '0.1.138',
    kCTPostponementInfoPRLName: 0,
    kCTPostponementInfoServiceProvisioningState: true,
    kCTPostponementStatus: 'kCTPostponementStatusActivated',
  };
  return value;
}

/** An installation_proxy Browse page: 40 apps with nested entitlement-like dicts. */
function appList(): PlistDict {
  const apps: PlistValue[] = [];
  for (let i = 0; i < 40; i++) {
    apps.push({
      CFBundleIdentifier: `jp.example.app${i}`,
      CFBundleDisplayName: i % 3 === 0 ? `学習アプリ ${i}` : `Learning App ${i}`,
      CFBundleShortVersionString: `${1 + (i % 4)}.${i % 10}.0`,
      CFBundleVersion: String(1000 + i),
      ApplicationType: 'User',
      StaticDiskUsage: 10_000_000 + i * 12345,
      DynamicDiskUsage: 2_000_000 + i * 777,
      IsAppClip: false,
      UIDeviceFamily: [1, 2],
      Entitlements: {
        'application-identifier': `ABCDE12345.jp.example.app${i}`,
        'com.apple.developer.team-identifier': 'ABCDE12345',
        'keychain-access-groups': [`ABCDE12345.jp.example.app${i}`],
        'get-task-allow': false,
      },
      SignerIdentity: 'Apple iPhone OS Application Signing',
    });
  }
  return { CurrentIndex: 0, CurrentAmount: 40, Total: 40, CurrentList: apps, Status: 'BrowsingApplications' };
}

function corpus(): Doc[] {
  const pairEnvelope = recorded('usbmuxreadpairmessage.bin', 16);
  if (!isPlistDict(pairEnvelope) || !Buffer.isBuffer(pairEnvelope.PairRecordData))
    throw new Error('pair record fixture changed');
  const values: [string, PlistValue][] = [
    ['usbmux ListDevices', recorded('usbmuxlistdevicemessage.bin', 16)],
    ['usbmux ReadPairRecord', pairEnvelope],
    ['pair record', decodeBinary(pairEnvelope.PairRecordData)],
    ['lockdown GetValue', recorded('lockdowngetvaluemessage.bin', 4)],
    ['lockdown GetValue time', recorded('lockdowngettimemessage.bin', 4)],
    ['lockdown QueryType', recorded('lockdownquerytypemessage.bin', 4)],
    ['lockdown GetValue (all)', getValueAll()],
    ['installation_proxy Browse', appList()],
  ];
  return values.map(([name, value]) => ({ name, value, xml: encodeXml(value), bin: encodeBinary(value) }));
}

/** MB/s of `fn` over `bytes` per call: the best of `rounds` rounds of at least `ms` each, after a warm-up. */
function throughput(fn: () => void, bytes: number, rounds = 5, ms = 150): number {
  const until = performance.now() + ms;
  while (performance.now() < until) fn();
  let best = 0;
  for (let r = 0; r < rounds; r++) {
    let n = 0;
    const start = performance.now();
    let elapsed: number;
    do {
      fn();
      n++;
      elapsed = performance.now() - start;
    } while (elapsed < ms);
    best = Math.max(best, (n * bytes) / (elapsed / 1000) / 1e6);
  }
  return best;
}

function sum(docs: Doc[], f: (d: Doc) => number): number {
  return docs.reduce((a, d) => a + f(d), 0);
}

/** Runs every measurement on the same corpus; returns the figures and the target ratios. */
export async function run(): Promise<BenchResult[]> {
  const docs = corpus();
  const xmlBytes = sum(docs, (d) => d.xml.length);
  const binBytes = sum(docs, (d) => d.bin.length);
  const xmlTexts = docs.map((d) => d.xml);
  const bins = docs.map((d) => d.bin);
  const values = docs.map((d) => d.value);
  // Incumbents get the plain JS values they support (all of this corpus is plain: no bigint/UID).
  const sink: unknown[] = [];

  // Sanity: every incumbent reads and writes this corpus without throwing.
  for (const d of docs) {
    plistPkg.parse(d.xml.toString('utf8'));
    bplistParse(d.bin);
    plistPkg.parseBinary(d.bin);
    bplistCreator(d.value as PlistDict);
    plistPkg.buildBinary(d.value as plistPkg.PlistValue);
    plistPkg.build(d.value as plistPkg.PlistValue);
  }

  const xmlOurs = throughput(() => {
    for (const b of xmlTexts) sink[0] = decodeXml(b);
  }, xmlBytes);
  const xmlPlist = throughput(() => {
    for (const b of xmlTexts) sink[0] = plistPkg.parse(b.toString('utf8'));
  }, xmlBytes);

  // The same on the small request/reply messages alone, where per-call overhead dominates.
  const small = docs.filter((d) => d.name.startsWith('lockdown') || d.name === 'usbmux ListDevices').map((d) => d.xml);
  const smallBytes = small.reduce((a, b) => a + b.length, 0);
  const smallOurs = throughput(() => {
    for (const b of small) sink[0] = decodeXml(b);
  }, smallBytes);
  const smallPlist = throughput(() => {
    for (const b of small) sink[0] = plistPkg.parse(b.toString('utf8'));
  }, smallBytes);

  const binOurs = throughput(() => {
    for (const b of bins) sink[0] = decodeBinary(b);
  }, binBytes);
  const binBplistParser = throughput(() => {
    for (const b of bins) sink[0] = bplistParse(b);
  }, binBytes);
  const binPlist = throughput(() => {
    for (const b of bins) sink[0] = plistPkg.parseBinary(b);
  }, binBytes);

  const encBinOurs = throughput(() => {
    for (const v of values) sink[0] = encodeBinary(v);
  }, binBytes);
  const encBinCreator = throughput(() => {
    for (const v of values) sink[0] = bplistCreator(v as PlistDict);
  }, binBytes);
  const encBinPlist = throughput(() => {
    for (const v of values) sink[0] = plistPkg.buildBinary(v as plistPkg.PlistValue);
  }, binBytes);

  const encXmlOurs = throughput(() => {
    for (const v of values) sink[0] = encodeXml(v);
  }, xmlBytes);
  const encXmlPlist = throughput(() => {
    for (const v of values) sink[0] = plistPkg.build(v as plistPkg.PlistValue);
  }, xmlBytes);

  const xmlRatio = xmlOurs / xmlPlist;
  const binDecRatio = binOurs / Math.max(binBplistParser, binPlist);
  const binEncRatio = encBinOurs / Math.max(encBinCreator, encBinPlist);
  const xmlEncRatio = encXmlOurs / encXmlPlist;
  const mb = 'MB/s';
  return [
    { name: 'corpus documents', value: docs.length, unit: 'docs' },
    { name: 'corpus XML size', value: xmlBytes / 1024, unit: 'KiB' },
    { name: 'corpus binary size', value: binBytes / 1024, unit: 'KiB' },
    { name: 'XML decode: ours', value: xmlOurs, unit: mb },
    { name: 'XML decode: plist.parse', value: xmlPlist, unit: mb },
    { name: 'XML decode: ours / plist', value: xmlRatio, unit: '×', target: '≥ 3×', ok: xmlRatio >= 3 },
    { name: 'XML decode, small messages: ours', value: smallOurs, unit: mb },
    { name: 'XML decode, small messages: plist', value: smallPlist, unit: mb },
    {
      name: 'XML decode, small messages: ours / plist',
      value: smallOurs / smallPlist,
      unit: '×',
      target: '≥ 3×',
      ok: smallOurs / smallPlist >= 3,
    },
    { name: 'binary decode: ours', value: binOurs, unit: mb },
    { name: 'binary decode: bplist-parser', value: binBplistParser, unit: mb },
    { name: 'binary decode: plist.parseBinary', value: binPlist, unit: mb },
    {
      name: 'binary decode: ours / fastest other',
      value: binDecRatio,
      unit: '×',
      target: '≥ 1×',
      ok: binDecRatio >= 1,
    },
    { name: 'binary encode: ours', value: encBinOurs, unit: mb },
    { name: 'binary encode: bplist-creator', value: encBinCreator, unit: mb },
    { name: 'binary encode: plist.buildBinary', value: encBinPlist, unit: mb },
    {
      name: 'binary encode: ours / fastest other',
      value: binEncRatio,
      unit: '×',
      target: '≥ 1×',
      ok: binEncRatio >= 1,
    },
    { name: 'XML encode: ours', value: encXmlOurs, unit: mb },
    { name: 'XML encode: plist.build', value: encXmlPlist, unit: mb },
    { name: 'XML encode: ours / plist', value: xmlEncRatio, unit: '×', target: '≥ 1×', ok: xmlEncRatio >= 1 },
  ];
}

if (process.argv[1] !== undefined && import.meta.filename === path.resolve(process.argv[1])) {
  const results = await run();
  const width = Math.max(...results.map((r) => r.name.length));
  for (const r of results) {
    const mark = r.ok === undefined ? '' : r.ok ? '  ✓' : '  ✗ (missed)';
    const target = r.target !== undefined ? `   target ${r.target}${mark}` : '';
    process.stdout.write(`${r.name.padEnd(width)}  ${r.value.toFixed(2).padStart(10)} ${r.unit}${target}\n`);
  }
}
