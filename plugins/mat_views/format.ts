// Terminal lines for mat_views.refresh's outcome (loaded with the menu: no pg here).
import type { RefreshData } from './refresh.js';

export function formatRefresh(data: RefreshData): string[] {
  return data.skipped.map((s) => `  skipped ${s.view}: ${s.reason}`);
}
