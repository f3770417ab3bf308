/**
 * The catalogue of Setup Assistant panes a blueprint may skip: every Apple skip key (the values of
 * a cloud configuration's `SkipSetup` array), with the platforms it applies to, its Japanese and
 * English labels, and its introduction/deprecation versions.
 *
 * Sources, in order of authority:
 * - Apple, `apple/device-management` `other/skipkeys.yaml` (snapshot b6202ca, 2024-10-21): key
 *   names, per-OS `introduced` / `deprecated`, "not always skippable" notes. Keys marked
 *   `source: 'apple'` below come from there (a missing `supportedOS` entry means Apple's payload
 *   default: iOS 7.0, macOS 10.9, tvOS 10.2).
 * - Keys Apple added after that snapshot are known only from the open clients:
 *   danielpaulus/go-ios `ios/mcinstall/prepare.go` `skipAllSetup` (commits 8dd90d7, d77f181,
 *   82e1a15 "Added skip keys new to iOS 26") and doronz88/pymobiledevice3
 *   `pymobiledevice3/services/mobile_config.py` `supervise` (5356aecd "Update SkipSetup to iOS 26").
 *   Those are `source: 'clients'`: the key is real (both or one client send it), but the platform
 *   and version are our best reading, UNCONFIRMED.
 * - The Japanese labels reuse mobiconnect's DEP-profile form (seed
 *   `mobiconnect-hybrid-mdm-dep.ja.txt`, "デバイス設定アシスタントでスキップさせる設定項目") wherever it
 *   lists the pane; otherwise Apple's Japanese screen wording.
 *
 * visionOS: Apple's SkipKeys page lists visionOS 26 for the object as a whole, but no source read
 * gives per-key visionOS availability, so no key is marked `visionos` (a kitting station prepares
 * iPads; this is a documented gap, not a claim that the keys are missing on visionOS).
 *
 * Not catalogued: strings pymobiledevice3 also sends that are not skip keys in any Apple source and
 * look scraped from binaries (`All`, `N/A`, `Key`, `*Subtitle`, `PreferredLang`,
 * `AdditionalPrivacySettings`, `LiquidGlass`). Devices ignore unknown keys (protocols.md §5.2), so
 * leaving them out loses nothing we can name.
 *
 * **OSShowCase vs OSShowcase.** go-ios (82e1a15, 2026-01) spells it `OSShowCase`, pymobiledevice3
 * (5356aecd, 2025-06, written against the iOS 26 firmware) `OSShowcase`; Apple's spelling is
 * UNCONFIRMED in the sources read. Decision: the catalogue key is `OSShowcase` (the earlier source
 * taken from the firmware itself, and Apple spells "showcase" as one word elsewhere); a blueprint may
 * write either spelling (normalised by {@link normalizeSkipKey}); and the cloud configuration sends
 * **both** spellings ({@link skipKeyWireValues}), which costs nothing because the device ignores an
 * unknown key, and skips the pane whichever spelling iOS reads.
 */

/** The platforms a skip key may apply to. */
export type SkipPlatform = 'ios' | 'ipados' | 'tvos' | 'macos' | 'visionos';

/** All platforms, in display order. */
export const SKIP_PLATFORMS: readonly SkipPlatform[] = ['ios', 'ipados', 'tvos', 'macos', 'visionos'];

/** OS versions per platform family (`ios` covers iPadOS too, as Apple's documents do). */
export interface OsVersions {
  readonly ios?: string;
  readonly tvos?: string;
  readonly macos?: string;
}

/** One skip key of the catalogue. */
export interface SkipPane {
  /** Apple's skip key, exactly as written into `SkipSetup`. */
  readonly key: string;
  readonly platforms: readonly SkipPlatform[];
  /** Japanese label (the seed's wording when the seed lists the pane). */
  readonly ja: string;
  readonly en: string;
  /** The seed's own label(s) for this pane, when mobiconnect's DEP-profile form lists it. */
  readonly seedJa?: readonly string[];
  readonly introduced?: OsVersions;
  /** Set when Apple deprecated the key (the pane no longer exists from that version on). */
  readonly deprecated?: OsVersions;
  /** The pane appears before the device reads its cloud configuration, so skipping may not work. */
  readonly notAlwaysSkippable?: boolean;
  /** Where the facts come from: Apple's skipkeys.yaml, or only the open clients (see module doc). */
  readonly source: 'apple' | 'clients';
  /** Extra notes for help text (English; engineering facts, not UI copy). */
  readonly note?: string;
}

const IOS: readonly SkipPlatform[] = ['ios', 'ipados'];
const IOS_MAC: readonly SkipPlatform[] = ['ios', 'ipados', 'macos'];
const ALL3: readonly SkipPlatform[] = ['ios', 'ipados', 'tvos', 'macos'];
const MAC: readonly SkipPlatform[] = ['macos'];
const TV: readonly SkipPlatform[] = ['tvos'];

/** Every skip key known to the station, alphabetical by key (case-insensitive). */
export const SKIP_PANES: readonly SkipPane[] = [
  {
    key: 'Accessibility',
    platforms: MAC,
    ja: 'アクセシビリティ',
    en: 'Accessibility',
    introduced: { macos: '11.0' },
    notAlwaysSkippable: true,
    source: 'apple',
    note: 'macOS: only when creating additional users.',
  },
  {
    key: 'AccessibilityAppearance',
    platforms: IOS,
    ja: 'アクセシビリティ（表示）',
    en: 'Accessibility appearance',
    source: 'clients',
  },
  {
    key: 'ActionButton',
    platforms: ['ios'],
    ja: 'アクションボタン',
    en: 'Action button',
    introduced: { ios: '17.0' },
    source: 'apple',
    note: 'iPhone models with an Action button.',
  },
  {
    key: 'AgeAssurance',
    platforms: IOS,
    ja: '年齢の確認',
    en: 'Age assurance',
    introduced: { ios: '26.0' },
    source: 'clients',
  },
  {
    key: 'AgeBasedSafetySettings',
    platforms: IOS,
    ja: '年齢に応じた安全設定',
    en: 'Age-based safety settings',
    introduced: { ios: '26.0' },
    source: 'clients',
  },
  {
    key: 'Android',
    platforms: IOS,
    ja: 'Androidから移行',
    en: 'Move from Android',
    seedJa: ['Androidから移行'],
    introduced: { ios: '9.0' },
    source: 'apple',
    note: 'Removes the Move from Android option when the Restore pane is shown.',
  },
  {
    key: 'Appearance',
    platforms: IOS_MAC,
    ja: '外観モードを選択',
    en: 'Choose your look (appearance)',
    seedJa: ['外観モードを選択'],
    introduced: { ios: '13.0', macos: '10.14' },
    source: 'apple',
  },
  {
    key: 'AppleID',
    platforms: ALL3,
    ja: 'Apple ID',
    en: 'Apple Account (Apple ID)',
    seedJa: ['Apple ID', 'パスワードリセット'],
    introduced: { ios: '7.0', tvos: '10.2', macos: '10.9' },
    source: 'apple',
    note: 'The seed lists a "パスワードリセット" (password reset) pane; Apple has no skip key by that name. The only password-reset choice in Setup Assistant belongs to the Apple Account step (macOS: "allow my Apple Account to reset this password"), so that seed item maps here (UNCONFIRMED).',
  },
  {
    key: 'AppStore',
    platforms: IOS_MAC,
    ja: 'App Store',
    en: 'App Store',
    introduced: { ios: '14.3', macos: '11.1' },
    source: 'apple',
  },
  { key: 'Avatar', platforms: IOS, ja: 'アバター', en: 'Avatar', source: 'clients' },
  {
    key: 'Biometric',
    platforms: IOS_MAC,
    ja: 'Touch ID/Face ID',
    en: 'Touch ID / Face ID',
    seedJa: ['Touch ID/Face ID'],
    introduced: { ios: '8.1', macos: '10.12.4' },
    source: 'apple',
  },
  {
    key: 'CameraButton',
    platforms: ['ios'],
    ja: 'カメラコントロール',
    en: 'Camera Control',
    introduced: { ios: '18.0' },
    source: 'apple',
    note: 'iPhone models with Camera Control.',
  },
  { key: 'CloudStorage', platforms: IOS, ja: 'iCloudストレージ', en: 'iCloud storage', source: 'clients' },
  {
    key: 'DeviceProtection',
    platforms: IOS,
    ja: '盗難デバイスの保護',
    en: 'Stolen Device Protection',
    source: 'clients',
  },
  {
    key: 'DeviceToDeviceMigration',
    platforms: IOS,
    ja: 'デバイスから直接転送',
    en: 'Device-to-device migration',
    introduced: { ios: '12.4' },
    source: 'apple',
  },
  {
    key: 'Diagnostics',
    platforms: ALL3,
    ja: 'App解析',
    en: 'App Analytics',
    seedJa: ['App解析'],
    introduced: { ios: '7.0', tvos: '10.2', macos: '10.9' },
    source: 'apple',
  },
  { key: 'Display', platforms: IOS, ja: '画面表示', en: 'Display', source: 'clients' },
  {
    key: 'DisplayTone',
    platforms: IOS_MAC,
    ja: 'True Toneディスプレイ',
    en: 'True Tone display',
    seedJa: ['True Toneディスプレイ'],
    introduced: { ios: '9.3.2', macos: '10.13.6' },
    deprecated: { ios: '15.0', macos: '12.0' },
    source: 'apple',
    note: 'Replaced by TrueToneDisplay.',
  },
  {
    key: 'EnableLockdownMode',
    platforms: IOS_MAC,
    ja: 'ロックダウンモードを有効にする',
    en: 'Enable Lockdown Mode',
    introduced: { ios: '17.1', macos: '14.0' },
    source: 'apple',
    note: 'Shown only when an Apple Account is set up.',
  },
  {
    key: 'ExpressLanguage',
    platforms: IOS,
    ja: '言語の簡易設定',
    en: 'Express language setup',
    notAlwaysSkippable: true,
    source: 'clients',
  },
  {
    key: 'FileVault',
    platforms: MAC,
    ja: 'FileVault',
    en: 'FileVault',
    seedJa: ['FileVault'],
    introduced: { macos: '10.10' },
    source: 'apple',
  },
  {
    key: 'HomeButtonSensitivity',
    platforms: ['ios'],
    ja: 'ホームボタン',
    en: 'Home button',
    seedJa: ['ホームボタン'],
    introduced: { ios: '10.0' },
    deprecated: { ios: '15.0' },
    source: 'apple',
    note: 'iPhone 7/8 and SE only.',
  },
  {
    key: 'iCloudDiagnostics',
    platforms: MAC,
    ja: 'iCloud診断',
    en: 'iCloud Analytics',
    seedJa: ['iCloud診断'],
    introduced: { macos: '10.12.4' },
    source: 'apple',
  },
  {
    key: 'iCloudStorage',
    platforms: MAC,
    ja: 'iCloudのデスクトップと書類',
    en: 'iCloud Desktop and Documents',
    seedJa: ['iCloudのデスクトップと書類'],
    introduced: { macos: '10.13.4' },
    source: 'apple',
  },
  {
    key: 'iMessageAndFaceTime',
    platforms: IOS,
    ja: 'iMessageとFaceTime',
    en: 'iMessage and FaceTime',
    seedJa: ['iMessageとFaceTime'],
    introduced: { ios: '12.0' },
    source: 'apple',
  },
  {
    key: 'IntendedUser',
    platforms: IOS,
    ja: '利用者の選択（自分用・子ども用）',
    en: 'Intended user',
    source: 'clients',
  },
  {
    key: 'Intelligence',
    platforms: IOS_MAC,
    ja: 'Apple Intelligence',
    en: 'Apple Intelligence',
    introduced: { ios: '18.0', macos: '15.0' },
    source: 'apple',
  },
  {
    key: 'Keyboard',
    platforms: IOS,
    ja: 'キーボード',
    en: 'Keyboard',
    introduced: { ios: '13.0' },
    notAlwaysSkippable: true,
    source: 'apple',
  },
  { key: 'Language', platforms: IOS, ja: '言語', en: 'Language', notAlwaysSkippable: true, source: 'clients' },
  {
    key: 'LanguageAndLocale',
    platforms: IOS,
    ja: '言語と地域',
    en: 'Language and region',
    notAlwaysSkippable: true,
    source: 'clients',
  },
  {
    key: 'Location',
    platforms: IOS_MAC,
    ja: '位置情報サービス',
    en: 'Location Services',
    seedJa: ['位置情報サービス'],
    introduced: { ios: '7.0', macos: '10.11' },
    source: 'apple',
    note: 'Skipping also leaves Location Services off.',
  },
  { key: 'LockdownMode', platforms: IOS_MAC, ja: 'ロックダウンモード', en: 'Lockdown Mode', source: 'clients' },
  {
    key: 'MessagingActivationUsingPhoneNumber',
    platforms: ['ios'],
    ja: '電話番号によるiMessageのアクティベーション',
    en: 'iMessage activation with the phone number',
    introduced: { ios: '10.0' },
    source: 'apple',
  },
  { key: 'Multitasking', platforms: ['ipados'], ja: 'マルチタスク', en: 'Multitasking', source: 'clients' },
  {
    key: 'OnBoarding',
    platforms: IOS,
    ja: '新機能の概要',
    en: 'New features overview (onboarding)',
    seedJa: ['新機能の概要'],
    introduced: { ios: '11.0' },
    deprecated: { ios: '14.0' },
    source: 'apple',
  },
  {
    key: 'OSShowcase',
    platforms: IOS,
    ja: '新しいデザインの紹介',
    en: 'OS showcase',
    introduced: { ios: '26.0' },
    source: 'clients',
    note: 'Sent as both OSShowcase and OSShowCase (see the module documentation).',
  },
  {
    key: 'Passcode',
    platforms: IOS,
    ja: 'パスコードロック',
    en: 'Passcode',
    seedJa: ['パスコードロック'],
    introduced: { ios: '7.0' },
    source: 'apple',
  },
  {
    key: 'Payment',
    platforms: IOS_MAC,
    ja: 'Apple Pay',
    en: 'Apple Pay',
    seedJa: ['Apple Pay'],
    introduced: { ios: '8.1', macos: '10.12.4' },
    source: 'apple',
  },
  {
    key: 'PreferredLanguage',
    platforms: IOS,
    ja: '使用する言語',
    en: 'Preferred languages',
    notAlwaysSkippable: true,
    source: 'clients',
  },
  {
    key: 'Privacy',
    platforms: ALL3,
    ja: 'プライバシー',
    en: 'Privacy',
    seedJa: ['プライバシー'],
    introduced: { ios: '11.3', tvos: '11.3', macos: '10.13.4' },
    source: 'apple',
  },
  { key: 'Region', platforms: IOS, ja: '地域', en: 'Region', notAlwaysSkippable: true, source: 'clients' },
  {
    key: 'Registration',
    platforms: MAC,
    ja: 'ユーザー登録',
    en: 'Registration',
    seedJa: ['ユーザー登録'],
    introduced: { macos: '10.9' },
    source: 'clients',
    note: 'Listed by Apple in earlier skip-key documents; absent from the 2024-10 skipkeys.yaml.',
  },
  {
    key: 'Restore',
    platforms: IOS_MAC,
    ja: '新規設定または復元',
    en: 'Apps & Data (set up new or restore)',
    seedJa: ['新規設定または復元'],
    introduced: { ios: '7.0', macos: '10.9' },
    source: 'apple',
  },
  {
    key: 'RestoreCompleted',
    platforms: IOS,
    ja: '復元しました',
    en: 'Restore completed',
    seedJa: ['復元しました'],
    introduced: { ios: '14.0' },
    source: 'apple',
  },
  { key: 'Safety', platforms: IOS, ja: '安全性', en: 'Safety', introduced: { ios: '16.0' }, source: 'apple' },
  {
    key: 'SafetyAndHandling',
    platforms: IOS,
    ja: '安全性と取り扱い',
    en: 'Safety and handling',
    introduced: { ios: '26.0' },
    source: 'clients',
  },
  {
    key: 'ScreenSaver',
    platforms: TV,
    ja: '世界を見よう',
    en: 'See the world (screen saver)',
    seedJa: ['世界を見よう'],
    introduced: { tvos: '10.2' },
    source: 'apple',
  },
  {
    key: 'ScreenTime',
    platforms: IOS_MAC,
    ja: 'スクリーンタイム',
    en: 'Screen Time',
    seedJa: ['スクリーンタイム'],
    introduced: { ios: '12.0', macos: '10.15' },
    source: 'apple',
  },
  {
    key: 'SIMSetup',
    platforms: IOS,
    ja: 'モバイル通信を選択',
    en: 'Cellular setup',
    seedJa: ['モバイル通信を選択'],
    introduced: { ios: '12.0' },
    source: 'apple',
  },
  {
    key: 'Siri',
    platforms: ALL3,
    ja: 'Siri',
    en: 'Siri',
    seedJa: ['Siri'],
    introduced: { ios: '7.0', tvos: '10.2', macos: '10.12' },
    source: 'apple',
  },
  {
    key: 'SoftwareUpdate',
    platforms: IOS,
    ja: 'デバイスを最新の状態に保つ',
    en: 'Keep your device up to date',
    seedJa: ['デバイスを最新の状態に保つ'],
    introduced: { ios: '12.0' },
    source: 'apple',
  },
  {
    key: 'SpokenLanguage',
    platforms: IOS,
    ja: '音声入力',
    en: 'Dictation',
    introduced: { ios: '13.0' },
    notAlwaysSkippable: true,
    source: 'apple',
  },
  {
    key: 'TapToSetup',
    platforms: TV,
    ja: 'Apple TVの設定',
    en: 'Apple TV setup (tap to set up)',
    seedJa: ['Apple TVの設定'],
    introduced: { tvos: '10.2' },
    notAlwaysSkippable: true,
    source: 'apple',
  },
  {
    key: 'TermsOfAddress',
    platforms: IOS_MAC,
    ja: '呼びかけ方',
    en: 'Terms of address',
    introduced: { ios: '16.0', macos: '13.0' },
    notAlwaysSkippable: true,
    source: 'apple',
  },
  { key: 'Tips', platforms: IOS, ja: 'ヒント', en: 'Tips', introduced: { ios: '26.0' }, source: 'clients' },
  { key: 'Tone', platforms: IOS, ja: 'トーン', en: 'Tone', source: 'clients' },
  {
    key: 'TOS',
    platforms: ALL3,
    ja: '利用条件',
    en: 'Terms and conditions',
    seedJa: ['利用条件'],
    introduced: { ios: '7.0', tvos: '10.2', macos: '10.9' },
    source: 'apple',
  },
  { key: 'TouchID', platforms: MAC, ja: 'Touch ID（Mac）', en: 'Touch ID (Mac)', source: 'clients' },
  {
    key: 'TrueToneDisplay',
    platforms: IOS_MAC,
    ja: 'True Toneディスプレイ',
    en: 'True Tone display',
    introduced: { ios: '15.0', macos: '12.0' },
    source: 'clients',
    note: 'Successor of DisplayTone (deprecated in iOS 15 / macOS 12); versions inferred from that deprecation.',
  },
  {
    key: 'TVHomeScreenSync',
    platforms: TV,
    ja: '1つのホーム画面ですべてのApple TVに対応',
    en: 'One home screen for all Apple TVs',
    seedJa: ['1つのホーム画面ですべてのApple TVに対応'],
    introduced: { tvos: '11.0' },
    source: 'apple',
  },
  {
    key: 'TVProviderSignIn',
    platforms: TV,
    ja: 'TVプロバイダにサインイン',
    en: 'TV provider sign-in',
    seedJa: ['TVプロバイダにサインイン'],
    introduced: { tvos: '11.0' },
    source: 'apple',
  },
  {
    key: 'TVRoom',
    platforms: TV,
    ja: 'Apple TVをどこに設置しますか?',
    en: 'Where is this Apple TV?',
    seedJa: ['Apple TVをどこに設置しますか?'],
    introduced: { tvos: '11.4' },
    source: 'apple',
  },
  {
    key: 'UnlockWithWatch',
    platforms: MAC,
    ja: 'Apple Watchでロック解除',
    en: 'Unlock with Apple Watch',
    source: 'clients',
  },
  {
    key: 'UpdateCompleted',
    platforms: IOS,
    ja: 'アップデートが完了しました',
    en: 'Update completed',
    seedJa: ['アップデートが完了しました'],
    introduced: { ios: '14.0' },
    source: 'apple',
  },
  { key: 'Wallpaper', platforms: MAC, ja: '壁紙', en: 'Wallpaper', introduced: { macos: '14.1' }, source: 'apple' },
  {
    key: 'WatchMigration',
    platforms: ['ios'],
    ja: 'Apple Watch',
    en: 'Apple Watch (watch migration)',
    seedJa: ['Apple Watch'],
    introduced: { ios: '11.0' },
    source: 'apple',
  },
  {
    key: 'WebContentFiltering',
    platforms: IOS,
    ja: 'Webコンテンツのフィルタ',
    en: 'Web content filtering',
    introduced: { ios: '26.0' },
    source: 'clients',
  },
  {
    key: 'Welcome',
    platforms: IOS_MAC,
    ja: 'ようこそ',
    en: 'Welcome (get started)',
    seedJa: ['ようこそ'],
    introduced: { ios: '13.0', macos: '15.0' },
    source: 'apple',
  },
  {
    key: 'WiFi',
    platforms: TV,
    ja: 'Wi-Fi',
    en: 'Wi-Fi',
    source: 'clients',
    note: 'Platform UNCONFIRMED; not sent to iPads, which need the network for enrollment.',
  },
  {
    key: 'Zoom',
    platforms: IOS,
    ja: '画面表示の拡大',
    en: 'Display zoom',
    seedJa: ['画面表示の拡大'],
    introduced: { ios: '8.3' },
    deprecated: { ios: '17.0' },
    source: 'apple',
  },
];

/** Spellings a blueprint may use for a key, mapped to the catalogue key. */
const ALIASES: Readonly<Record<string, string>> = { OSShowCase: 'OSShowcase' };

/** Extra spellings sent next to a key in `SkipSetup` (see the module doc on OSShowcase). */
const WIRE_ALIASES: Readonly<Record<string, readonly string[]>> = { OSShowcase: ['OSShowCase'] };

const BY_KEY: ReadonlyMap<string, SkipPane> = new Map(SKIP_PANES.map((p) => [p.key, p]));

/** The catalogue entry for `key` (aliases such as `OSShowCase` accepted), or undefined. */
export function findSkipPane(key: string): SkipPane | undefined {
  return BY_KEY.get(ALIASES[key] ?? key);
}

/** The catalogue spelling of `key` (`OSShowCase` → `OSShowcase`), or undefined for an unknown key. */
export function normalizeSkipKey(key: string): string | undefined {
  return findSkipPane(key)?.key;
}

/** Whether `key` is a catalogue key or an accepted alias. */
export function isSkipKey(key: string): boolean {
  return findSkipPane(key) !== undefined;
}

/** Whether the pane exists on `platform` (deprecated keys included; they still skip on old OSes). */
export function appliesTo(pane: SkipPane, platform: SkipPlatform): boolean {
  return pane.platforms.includes(platform);
}

/**
 * The keys "skip everything" expands to for iPhone and iPad: every catalogue key that applies to
 * iOS or iPadOS, deprecated ones included (older devices still show those panes), in catalogue
 * order.
 */
export function allIosSkipKeys(): string[] {
  return SKIP_PANES.filter((p) => appliesTo(p, 'ios') || appliesTo(p, 'ipados')).map((p) => p.key);
}

/**
 * The strings written into `SkipSetup` for catalogue keys: each key plus its extra wire spellings,
 * without duplicates, in the given order.
 */
export function skipKeyWireValues(keys: readonly string[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const push = (k: string): void => {
    if (!seen.has(k)) {
      seen.add(k);
      out.push(k);
    }
  };
  for (const k of keys) {
    const key = normalizeSkipKey(k) ?? k;
    push(key);
    for (const alias of WIRE_ALIASES[key] ?? []) push(alias);
  }
  return out;
}
