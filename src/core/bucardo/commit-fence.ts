// The commit fence: what keeps Bucardo from marking a change applied that it never sent
// (docs/how-bucardo-behaves.md §19). Stock Bucardo records what a sync run applied by transaction
// time alone, so a transaction committed after the run's snapshot with the same time as one before
// it is skipped for ever. The fence closes that race on every source database:
//
// - Writers. The delta tables' txntime default becomes bucardo.console_txntime(). On a transaction's
//   first change record it picks a time above the fence clock (a sequence: read outside MVCC, so
//   every session sees the latest value), announces it with a shared advisory lock held until the
//   transaction ends, then reads the fence clock again; if a fence moved past its time meanwhile, it
//   picks again. Every later record of the transaction reuses that time.
// - Sync runs. Before each run takes its snapshot, the job's copy of Bucardo (src/core/bucardo/code.ts)
//   calls bucardo.console_commit_fence(): the fence clock moves to now, and the times announced by
//   open transactions are read from pg_locks. The run then marks applied only the times at or
//   below the clock and not announced (bucardo.console_settled).
//
// Why no change can be skipped: let T be uncommitted at the run's snapshot and carry time X. If T
// announced X before the fence read the locks, it still held the lock then (it ends after the
// snapshot, which follows the fence), so X is not marked. Otherwise T read the clock after the fence
// had moved it (the clock is moved before the locks are read), so X is above the run's bound, and is
// not marked either. Nothing here depends on the wall clock being right.
import type { Activity } from '../activity.js';
import { type DatabaseContext, withSession } from '../context.js';
import { withClient, type Client } from '../db.js';
import { formatFailures, lockBoundedDdl, tableFailure, type TableFailure } from '../ddl.js';
import { OperatorError } from '../errors.js';
import type { Job } from '../job.js';
import type { Check } from '../plugin.js';
import { bucardoSchemaExists } from '../pending.js';
import { quoteQualified } from '../quote.js';
import { lockRounds, RoundProgress, runRounds, type RoundsPolicy } from '../rounds.js';

/** Advisory lock class of announced transaction times (the first key of pg_advisory_xact_lock(int, int)). */
export const TXNTIME_LOCK_CLASS = 1111708760;
/** Second key of the lock that lets one fence at a time move the clock; never a transaction time's key. */
const FENCE_LOCK_KEY = 2147483647;
/** Bumped whenever the objects below change: a database holding an older version gets them again. */
export const COMMIT_FENCE_VERSION = 'bucardo-console commit fence 2';
export const TXNTIME_DEFAULT = 'bucardo.console_txntime()';

// Timestamps are carried as text in a fixed UTC format (never through the session's DateStyle or
// TimeZone, which a transaction may change between two writes) or as microseconds in the sequence.
const OBJECTS = `
CREATE SEQUENCE IF NOT EXISTS bucardo.console_fence_clock;
GRANT SELECT ON SEQUENCE bucardo.console_fence_clock TO PUBLIC;

CREATE OR REPLACE FUNCTION bucardo.console_txntime_key(timestamptz) RETURNS integer
LANGUAGE sql STABLE AS $fn$
  SELECT (floor(extract(epoch FROM $1) * 1000000)::bigint % ${FENCE_LOCK_KEY})::integer
$fn$;

-- The writer's side runs in every writing transaction: it reads the sequence itself (a SQL function
-- with a FROM is planned again in every transaction, about 30 µs a call).
CREATE OR REPLACE FUNCTION bucardo.console_txntime() RETURNS timestamptz
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
  cached text := current_setting('bucardo_console.txntime', true);
  fence bigint;
  chosen timestamptz;
BEGIN
  IF cached <> '' THEN
    RETURN cached::timestamp AT TIME ZONE 'UTC';
  END IF;
  SELECT last_value INTO fence FROM bucardo.console_fence_clock;
  LOOP
    chosen := greatest(clock_timestamp(),
                       timestamptz '1970-01-01 00:00:00+00' + (fence + 1) * interval '1 microsecond');
    PERFORM pg_advisory_xact_lock_shared(${TXNTIME_LOCK_CLASS}, bucardo.console_txntime_key(chosen));
    SELECT last_value INTO fence FROM bucardo.console_fence_clock;
    EXIT WHEN chosen > timestamptz '1970-01-01 00:00:00+00' + fence * interval '1 microsecond';
  END LOOP;
  -- Local to the transaction, and undone with the lock when a savepoint around this write rolls back.
  PERFORM set_config('bucardo_console.txntime',
                     to_char(chosen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), true);
  RETURN chosen;
END
$fn$;

CREATE OR REPLACE FUNCTION bucardo.console_commit_fence() RETURNS void
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
  upto bigint;
  in_flight integer[];
BEGIN
  PERFORM pg_advisory_xact_lock(${TXNTIME_LOCK_CLASS}, ${FENCE_LOCK_KEY});
  upto := greatest((SELECT last_value FROM bucardo.console_fence_clock),
                   floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
  PERFORM setval('bucardo.console_fence_clock', upto);
  SELECT coalesce(array_agg(DISTINCT objid::integer), '{}') INTO in_flight
    FROM pg_locks
   WHERE locktype = 'advisory' AND classid = ${TXNTIME_LOCK_CLASS} AND objsubid = 2
     AND objid <> ${FENCE_LOCK_KEY}
     AND database = (SELECT oid FROM pg_database WHERE datname = current_database());
  PERFORM set_config('bucardo_console.fence_upto', upto::text, false);
  PERFORM set_config('bucardo_console.fence_in_flight', in_flight::text, false);
END
$fn$;

CREATE OR REPLACE FUNCTION bucardo.console_settled(timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $fn$
  SELECT $1 <= timestamptz '1970-01-01 00:00:00+00'
                + current_setting('bucardo_console.fence_upto')::bigint * interval '1 microsecond'
     AND NOT bucardo.console_txntime_key($1) = ANY (current_setting('bucardo_console.fence_in_flight')::integer[])
$fn$;

COMMENT ON FUNCTION bucardo.console_commit_fence() IS '${COMMIT_FENCE_VERSION}';
`;

export interface DeltaTable {
  /** The delta table, quoted as Bucardo stores it ("bucardo"."delta_public_acct" minus the schema). */
  delta: string;
  /** The replicated table it records changes of. */
  table: string;
}

export interface FenceState {
  /** The fence's functions are there, in this version. */
  installed: boolean;
  /** Delta tables whose txntime default is not the fence's. */
  unfenced: DeltaTable[];
  /** Delta tables in all. */
  deltaTables: number;
}

export interface FenceOutcome {
  /** The functions were (re)created. */
  created: boolean;
  /** Delta tables switched to the fence's default. */
  switched: string[];
  /** Delta tables that could not get their lock within the lock timeout. */
  failed: TableFailure[];
}

/** Whether a source database has the fence, and which of its delta tables do not use it yet. */
export async function fenceState(client: Client): Promise<FenceState> {
  if (!(await bucardoSchemaExists(client))) return { installed: false, unfenced: [], deltaTables: 0 };
  const { rows: marker } = await client.query<{ version: string | null }>(
    `SELECT obj_description(to_regprocedure('bucardo.console_commit_fence()'), 'pg_proc') AS version`,
  );
  // Every delta table Bucardo made in this database, whichever sync (a shared source has one per table).
  const { rows } = await client.query<{ delta: string; table: string; fenced: boolean }>(
    `SELECT DISTINCT c.relname AS delta, dn.tablename AS table,
            coalesce(pg_get_expr(d.adbin, d.adrelid) = $1, false) AS fenced
       FROM bucardo.bucardo_delta_names dn
       JOIN pg_class c ON c.oid = to_regclass('bucardo.' || dn.deltaname)
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'txntime'
       LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
      ORDER BY 1`,
    [TXNTIME_DEFAULT],
  );
  return {
    installed: marker[0]?.version === COMMIT_FENCE_VERSION,
    unfenced: rows.filter((row) => !row.fenced).map(({ delta, table }) => ({ delta, table })),
    deltaTables: rows.length,
  };
}

/**
 * Puts the fence on the job's source (its primary; the reverse job's is the secondary): the functions,
 * then each delta table's default in rounds of lock-bounded tries. ALTER TABLE waits until every
 * transaction that wrote to the delta table has ended, so once a table is switched no open
 * transaction carries an unannounced time in it. Safe to run again: what is in place is skipped.
 */
export async function ensureCommitFence(
  job: Job,
  options: {
    activity: Activity;
    policy: RoundsPolicy;
    progress?: (text: string) => void;
    /** The command's sessions: when they are this job's, the usual answer (all in place) is read there. */
    db?: DatabaseContext;
  },
): Promise<FenceOutcome> {
  const { activity, policy } = options;
  // Most calls (every start and reload after add_triggers) find the fence in place: that is read on
  // the command's shared primary session, and a session of its own is opened only for DDL to do.
  if (options.db?.job === job) {
    const shared = await options.db.primary();
    const state = await fenceState(shared);
    const nothingToDo = state.installed
      ? state.unfenced.length === 0
      : state.deltaTables === 0 && !(await bucardoSchemaExists(shared));
    if (nothingToDo) return { created: false, switched: [], failed: [] };
  }
  // A session of its own: each change is a transaction with SET LOCAL lock_timeout (lockBoundedDdl).
  return withClient(job, { role: 'primary', activity }, async (client) => {
    const outcome: FenceOutcome = { created: false, switched: [], failed: [] };
    let state = await fenceState(client);
    if (state.deltaTables === 0 && !(await bucardoSchemaExists(client))) return outcome;
    if (!state.installed) {
      // CREATE OR REPLACE FUNCTION takes no lock on any table: the replicated tables are not touched.
      const created = await lockBoundedDdl(client, [OBJECTS], { timeoutMs: policy.timeoutMs, activity });
      if (!created.done) throw created.error;
      outcome.created = true;
      state = await fenceState(client);
    }
    const left = new Map(state.unfenced.map((table) => [table.delta, table]));
    const progress = new RoundProgress(left.size, 'done', (text) =>
      options.progress?.(`commit fence on the change tables: ${text}`),
    );
    const failures = new Map<string, TableFailure>();
    await runRounds(policy, activity, {
      pending: () => left.size > 0,
      round: async (round) => {
        progress.round = round;
        for (const [delta, table] of [...left]) {
          activity.throwIfInterrupted();
          const done = await lockBoundedDdl(
            client,
            [
              `ALTER TABLE ${quoteQualified('bucardo', delta)} ALTER COLUMN txntime SET DEFAULT ${TXNTIME_DEFAULT}`,
            ],
            { timeoutMs: policy.timeoutMs, activity, target: { schema: 'bucardo', table: delta } },
          );
          if (done.done) {
            left.delete(delta);
            failures.delete(delta);
            outcome.switched.push(table.table);
            progress.markReady(delta);
          } else {
            failures.set(delta, tableFailure(`${table.table} (bucardo.${delta})`, done));
            progress.markWaiting(delta);
          }
        }
      },
    });
    outcome.failed = [...failures.values()];
    return outcome;
  });
}

/**
 * Before the daemon is given the job's syncs (start, reload, the way back): the fence on the job's
 * source, or an OperatorError naming the change tables whose lock stayed taken. Returns a step line
 * when something was put in place.
 */
export async function requireCommitFence(
  job: Job,
  ctx: { activity: Activity; progress?: (text: string) => void; db?: DatabaseContext },
): Promise<string | undefined> {
  const { policy, setting } = lockRounds(job);
  const outcome = await ensureCommitFence(job, { ...ctx, policy });
  if (outcome.failed.length)
    throw new OperatorError(
      `The commit fence could not be put on ${outcome.failed.length} change table(s) of ${job.config.databases.primary.dbname} within ${setting} in ${policy.attempts} round(s): ${formatFailures(
        outcome.failed,
      )
        .map((line) => line.trim())
        .join(
          '; ',
        )}. The daemon was not given the job's syncs: without the fence, a transaction committed while a sync run starts could be marked applied without being sent (docs/how-bucardo-behaves.md §19). Run the command again once those sessions have finished.`,
    );
  return describeFenceOutcome(outcome);
}

export function describeFenceOutcome(outcome: FenceOutcome): string | undefined {
  if (!outcome.created && outcome.switched.length === 0) return undefined;
  return outcome.switched.length
    ? `put the commit fence on ${outcome.switched.length} change table(s) of the primary`
    : 'installed the commit fence functions on the primary';
}

/** The check after a command that gives the daemon a sync: every change table uses the fence. */
export async function commitFenceCheck(source: Job | DatabaseContext, activity?: Activity): Promise<Check> {
  const state = await withSession(source, { role: 'primary' }, fenceState, activity);
  const pass = state.installed && state.unfenced.length === 0;
  return {
    name: 'every change table on the primary records through the commit fence',
    pass,
    ...(pass
      ? { detail: `${state.deltaTables} table(s)` }
      : {
          detail: state.installed
            ? `not yet: ${state.unfenced.map((t) => t.table).join(', ')}`
            : 'the fence functions are missing',
        }),
  };
}
