// What bucardo.status collects and judges: more than Bucardo's own "Good" — daemon, sync runs, initial
// copy progress, the backlog of pending changes (the real replication lag), the kicker, and one state
// out of a fixed set (docs/status-and-monitoring.md) whose exit code scripts and monitoring can rely
// on. The command itself (once, or --watch) is in status-watch.ts; the data's shape in status-data.ts.
import { copyState } from '../../src/core/copy/progress.js';
import { replicationDrift } from '../../src/core/drift.js';
import type { DatabaseContext } from '../../src/core/context.js';
import { errorMessage } from '../../src/core/errors.js';
import { kickerStatus } from '../../src/core/kicker.js';
import { pendingChanges, type PendingTable } from '../../src/core/pending.js';
import { processUptimeSeconds } from '../../src/core/process.js';
import { detectStuckStatements, noProgressStall } from '../../src/core/watchdog.js';
import { daemonPid, syncLoaded } from '../../src/core/bucardo/daemon.js';
import { targetViews, type Job } from '../../src/core/job.js';
import {
  lastRun,
  metadataDatabaseExists,
  recentRuns,
  syncRow,
  withMetadata,
} from '../../src/core/bucardo/metadata.js';
import { recordedTableSyncs, syncNames } from '../../src/core/bucardo/syncs.js';
import { applyRecordedNames, readRecords, recordedNames } from '../../src/core/bucardo/records.js';
import { STATE_EXIT_CODES, formatDuration } from './status-format.js';
import { STATUS_SCHEMA_VERSION, type StatusData, type StatusState, type SyncStatus } from './status-data.js';

/** Runs a probe; a failure to reach the database is recorded as the cause of an `unknown` state. */
async function reach<T>(
  unreachable: string[],
  what: string,
  probe: () => Promise<T>,
  cause = `cannot reach the ${what}`,
): Promise<T | undefined> {
  try {
    return await probe();
  } catch (error) {
    unreachable.push(`${cause} (${errorMessage(error).split('\n')[0]})`);
    return undefined;
  }
}

/**
 * Runs a look that status cannot judge without: when it fails, status has not seen "no stall" or "copy
 * done", so the failure is recorded as the cause of an `unknown` state rather than taken as nothing found.
 */
function look<T>(unreachable: string[], cause: string, probe: () => Promise<T>): Promise<T | undefined> {
  return reach(unreachable, '', probe, cause);
}

/**
 * The job's status, asked on the command's shared sessions (one set per watch, not per refresh):
 * `db` for the job, `sessionsOf` for each other target of a fan-out job (the command's `ctx.databases`).
 */
export async function collectStatus(
  db: DatabaseContext,
  sessionsOf: (view: Job) => DatabaseContext,
): Promise<StatusData> {
  const { job } = db;
  const problems: string[] = [];
  const unreachable: string[] = [];
  const pid = daemonPid(job);
  const uptime = pid ? processUptimeSeconds(pid) : undefined;
  const data: StatusData = {
    schemaVersion: STATUS_SCHEMA_VERSION,
    checkedAt: new Date().toISOString(),
    job: job.name,
    state: 'unknown',
    exitCode: STATE_EXIT_CODES.unknown,
    verdict: '',
    installed: false,
    daemon: {
      running: pid !== undefined,
      ...(pid ? { pid } : {}),
      ...(uptime !== undefined ? { uptimeSeconds: uptime } : {}),
    },
    copy: { state: 'unknown' },
    pending: [],
    pendingTotal: 0,
    stalls: [],
    unreachable,
    problems,
  };
  const kicker = kickerStatus(job);
  const kicking = job.config.bucardo.asynchronousKicking;
  data.kicker = {
    running: kicker.running,
    kicking,
    ...(kicker.pid ? { pid: kicker.pid } : {}),
    ...(kicker.state?.lastKickAt ? { lastKickAt: kicker.state.lastKickAt } : {}),
    kicks: kicker.state?.kicks ?? 0,
    ...(kicker.state?.lastError ? { lastError: kicker.state.lastError } : {}),
    maintenance: kicker.state?.maintenance ?? 0,
    ...(kicker.state?.lastMaintenanceAt ? { lastMaintenanceAt: kicker.state.lastMaintenanceAt } : {}),
    ...(kicker.state?.remedies?.length ? { remedies: kicker.state.remedies } : {}),
    ...(kicker.state?.recheck ? { recheck: kicker.state.recheck } : {}),
  };
  if (pid && !kicker.running)
    problems.push(
      kicking
        ? 'asynchronous kicking is on but no kicker runs: changes are not being kicked (bucardo.restart starts one)'
        : "no kicker runs: nothing keeps Bucardo's statistics fresh or watches for stalls (bucardo.restart starts one)",
    );
  data.installed =
    (await reach(unreachable, "metadata database's server", () => metadataDatabaseExists(db))) ?? false;
  if (data.installed) {
    const infos = await reach(unreachable, 'metadata database', () =>
      withMetadata(db, async (client) => {
        // The backlog below goes by the dbgroup the job's syncs record (a job installed with the old names).
        applyRecordedNames(job, recordedNames(await readRecords(client), job));
        const tables = await recordedTableSyncs(client, job);
        return Promise.all(
          syncNames(job).map(async (name) => ({
            name,
            tables: [...tables.values()].filter((s) => s.name === name).length,
            sync: await syncRow(client, name),
            good: await lastRun(client, name, 'lastgood'),
            bad: await lastRun(client, name, 'lastbad'),
            current: (await recentRuns(client, name, 1)).find((run) => run.ended === null),
          })),
        );
      }),
    );
    if (infos) {
      data.syncs = infos.map((info) => ({
        name: info.name,
        exists: Boolean(info.sync),
        loaded: syncLoaded(job, info.name),
        tables: info.tables,
        ...(info.good?.ended
          ? {
              lastGood: info.good.ended.toISOString(),
              lastGoodRows: `${info.good.inserts} inserted / ${info.good.deletes} deleted`,
            }
          : {}),
        ...(info.bad?.ended
          ? {
              lastBad: info.bad.ended.toISOString(),
              lastError: (info.bad.status ?? info.bad.details ?? '').slice(0, 300),
            }
          : {}),
        ...(info.current?.started ? { running: info.current.started.toISOString() } : {}),
        pendingTotal: 0,
      }));
      data.sync = totalSync(job, data.syncs);
    }
  }
  const pending = await reach(unreachable, 'primary', () =>
    db.primary().then((client) => pendingChanges(client, job.dbgroupName)),
  );
  data.pending = pending ?? [];
  for (const sync of data.syncs ?? []) {
    const own = data.pending.filter((p) => p.sync === sync.name);
    sync.pendingTotal = own.reduce((sum, p) => sum + p.changes, 0);
    const age = oldestSeconds(own);
    if (age !== undefined) sync.oldestPendingSeconds = age;
  }
  // The secondary is where the rows go: a status that cannot see it cannot say replication works.
  // Every target's (fan-out), each on its own target's shared sessions.
  const targetReach = new Map<string, string | undefined>();
  for (const view of targetViews(job)) {
    const before = unreachable.length;
    const sessions = view === job ? db : sessionsOf(view);
    await reach(unreachable, job.config.fanOut ? `target ${view.target}` : 'secondary', () =>
      sessions.secondary().then((client) => client.query('SELECT 1')),
    );
    targetReach.set(view.target, unreachable[before]);
  }
  if (data.installed && data.sync && unreachable.length === 0)
    data.copy =
      (await look(unreachable, "could not check the initial copy's state", () => copyState(db))) ?? data.copy;
  if (data.installed && data.sync?.exists && unreachable.length === 0)
    // A drift check that fails leaves the state unknown with its reason, never "caught up": a sync
    // whose columns differ replicates nothing of that table.
    data.drift = await look(unreachable, 'could not check for schema drift', async () => {
      const [primary, secondary, metadata] = await Promise.all([db.primary(), db.secondary(), db.metadata()]);
      return replicationDrift(job, { primary, secondary, metadata });
    });
  data.pendingTotal = data.pending.reduce((sum, p) => sum + p.changes, 0);
  const oldest = oldestSeconds(data.pending);
  if (oldest !== undefined) data.oldestPendingSeconds = oldest;
  if (pid && unreachable.length === 0) {
    const threshold = job.config.bucardo.watchdogSeconds;
    data.stalls =
      (await look(unreachable, 'could not check for stuck Bucardo workers', async () => {
        const [primary, secondary] = await Promise.all([db.primary(), db.secondary()]);
        return detectStuckStatements(job, threshold, { primary, secondary });
      })) ?? [];
    const uptime = data.daemon.uptimeSeconds ?? 0;
    // A daemon younger than the threshold has not had the chance to make progress yet. Each sync has
    // its own worker: one that stopped moving is a stall even while the others keep up.
    const split = (data.syncs?.length ?? 0) > 1;
    const watched: Pick<SyncStatus, 'name' | 'lastGood' | 'pendingTotal' | 'oldestPendingSeconds'>[] = split
      ? data.syncs!
      : [
          {
            name: job.syncName,
            pendingTotal: data.pendingTotal,
            ...(data.sync?.lastGood ? { lastGood: data.sync.lastGood } : {}),
            ...(data.oldestPendingSeconds !== undefined
              ? { oldestPendingSeconds: data.oldestPendingSeconds }
              : {}),
          },
        ];
    for (const sync of watched) {
      const lastGoodAge = sync.lastGood
        ? Math.round((Date.now() - Date.parse(sync.lastGood)) / 1000)
        : undefined;
      const noProgress =
        uptime >= threshold && data.copy.state !== 'running'
          ? noProgressStall(sync.oldestPendingSeconds, lastGoodAge, threshold, sync.pendingTotal)
          : undefined;
      if (noProgress)
        data.stalls.push(
          split ? { ...noProgress, cause: `sync ${sync.name}: ${noProgress.cause}` } : noProgress,
        );
    }
  }
  const judged = judge(data);
  data.state = judged.state;
  data.exitCode = STATE_EXIT_CODES[judged.state];
  data.verdict = judged.verdict;
  if (job.config.fanOut) judgeTargets(data, job, targetReach);
  return data;
}

/**
 * Each target's state: unknown when status could not reach it; failed when the sync's last failure
 * names it; otherwise the job's state without the other targets' reachability (one sync applies
 * every target, so a target that fails holds the others back: their verdict names it). The job's state
 * is then the worst target's.
 */
function judgeTargets(data: StatusData, job: Job, reached: Map<string, string | undefined>): void {
  const targetProblems = [...reached.values()].filter((u): u is string => u !== undefined);
  const base = judge({ ...data, unreachable: data.unreachable.filter((u) => !targetProblems.includes(u)) });
  const failedLast =
    data.sync?.lastBad &&
    (!data.sync.lastGood || Date.parse(data.sync.lastBad) > Date.parse(data.sync.lastGood));
  const error = failedLast ? (data.sync?.lastError ?? '') : '';
  const blocking: string[] = [];
  data.targets = job.targets.map((target) => {
    const db = target.database;
    const where = `${db.host}:${db.port}/${db.dbname}`;
    const failing =
      error !== '' &&
      (error.includes(target.recordName) ||
        (new RegExp(`dbname=${escapeRegExp(db.dbname)}\\b`).test(error) &&
          error.includes(`port=${db.port}`)));
    const problem = reached.get(target.name);
    if (problem !== undefined || failing) blocking.push(target.name);
    const [state, verdict]: [StatusState, string] =
      problem !== undefined
        ? ['unknown', `unknown: ${problem}`]
        : failing
          ? ['failed', `FAILED: the last sync run failed on this target: ${error}`]
          : [base.state, base.verdict];
    return {
      name: target.name,
      where,
      reachable: problem === undefined,
      failing,
      state,
      exitCode: STATE_EXIT_CODES[state],
      verdict,
    };
  });
  for (const target of data.targets) {
    const others = blocking.filter((name) => name !== target.name);
    if (target.state !== 'caught up' && !blocking.includes(target.name) && others.length)
      target.verdict += ` (waits for target ${others.join(', ')}: one sync applies every target in the same run)`;
  }
  // The job is as bad as its worst target; a target that fails or cannot be seen is named.
  const worst = data.targets.reduce((a, b) => (b.exitCode > a.exitCode ? b : a));
  const named = data.targets.find((t) => blocking.includes(t.name) && t.exitCode === worst.exitCode);
  if (worst.exitCode >= data.exitCode && named) {
    data.state = named.state;
    data.exitCode = named.exitCode;
    data.verdict = `target ${named.name}: ${named.verdict}`;
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The age in seconds of the oldest pending change among these tables. */
function oldestSeconds(pending: PendingTable[]): number | undefined {
  const oldest = pending
    .map((p) => p.oldest)
    .filter((d): d is Date => d !== null)
    .sort((a, b) => a.getTime() - b.getTime())[0];
  return oldest ? Math.max(0, Math.round((Date.now() - oldest.getTime()) / 1000)) : undefined;
}

/**
 * The job's syncs as one: it exists and is loaded when all are; its last error is the newest failure
 * that no good run of the same sync has followed yet, and then its last good run is that sync's (so
 * the judgement "failed" reads as for one sync); otherwise the newest failure and the newest good run
 * of any sync. Its run in progress is the earliest. With one sync, that sync.
 */
export function totalSync(job: Job, syncs: SyncStatus[]): NonNullable<StatusData['sync']> {
  if (syncs.length === 1) {
    const [only] = syncs as [SyncStatus];
    return {
      name: job.syncName,
      exists: only.exists,
      loaded: only.loaded,
      ...(only.lastGood ? { lastGood: only.lastGood } : {}),
      ...(only.lastGoodRows ? { lastGoodRows: only.lastGoodRows } : {}),
      ...(only.lastBad ? { lastBad: only.lastBad } : {}),
      ...(only.lastError !== undefined ? { lastError: only.lastError } : {}),
      ...(only.running ? { running: only.running } : {}),
    };
  }
  const byNewest = (key: 'lastGood' | 'lastBad') =>
    syncs.filter((s) => s[key]).sort((a, b) => (a[key]! < b[key]! ? 1 : -1));
  const unresolved = byNewest('lastBad').filter((s) => !s.lastGood || s.lastBad! > s.lastGood);
  const bad = unresolved[0] ?? byNewest('lastBad')[0];
  const good = unresolved.length ? unresolved[0] : byNewest('lastGood')[0];
  const running = syncs
    .map((s) => s.running)
    .filter(Boolean)
    .sort()[0];
  return {
    name: job.syncName,
    exists: syncs.every((s) => s.exists),
    loaded: syncs.every((s) => s.loaded),
    ...(good?.lastGood
      ? {
          lastGood: good.lastGood,
          ...(good.lastGoodRows ? { lastGoodRows: `${good.lastGoodRows} (sync ${good.name})` } : {}),
        }
      : {}),
    ...(bad ? { lastBad: bad.lastBad!, lastError: `sync ${bad.name}: ${bad.lastError ?? ''}` } : {}),
    ...(running ? { running } : {}),
  };
}

/**
 * The state and its one-line reason; the order of the tests is the order of precedence. The verdict
 * texts of the states that existed before the states did are kept ('caught up', 'daemon stopped: ...',
 * 'STALLED: ...'): scripts match them.
 */
export function judge(data: StatusData): { state: StatusState; verdict: string } {
  if (data.unreachable.length)
    return { state: 'unknown', verdict: `unknown: ${data.unreachable.join('; ')}` };
  if (!data.installed) return { state: 'stopped', verdict: 'not installed (run bucardo.install)' };
  if (!data.sync?.exists) return { state: 'stopped', verdict: 'no sync yet (run bucardo.add_triggers)' };
  const backlog =
    data.pendingTotal > 0
      ? `${data.pendingTotal} change(s) pending, oldest ${formatDuration(data.oldestPendingSeconds ?? 0)}`
      : '';
  if (!data.daemon.running)
    return { state: 'stopped', verdict: `daemon stopped${backlog ? `: ${backlog}` : ''}` };
  if (data.stalls.length)
    return {
      state: 'stalled',
      verdict: `STALLED: ${data.stalls[0]!.cause}${backlog ? ` (${backlog})` : ''}`,
    };
  // A failed run newer than the last good one, with work left: Bucardo does not retry it by itself.
  const failedLast =
    data.sync.lastBad &&
    (!data.sync.lastGood || Date.parse(data.sync.lastBad) > Date.parse(data.sync.lastGood));
  if (failedLast && !data.sync.running && (data.pendingTotal > 0 || data.copy.state === 'running')) {
    return { state: 'failed', verdict: `FAILED: the last sync run failed: ${data.sync.lastError}` };
  }
  if (data.drift?.length) {
    const first = data.drift[0]!;
    const more = data.drift.length > 1 ? ` (and ${data.drift.length - 1} more table(s))` : '';
    return { state: 'drift', verdict: `DRIFT: ${first.table} ${first.problem}; fix: ${first.fix}${more}` };
  }
  if (data.copy.state === 'running' || data.copy.state === 'pending') {
    const copy = data.copy;
    const tables =
      copy.tablesTotal !== undefined && copy.tablesDone !== undefined
        ? `${copy.tablesDone} of ${copy.tablesTotal} tables done`
        : '';
    const now = copy.table
      ? `${copy.table} ${copy.tablePercent !== undefined ? `${copy.tablePercent}%` : `${copy.rows} rows`}`
      : '';
    const left =
      copy.remainingSeconds !== undefined ? `about ${formatDuration(copy.remainingSeconds)} left` : '';
    const detail = [tables, now, left].filter(Boolean).join(', ');
    return { state: 'copying', verdict: `copy ${copy.state}${detail ? ` (${detail})` : ''}` };
  }
  if (backlog) return { state: 'lagging', verdict: backlog };
  return { state: 'caught up', verdict: 'caught up' };
}
