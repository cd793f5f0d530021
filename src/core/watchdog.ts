// Notices replication that has stopped moving: a Bucardo worker stuck in one statement (on the
// primary or the secondary), or a backlog that is old while no sync run has succeeded for as long.
// The remedy (refresh the bookkeeping tables' statistics, then cancel the stuck statement so Bucardo
// restarts its worker) is applied by the kicker when bucardo.stall_remedy is on.
import { withClient, type Client } from './db.js';
import { errorMessage } from './errors.js';
import type { Job } from './job.js';
import { maintainBookkeepingTables, type MaintenanceAction } from './maintenance.js';

export interface Stall {
  kind: 'stuck statement' | 'no progress';
  role: 'primary' | 'secondary' | 'bucardo';
  seconds: number;
  pid?: number;
  statement?: string;
  cause: string;
  fix: string;
}

interface ActiveStatement {
  pid: number;
  seconds: number;
  query: string;
  wait: string | null;
}

/**
 * A COPY statement, which is legitimately long during the initial copy. Bucardo prefixes its statements
 * with a comment ('/* Bucardo 5.6.0 *\/COPY ...'), so leading comments are skipped. A PostgreSQL regex.
 */
export const COPY_STATEMENT = String.raw`^\s*(/\*[^*]*\*/\s*)*COPY\s`;

/**
 * The console's own index builds (indexes.recreate, and the rebuild during a parallel copy) name their
 * sessions so: a worker waiting for one of them waits for a build that will end, not a stall
 * (docs/how-bucardo-behaves.md §18).
 */
export const INDEX_BUILD_APPLICATION = 'bucardo-console indexes';

/** Bucardo's workers name their sessions 'bucardo KID (PID n)'. */
async function longWorkerStatements(client: Client, thresholdSeconds: number): Promise<ActiveStatement[]> {
  const { rows } = await client.query<ActiveStatement>(
    `SELECT pid, extract(epoch FROM now() - query_start)::int AS seconds, left(query, 200) AS query,
            nullif(concat_ws('/', wait_event_type, wait_event), '') AS wait
       FROM pg_stat_activity
      WHERE application_name LIKE 'bucardo KID%' AND state = 'active' AND query !~* $2
        AND now() - query_start > make_interval(secs => $1)
        AND NOT EXISTS (SELECT 1 FROM pg_stat_activity build
                         WHERE build.pid = ANY (pg_blocking_pids(pg_stat_activity.pid))
                           AND build.application_name LIKE $3 || '%')
      ORDER BY query_start`,
    [thresholdSeconds, COPY_STATEMENT, INDEX_BUILD_APPLICATION],
  );
  return rows;
}

/** Uses the given open connections when there are (the kicker keeps them), else opens its own. */
export async function detectStuckStatements(
  job: Job,
  thresholdSeconds: number,
  open: Partial<Record<'primary' | 'secondary', Client>> = {},
): Promise<Stall[]> {
  const stalls: Stall[] = [];
  for (const role of ['primary', 'secondary'] as const) {
    const client = open[role];
    // A look that failed is not "nothing stuck": the caller says so (status: unknown; the kicker logs it).
    const statements = await (
      client
        ? longWorkerStatements(client, thresholdSeconds)
        : withClient(job, { role }, (c) => longWorkerStatements(c, thresholdSeconds))
    ).catch((error: unknown) => {
      throw new Error(`${role}: ${errorMessage(error)}`);
    });
    for (const s of statements) {
      const deltaCheck = /bucardo_delta_check/.test(s.query);
      stalls.push({
        kind: 'stuck statement',
        role,
        seconds: s.seconds,
        pid: s.pid,
        statement: s.query,
        cause: deltaCheck
          ? `Bucardo's worker has run bucardo_delta_check on the ${role} for ${s.seconds} s: with stale statistics on its delta/track tables the planner picks a nested loop that can run for many minutes`
          : `Bucardo's worker has been in one statement on the ${role} for ${s.seconds} s${s.wait ? ` (waiting on ${s.wait})` : ''}: ${s.query}`,
        fix: deltaCheck
          ? `ANALYZE the bucardo delta and track tables on the primary, then cancel backend ${s.pid} (SELECT pg_cancel_backend(${s.pid})); Bucardo restarts the worker. With bucardo.stall_remedy: true the kicker does this itself.`
          : `Find what holds it up${s.wait?.startsWith('Lock') ? ' (a lock: see pg_locks for who holds it)' : ''}; cancelling backend ${s.pid} makes Bucardo restart the worker (bucardo.stall_remedy: true lets the kicker do that).`,
      });
    }
  }
  return stalls;
}

/** A backlog older than the threshold while the last good run ended longer ago than that. */
export function noProgressStall(
  oldestPendingSeconds: number | undefined,
  lastGoodAgeSeconds: number | undefined,
  thresholdSeconds: number,
  pending: number,
): Stall | undefined {
  if (pending === 0 || oldestPendingSeconds === undefined || oldestPendingSeconds < thresholdSeconds)
    return undefined;
  if (lastGoodAgeSeconds !== undefined && lastGoodAgeSeconds < thresholdSeconds) return undefined;
  return {
    kind: 'no progress',
    role: 'bucardo',
    seconds: oldestPendingSeconds,
    cause: `${pending} change(s) pending, the oldest ${oldestPendingSeconds} s old, and no sync run has succeeded for ${lastGoodAgeSeconds === undefined ? 'as long as the daemon has run' : `${lastGoodAgeSeconds} s`}`,
    fix: 'Check bucardo.status for the last error and the log; if a worker is stuck, cancelling it (or bucardo.restart) makes Bucardo start over.',
  };
}

export interface RemedyReport {
  analyzed: MaintenanceAction[];
  cancelled: { role: string; pid: number }[];
}

/** Statistics first (so the restarted worker plans well), then cancel the stuck statements. */
export async function applyStallRemedy(job: Job, stalls: Stall[], primary?: Client): Promise<RemedyReport> {
  const analyzed = await (primary
    ? maintainBookkeepingTables(primary, true)
    : withClient(job, { role: 'primary' }, (client) => maintainBookkeepingTables(client, true)));
  const cancelled: { role: string; pid: number }[] = [];
  for (const stall of stalls) {
    if (stall.kind !== 'stuck statement' || stall.pid === undefined || stall.role === 'bucardo') continue;
    const done = await withClient(
      job,
      { role: stall.role },
      async (client) =>
        (await client.query<{ ok: boolean }>('SELECT pg_cancel_backend($1) AS ok', [stall.pid])).rows[0]
          ?.ok === true,
    );
    if (done) cancelled.push({ role: stall.role, pid: stall.pid });
  }
  return { analyzed, cancelled };
}
