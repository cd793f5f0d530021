// bucardo.status: more than Bucardo's own "Good" — daemon, sync runs, initial copy progress, the
// backlog of pending changes (the real replication lag), the kicker, and a one-line verdict.
import { withClient } from '../../src/core/db.js';
import { errorMessage } from '../../src/core/errors.js';
import type { Job } from '../../src/core/job.js';
import { kickerStatus } from '../../src/core/kicker.js';
import { pendingChanges, type PendingTable } from '../../src/core/pending.js';
import type { CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { processUptimeSeconds } from '../../src/core/process.js';
import { detectStuckStatements, noProgressStall, type Stall } from '../../src/core/watchdog.js';
import { daemonPid, syncLoaded } from './daemon.js';
import { lastRun, metadataDatabaseExists, recentRuns, syncRow, withMetadata } from './metadata.js';

export type CopyState = 'not requested' | 'pending' | 'running' | 'done' | 'unknown';

export interface CopyProgress { state: CopyState; table?: string; rows?: number }

export interface StatusData {
  job: string;
  installed: boolean;
  daemon: { running: boolean; pid?: number; uptimeSeconds?: number };
  kicker?: { running: boolean; kicking: boolean; pid?: number; lastKickAt?: string; kicks?: number; lastError?: string; maintenance?: number; lastMaintenanceAt?: string; remedies?: string[] };
  sync?: { name: string; exists: boolean; loaded: boolean; lastGood?: string; lastGoodRows?: string; lastBad?: string; lastError?: string; running?: string };
  copy: CopyProgress;
  pending: PendingTable[];
  pendingTotal: number;
  oldestPendingSeconds?: number;
  stalls: Stall[];
  verdict: string;
  problems: string[];
}

/** Which table the initial copy is writing now and how many rows so far (pg_stat_progress_copy on the target). */
export async function copyInProgress(job: Job): Promise<{ table: string; rows: number } | undefined> {
  return withClient(job, { role: 'secondary' }, async (client) => {
    const { rows } = await client.query<{ table: string; rows: string }>(
      `SELECT relid::regclass::text AS table, tuples_processed AS rows FROM pg_stat_progress_copy
        WHERE datid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND type = 'COPY FROM' ORDER BY pid LIMIT 1`);
    return rows[0] ? { table: rows[0].table, rows: Number(rows[0].rows) } : undefined;
  });
}

/** The initial copy's state, from Bucardo's metadata (onetimecopy drops to 0 when the copy kid is done). */
export async function copyState(job: Job): Promise<CopyProgress> {
  if (job.config.bucardo.copyData === 'never') return { state: 'not requested' };
  if (!(await metadataDatabaseExists(job))) return { state: 'unknown' };
  const sync = await withMetadata(job, (client) => syncRow(client, job.syncName));
  if (!sync) return { state: 'pending' };
  if (Number(sync.onetimecopy) === 0) return { state: 'done' };
  if (!daemonPid(job) || !syncLoaded(job)) return { state: 'pending' };
  const copying = await copyInProgress(job).catch(() => undefined);
  return copying ? { state: 'running', ...copying } : { state: 'running' };
}

export async function collectStatus(job: Job): Promise<StatusData> {
  const problems: string[] = [];
  const pid = daemonPid(job);
  const uptime = pid ? processUptimeSeconds(pid) : undefined;
  const data: StatusData = {
    job: job.name, installed: false,
    daemon: { running: pid !== undefined, ...(pid ? { pid } : {}), ...(uptime !== undefined ? { uptimeSeconds: uptime } : {}) },
    copy: { state: 'unknown' }, pending: [], pendingTotal: 0, stalls: [], verdict: '', problems,
  };
  const kicker = kickerStatus(job);
  const kicking = job.config.bucardo.asynchronousKicking;
  data.kicker = {
    running: kicker.running, kicking, ...(kicker.pid ? { pid: kicker.pid } : {}), ...(kicker.state?.lastKickAt ? { lastKickAt: kicker.state.lastKickAt } : {}),
    kicks: kicker.state?.kicks ?? 0, ...(kicker.state?.lastError ? { lastError: kicker.state.lastError } : {}),
    maintenance: kicker.state?.maintenance ?? 0, ...(kicker.state?.lastMaintenanceAt ? { lastMaintenanceAt: kicker.state.lastMaintenanceAt } : {}),
    ...(kicker.state?.remedies?.length ? { remedies: kicker.state.remedies } : {}),
  };
  if (pid && !kicker.running) problems.push(kicking ? 'asynchronous kicking is on but no kicker runs: changes are not being kicked (bucardo.restart starts one)' : 'no kicker runs: nothing keeps Bucardo\'s statistics fresh or watches for stalls (bucardo.restart starts one)');
  data.installed = await metadataDatabaseExists(job).catch((error) => { problems.push(errorMessage(error)); return false; });
  if (data.installed) {
    const info = await withMetadata(job, async (client) => ({
      sync: await syncRow(client, job.syncName),
      good: await lastRun(client, job.syncName, 'lastgood'),
      bad: await lastRun(client, job.syncName, 'lastbad'),
      current: (await recentRuns(client, job.syncName, 1)).find((run) => run.ended === null),
    }));
    data.sync = {
      name: job.syncName, exists: Boolean(info.sync), loaded: syncLoaded(job),
      ...(info.good?.ended ? { lastGood: info.good.ended.toISOString(), lastGoodRows: `${info.good.inserts} inserted / ${info.good.deletes} deleted` } : {}),
      ...(info.bad?.ended ? { lastBad: info.bad.ended.toISOString(), lastError: (info.bad.status ?? info.bad.details ?? '').slice(0, 300) } : {}),
      ...(info.current?.started ? { running: info.current.started.toISOString() } : {}),
    };
    data.copy = await copyState(job).catch(() => ({ state: 'unknown' as const }));
  }
  try {
    data.pending = await withClient(job, { role: 'primary' }, (client) => pendingChanges(client, job.syncName));
  } catch (error) {
    problems.push(`cannot read the backlog on the primary: ${errorMessage(error)}`);
  }
  data.pendingTotal = data.pending.reduce((sum, p) => sum + p.changes, 0);
  const oldest = data.pending.map((p) => p.oldest).filter((d): d is Date => d !== null).sort((a, b) => a.getTime() - b.getTime())[0];
  if (oldest) data.oldestPendingSeconds = Math.max(0, Math.round((Date.now() - oldest.getTime()) / 1000));
  if (pid) {
    const threshold = job.config.bucardo.watchdogSeconds;
    data.stalls = await detectStuckStatements(job, threshold).catch(() => []);
    const lastGoodAge = data.sync?.lastGood ? Math.round((Date.now() - Date.parse(data.sync.lastGood)) / 1000) : undefined;
    const uptime = data.daemon.uptimeSeconds ?? 0;
    // A daemon younger than the threshold has not had the chance to make progress yet.
    const noProgress = uptime >= threshold && data.copy.state !== 'running' ? noProgressStall(data.oldestPendingSeconds, lastGoodAge, threshold, data.pendingTotal) : undefined;
    if (noProgress) data.stalls.push(noProgress);
  }
  data.verdict = verdict(data);
  return data;
}

function verdict(data: StatusData): string {
  if (!data.installed) return 'not installed (run bucardo.install)';
  if (!data.sync?.exists) return 'no sync yet (run bucardo.add_triggers)';
  const backlog = data.pendingTotal > 0 ? `${data.pendingTotal} change(s) pending, oldest ${data.oldestPendingSeconds ?? 0} s` : '';
  if (!data.daemon.running) return `daemon stopped${backlog ? `: ${backlog}` : ''}`;
  if (data.stalls.length) return `STALLED: ${data.stalls[0]!.cause}${backlog ? ` (${backlog})` : ''}`;
  if (data.copy.state === 'running' || data.copy.state === 'pending') {
    return `copy ${data.copy.state}${data.copy.table ? ` (${data.copy.table}: ${data.copy.rows} rows so far)` : ''}`;
  }
  return backlog || 'caught up';
}

export async function status(ctx: CommandContext): Promise<CommandOutcome<StatusData>> {
  const data = await collectStatus(ctx.job);
  return { data, message: `Verdict: ${data.verdict}` };
}

