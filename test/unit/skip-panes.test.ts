import { describe, expect, it } from 'vitest';
import {
  SKIP_PANES,
  SKIP_PLATFORMS,
  allIosSkipKeys,
  findSkipPane,
  isSkipKey,
  normalizeSkipKey,
  skipKeyWireValues,
} from '../../src/kitting/skip-panes.ts';

/**
 * The panes mobiconnect's DEP-profile form lists (seed mobiconnect-hybrid-mdm-dep.ja.txt,
 * "デバイス設定アシスタントでスキップさせる設定項目", in the seed's order), each with the Apple skip
 * key it stands for.
 */
const SEED_PANES: readonly (readonly [string, string])[] = [
  ['プライバシー', 'Privacy'],
  ['位置情報サービス', 'Location'],
  ['パスワードリセット', 'AppleID'],
  ['Siri', 'Siri'],
  ['Apple ID', 'AppleID'],
  ['利用条件', 'TOS'],
  ['App解析', 'Diagnostics'],
  ['Touch ID/Face ID', 'Biometric'],
  ['True Toneディスプレイ', 'DisplayTone'],
  ['外観モードを選択', 'Appearance'],
  ['新規設定または復元', 'Restore'],
  ['Apple Pay', 'Payment'],
  ['スクリーンタイム', 'ScreenTime'],
  ['モバイル通信を選択', 'SIMSetup'],
  ['パスコードロック', 'Passcode'],
  ['Androidから移行', 'Android'],
  ['デバイスを最新の状態に保つ', 'SoftwareUpdate'],
  ['iMessageとFaceTime', 'iMessageAndFaceTime'],
  ['Apple Watch', 'WatchMigration'],
  ['ホームボタン', 'HomeButtonSensitivity'],
  ['画面表示の拡大', 'Zoom'],
  ['新機能の概要', 'OnBoarding'],
  ['ようこそ', 'Welcome'],
  ['復元しました', 'RestoreCompleted'],
  ['アップデートが完了しました', 'UpdateCompleted'],
  ['Apple TVの設定', 'TapToSetup'],
  ['TVプロバイダにサインイン', 'TVProviderSignIn'],
  ['Apple TVをどこに設置しますか?', 'TVRoom'],
  ['1つのホーム画面ですべてのApple TVに対応', 'TVHomeScreenSync'],
  ['世界を見よう', 'ScreenSaver'],
  ['iCloudのデスクトップと書類', 'iCloudStorage'],
  ['iCloud診断', 'iCloudDiagnostics'],
  ['FileVault', 'FileVault'],
  ['ユーザー登録', 'Registration'],
];

/** protocols.md §5.2: go-ios `skipAllSetup` (70 current keys) and the four deprecated ones. */
const GO_IOS_KEYS =
  `Accessibility, AccessibilityAppearance, ActionButton, AgeAssurance, AgeBasedSafetySettings, Android, Appearance, AppleID, AppStore, Avatar,
Biometric, CameraButton, CloudStorage, DeviceProtection, DeviceToDeviceMigration, Diagnostics, Display, EnableLockdownMode, ExpressLanguage,
FileVault, iCloudDiagnostics, iCloudStorage, iMessageAndFaceTime, IntendedUser, Intelligence, Keyboard, Language, LanguageAndLocale, Location,
LockdownMode, MessagingActivationUsingPhoneNumber, Multitasking, OSShowCase, Passcode, Payment, PreferredLanguage, Privacy, Region,
Registration, Restore, RestoreCompleted, Safety, SafetyAndHandling, ScreenSaver, ScreenTime, SIMSetup, Siri, SoftwareUpdate, SpokenLanguage,
TapToSetup, TermsOfAddress, Tips, Tone, TOS, TouchID, TrueToneDisplay, TVHomeScreenSync, TVProviderSignIn, TVRoom, UnlockWithWatch,
UpdateCompleted, Wallpaper, WatchMigration, WebContentFiltering, Welcome, WiFi`
    .split(',')
    .map((k) => k.trim());
const DEPRECATED: Readonly<Record<string, string>> = {
  DisplayTone: '15.0',
  HomeButtonSensitivity: '15.0',
  OnBoarding: '14.0',
  Zoom: '17.0',
};

describe('skip-pane catalogue', () => {
  it('contains every pane the seed lists, with the seed wording', () => {
    expect(SEED_PANES).toHaveLength(34);
    for (const [ja, key] of SEED_PANES) {
      const pane = findSkipPane(key);
      expect(pane, key).toBeDefined();
      expect(pane?.seedJa, key).toContain(ja);
    }
    // and no catalogue entry claims a seed label the seed does not have
    const seedLabels = new Set(SEED_PANES.map(([ja]) => ja));
    for (const p of SKIP_PANES) for (const ja of p.seedJa ?? []) expect(seedLabels.has(ja), ja).toBe(true);
  });

  it('uses the seed wording as the Japanese label of panes the seed lists', () => {
    for (const [ja, key] of SEED_PANES) {
      if (ja === 'パスワードリセット') continue; // a second seed item mapped onto AppleID, whose label is the seed's "Apple ID"
      expect(findSkipPane(key)?.ja, key).toBe(ja);
    }
  });

  it('contains every key of protocols.md §5.2, deprecated ones marked', () => {
    expect(GO_IOS_KEYS).toHaveLength(66);
    for (const key of GO_IOS_KEYS) expect(isSkipKey(key), key).toBe(true);
    for (const [key, version] of Object.entries(DEPRECATED))
      expect(findSkipPane(key)?.deprecated?.ios, key).toBe(version);
    const deprecated = SKIP_PANES.filter((p) => p.deprecated !== undefined)
      .map((p) => p.key)
      .sort();
    expect(deprecated).toEqual(Object.keys(DEPRECATED).sort());
  });

  it('has unique keys, ja and en labels and platforms on every entry', () => {
    const keys = SKIP_PANES.map((p) => p.key);
    expect(new Set(keys).size).toBe(keys.length);
    for (const p of SKIP_PANES) {
      expect(p.ja.trim(), p.key).not.toBe('');
      expect(p.en.trim(), p.key).not.toBe('');
      expect(p.platforms.length, p.key).toBeGreaterThan(0);
      for (const platform of p.platforms) expect(SKIP_PLATFORMS, p.key).toContain(platform);
      expect(['apple', 'clients'], p.key).toContain(p.source);
    }
  });

  it('knows the platforms of well-documented keys (Apple skipkeys.yaml)', () => {
    expect(findSkipPane('FileVault')?.platforms).toEqual(['macos']);
    expect(findSkipPane('ScreenSaver')?.platforms).toEqual(['tvos']);
    expect(findSkipPane('TOS')?.platforms).toEqual(['ios', 'ipados', 'tvos', 'macos']);
    expect(findSkipPane('ActionButton')?.introduced).toEqual({ ios: '17.0' });
    expect(findSkipPane('Keyboard')?.notAlwaysSkippable).toBe(true);
  });

  it('resolves the OSShowCase/OSShowcase casing: accept both, send both', () => {
    expect(normalizeSkipKey('OSShowCase')).toBe('OSShowcase');
    expect(normalizeSkipKey('OSShowcase')).toBe('OSShowcase');
    expect(normalizeSkipKey('osshowcase')).toBeUndefined();
    expect(skipKeyWireValues(['OSShowCase', 'Siri', 'OSShowcase'])).toEqual(['OSShowcase', 'OSShowCase', 'Siri']);
  });

  it('"all" for iPads is every iOS/iPadOS key and nothing else', () => {
    const all = allIosSkipKeys();
    expect(all).toContain('Multitasking');
    expect(all).toContain('Zoom');
    expect(all).not.toContain('TVRoom');
    expect(all).not.toContain('Registration');
    expect(all.every((k) => findSkipPane(k)?.platforms.some((p) => p === 'ios' || p === 'ipados'))).toBe(true);
  });
});
