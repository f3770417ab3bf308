/**
 * The shell of the UI: header (title, connection, language), the persistent navigation, the screen,
 * and a polite live region announcing device state changes.
 */
import { useCallback, useEffect, useMemo, useState, type ReactNode } from 'react';
import type { StationClient } from './api.ts';
import { AppContext, type ErrorWords } from './context.tsx';
import { I18nContext, osLang, translate, type Lang, type MessageKey } from './i18n/index.tsx';
import { useStationView } from './station-state.ts';
import { StationScreen } from './screens/Station.tsx';
import { DeviceDetailScreen } from './screens/DeviceDetail.tsx';
import { BlueprintsScreen } from './screens/Blueprints.tsx';
import { OrganizationsScreen } from './screens/Organizations.tsx';
import { PlansScreen } from './screens/Plans.tsx';
import { ReportsScreen } from './screens/Reports.tsx';
import { SettingsScreen } from './screens/Settings.tsx';
import { SyncScreen } from './screens/Sync.tsx';

export const SCREENS = ['station', 'blueprints', 'organizations', 'plans', 'sync', 'reports', 'settings'] as const;
export type ScreenId = (typeof SCREENS)[number];

const NAV_KEYS: Readonly<Record<ScreenId, MessageKey>> = {
  station: 'nav.station',
  blueprints: 'nav.blueprints',
  organizations: 'nav.organizations',
  plans: 'nav.plans',
  sync: 'nav.sync',
  reports: 'nav.reports',
  settings: 'nav.settings',
};

const NAV_ICONS: Readonly<Record<ScreenId, string>> = {
  station: '▦',
  blueprints: '☰',
  organizations: '◈',
  plans: '#',
  sync: '⇅',
  reports: '▤',
  settings: '⚙',
};

const LANG_KEY = 'kitting.lang';

function initialLang(): Lang {
  const saved = localStorage.getItem(LANG_KEY);
  return saved === 'ja' || saved === 'en' ? saved : osLang();
}

function screenFromHash(): { screen: ScreenId; udid: string | null } {
  const [name, udid] = window.location.hash.replace(/^#\/?/, '').split('/');
  if (name === 'device' && udid !== undefined && udid !== '') return { screen: 'station', udid };
  const screen = (SCREENS as readonly string[]).includes(name ?? '') ? (name as ScreenId) : 'station';
  return { screen, udid: null };
}

export function App(props: { client: StationClient }): ReactNode {
  const { client } = props;
  const [lang, setLangState] = useState<Lang>(initialLang);
  const [route, setRoute] = useState(screenFromHash);
  const [words, setWords] = useState<ErrorWords>({});
  const [link, setLink] = useState(client.link);
  const { view, reload } = useStationView(client);

  const setLang = useCallback((l: Lang) => {
    localStorage.setItem(LANG_KEY, l);
    setLangState(l);
  }, []);
  const i18n = useMemo(
    () => ({
      lang,
      setLang,
      t: (key: MessageKey, params?: Readonly<Record<string, string | number>>) => translate(lang, key, params),
    }),
    [lang, setLang],
  );
  const { t } = i18n;

  useEffect(() => {
    document.documentElement.lang = lang;
    document.title = translate(lang, 'app.title');
    let alive = true;
    client
      .call('messages.get', { lang })
      .then((w) => {
        if (alive) setWords(w);
      })
      .catch(() => undefined);
    return () => {
      alive = false;
    };
  }, [client, lang, link]);

  useEffect(() => {
    const off = client.onLink(setLink);
    setLink(client.link);
    return off;
  }, [client]);
  useEffect(() => {
    const onHash = (): void => setRoute(screenFromHash());
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  const go = (screen: ScreenId): void => {
    window.location.hash = `#/${screen}`;
  };
  const openDevice = useCallback((udid: string) => {
    window.location.hash = `#/device/${udid}`;
  }, []);

  const ann = view.announcement;
  const annDevice = ann !== null ? view.devices.get(ann.udid) : undefined;
  const announcement =
    ann !== null
      ? t('live.stateChanged', {
          device: annDevice?.summary?.name ?? annDevice?.summary?.serial ?? ann.udid,
          state: t(`state.${ann.state}`),
        })
      : '';

  let screen: ReactNode;
  if (route.udid !== null) screen = <DeviceDetailScreen udid={route.udid} />;
  else {
    switch (route.screen) {
      case 'station':
        screen = <StationScreen />;
        break;
      case 'blueprints':
        screen = <BlueprintsScreen />;
        break;
      case 'organizations':
        screen = <OrganizationsScreen />;
        break;
      case 'plans':
        screen = <PlansScreen />;
        break;
      case 'sync':
        screen = <SyncScreen />;
        break;
      case 'reports':
        screen = <ReportsScreen />;
        break;
      case 'settings':
        screen = <SettingsScreen />;
        break;
    }
  }

  return (
    <I18nContext.Provider value={i18n}>
      <AppContext.Provider value={{ client, words, view, reload, openDevice }}>
        <div className="app">
          <a className="skip-link" href="#main">
            {t('app.skipToContent')}
          </a>
          <header className="header">
            <h1 className="app-title">{t('app.title')}</h1>
            <span className={`link link-${link}`} role="status">
              <span aria-hidden="true">{link === 'open' ? '●' : '○'}</span> {t(`link.${link}`)}
            </span>
            <div className="lang-switch" role="group" aria-label={t('header.language')}>
              <button type="button" aria-pressed={lang === 'ja'} onClick={() => setLang('ja')} lang="ja">
                日本語
              </button>
              <button type="button" aria-pressed={lang === 'en'} onClick={() => setLang('en')} lang="en">
                English
              </button>
            </div>
          </header>
          <nav className="nav" aria-label={t('nav.label')}>
            <ul>
              {SCREENS.map((s) => (
                <li key={s}>
                  <button
                    type="button"
                    className="nav-item"
                    aria-current={route.screen === s && route.udid === null ? 'page' : undefined}
                    onClick={() => go(s)}
                    data-screen={s}
                  >
                    <span className="nav-icon" aria-hidden="true">
                      {NAV_ICONS[s]}
                    </span>
                    {t(NAV_KEYS[s])}
                  </button>
                </li>
              ))}
            </ul>
          </nav>
          <main id="main" className="main" tabIndex={-1}>
            {screen}
          </main>
          <div className="visually-hidden" aria-live="polite" aria-atomic="true" data-testid="live">
            {announcement}
          </div>
        </div>
      </AppContext.Provider>
    </I18nContext.Provider>
  );
}
