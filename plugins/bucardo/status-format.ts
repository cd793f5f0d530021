// Terminal layout of bucardo.status, its states and their exit codes (kept apart from status.ts so
// the menu loads without pg). The states (status-data.ts) and codes are documented in docs/status-and-monitoring.md.
import type { StatusData, StatusState } from './status-data.js';
import { withThousands } from '../../src/core/numbers.js';

/** The process exit code of a status run in each state. */
export const STATE_EXIT_CODES: Record<StatusState, number> = {
  'caught up': 0,
  lagging: 1,
  copying: 1,
  stopped: 2,
  stalled: 2,
  failed: 2,
  unknown: 3,
  drift: 4,
};

/** "1 d 2 h", "3 min 5 s", "42 s": the two largest units, for people (JSON keeps seconds). */
export function formatDuration(seconds: number): string {
  const total = Math.max(0, Math.round(seconds));
  const units: [string, number][] = [
    ['d', 86_400],
    ['h', 3_600],
    ['min', 60],
    ['s', 1],
  ];
  const first = units.findIndex(([, size]) => total >= size);
  if (first < 0) return '0 s';
  const [name, size] = units[first]!;
  const next = units[first + 1];
  const rest = next ? Math.floor((total % size) / next[1]) : 0;
  return `${Math.floor(total / size)} ${name}${rest > 0 ? ` ${rest} ${next![0]}` : ''}`;
}

/** 1536 → "1.5 KB"; one decimal below 10 of a unit. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 || value >= 10 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

/**
 * The copy in one line: "running, 3 of 120 tables, 41 GB of 300 GB, sales.orders 120,000 of ~300,000
 * rows (40%), 2 min 5 s elapsed, about 1 h left". Between two tables only the totals are known.
 */
export function formatCopy(copy: StatusData['copy']): string {
  const parts: string[] = [copy.state];
  const of = (done: string | undefined, total: string) =>
    done !== undefined ? `${done} of ${total}` : `${total} in all`;
  if (copy.syncsTotal !== undefined && copy.state !== 'done')
    parts.push(of(copy.syncsDone?.toString(), `${copy.syncsTotal} syncs`));
  if (copy.tablesTotal !== undefined)
    parts.push(of(copy.tablesDone?.toString(), `${copy.tablesTotal} tables`));
  if (copy.bytesTotal !== undefined) {
    parts.push(
      of(
        copy.bytesDone !== undefined ? formatBytes(copy.bytesDone) : undefined,
        formatBytes(copy.bytesTotal),
      ),
    );
  }
  if (copy.table) {
    const estimate = copy.tableRows !== undefined ? ` of ~${withThousands(copy.tableRows)}` : '';
    const percent = copy.tablePercent !== undefined ? ` (${copy.tablePercent}%)` : '';
    const rows = `${withThousands(copy.rows ?? 0)}${estimate} rows${estimate ? '' : ' so far'}`;
    parts.push(`${copy.table} ${rows}${percent}`);
  } else if (copy.state === 'running' && copy.tablesTotal !== undefined) {
    parts.push('between tables');
  }
  if (copy.elapsedSeconds !== undefined) parts.push(`${formatDuration(copy.elapsedSeconds)} elapsed`);
  if (copy.remainingSeconds !== undefined) parts.push(`about ${formatDuration(copy.remainingSeconds)} left`);
  return parts.join(', ');
}

export function formatStatus(data: StatusData): string[] {
  const lines: string[] = [];
  const since = (iso: string) => formatDuration((Date.now() - Date.parse(iso)) / 1000);
  const ago = (iso?: string) =>
    iso ? `${iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z')} (${since(iso)} ago)` : 'never';
  lines.push(`Job ${data.job}`);
  lines.push(`  State         : ${data.state} (exit code ${data.exitCode})`);
  const uptime = data.daemon.uptimeSeconds !== undefined ? formatDuration(data.daemon.uptimeSeconds) : '?';
  lines.push(
    `  Daemon        : ${data.daemon.running ? `running, pid ${data.daemon.pid}, up ${uptime}` : 'not running'}`,
  );
  if (data.kicker) {
    const kicks = data.kicker.kicking
      ? `${data.kicker.kicks} kick(s), last ${ago(data.kicker.lastKickAt)}`
      : 'kick triggers do the kicking';
    lines.push(
      `  Kicker        : ${data.kicker.running ? `running, pid ${data.kicker.pid}, ${kicks}; ${data.kicker.maintenance} statistics refresh(es)` : 'not running'}${data.kicker.lastError ? ` (last error: ${data.kicker.lastError})` : ''}`,
    );
    for (const remedy of data.kicker.remedies ?? []) lines.push(`    ${remedy}`);
    const recheck = data.kicker.running ? data.kicker.recheck : undefined;
    if (recheck) {
      const last = recheck.lastPassAt
        ? `last pass ${ago(recheck.lastPassAt)} (${recheck.lastPassMs} ms)`
        : 'no pass yet';
      lines.push(
        `  Safety net    : ${withThousands(recheck.compared)} applied key(s) re-compared on both sides in ${recheck.passes} pass(es), ${last}; ${recheck.requeued} re-queued${recheck.behind ? '; catching up (passes follow each other at once)' : ''}${recheck.lastError ? ` (last error: ${recheck.lastError})` : ''}`,
      );
      for (const key of recheck.lastRequeued ?? []) lines.push(`    re-queued ${key}`);
    }
  }
  if (data.sync) {
    lines.push(
      `  Sync          : ${data.sync.name} ${data.sync.exists ? (data.sync.loaded ? '(loaded by the daemon)' : '(not loaded)') : '(not created)'}${data.sync.running ? `, run in progress since ${ago(data.sync.running)}` : ''}`,
    );
    lines.push(
      `  Last good run : ${ago(data.sync.lastGood)}${data.sync.lastGoodRows ? `, ${data.sync.lastGoodRows}` : ''}`,
    );
    lines.push(
      `  Last error    : ${data.sync.lastBad ? `${ago(data.sync.lastBad)}: ${data.sync.lastError}` : 'none'}`,
    );
  }
  if ((data.syncs?.length ?? 0) > 1) {
    lines.push(`  Syncs         : ${data.syncs!.length}, each applied by its own Bucardo worker`);
    const width = Math.max(...data.syncs!.map((s) => s.name.length));
    for (const s of data.syncs!) {
      const state = s.exists ? (s.loaded ? 'loaded' : 'not loaded') : 'not created';
      const pending = `${s.pendingTotal} pending${s.oldestPendingSeconds !== undefined ? ` (oldest ${formatDuration(s.oldestPendingSeconds)})` : ''}`;
      const bad =
        s.lastBad && (!s.lastGood || s.lastBad > s.lastGood) ? `; last run FAILED ${ago(s.lastBad)}` : '';
      lines.push(
        `    ${s.name.padEnd(width)}  ${state.padEnd(11)}  ${String(s.tables).padStart(4)} table(s)  ${pending}; last good ${ago(s.lastGood)}${bad}`,
      );
    }
  }
  if (data.targets) {
    lines.push(`  Targets       : ${data.targets.length}, applied together by each sync run`);
    const width = Math.max(...data.targets.map((t) => t.name.length));
    for (const t of data.targets)
      lines.push(
        `    ${t.name.padEnd(width)}  ${t.where}  ${t.state} (exit code ${t.exitCode}): ${t.verdict}`,
      );
  }
  lines.push(`  Initial copy  : ${formatCopy(data.copy)}`);
  const pending = data.pending.filter((p) => p.changes > 0);
  const unknownBacklog = data.unreachable.some((u) => u.includes('the primary'));
  lines.push(
    `  Pending       : ${unknownBacklog ? 'unknown (the primary cannot be reached)' : `${data.pendingTotal} change(s)${data.oldestPendingSeconds !== undefined ? `, oldest ${formatDuration(data.oldestPendingSeconds)}` : ''}`}`,
  );
  if (pending.length) {
    const width = Math.max(...pending.map((p) => p.table.length));
    for (const p of pending)
      lines.push(
        `    ${p.table.padEnd(width)}  ${String(p.changes).padStart(8)}  oldest ${p.oldest ? formatDuration((Date.now() - p.oldest.getTime()) / 1000) : '-'}`,
      );
  }
  for (const stall of data.stalls)
    lines.push(`  STALL         : ${stall.cause}\n                  fix: ${stall.fix}`);
  for (const cause of data.unreachable) lines.push(`  Unreachable   : ${cause}`);
  for (const problem of data.problems) lines.push(`  Problem       : ${problem}`);
  return lines;
}
