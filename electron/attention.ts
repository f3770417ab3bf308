/**
 * What the Dock badge and the OS notifications say (issue #7): the number of devices that need a
 * person (a next action, or failed), a notification when a batch finishes, and one when a device
 * starts needing a hand. Pure: main.ts feeds it station events and shows what it returns.
 */
import type { DeviceStateInfo, StationEvent } from '../src/contract.ts';
import { NEXT_ACTION_WORDS } from '../src/i18n/messages.ts';

/** A notification to show. */
export interface Notice {
  readonly title: string;
  readonly body: string;
}

/** True when the device needs a person: it has a next action, or it failed. */
export function needsAttention(d: Pick<DeviceStateInfo, 'state' | 'nextAction'>): boolean {
  return d.nextAction !== undefined || d.state === 'failed';
}

/** The badge count: devices that need a person. */
export function badgeCount(states: readonly Pick<DeviceStateInfo, 'state' | 'nextAction'>[]): number {
  return states.filter(needsAttention).length;
}

/** Follows station events; answers the notifications each event calls for. */
export class AttentionTracker {
  private readonly needing = new Set<string>();
  private readonly lang: () => 'ja' | 'en';

  constructor(lang: () => 'ja' | 'en') {
    this.lang = lang;
  }

  /** Devices needing a person now. */
  get count(): number {
    return this.needing.size;
  }

  /** Takes one event; returns the notifications to show (often none). */
  onEvent(e: StationEvent): Notice[] {
    const ja = this.lang() === 'ja';
    if (e.type === 'deviceStateChanged') {
      const needs = needsAttention(e);
      const was = this.needing.has(e.udid);
      if (needs) this.needing.add(e.udid);
      else this.needing.delete(e.udid);
      if (needs && !was) {
        const what =
          e.nextAction !== undefined
            ? NEXT_ACTION_WORDS[e.nextAction][ja ? 'ja' : 'en']
            : ja
              ? '処理に失敗しました'
              : 'It failed';
        return [{ title: ja ? '端末の対応が必要です' : 'A device needs a hand', body: `${e.udid}: ${what}` }];
      }
      return [];
    }
    if (e.type === 'deviceDetached') {
      this.needing.delete(e.udid);
      return [];
    }
    if (e.type === 'batchFinished') {
      return [
        {
          title: ja ? 'キッティングが終わりました' : 'Kitting finished',
          body:
            this.needing.size === 0
              ? ja
                ? 'すべての端末が完了しました'
                : 'Every device is done'
              : ja
                ? `${this.needing.size} 台の端末に対応が必要です`
                : `${this.needing.size} device(s) need a hand`,
        },
      ];
    }
    return [];
  }
}
