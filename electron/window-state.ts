/**
 * Window bounds and maximized state, saved to `<userData>/window-state.json` when the window
 * closes and restored at start (only when still on a visible display).
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

/** A saved window state. */
export interface WindowState {
  readonly x?: number;
  readonly y?: number;
  readonly width: number;
  readonly height: number;
  readonly maximized: boolean;
}

/** A display's work area. */
export interface Area {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

/** Size of a first start. */
export const DEFAULT_STATE: WindowState = { width: 1280, height: 820, maximized: false };
const FILE = 'window-state.json';
const schema = z.object({
  x: z.number().int().optional(),
  y: z.number().int().optional(),
  width: z.number().int().min(400).max(20000),
  height: z.number().int().min(300).max(20000),
  maximized: z.boolean(),
});

/** The saved state, or the default when none, damaged, or off every display in `areas`. */
export function loadWindowState(dir: string, areas: readonly Area[]): WindowState {
  let parsed;
  try {
    parsed = schema.safeParse(JSON.parse(fs.readFileSync(path.join(dir, FILE), 'utf8')));
  } catch {
    return DEFAULT_STATE;
  }
  if (!parsed.success) return DEFAULT_STATE;
  const s = parsed.data;
  if (s.x === undefined || s.y === undefined) return { width: s.width, height: s.height, maximized: s.maximized };
  const { x, y } = s;
  const visible = areas.some((a) => x >= a.x && y >= a.y && x < a.x + a.width - 50 && y < a.y + a.height - 50);
  return visible ? s : { width: s.width, height: s.height, maximized: s.maximized };
}

/** Writes the state (errors are ignored: losing the window size is not worth a crash). */
export function saveWindowState(dir: string, state: WindowState): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, FILE), JSON.stringify(state));
  } catch {
    // The next start uses the default size.
  }
}
