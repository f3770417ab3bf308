import forge from 'node-forge';
import { describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import { parseBlueprint, type Blueprint } from '../../src/kitting/blueprint.ts';
import {
  buildCloudConfiguration,
  checkSharedIpadQuota,
  compareCloudConfiguration,
  forcedValues,
  organizationMagic,
  sharedIpadMdmSettings,
  sharedIpadQuotaLimitMb,
  skipSetupValues,
} from '../../src/kitting/cloud-config.ts';
import { allIosSkipKeys } from '../../src/kitting/skip-panes.ts';
import { decodePlist, encodeBinary, encodeXml, type PlistDict, type PlistValue } from '../../src/plist/index.ts';

function certificateDer(cn: string): Buffer {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 1024, e: 0x10001 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '02';
  cert.validity.notBefore = new Date(Date.UTC(2024, 0, 1));
  cert.validity.notAfter = new Date(Date.UTC(2034, 0, 1));
  cert.setSubject([{ name: 'commonName', value: cn }]);
  cert.setIssuer([{ name: 'commonName', value: cn }]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), 'binary');
}

const SUPERVISOR = certificateDer('Kitting Station supervision');
const ANCHOR = certificateDer('MDM anchor');
const OTHER = certificateDer('Someone else');

function blueprint(patch: Record<string, unknown> = {}): Blueprint {
  return parseBlueprint({
    version: 1,
    name: '3年1組',
    organization: { identityId: 'org-1', displayName: 'さくら小学校' },
    ...patch,
  });
}

const ALL_IOS = skipSetupValues(blueprint());

describe('buildCloudConfiguration', () => {
  it('supervised, all panes skipped', () => {
    const b = blueprint({
      organization: {
        identityId: 'org-1',
        displayName: 'さくら小学校',
        phone: '03-1234-5678',
        email: 'it@example.jp',
        department: '情報課',
        address: '東京都港区',
      },
    });
    expect(buildCloudConfiguration(b, { supervisorCertificateDer: SUPERVISOR })).toEqual({
      AllowPairing: true,
      IsSupervised: true,
      IsMandatory: true,
      IsMDMUnremovable: true,
      IsMultiUser: false,
      SkipSetup: ALL_IOS,
      OrganizationName: 'さくら小学校',
      OrganizationMagic: organizationMagic(b),
      OrganizationPhone: '03-1234-5678',
      OrganizationEmail: 'it@example.jp',
      OrganizationDepartment: '情報課',
      OrganizationAddress: '東京都港区',
      SupervisorHostCertificates: [SUPERVISOR],
      Language: 'ja',
      Region: 'JP',
      CloudConfigurationUIComplete: true,
    });
  });

  it('not supervised: no supervisor certificate, MDM removable as the device forces', () => {
    const b = blueprint({
      supervise: false,
      allowPairing: false,
      mandatoryEnrollment: false,
      skipSetup: ['Siri', 'Location'],
      locale: { language: 'en', region: 'en', timeZone: 'UTC' },
    });
    expect(buildCloudConfiguration(b, { supervisorCertificateDer: SUPERVISOR })).toEqual({
      AllowPairing: false,
      IsSupervised: false,
      IsMandatory: false,
      IsMDMUnremovable: false,
      IsMultiUser: false,
      SkipSetup: ['Siri', 'Location'],
      OrganizationName: 'さくら小学校',
      OrganizationMagic: organizationMagic(b),
      Language: 'en',
      CloudConfigurationUIComplete: true,
    });
  });

  it('Shared iPad: IsMultiUser only; quota and user count go to MDM Settings items', () => {
    const b = blueprint({
      sharedIpad: { mode: 'on', quotaMb: 20_000, maxCachedUsers: 6 },
      mdmRemovable: true,
      autoAdvance: true,
      skipSetup: ['Siri'],
    });
    const cc = buildCloudConfiguration(b, {
      supervisorCertificateDer: SUPERVISOR,
      device: { storageBytes: 64_000_000_000 },
    });
    expect(cc).toEqual({
      AllowPairing: true,
      IsSupervised: true,
      IsMandatory: true,
      IsMDMUnremovable: false,
      IsMultiUser: true,
      SkipSetup: ['Siri'],
      OrganizationName: 'さくら小学校',
      OrganizationMagic: organizationMagic(b),
      SupervisorHostCertificates: [SUPERVISOR],
      AutoAdvanceSetup: true,
      Language: 'ja',
      Region: 'JP',
      CloudConfigurationUIComplete: true,
    });
    expect(Object.keys(cc).some((k) => /quota|resident|users/i.test(k))).toBe(false);
    expect(sharedIpadMdmSettings(b)).toEqual([
      { Item: 'SharedDeviceConfiguration', QuotaSize: 20_000 },
      { Item: 'MaximumResidentUsers', MaximumResidentUsers: 6 },
    ]);
    expect(sharedIpadMdmSettings(blueprint({ sharedIpad: { mode: 'on', userCount: 12 } }))).toEqual([
      { Item: 'SharedDeviceConfiguration', ResidentUsers: 12 },
    ]);
    expect(sharedIpadMdmSettings(blueprint())).toEqual([]);
  });

  it('checks the Shared iPad quota against the device storage when given', () => {
    const b = blueprint({ sharedIpad: { mode: 'on', quotaMb: 10_000 } });
    expect(() =>
      buildCloudConfiguration(b, { supervisorCertificateDer: SUPERVISOR, device: { storageBytes: 32_000_000_000 } }),
    ).toThrowError(expect.objectContaining({ code: 'blueprint/shared-ipad-quota' }) as Error);
    expect(sharedIpadQuotaLimitMb(32_000_000_000)).toBe(5_999);
    expect(() =>
      checkSharedIpadQuota(blueprint({ sharedIpad: { mode: 'on', quotaMb: 5_999 } }), 32_000_000_000),
    ).not.toThrow();
    expect(() =>
      checkSharedIpadQuota(blueprint({ sharedIpad: { mode: 'on', quotaMb: 6_000 } }), 32_000_000_000),
    ).toThrow(KitError);
    expect(() => checkSharedIpadQuota(blueprint({ sharedIpad: { mode: 'on', quotaMb: 1 } }), 16_000_000_000)).toThrow(
      KitError,
    );
  });

  it('enrollment URL with anchor certificates: ConfigurationURL + AnchorCertificates, Remote Management pane kept', () => {
    const pem = `-----BEGIN CERTIFICATE-----\n${ANCHOR.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`;
    const b = blueprint({
      skipSetup: ['Siri'],
      enrollment: {
        method: 'url',
        url: 'https://mdm.example.jp/enroll/g7',
        anchorCertificates: [pem, ANCHOR.toString('base64')],
      },
    });
    expect(buildCloudConfiguration(b, { supervisorCertificateDer: SUPERVISOR })).toEqual({
      AllowPairing: true,
      IsSupervised: true,
      IsMandatory: true,
      IsMDMUnremovable: true,
      IsMultiUser: false,
      SkipSetup: ['Siri'],
      OrganizationName: 'さくら小学校',
      OrganizationMagic: organizationMagic(b),
      SupervisorHostCertificates: [SUPERVISOR],
      Language: 'ja',
      Region: 'JP',
      ConfigurationURL: 'https://mdm.example.jp/enroll/g7',
      AnchorCertificates: [ANCHOR, ANCHOR],
    });
  });

  it('"all" expands to the iOS/iPadOS keys, with both OSShowcase spellings, and no tvOS/macOS-only keys', () => {
    expect(ALL_IOS).toEqual(expect.arrayContaining([...allIosSkipKeys(), 'OSShowCase']));
    expect(ALL_IOS).toContain('OSShowcase');
    expect(ALL_IOS).not.toContain('ScreenSaver');
    expect(ALL_IOS).not.toContain('FileVault');
    expect(new Set(ALL_IOS).size).toBe(ALL_IOS.length);
  });

  it('OrganizationMagic is a UUID, stable per blueprint and identity', () => {
    const a = organizationMagic(blueprint());
    expect(a).toMatch(/^[0-9A-F]{8}-[0-9A-F]{4}-8[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$/);
    expect(organizationMagic(blueprint())).toBe(a);
    expect(organizationMagic(blueprint({ name: '3年2組' }))).not.toBe(a);
    expect(
      organizationMagic(blueprint({ organization: { identityId: 'org-2', displayName: 'さくら小学校' } })),
    ).not.toBe(a);
  });
});

/** The types the device checks (protocols.md Addendum, "Keys the device accepts"). */
const TYPES: Readonly<Record<string, 'string' | 'boolean' | 'data[]' | 'string[]'>> = {
  OrganizationName: 'string',
  OrganizationDepartment: 'string',
  OrganizationAddress: 'string',
  OrganizationPhone: 'string',
  OrganizationEmail: 'string',
  OrganizationMagic: 'string',
  ConfigurationURL: 'string',
  Language: 'string',
  Region: 'string',
  IsSupervised: 'boolean',
  AllowPairing: 'boolean',
  IsMandatory: 'boolean',
  IsMDMUnremovable: 'boolean',
  CloudConfigurationUIComplete: 'boolean',
  IsMultiUser: 'boolean',
  AutoAdvanceSetup: 'boolean',
  AnchorCertificates: 'data[]',
  SupervisorHostCertificates: 'data[]',
  SkipSetup: 'string[]',
};

function typeOf(v: PlistValue): string {
  if (Array.isArray(v)) {
    if (v.every((x) => Buffer.isBuffer(x))) return 'data[]';
    if (v.every((x) => typeof x === 'string')) return 'string[]';
    return 'array';
  }
  return typeof v;
}

describe('plist encoding', () => {
  const configs: PlistDict[] = [
    buildCloudConfiguration(
      blueprint({
        organization: {
          identityId: 'org-1',
          displayName: 'さくら小学校',
          phone: '03',
          email: 'a@example.jp',
          department: 'd',
          address: 'a',
        },
        autoAdvance: true,
        sharedIpad: { mode: 'on', userCount: 3 },
        enrollment: { method: 'url', url: 'https://m.example.jp/e', anchorCertificates: [ANCHOR.toString('base64')] },
      }),
      { supervisorCertificateDer: SUPERVISOR },
    ),
    buildCloudConfiguration(blueprint({ supervise: false }), { supervisorCertificateDer: SUPERVISOR }),
  ];

  it('every key is one the device accepts, with the type it checks', () => {
    for (const cc of configs) {
      for (const [k, v] of Object.entries(cc)) {
        expect(TYPES[k], `unexpected key ${k}`).toBeDefined();
        expect(typeOf(v), k).toBe(TYPES[k]);
      }
    }
  });

  it('encodes as XML and binary plists that decode to the same dictionary', () => {
    for (const cc of configs) {
      const xml = encodeXml({ RequestType: 'SetCloudConfiguration', CloudConfiguration: cc });
      expect(xml.toString('utf8').includes('<key>SupervisorHostCertificates</key>')).toBe(cc.IsSupervised === true);
      expect(decodePlist(xml)).toEqual({ RequestType: 'SetCloudConfiguration', CloudConfiguration: cc });
      expect(decodePlist(encodeBinary(cc))).toEqual(cc);
    }
    expect(encodeXml(configs[0] as PlistDict).toString('utf8')).toMatch(/<key>IsSupervised<\/key>\s*<true\/>/);
  });
});

describe('compareCloudConfiguration', () => {
  const b = blueprint({
    mandatoryEnrollment: false,
    sharedIpad: { mode: 'on', userCount: 4 },
    skipSetup: ['Siri', 'Location', 'TOS'],
  });
  const ours = buildCloudConfiguration(b, { supervisorCertificateDer: SUPERVISOR });

  /** What a device stores and returns for `ours`: forced and added keys, its own order. */
  function asDeviceStores(cc: PlistDict, patch: PlistDict = {}): PlistDict {
    const entries = Object.entries(cc).reverse();
    const out: PlistDict = Object.fromEntries(entries);
    Object.assign(out, {
      ConfigurationSource: 2,
      ConfigurationWasApplied: true,
      CloudConfigurationUIComplete: true,
      PostSetupProfileWasInstalled: true,
      IsMandatory: true,
      SkipSetup: [...(cc.SkipSetup as string[])].reverse(),
      OrganizationMagic: '0D1C2B3A-0000-4000-8000-000000000000',
    });
    return Object.assign(out, patch);
  }

  it('ignores what the device forces or adds, key order, array order and the magic', () => {
    expect(compareCloudConfiguration(ours, asDeviceStores(ours))).toEqual([]);
  });

  it('ignores IsMultiUser dropped on hardware without Shared iPad', () => {
    const theirs = asDeviceStores(ours);
    delete theirs.IsMultiUser;
    expect(compareCloudConfiguration(ours, theirs)).toEqual([]);
  });

  it('ignores IsMDMUnremovable forced off on an unsupervised device, and 0/1 integers for booleans', () => {
    const unsup = buildCloudConfiguration(blueprint({ supervise: false, mdmRemovable: false }), {
      supervisorCertificateDer: SUPERVISOR,
    });
    expect(
      compareCloudConfiguration(
        { ...unsup, IsMDMUnremovable: true },
        asDeviceStores(unsup, { IsMDMUnremovable: 0, IsSupervised: 0 }),
      ),
    ).toEqual([]);
  });

  it('reports the differences that matter', () => {
    const theirs = asDeviceStores(ours, {
      OrganizationName: 'Other school',
      SupervisorHostCertificates: [OTHER],
      SkipSetup: ['Siri', 'Location'],
      AllowPairing: false,
      MDMProtocolVersion: 2,
    });
    const diffs = compareCloudConfiguration(ours, theirs);
    expect(diffs.map((d) => d.key)).toEqual([
      'AllowPairing',
      'MDMProtocolVersion',
      'OrganizationName',
      'SkipSetup',
      'SupervisorHostCertificates',
    ]);
    expect(diffs.find((d) => d.key === 'OrganizationName')).toEqual({
      key: 'OrganizationName',
      ours: 'さくら小学校',
      theirs: 'Other school',
    });
    expect(diffs.find((d) => d.key === 'MDMProtocolVersion')).toEqual({
      key: 'MDMProtocolVersion',
      ours: undefined,
      theirs: 2,
    });
  });

  it('reports a device that is supervised by us but we now want unsupervised, and Shared iPad the other way', () => {
    const unsup = buildCloudConfiguration(blueprint({ supervise: false }), { supervisorCertificateDer: SUPERVISOR });
    const keys = compareCloudConfiguration(unsup, asDeviceStores(ours)).map((d) => d.key);
    expect(keys).toContain('IsSupervised');
    expect(keys).toContain('SupervisorHostCertificates');
    expect(keys).toContain('IsMultiUser');
  });
});

describe('forcedValues', () => {
  it('iOS 13+, iPadOS 13.1+, tvOS 13+ and macOS 10.15+ force supervision and mandatory enrollment', () => {
    const forced = { supervise: true, mandatoryEnrollment: true };
    expect(forcedValues('13.0')).toEqual(forced);
    expect(forcedValues('17.5.1')).toEqual(forced);
    expect(forcedValues('12.5.7')).toEqual({});
    expect(forcedValues('13.0', 'ipados')).toEqual({});
    expect(forcedValues('13.1', 'ipados')).toEqual(forced);
    expect(forcedValues('13', 'tvos')).toEqual(forced);
    expect(forcedValues('10.15', 'macos')).toEqual(forced);
    expect(forcedValues('10.14.6', 'macos')).toEqual({});
    expect(forcedValues('unknown')).toEqual({});
  });
});
