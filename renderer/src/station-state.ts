/**
 * The React hook keeping the live view current: loads devices, states and the batch on (re)connect,
 * queues events and applies them once per animation frame, so 100 devices updating several times a
 * second cost one render per frame.
 */
import { useEffect, useState } from 'react';
import type { StationEvent } from '../../src/contract.ts';
import type { StationClient } from './api.ts';
import { EMPTY_VIEW, applyEvent, blank, type StationView } from './station-view.ts';

export * from './station-view.ts';

/** The station's live view, kept current from the client's events. */
export function useStationView(client: StationClient): { view: StationView; reload: () => void } {
  const [view, setView] = useState<StationView>(EMPTY_VIEW);
  const [generation, setGeneration] = useState(0);

  useEffect(() => {
    let alive = true;
    let queue: StationEvent[] = [];
    let frame: number | null = null;
    let listTimer: ReturnType<typeof setTimeout> | null = null;

    const flush = (): void => {
      frame = null;
      const events = queue;
      queue = [];
      setView((v) => events.reduce(applyEvent, v));
    };
    /** Applies a loaded snapshot after the events that arrived before it (they are older). */
    const applyLoaded = (fn: (v: StationView) => StationView): void => {
      const events = queue;
      queue = [];
      setView((v) => fn(events.reduce(applyEvent, v)));
    };

    const loadSummaries = (): void => {
      client
        .call('devices.list', {})
        .then((list) => {
          if (!alive) return;
          applyLoaded((v) => {
            const devices = new Map(v.devices);
            const seen = new Set<string>();
            for (const s of list) {
              seen.add(s.udid);
              const d = devices.get(s.udid) ?? blank(s.udid);
              devices.set(s.udid, { ...d, summary: s, attached: true });
            }
            for (const [udid, d] of devices)
              if (!seen.has(udid) && d.attached) devices.set(udid, { ...d, attached: false });
            return { ...v, devices };
          });
        })
        .catch(() => undefined);
    };

    const load = (): void => {
      void Promise.all([client.call('devices.states', {}), client.call('batch.status', {})])
        .then(([states, status]) => {
          if (!alive) return;
          applyLoaded((v) => {
            const devices = new Map(v.devices);
            for (const s of states) {
              const d = devices.get(s.udid) ?? blank(s.udid);
              devices.set(s.udid, {
                ...d,
                state: s.state,
                nextAction: s.nextAction ?? null,
                code: s.code ?? null,
                hub: s.hub ?? d.hub,
                jobId: s.jobId ?? d.jobId,
                ecid: s.ecid ?? d.ecid,
                attached: s.state !== 'detached',
              });
            }
            return { ...v, devices, batch: status.active };
          });
        })
        .catch(() => undefined);
      loadSummaries();
    };

    const offEvent = client.onEvent((e) => {
      queue.push(e);
      if (frame === null) frame = requestAnimationFrame(flush);
      // Names and supervision change during a job: read the identities again when one ends.
      if (
        e.type === 'deviceAttached' ||
        e.type === 'deviceDetached' ||
        e.type === 'jobFinished' ||
        e.type === 'jobFailed'
      ) {
        if (listTimer !== null) clearTimeout(listTimer);
        listTimer = setTimeout(loadSummaries, 500);
      }
    });
    const offLink = client.onLink((s) => {
      if (s === 'open') load();
    });
    load();
    return () => {
      alive = false;
      offEvent();
      offLink();
      if (frame !== null) cancelAnimationFrame(frame);
      if (listTimer !== null) clearTimeout(listTimer);
    };
  }, [client, generation]);

  return { view, reload: () => setGeneration((g) => g + 1) };
}
