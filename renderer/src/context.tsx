/**
 * What every screen needs: the station client, the error words of the current language (from the
 * station's `messages.get`, since the renderer cannot import src/i18n/messages.ts at run time), and
 * the live view of devices and batch.
 */
import { createContext, useContext, type ReactNode } from 'react';
import type { StationClient } from './api.ts';
import { ClientError } from './api.ts';
import type { CommandResult } from '../../src/contract.ts';
import { useI18n } from './i18n/index.tsx';
import type { StationView } from './station-state.ts';

export type ErrorWords = CommandResult<'messages.get'>;

export interface AppContextValue {
  readonly client: StationClient;
  readonly words: ErrorWords;
  readonly view: StationView;
  readonly reload: () => void;
  readonly openDevice: (udid: string) => void;
}

export const AppContext = createContext<AppContextValue | null>(null);

export function useApp(): AppContextValue {
  const v = useContext(AppContext);
  if (v === null) throw new Error('useApp outside the app');
  return v;
}

/** An error as a person reads it: the station's title and what to do, with the code for support. */
export function ErrorNote(props: { error: unknown }): ReactNode {
  const { words } = useApp();
  const { t } = useI18n();
  const code = props.error instanceof ClientError ? props.error.code : 'client/unknown';
  const message = props.error instanceof Error ? props.error.message : String(props.error);
  const w = words[code];
  return (
    <div className="error-note" role="alert">
      <span className="icon" aria-hidden="true">
        ⚠
      </span>
      <div>
        <strong>{w !== undefined ? w.title : t('error.unknownTitle')}</strong>
        <p>{w !== undefined ? w.action : message}</p>
        <p className="muted mono">{t('error.code', { code })}</p>
        {w !== undefined ? <p className="muted small">{message}</p> : null}
      </div>
    </div>
  );
}

/** The words of one code, or null. */
export function wordsOf(words: ErrorWords, code: string | null): { title: string; action: string } | null {
  if (code === null) return null;
  return words[code] ?? null;
}
