/** Entry point: one station client for the window (Electron bridge or WebSocket) and the app. */
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { createClient } from './connect.ts';
import { App } from './App.tsx';
import './styles.css';

const root = document.getElementById('root');
if (root !== null) {
  createRoot(root).render(
    <StrictMode>
      <App client={createClient()} />
    </StrictMode>,
  );
}
