// Terminal layout of bucardo.status (kept apart from status.ts so the menu loads without pg).
import type { StatusData } from './status.js';

export function formatStatus(data: StatusData): string[] {
  const lines: string[] = [];
  const ago = (iso?: string) => iso ? `${iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z')} (${Math.round((Date.now() - Date.parse(iso)) / 1000)} s ago)` : 'never';
  lines.push(`Job ${data.job}`);
  lines.push(`  Daemon        : ${data.daemon.running ? `running, pid ${data.daemon.pid}, up ${data.daemon.uptimeSeconds ?? '?'} s` : 'not running'}`);
  if (data.kicker) {
    const kicks = data.kicker.kicking ? `${data.kicker.kicks} kick(s), last ${ago(data.kicker.lastKickAt)}` : 'kick triggers do the kicking';
    lines.push(`  Kicker        : ${data.kicker.running ? `running, pid ${data.kicker.pid}, ${kicks}; ${data.kicker.maintenance} statistics refresh(es)` : 'not running'}${data.kicker.lastError ? ` (last error: ${data.kicker.lastError})` : ''}`);
    for (const remedy of data.kicker.remedies ?? []) lines.push(`    ${remedy}`);
  }
  if (data.sync) {
    lines.push(`  Sync          : ${data.sync.name} ${data.sync.exists ? (data.sync.loaded ? '(loaded by the daemon)' : '(not loaded)') : '(not created)'}${data.sync.running ? `, run in progress since ${ago(data.sync.running)}` : ''}`);
    lines.push(`  Last good run : ${ago(data.sync.lastGood)}${data.sync.lastGoodRows ? `, ${data.sync.lastGoodRows}` : ''}`);
    lines.push(`  Last error    : ${data.sync.lastBad ? `${ago(data.sync.lastBad)}: ${data.sync.lastError}` : 'none'}`);
  }
  lines.push(`  Initial copy  : ${data.copy.state}${data.copy.table ? `, ${data.copy.table}: ${data.copy.rows} rows so far` : ''}`);
  const pending = data.pending.filter((p) => p.changes > 0);
  lines.push(`  Pending       : ${data.pendingTotal} change(s)${data.oldestPendingSeconds !== undefined ? `, oldest ${data.oldestPendingSeconds} s` : ''}`);
  if (pending.length) {
    const width = Math.max(...pending.map((p) => p.table.length));
    for (const p of pending) lines.push(`    ${p.table.padEnd(width)}  ${String(p.changes).padStart(8)}  oldest ${p.oldest ? `${Math.round((Date.now() - p.oldest.getTime()) / 1000)} s` : '-'}`);
  }
  for (const stall of data.stalls) lines.push(`  STALL         : ${stall.cause}\n                  fix: ${stall.fix}`);
  for (const problem of data.problems) lines.push(`  Problem       : ${problem}`);
  return lines;
}
