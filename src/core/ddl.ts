// DDL that must not hold production up: one transaction whose lock wait is bounded by lock_timeout.
// A statement waiting in a table's lock queue holds up every later query on that table, even plain
// readers (ACCESS EXCLUSIVE: DROP TRIGGER, DROP INDEX, ALTER TABLE ... ENABLE TRIGGER), so it gives
// up after the timeout, rolls back, and names the sessions holding the lock for the operator.
import type { Activity } from './activity.js';
import { withTransaction, type Client } from './db.js';
import { errorMessage, InterruptedError } from './errors.js';

/** A session holding a lock that a DDL statement would have to wait for. */
export interface LockBlocker {
  pid: number;
  user: string;
  application: string;
  backendType: string;
  seconds: number;
  query: string;
}

/** A table (or object) whose DDL did not happen, why, and who held its lock then. */
export interface TableFailure {
  table: string;
  error: string;
  blockers: LockBlocker[];
}

/** What holds a lock: one table, or every relation of a schema (for DROP SCHEMA). */
export interface LockTarget {
  schema: string;
  table?: string;
}

export interface LockBoundedOptions {
  /** Upper bound (ms) of each statement's lock wait. */
  timeoutMs: number;
  activity?: Activity;
  /** deadlock_detected (40P01) counts as "busy, try later" too (the retry rounds treat it so). */
  deadlockIsLockWait?: boolean;
  /**
   * 'lock-waits' (default): only a lock wait is a failure to report; anything else is thrown after
   * the rollback. 'all': every error is reported as a failure of this table (with the lock holders).
   */
  report?: 'lock-waits' | 'all';
  /** Whose locks to name when it fails; without one, no holders are looked up. */
  target?: LockTarget;
}

export type LockBoundedOutcome = { done: true } | { done: false; error: unknown; blockers: LockBlocker[] };

/** lock_not_available (lock_timeout), and deadlock_detected when asked for. */
export function isLockWait(error: unknown, deadlockIsLockWait = false): boolean {
  const code = (error as { code?: string } | undefined)?.code;
  return code === '55P03' || (deadlockIsLockWait && code === '40P01');
}

/**
 * BEGIN; SET LOCAL lock_timeout; the statements; COMMIT. On a lock wait (or any error, with
 * report: 'all') the transaction is rolled back and the lock holders returned; other errors are
 * thrown after the rollback. An interrupted run (Ctrl-C) always throws InterruptedError.
 */
export async function lockBoundedDdl(
  client: Client,
  statements: string[],
  options: LockBoundedOptions,
): Promise<LockBoundedOutcome> {
  const outcome = await withLockTimeout(client, options, async () => {
    for (const statement of statements) await client.query(statement);
  });
  return outcome.done ? { done: true } : outcome;
}

/**
 * The statement that bounds the lock waits of the transaction (or savepoint) under way. At least 1 ms:
 * lock_timeout 0 would mean no bound at all.
 */
export async function setLocalLockTimeout(client: Client, timeoutMs: number): Promise<void> {
  await client.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.trunc(Number(timeoutMs)))}`);
}

/**
 * BEGIN; SET LOCAL lock_timeout; the work; ROLLBACK whatever happens: a probe or a rehearsal that must
 * leave nothing behind and hold no lock longer than the bound. Errors (a lock wait among them) are the
 * caller's to judge.
 */
export async function rolledBackWithLockTimeout<T>(
  client: Client,
  timeoutMs: number,
  work: () => Promise<T>,
): Promise<T> {
  await client.query('BEGIN');
  try {
    await setLocalLockTimeout(client, timeoutMs);
    return await work();
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
  }
}

/** The same transaction around any work (checks between statements, say), returning its value. */
export async function withLockTimeout<T>(
  client: Client,
  options: LockBoundedOptions,
  work: () => Promise<T>,
): Promise<{ done: true; value: T } | Extract<LockBoundedOutcome, { done: false }>> {
  try {
    return {
      done: true,
      value: await withTransaction(client, async () => {
        await setLocalLockTimeout(client, options.timeoutMs);
        return work();
      }),
    };
  } catch (error) {
    if (options.activity?.interrupted) throw new InterruptedError();
    if (options.report !== 'all' && !isLockWait(error, options.deadlockIsLockWait)) throw error;
    const blockers = options.target ? await lockHolders(client, options.target).catch(() => []) : [];
    return { done: false, error, blockers };
  }
}

/**
 * Inside an already open transaction: one statement whose lock wait is bounded by `timeoutMs`, in a
 * savepoint, so that when it cannot be had (a lock wait or a deadlock, or an error `mayRefuse` accepts)
 * only it is undone and the transaction goes on: false then. Any other error is thrown, the savepoint
 * rolled back first. The bound ends with the statement.
 */
export async function tryInSavepoint(
  client: Client,
  statement: string,
  options: { timeoutMs: number; mayRefuse?: (error: unknown) => boolean },
): Promise<boolean> {
  await client.query('SAVEPOINT lock_bounded');
  try {
    await setLocalLockTimeout(client, options.timeoutMs);
    await client.query(statement);
    await client.query('RELEASE SAVEPOINT lock_bounded');
    // A SET LOCAL made in a released savepoint would last until the transaction ends.
    await client.query('SET LOCAL lock_timeout TO DEFAULT');
    return true;
  } catch (error) {
    // Also undoes the SET LOCAL.
    await client.query('ROLLBACK TO SAVEPOINT lock_bounded');
    if (isLockWait(error, true) || options.mayRefuse?.(error)) return false;
    throw error;
  }
}

/** The failure record of a table whose lock-bounded DDL did not happen. */
export function tableFailure(
  table: string,
  outcome: Extract<LockBoundedOutcome, { done: false }>,
): TableFailure {
  return { table, error: errorMessage(outcome.error), blockers: outcome.blockers };
}

/**
 * Sessions holding a granted lock on the table (or on any relation of the schema). Every mode
 * counts: the ACCESS EXCLUSIVE lock of DDL waits even for plain readers.
 */
export async function lockHolders(client: Client, target: LockTarget): Promise<LockBlocker[]> {
  const { rows } = await client.query<LockBlocker>(
    `SELECT DISTINCT a.pid, a.usename AS user, a.application_name AS application, a.backend_type AS "backendType",
            round(extract(epoch FROM now() - coalesce(a.xact_start, a.query_start)))::int AS seconds,
            left(a.query, 200) AS query
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
       JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_backend_pid()
        AND n.nspname = $1 AND ($2::text IS NULL OR c.relname = $2)
      ORDER BY a.pid`,
    [target.schema, target.table ?? null],
  );
  return rows;
}

/** Who holds each table's lock right now, each with the same reason, for the operator to act on. */
export async function describeWaiting(
  client: Client,
  tables: { key: string; schema: string; table: string }[],
  reason: string,
): Promise<TableFailure[]> {
  const failures: TableFailure[] = [];
  for (const table of tables) {
    failures.push({
      table: table.key,
      error: reason,
      blockers: await lockHolders(client, table).catch(() => []),
    });
  }
  return failures;
}

/** Each failed table with who holds its lock: pid, user, application, how long, the query. */
export function formatFailures(failures: TableFailure[]): string[] {
  const lines: string[] = [];
  for (const failure of failures) {
    lines.push(`  ${failure.table}: ${failure.error}`);
    // Only a lock wait has holders to name; another error (a dependent object, say) stands alone.
    if (failure.blockers.length === 0 && /lock/i.test(failure.error)) {
      lines.push('    no lock holder right now: the lock was released since the last try');
    }
    for (const b of failure.blockers) {
      const application = b.application ? `application ${b.application}` : 'no application name';
      lines.push(
        `    lock held by pid ${b.pid} (user ${b.user}, ${application}, ${b.seconds} s): ${b.query}`,
      );
    }
  }
  return lines;
}
