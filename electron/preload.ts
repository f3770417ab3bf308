/** The renderer's only door (architecture.md "IPC"): `window.kit.invoke` and `window.kit.on`, `kit:` channels only. */
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';

const PREFIX = 'kit:';
const EVENTS = 'kit:event';

contextBridge.exposeInMainWorld('kit', {
  invoke(command: string, input?: unknown): Promise<unknown> {
    const channel = PREFIX + String(command);
    if (channel === EVENTS || !/^kit:[A-Za-z0-9._-]+$/.test(channel)) return Promise.reject(new Error('refused'));
    return ipcRenderer.invoke(channel, input);
  },
  on(listener: (event: unknown) => void): () => void {
    const wrapped = (_e: IpcRendererEvent, event: unknown): void => listener(event);
    ipcRenderer.on(EVENTS, wrapped);
    return () => void ipcRenderer.removeListener(EVENTS, wrapped);
  },
});
