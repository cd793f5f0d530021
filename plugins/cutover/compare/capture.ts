// What can have changed since a verify: the keys Bucardo's change capture recorded on the primary.
// cutover.finish re-compares only those keys while writes are stopped, so the write pause depends
// on how much was written since the verify, not on the size of the database (docs/cutover.md).
//
// Two facts make this sound.
//
// 1. The change records must still be there when finish reads them. Bucardo's VAC deletes a delta
//    row once every target listed for its table in bucardo_delta_targets has applied it (one track
//    row per target) and it is older than 45 s; it runs every bucardo.purge_interval. The verify
//    therefore lists one more "target" per table, the hold, which never applies anything: no delta
//    row of the sync's tables is purged while the hold is in place. Bucardo itself reads
//    bucardo_delta_targets nowhere else (only its purge does), and every backlog query of this tool
//    asks for the target 'dbgroup <the job's dbgroup>', so the hold changes nothing else. Its cost: the delta
//    and track tables keep every change until cutover.finish (or cutover.release) lifts the hold.
//
// 2. Which records to take. A delta row carries a time (txntime) no earlier than its transaction's
//    start (the commit fence's default, docs/how-bucardo-behaves.md §19), not its commit time. The
//    verify reads every chunk after the horizon was taken, in this order:
//      a. the hold is committed;
//      b. pg_stat_activity is read (V = that statement's start): the oldest xact_start O of any
//         transaction open in the database, and whether a prepared transaction exists;
//      c. in a later snapshot S, the oldest txntime P of a change not yet applied to the secondary.
//    Horizon H = least(V, O, P). Take any change C of a transaction T, committed at c:
//      - T started after V: txntime >= V >= H.
//      - T started before V and was still open at b: txntime >= T's xact_start >= O >= H.
//      - T committed before b, so before S: in S it is either pending (txntime >= P >= H) or
//        applied, and Bucardo commits on the secondary before it marks a change applied: the
//        secondary held C before S, before the verify read any chunk, so the verify compared it.
//    A prepared transaction shows only when it was prepared, not when it began: when one exists at
//    b, H is open (every change record kept is taken). So every change the verify may not have
//    seen on both sides has a delta row with txntime >= H, kept by the hold (none of them was
//    applied before the hold was in place: they were committed after b, or pending at S).
//    TRUNCATE leaves no delta row but a row in bucardo_truncate_trigger stamped with now():
//    a table truncated since H is compared in full.
import { trackTarget } from '../../../src/core/bucardo/names.js';
import { withTransaction, type Client } from '../../../src/core/db.js';
import type { Job } from '../../../src/core/job.js';
import { bucardoSchemaExists, jobSyncsOnSource } from '../../../src/core/pending.js';

/** What the hold is named after (its sync) and whose change records it keeps (its dbgroup's). */
type HeldJob = Pick<Job, 'syncName' | 'dbgroupName' | 'target' | 'config'>;

/** The extra target that keeps Bucardo's VAC from purging the sync's change records. */
export function holdTarget(syncName: string): string {
  return `cutover hold ${syncName}`;
}

/**
 * Whose hold it is: the sync's, and with several targets (fan-out) the sync's for one target, so
 * that a verify of one target does not renew the hold another target's verify counts on.
 */
export function holdKey(job: Pick<Job, 'syncName' | 'target' | 'config'>): string {
  return job.config.fanOut ? `${job.syncName}:${job.target}` : job.syncName;
}

/** Recorded with a verify: from which txntime on its changes must be re-compared by the final check. */
export interface ChangeHorizon {
  /** Primary's clock when the horizon was taken (V). */
  takenAt: string;
  /** The horizon H; null: every change record kept (a prepared transaction was open). */
  from: string | null;
  /** When the hold began (the oldest hold row): records older than the horizon were kept since then. */
  heldSince: string;
  /** What set the horizon, for the operator. */
  reason: string;
}

async function syncTableOids(client: Client, job: HeldJob): Promise<number[]> {
  const { rows } = await client.query<{ oid: number }>(
    `SELECT DISTINCT to_regclass(tablename)::oid::int8 AS oid FROM bucardo.bucardo_delta_names
      WHERE sync IN ${jobSyncsOnSource('$1')} AND to_regclass(tablename) IS NOT NULL`,
    [trackTarget(job.dbgroupName)],
  );
  return rows.map((row) => Number(row.oid));
}

const HOLD_ROWS = 'SELECT count(*) AS n FROM bucardo.bucardo_delta_targets WHERE target = $1';
const ANY_HOLD_ROWS =
  "SELECT count(*) AS n FROM bucardo.bucardo_delta_targets WHERE target = $1 OR starts_with(target, $1 || ':')";

/**
 * Puts the hold in place (renewing it: records Bucardo's VAC would have purged by now go first, with
 * Bucardo's own purge function), then takes the horizon. Undefined when the primary has no change
 * capture for this sync (Bucardo not set up): the final check must then compare everything.
 */
export async function holdAndTakeHorizon(primary: Client, job: HeldJob): Promise<ChangeHorizon | undefined> {
  if (!(await bucardoSchemaExists(primary))) return undefined;
  const oids = await syncTableOids(primary, job);
  if (oids.length === 0) return undefined;
  const target = holdTarget(holdKey(job));
  await withTransaction(primary, async () => {
    const { rows: held } = await primary.query<{ n: string }>(HOLD_ROWS, [target]);
    if (Number(held[0]!.n) > 0) {
      // An earlier verify's hold: let go of what it kept (what the VAC would have purged), start again.
      await primary.query('DELETE FROM bucardo.bucardo_delta_targets WHERE target = $1', [target]);
      await primary.query("SELECT bucardo.bucardo_purge_delta('45 seconds')");
    }
    await primary.query(
      'INSERT INTO bucardo.bucardo_delta_targets (tablename, target) SELECT oid::oid, $2 FROM unnest($1::int8[]) AS t(oid)',
      [oids, target],
    );
  });
  return takeHorizon(primary, job, 'the verify');
}

/**
 * (b) and (c) of the reasoning above, with the hold in place: the horizon of a comparison that starts
 * now (`who`: the verify, or cutover.finish's pre-check, which takes one of its own without renewing
 * the hold, so the records since the last verify's horizon stay kept; docs/cutover.md).
 */
export async function takeHorizon(primary: Client, job: HeldJob, who: string): Promise<ChangeHorizon> {
  const target = holdTarget(holdKey(job));
  // (b): its own statement, after the hold is committed and before (c).
  const { rows: activity } = await primary.query<{
    taken_at: string;
    oldest_open: string | null;
    prepared: boolean;
    held_since: string;
  }>(
    `
    SELECT now()::text AS taken_at,
           (SELECT min(xact_start) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL)::text AS oldest_open,
           EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE database = current_database()) AS prepared,
           (SELECT min(cdate) FROM bucardo.bucardo_delta_targets WHERE target = $1)::text AS held_since`,
    [target],
  );
  const { taken_at: takenAt, oldest_open: oldestOpen, prepared, held_since: heldSince } = activity[0]!;
  // (c): a later snapshot.
  const { rows: pending } = await primary.query<{ oldest: string | null }>(
    `
    SELECT min((xpath('/row/m/text()', query_to_xml(format(
             'SELECT min(d.txntime) AS m FROM bucardo.%s d
               WHERE NOT EXISTS (SELECT 1 FROM bucardo.%s t WHERE t.txntime = d.txntime AND t.target = %L)',
             dn.deltaname, dn.trackname, $1::text), false, true, '')))[1]::text::timestamptz)::text AS oldest
      FROM bucardo.bucardo_delta_names dn WHERE dn.sync IN ${jobSyncsOnSource('$1')}`,
    [trackTarget(job.dbgroupName)],
  );
  const oldestPending = pending[0]?.oldest ?? null;
  if (prepared) {
    return {
      takenAt,
      from: null,
      heldSince,
      reason: `a prepared transaction was open when ${who} started: every kept change record counts`,
    };
  }
  const candidates: [string, string][] = [[takenAt, `${who}'s start`]];
  if (oldestOpen) candidates.push([oldestOpen, `the oldest transaction open when ${who} started`]);
  if (oldestPending)
    candidates.push([oldestPending, `the oldest change not yet replicated when ${who} started`]);
  // Compared by the server: the texts keep microseconds that a JavaScript Date would drop.
  const { rows: least } = await primary.query<{ i: number }>(
    'SELECT i::int FROM unnest($1::timestamptz[]) WITH ORDINALITY AS c(at, i) ORDER BY at, i LIMIT 1',
    [candidates.map(([at]) => at)],
  );
  const [from, reason] = candidates[least[0]!.i - 1]!;
  return { takenAt, from, heldSince, reason };
}

/** Lifts the hold: Bucardo's VAC purges the kept records at its next run. Returns whether one was there. */
export async function releaseHold(primary: Client, syncName: string): Promise<boolean> {
  if (!(await bucardoSchemaExists(primary))) return false;
  // A sync's name lifts every target's hold (fan-out: `<sync>:<target>`); a holdKey lifts that one.
  const { rowCount } = await primary.query(
    "DELETE FROM bucardo.bucardo_delta_targets WHERE target = $1 OR starts_with(target, $1 || ':')",
    [holdTarget(syncName)],
  );
  return (rowCount ?? 0) > 0;
}

/** Whether a hold is in place now (for cutover.release's check). */
export async function holdInPlace(primary: Client, syncName: string): Promise<boolean> {
  if (!(await bucardoSchemaExists(primary))) return false;
  const { rows } = await primary.query<{ n: string }>(ANY_HOLD_ROWS, [holdTarget(syncName)]);
  return Number(rows[0]!.n) > 0;
}

/**
 * Whether the hold recorded with a verify is still whole: one hold row for each of the sync's tables,
 * all in place since (at or before) the verify's horizon was taken. Otherwise records may be gone.
 */
export async function holdIntact(
  primary: Client,
  job: HeldJob,
  horizon: ChangeHorizon,
): Promise<{ intact: boolean; detail: string }> {
  if (!(await bucardoSchemaExists(primary)))
    return { intact: false, detail: 'the bucardo schema is gone from the primary' };
  const oids = await syncTableOids(primary, job);
  const { rows } = await primary.query<{ held: string; newest: string | null; late: boolean }>(
    `
    SELECT count(DISTINCT tablename) AS held, max(cdate)::text AS newest,
           coalesce(bool_or(cdate > $3::timestamptz), false) AS late
      FROM bucardo.bucardo_delta_targets WHERE target = $1 AND tablename = ANY($2::int8[]::oid[])`,
    [holdTarget(holdKey(job)), oids, horizon.takenAt],
  );
  const row = rows[0]!;
  if (Number(row.held) < oids.length) {
    return {
      intact: false,
      detail: `the hold on Bucardo's purge covers ${row.held} of the sync's ${oids.length} table(s) (lifted, or tables added since the verify)`,
    };
  }
  if (row.late) {
    return {
      intact: false,
      detail: `the hold on Bucardo's purge was renewed at ${row.newest}, after the last verify began (another verify started since?)`,
    };
  }
  return { intact: true, detail: `held since ${horizon.heldSince}` };
}

/** Tables (as schema.name) of the sync truncated at or after the horizon (ever, when it is open). */
export async function truncatedSince(
  primary: Client,
  job: HeldJob,
  from: string | null,
): Promise<Set<string>> {
  const { rows: present } = await primary.query<{ present: boolean }>(
    "SELECT to_regclass('bucardo.bucardo_truncate_trigger') IS NOT NULL AS present",
  );
  if (!present[0]!.present) return new Set();
  const { rows } = await primary.query<{ table: string }>(
    `
    SELECT DISTINCT format('%s.%s', n.nspname, c.relname) AS table
      FROM bucardo.bucardo_truncate_trigger tt
      JOIN pg_class c ON c.oid = tt.tablename JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE tt.sync IN ${jobSyncsOnSource('$1')} AND ($2::timestamptz IS NULL OR tt.cdate >= $2::timestamptz)`,
    [trackTarget(job.dbgroupName), from],
  );
  return new Set(rows.map((row) => row.table));
}
