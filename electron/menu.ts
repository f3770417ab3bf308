/** The application menu in Japanese or English (the station's language setting, else the OS's). */
import type { MenuItemConstructorOptions } from 'electron';

const WORDS = {
  ja: { file: 'ファイル', edit: '編集', view: '表示', window: 'ウインドウ', help: 'ヘルプ', docs: 'ドキュメント' },
  en: { file: 'File', edit: 'Edit', view: 'View', window: 'Window', help: 'Help', docs: 'Documentation' },
} as const;

/** The menu template for `lang`; `isMac` adds the app menu macOS expects. */
export function menuTemplate(
  lang: 'ja' | 'en',
  isMac: boolean,
  appName: string,
  openDocs: () => void,
): MenuItemConstructorOptions[] {
  const w = WORDS[lang];
  const template: MenuItemConstructorOptions[] = [];
  if (isMac) {
    template.push({
      label: appName,
      submenu: [
        { role: 'about' },
        { type: 'separator' },
        { role: 'hide' },
        { role: 'hideOthers' },
        { role: 'unhide' },
        { type: 'separator' },
        { role: 'quit' },
      ],
    });
  }
  template.push(
    { label: w.file, submenu: [isMac ? { role: 'close' } : { role: 'quit' }] },
    {
      label: w.edit,
      submenu: [
        { role: 'undo' },
        { role: 'redo' },
        { type: 'separator' },
        { role: 'cut' },
        { role: 'copy' },
        { role: 'paste' },
        { role: 'selectAll' },
      ],
    },
    {
      label: w.view,
      submenu: [
        { role: 'reload' },
        { type: 'separator' },
        { role: 'resetZoom' },
        { role: 'zoomIn' },
        { role: 'zoomOut' },
        { type: 'separator' },
        { role: 'togglefullscreen' },
      ],
    },
    { label: w.window, submenu: [{ role: 'minimize' }, { role: 'zoom' }] },
    { label: w.help, submenu: [{ label: w.docs, click: openDocs }] },
  );
  return template;
}
