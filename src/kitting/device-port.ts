/**
 * The port through which the pipeline steps (`steps.ts`) reach a device: {@link KitDevice}.
 *
 * The steps know nothing of usbmuxd, lockdown sessions, MCInstall connections or mobileactivationd;
 * they call these methods and read camelCase results. One implementation works over `src/device/`
 * (lockdown, MCInstall, mobileactivationd, diagnostics_relay); tests use an in-memory model
 * (`test/helpers/fake-kit-device.ts`), and the virtual fleet is the integration partner. Apple's
 * wire keys appear only inside the cloud configuration {@link PlistDict} (as `cloud-config.ts` builds
 * and compares it).
 *
 * Design rules for implementations:
 * - **Reads are cheap and side-effect free**: every step's `isDone` calls one or two of them
 *   (`identify`, `pairingState`, `getCloudConfiguration`, `listProfiles`, `getStoredProfile`,
 *   `readSettings`, `inspect`) on every run and every resume.
 * - **Writes are single, idempotent-by-effect device operations**; the steps decide whether to call
 *   them, from reads, so the port never needs to remember anything across calls except an escalated
 *   MCInstall connection (see {@link KitDevice.escalate}).
 * - **Sessions are the implementation's business**: any method that needs a lockdown session opens
 *   (or reuses) one with the pair record the host holds. When the device no longer accepts it
 *   (erased, or a configuration with `AllowPairing` false deleted its pairings) the method throws
 *   `lockdown/invalid-host-id` (or `lockdown/missing-pair-record` when the host holds none); the
 *   pipeline then pairs again.
 * - **Errors are KitErrors with the codes listed per method.** In addition, every method may throw
 *   the transport codes: `usbmux/device-gone` / `device/not-found` (the device was unplugged: the
 *   runner makes the job wait for it), `device/connection-lost` and `device/timeout` (retryable),
 *   `lockdown/password-protected` (locked: the job waits for "unlock"), and `bug`.
 */
import type { PlistDict } from '../plist/index.ts';

/**
 * Signs for the organization's supervision identity: supervised pairing's `ChallengeResponse`
 * (protocols.md §3.4) and MCInstall `EscalateResponse` (§4.4). What `IdentityService.signer` and
 * the identity's certificate give together.
 */
export interface SupervisorSigner {
  /** The identity's certificate, DER (the one in the cloud configuration's `SupervisorHostCertificates`). */
  readonly certificateDer: Buffer;
  /** CMS SignedData over `content`, content attached, certificate embedded. */
  sign(content: Buffer): Buffer;
}

/** Values readable before any session or pairing (lockdown pre-session `GetValue`, protocols.md §2.5). */
export interface DeviceIdentification {
  readonly udid: string;
  readonly serial: string;
  /** ECID (`UniqueChipID`) as decimal text: it is 64-bit. */
  readonly ecid: string;
  /** e.g. `iPad13,18`. */
  readonly productType: string;
  /** e.g. `17.5.1`. */
  readonly productVersion: string;
  /** `iPad`, `iPhone`, `AppleTV` … */
  readonly deviceClass: string;
  /** `Unactivated`, `Activated`, `FactoryActivated` (anything but `Unactivated` counts as activated, §6.1). */
  readonly activationState: string;
  readonly deviceName: string;
}

/** Whether this host holds a pairing the device accepts. */
export type PairingState = 'paired' | 'unpaired';

/** Options of {@link KitDevice.pair}. */
export type PairOptions =
  | {
      /** Normal pairing (§3.3): the Trust dialog on a device past Setup Assistant. */
      readonly mode: 'normal';
      /** Called once when the Trust dialog shows and the device waits for a person. */
      readonly onTrustPending?: () => void;
      readonly signal?: AbortSignal;
    }
  | {
      /** Supervised pairing (§3.4): the device's challenge signed with the supervision identity; no dialog. */
      readonly mode: 'supervised';
      readonly signer: SupervisorSigner;
      readonly signal?: AbortSignal;
    };

/** One installed configuration profile (MCInstall `GetProfileList`). */
export interface InstalledProfile {
  /** `PayloadIdentifier`. */
  readonly identifier: string;
  /** `PayloadUUID`, when the device reports it. */
  readonly uuid: string | null;
  readonly displayName: string | null;
  /** `PayloadRemovalDisallowed`. */
  readonly removalDisallowed: boolean;
}

/** Storage of the device, bytes. */
export interface DeviceStorage {
  readonly totalBytes: number;
  readonly freeBytes: number;
}

/** What `inspect` reads (pipeline step 4): everything the erase / configure decisions need. */
export interface DeviceInspection {
  readonly activationState: string;
  /** Activation Lock (Find My) is on. */
  readonly activationLocked: boolean;
  /** Setup Assistant has been completed. */
  readonly setupComplete: boolean;
  /** The stored cloud configuration (Apple keys, as `GetCloudConfiguration` returns it), or null. */
  readonly cloudConfiguration: PlistDict | null;
  readonly supervised: boolean;
  /** Null when the device does not say. */
  readonly storage: DeviceStorage | null;
  /** Battery level 0–100, null when unknown. */
  readonly batteryLevel: number | null;
  readonly profiles: readonly InstalledProfile[];
  /** A profile is staged with `StoreProfile` for after Setup Assistant. */
  readonly storedProfilePresent: boolean;
}

/** The personal settings of a device (lockdown `DeviceName`, `com.apple.international` domain). */
export interface DeviceSettings {
  readonly deviceName: string;
  /** e.g. `ja`; null when unknown. */
  readonly language: string | null;
  /** Apple locale, e.g. `ja_JP`; null when unknown. */
  readonly locale: string | null;
  /** IANA name, e.g. `Asia/Tokyo`; null when unknown. */
  readonly timeZone: string | null;
}

/** The settings to change; absent fields are left alone. */
export interface DeviceSettingsUpdate {
  readonly deviceName?: string;
  readonly language?: string;
  readonly locale?: string;
  readonly timeZone?: string;
}

/** Options of {@link KitDevice.erase} (MCInstall `EraseDevice`, §4.3). */
export interface EraseOptions {
  /** Keep the cellular data plan (`PreserveDataPlan`). */
  readonly preserveDataPlan: boolean;
  /** `DisallowProximitySetup`. */
  readonly disallowProximitySetup: boolean;
}

/** Options of {@link KitDevice.waitForReturn}. */
export interface WaitForReturnOptions {
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

/**
 * One attached device, as the kitting pipeline sees it. An instance stands for one UDID; after
 * an erase or a restart the same instance is used again once {@link KitDevice.waitForReturn}
 * resolved (the implementation re-finds the device by UDID, with its new DeviceID).
 */
export interface KitDevice {
  /** The UDID this port talks to. */
  readonly udid: string;

  /** Pre-session identity values. Needs no pairing. Throws only the transport codes. */
  identify(): Promise<DeviceIdentification>;

  /**
   * Whether this host holds a pairing the device accepts (a session can start). Never pairs.
   * Throws only the transport codes (a refused session is `unpaired`, not an error).
   */
  pairingState(): Promise<PairingState>;

  /**
   * Pairs and saves the pair record (through usbmuxd, so other tools see it).
   * - normal: waits for Trust as long as the implementation's Trust timeout, calling
   *   `onTrustPending` once; throws `lockdown/trust-pending` when nobody answered in time,
   *   `lockdown/trust-denied`, `lockdown/password-protected` (locked), `lockdown/mc-protected` or
   *   `lockdown/mc-challenge-required` when the device is supervised and refuses normal pairing.
   * - supervised: throws `pairing/failed` when the device does not accept the signer's certificate
   *   (not supervised by this identity), `lockdown/mc-protected` when it refuses anyway.
   */
  pair(options: PairOptions): Promise<void>;

  /**
   * Reads the facts step 4 records (activation, Activation Lock, Setup Assistant, cloud
   * configuration, supervision, storage, battery, profiles, staged profile). Needs a session.
   * Throws `lockdown/invalid-host-id` / `lockdown/missing-pair-record` when not paired.
   */
  inspect(): Promise<DeviceInspection>;

  /**
   * Starts "Erase All Content and Settings" (MCInstall `EraseDevice`). Resolves once the device
   * acknowledged (it then drops off and wipes itself); pairings, configuration and profiles are gone
   * afterwards. Throws `mcinstall/device-locked`, `mcinstall/failed`.
   */
  erase(options: EraseOptions): Promise<void>;

  /**
   * Resolves when the device has left and come back (same UDID, new DeviceID, §7.3) and lockdown
   * answers again, after {@link erase} or {@link restart}. Throws `device/timeout` when it does not
   * return within `timeoutMs`; rejects with the signal's reason when aborted.
   */
  waitForReturn(options: WaitForReturnOptions): Promise<void>;

  /**
   * Activates an `Unactivated` device through Apple's activation server (§6.3) and acknowledges it.
   * Throws `activation/offline` (no internet), `activation/locked` (Activation Lock answer),
   * `activation/failed` (anything else the server or device refused).
   */
  activate(options?: { readonly signal?: AbortSignal }): Promise<void>;

  /** The stored cloud configuration (MCInstall `GetCloudConfiguration`), or null when none. */
  getCloudConfiguration(): Promise<PlistDict | null>;

  /**
   * Writes the cloud configuration (MCInstall `SetCloudConfiguration`, §4.3). Throws
   * `mcinstall/cloud-config-present` (14002: one is already stored), `mcinstall/not-activated`
   * (33003), `mcinstall/ade-assigned` (33004), `mcinstall/failed` (33002, 33015, 33023 …).
   * With `AllowPairing` false the device deletes its pairings: pair again (supervised) afterwards.
   */
  setCloudConfiguration(configuration: PlistDict): Promise<void>;

  /**
   * Unlocks the supervised MCInstall commands (Escalate / EscalateResponse, §4.4) on the port's
   * MCInstall connection; lasts until that connection closes (erase, restart, unplug), after which
   * a silent install needs a new escalation. Throws `mcinstall/escalation-rejected`
   * (CertificateRejected / SignedRequestRejected: the device is not supervised by this identity).
   */
  escalate(signer: SupervisorSigner): Promise<void>;

  /**
   * Installs a configuration profile (`.mobileconfig` bytes, signed or not). `silent` uses
   * `InstallProfileSilent` and needs {@link escalate} first (else `mcinstall/not-escalated`); not
   * silent queues it for the person to approve in Settings. A profile with the identifier of an
   * installed one replaces it. Throws `mcinstall/profile-rejected`, `mcinstall/device-locked`,
   * `mcinstall/failed`.
   */
  installProfile(profile: Buffer, options: { readonly silent: boolean }): Promise<void>;

  /**
   * Stages a profile for installation after Setup Assistant (`StoreProfile`, purpose
   * `PostSetupInstallation`). Throws `mcinstall/failed` (e.g. Setup Assistant already completed),
   * `mcinstall/profile-rejected`.
   */
  storeProfile(profile: Buffer): Promise<void>;

  /** The staged profile's bytes (`GetStoredProfile`), or null when none is staged. */
  getStoredProfile(): Promise<Buffer | null>;

  /** The installed profiles (`GetProfileList`). */
  listProfiles(): Promise<InstalledProfile[]>;

  /** Device name, language, locale and time zone. */
  readSettings(): Promise<DeviceSettings>;

  /**
   * Changes the given settings (lockdown `SetValue`: `DeviceName`; `com.apple.international`
   * `Language` / `Locale`; `TimeZone`). Throws `lockdown/set-prohibited`, `lockdown/immutable-value`.
   */
  writeSettings(update: DeviceSettingsUpdate): Promise<void>;

  /** Restarts the device (diagnostics_relay `Restart`); resolves once acknowledged. Throws `diagnostics/failed`. */
  restart(): Promise<void>;

  /** Shuts the device down (diagnostics_relay `Shutdown`); resolves once acknowledged. Throws `diagnostics/failed`. */
  shutdown(): Promise<void>;
}

/** Whether an `ActivationState` counts as activated (anything but `Unactivated`, §6.1). */
export function isActivated(activationState: string): boolean {
  return activationState !== 'Unactivated';
}
