// The safety net: the kicker re-compares, on both sides, every key Bucardo marked applied, and
// re-queues one that differs with no change pending. It does not rely on the commit fence's
// reasoning (docs/how-bucardo-behaves.md §19): whatever marked a change applied, a key whose change
// records are all marked applied must hold the same row on both sides.
//
// Every change record is looked at once it is applied. The safety net is one more target of the
// job's tables in bucardo_delta_targets, as the verify's hold is: Bucardo's VAC purges a record only
// when every target has a track row for its time, so no record goes before the safety net has
// compared its key. After a pass it writes its own track rows, for the times all of whose keys it
// compared, and only for times no open transaction may still use: at or below a fresh commit fence
// and older than the start of every open writer (two independent bounds).
//
// A key that differs is read again, with its change records before and after, a few times (the
// cutover's classify): one that still differs with its records unchanged and none pending was marked
// applied without arriving. Its key is re-queued through Bucardo (a change record, as cutover.repair
// writes one), logged with its table and key, and counted (bucardo.status, the metrics).
import { TXNTIME_LOCK_CLASS } from './bucardo/commit-fence.js';
import { trackTarget } from './bucardo/names.js';
import { classify, type ChangeLog } from './compare/in-flight.js';
import { diffRows, keyId, rowHashes, type Sides } from './compare/ranges.js';
import { insertChangeRecords, type Requeue } from './compare/requeue.js';
import { collationsDiffer, readShapes, shapeProblems, tableId } from './compare/shape.js';
import { hashMethod, TableSql } from './compare/sql.js';
import { withTransaction, type Client } from './db.js';
import type { Job } from './job.js';
import { bucardoSchemaExists, jobSyncsOnSource } from './pending.js';
import { quoteQualified } from './quote.js';

/** Keys compared per table and pass at most; the rest wait for the next pass, oldest first. */
const KEYS_PER_TABLE = 50_000;
/** Change records read per table and pass at most. */
const RECORDS_PER_TABLE = 200_000;
/** Re-reads of a differing key before it is judged (a change may be under way). */
const CLASSIFY = { rounds: 3, pauseMs: 500 };
/** Table shapes are read again after this long (a column added on both sides, say). */
const SHAPES_TTL_MS = 300_000;

/** The safety net's target in Bucardo's track tables and bucardo_delta_targets. */
export function recheckTarget(job: Pick<Job, 'dbgroupName' | 'target' | 'config'>): string {
  // With several targets (fan-out) each is re-compared on its own and keeps its own mark.
  return job.config.fanOut ? `recheck ${job.dbgroupName}:${job.target}` : `recheck ${job.dbgroupName}`;
}

export interface RequeuedKey {
  table: string;
  key: string[];
}

export interface RecheckPass {
  tables: number;
  /** Keys whose rows were compared on both sides. */
  compared: number;
  /** Keys that differed while they were changing: compared again once their new change is applied. */
  inFlight: number;
  requeued: RequeuedKey[];
  /** Change times marked rechecked (released to Bucardo's purge). */
  released: number;
  /** Tables left out, and why (no primary key, different shapes). */
  skipped: string[];
  /** A limit per pass was reached: records are waiting, the next pass should start at once. */
  behind: boolean;
}

interface TableWatch {
  id: string;
  oid: number;
  sql: TableSql;
  log: ChangeLog;
}

interface Record {
  key: string[];
  txntime: string;
  applied: boolean;
}

/**
 * One job's safety net, kept by the kicker between passes. `sides` compare rows (both in
 * COMPARABLE_SESSION's settings); `bookkeeping` is a third session on the primary for the pass's own
 * snapshot and track rows.
 */
export class Recheck {
  private watched?: { tables: TableWatch[]; skipped: string[]; readAt: number };
  private readonly target: string;

  constructor(private readonly job: Job) {
    this.target = recheckTarget(job);
  }

  async pass(sides: Sides, bookkeeping: Client): Promise<RecheckPass> {
    const result: RecheckPass = {
      tables: 0,
      compared: 0,
      inFlight: 0,
      requeued: [],
      released: 0,
      skipped: [],
      behind: false,
    };
    if (!(await bucardoSchemaExists(sides.primary))) return result;
    const watched = await this.tables(sides);
    result.tables = watched.tables.length;
    result.skipped = watched.skipped;
    if (watched.tables.length === 0) return result;
    await this.holdRecords(bookkeeping, watched.tables);
    // The fence first, then the snapshot that reads the records (as a sync run does).
    await bookkeeping.query('SELECT bucardo.console_commit_fence()');
    const writersSince = await oldestOpenWriter(bookkeeping);
    await bookkeeping.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    try {
      const requeue: Requeue[] = [];
      const releasable: string[][] = [];
      for (const table of watched.tables) {
        const { records, more } = await this.unchecked(bookkeeping, table);
        const compared = await this.compare(sides, table, records, result, requeue);
        if (more || compared.size >= KEYS_PER_TABLE) result.behind = true;
        releasable.push(timesAllCompared(records, compared));
      }
      if (requeue.length) await insertChangeRecords(sides.primary, requeue);
      for (const [i, table] of watched.tables.entries())
        result.released += await this.release(bookkeeping, table, releasable[i]!, writersSince);
      await bookkeeping.query('COMMIT');
    } catch (error) {
      await bookkeeping.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
    return result;
  }

  /** Compares the settled keys of the records (oldest first); returns the ids of the keys compared. */
  private async compare(
    sides: Sides,
    table: TableWatch,
    records: Record[],
    result: RecheckPass,
    requeue: Requeue[],
  ): Promise<Set<string>> {
    const byKey = new Map<string, { key: string[]; first: string; settled: boolean; applied: boolean }>();
    for (const record of records) {
      const id = keyId(record.key);
      const entry = byKey.get(id) ?? {
        key: record.key,
        first: record.txntime,
        settled: true,
        applied: false,
      };
      entry.settled &&= record.applied;
      entry.applied ||= record.applied;
      if (record.txntime < entry.first) entry.first = record.txntime;
      byKey.set(id, entry);
    }
    // A key with a change still pending is in flight: it comes back once that change is applied.
    const settled = [...byKey.values()]
      .filter((entry) => entry.settled)
      .sort((x, y) => (x.first < y.first ? -1 : x.first > y.first ? 1 : 0))
      .slice(0, KEYS_PER_TABLE);
    if (settled.length === 0) return new Set();
    const keys = settled.map((entry) => entry.key);
    const statement = table.sql.rowHashesFor(keys);
    const [ours, theirs] = await Promise.all([
      rowHashes(sides.primary, statement),
      rowHashes(sides.secondary, statement),
    ]);
    result.compared += keys.length;
    const diffs = diffRows(ours, theirs);
    if (diffs.length) {
      const judged = await classify(sides, table.sql, table.log, diffs, CLASSIFY);
      result.inFlight += judged.inFlight.length;
      if (judged.mismatched.length) {
        const missed = judged.mismatched.map((diff) => diff.key);
        requeue.push({ sql: table.sql, log: table.log, keys: missed });
        result.requeued.push(...missed.map((key) => ({ table: table.id, key })));
      }
    }
    return new Set(keys.map(keyId));
  }

  /**
   * The records not yet marked rechecked, oldest first, with whether Bucardo marked them applied. At
   * most RECORDS_PER_TABLE: then the records of the last time read are left for the next pass whole, so
   * that a time is never released with some of its records unread.
   */
  private async unchecked(
    bookkeeping: Client,
    table: TableWatch,
  ): Promise<{ records: Record[]; more: boolean }> {
    const { sql, log } = table;
    const { rows } = await bookkeeping.query<Record>(
      `SELECT ${sql.keyTextArray()} AS key, d.txntime::text AS txntime,
              EXISTS (SELECT 1 FROM ${log.track} t WHERE t.txntime = d.txntime AND t.target = $1) AS applied
         FROM ${log.delta} d
        WHERE NOT EXISTS (SELECT 1 FROM ${log.track} t WHERE t.txntime = d.txntime AND t.target = $2)
        ORDER BY d.txntime
        LIMIT ${RECORDS_PER_TABLE + 1}`,
      [log.target, this.target],
    );
    if (rows.length <= RECORDS_PER_TABLE) return { records: rows, more: false };
    const last = rows[rows.length - 1]!.txntime;
    return { records: rows.filter((row) => row.txntime !== last), more: true };
  }

  /**
   * Marks rechecked the times whose every key was compared, that Bucardo marked applied, and that no
   * open transaction may still use (the fence's bound and announcements, and older than every open
   * writer's start).
   */
  private async release(
    bookkeeping: Client,
    table: TableWatch,
    times: string[],
    writersSince: string | null | 'none',
  ): Promise<number> {
    if (times.length === 0 || writersSince === 'none') return 0;
    const result = await bookkeeping.query(
      `INSERT INTO ${table.log.track} (txntime, target)
       SELECT t, $2 FROM unnest($1::timestamptz[]) AS t
        WHERE bucardo.console_settled(t) AND ($3::timestamptz IS NULL OR t < $3::timestamptz)`,
      [times, this.target, writersSince],
    );
    return result.rowCount ?? 0;
  }

  /** Keeps the records of the job's tables until the safety net has compared them (see the top). */
  private async holdRecords(bookkeeping: Client, tables: TableWatch[]): Promise<void> {
    await bookkeeping.query(
      `INSERT INTO bucardo.bucardo_delta_targets (tablename, target)
       SELECT oid::oid, $2 FROM unnest($1::int8[]) AS t(oid)
        WHERE NOT EXISTS (SELECT 1 FROM bucardo.bucardo_delta_targets d WHERE d.tablename = t.oid::oid AND d.target = $2)`,
      [tables.map((table) => table.oid), this.target],
    );
  }

  /** The job's tables with change records, each with the statements to compare its rows. */
  private async tables(sides: Sides): Promise<{ tables: TableWatch[]; skipped: string[] }> {
    if (this.watched && Date.now() - this.watched.readAt < SHAPES_TTL_MS) return this.watched;
    const { rows } = await sides.primary.query<{
      schema: string;
      name: string;
      oid: string;
      delta: string;
      track: string;
    }>(
      // deltaname/trackname are stored quote_ident-ed; pg_class names let quoteQualified do the quoting.
      `SELECT DISTINCT n.nspname AS schema, c.relname AS name, c.oid::int8::text AS oid,
              d.relname AS delta, t.relname AS track
         FROM bucardo.bucardo_delta_names dn
         JOIN pg_class c ON c.oid = to_regclass(dn.tablename)
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_class d ON d.oid = to_regclass('bucardo.' || dn.deltaname)
         JOIN pg_class t ON t.oid = to_regclass('bucardo.' || dn.trackname)
        WHERE dn.sync IN ${jobSyncsOnSource('$1')}
        ORDER BY 1, 2`,
      [trackTarget(this.job.dbgroupName)],
    );
    const method = await hashMethod(sides.primary, sides.secondary);
    const [ours, theirs] = await Promise.all([
      readShapes(sides.primary, rows),
      readShapes(sides.secondary, rows),
    ]);
    const tables: TableWatch[] = [];
    const skipped: string[] = [];
    for (const row of rows) {
      const id = tableId(row);
      const shape = ours.get(id);
      const other = theirs.get(id);
      if (!shape || !other || shape.key.length === 0 || shapeProblems(shape, other).length) {
        skipped.push(id);
        continue;
      }
      tables.push({
        id,
        oid: Number(row.oid),
        sql: new TableSql(shape, method, collationsDiffer(shape, other)),
        log: {
          delta: quoteQualified('bucardo', row.delta),
          track: quoteQualified('bucardo', row.track),
          target: trackTarget(this.job.dbgroupName),
        },
      });
    }
    this.watched = { tables, skipped, readAt: Date.now() };
    return this.watched;
  }
}

/** The times all of whose records' keys were compared in this pass (and that Bucardo applied). */
function timesAllCompared(records: Record[], compared: Set<string>): string[] {
  const complete = new Map<string, boolean>();
  for (const record of records)
    complete.set(
      record.txntime,
      (complete.get(record.txntime) ?? true) && record.applied && compared.has(keyId(record.key)),
    );
  return [...complete].filter(([, all]) => all).map(([time]) => time);
}

/**
 * The start of the oldest transaction that announced a change time (a writer to a replicated table),
 * null when there is none, 'none' when a prepared transaction holds one (its start is not known).
 */
async function oldestOpenWriter(client: Client): Promise<string | null | 'none'> {
  const { rows } = await client.query<{ since: string | null; prepared: boolean }>(
    `SELECT (SELECT min(a.xact_start) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE l.locktype = 'advisory' AND l.classid = $1 AND l.objsubid = 2
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))::text AS since,
            EXISTS (SELECT 1 FROM pg_locks l
                     WHERE l.locktype = 'advisory' AND l.classid = $1 AND l.objsubid = 2 AND l.pid IS NULL) AS prepared`,
    [TXNTIME_LOCK_CLASS],
  );
  return rows[0]!.prepared ? 'none' : rows[0]!.since;
}

/** Takes the safety net's target away, so Bucardo's purge no longer waits for it (recheck off). */
export async function dropRecheckTarget(client: Client, job: Job): Promise<number> {
  if (!(await bucardoSchemaExists(client))) return 0;
  return withTransaction(client, async () => {
    const result = await client.query(
      "DELETE FROM bucardo.bucardo_delta_targets WHERE target = $1 OR starts_with(target, $1 || ':')",
      [`recheck ${job.dbgroupName}`],
    );
    return result.rowCount ?? 0;
  });
}
