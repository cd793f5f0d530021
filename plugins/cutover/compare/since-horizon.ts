// Comparing while the application writes. A verify takes a horizon before it reads anything
// (capture.ts): every change it may not see on both sides has a change record stamped at or after
// the horizon, and cutover.finish's final check re-compares every such key in the write pause. So a
// key with such a record may differ now for a good reason (its change is on its way, or was made
// after the verify began), and only the other keys of a range must be equal.
//
// Each comparison reads the two sides in REPEATABLE READ snapshots taken in a fixed order: the
// secondary's first, then the primary's. In the primary's snapshot it also reads the keys of the
// range with a change record since the horizon: the changed keys. Bucardo applies a change on the
// secondary only after it committed on the primary, so every change the secondary's snapshot holds
// is visible in the primary's later one, together with its change record. Any other key of the range
// had no change since the horizon: its primary row is the one from before the verify, and the
// secondary received it before the verify read anything (capture.ts, (c)). Such a key must be equal,
// and one that differs is a real difference, at once: no waiting for replication, no re-reads, and
// ranges that stop differing as soon as the changed keys are set apart, however busy the table.
//
// The changed keys' rows are read in the same snapshots, taken out of the range's count and hash sum
// on each side, and compared one by one: those that differ are in flight.
import { withTransaction, type Client } from '../../../src/core/db.js';
import type { ChangeLog } from '../../../src/core/compare/in-flight.js';
import {
  diffRows,
  keyId,
  rowHashes,
  sideSum,
  type Comparer,
  type KeyDiff,
  type RowHashes,
  type SideSum,
  type Sides,
} from '../../../src/core/compare/ranges.js';
import type { KeyRange, TableSql } from '../../../src/core/compare/sql.js';

/** A table whose changes Bucardo records, and the verify's horizon. */
export interface ChangeTracking {
  log: ChangeLog;
  /** Changes stamped at or after this count as changed (null: every change record kept). */
  from: string | null;
}

const BATCH_KEYS = 10_000;

/**
 * Runs `read` with the secondary's snapshot taken, then the primary's transaction open (its snapshot
 * is taken by its first statement in `read`). Both read-only and REPEATABLE READ, so every statement
 * on a side sees the same snapshot.
 */
export async function inSnapshots<T>(sides: Sides, read: () => Promise<T>): Promise<T> {
  const snapshot = 'SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY';
  return withTransaction(sides.secondary, async () => {
    // The SELECT takes the secondary's snapshot now, before the primary's transaction begins.
    await sides.secondary.query(`${snapshot}; SELECT 1`);
    return withTransaction(sides.primary, async () => {
      await sides.primary.query(snapshot);
      return read();
    });
  });
}

async function changedKeys(
  primary: Client,
  sql: TableSql,
  tracking: ChangeTracking,
  range: KeyRange,
): Promise<string[][]> {
  const statement = sql.changedKeys(tracking.log.delta, range, tracking.from);
  const { rows } = await primary.query<{ key: string[] }>(statement.text, statement.values);
  return rows.map((row) => row.key);
}

async function hashesOf(client: Client, sql: TableSql, keys: string[][]): Promise<RowHashes> {
  const hashes: RowHashes = new Map();
  for (let i = 0; i < keys.length; i += BATCH_KEYS)
    for (const [id, row] of await rowHashes(client, sql.rowHashesFor(keys.slice(i, i + BATCH_KEYS))))
      hashes.set(id, row);
  return hashes;
}

async function countOf(client: Client, sql: TableSql, keys: string[][]): Promise<number> {
  let count = 0;
  for (let i = 0; i < keys.length; i += BATCH_KEYS) {
    const statement = sql.countFor(keys.slice(i, i + BATCH_KEYS));
    const { rows } = await client.query<{ n: string }>(statement.text, statement.values);
    count += Number(rows[0]!.n);
  }
  return count;
}

/** A side's count and hash sum without the rows of the keys set apart. */
export function withoutRows(sum: SideSum, rows: RowHashes): SideSum {
  let hash = BigInt(sum.hash);
  for (const row of rows.values()) hash -= BigInt(row.hash);
  return { rows: sum.rows - rows.size, hash: hash.toString() };
}

/** Splits differing keys into those set apart (in flight) and the others (real differences). */
function splitByChange(diffs: KeyDiff[], changed: string[][]): { differing: KeyDiff[]; inFlight: KeyDiff[] } {
  const ids = new Set(changed.map(keyId));
  return {
    differing: diffs.filter((d) => !ids.has(keyId(d.key))),
    inFlight: diffs.filter((d) => ids.has(keyId(d.key))),
  };
}

/** Compares ranges with the keys changed since the horizon set apart. */
export function sinceHorizon(tracking: ChangeTracking): Comparer {
  return {
    range: (sides, sql, range) =>
      inSnapshots(sides, async () => {
        const statement = sql.checksum(range);
        const [secondary, { primary, changed }] = await Promise.all([
          sideSum(sides.secondary, statement),
          (async () => {
            const changed = await changedKeys(sides.primary, sql, tracking, range);
            return { changed, primary: await sideSum(sides.primary, statement) };
          })(),
        ]);
        const [ours, theirs] = await Promise.all([
          hashesOf(sides.primary, sql, changed),
          hashesOf(sides.secondary, sql, changed),
        ]);
        const [primaryRest, secondaryRest] = [withoutRows(primary, ours), withoutRows(secondary, theirs)];
        return {
          range,
          primary,
          secondary,
          same: primaryRest.rows === secondaryRest.rows && primaryRest.hash === secondaryRest.hash,
          setApart: changed.length,
          inFlight: diffRows(ours, theirs),
        };
      }),
    rows: (sides, sql, range) =>
      inSnapshots(sides, async () => {
        const statement = sql.rowHashes(range);
        const [theirs, { ours, changed }] = await Promise.all([
          rowHashes(sides.secondary, statement),
          (async () => {
            const changed = await changedKeys(sides.primary, sql, tracking, range);
            return { changed, ours: await rowHashes(sides.primary, statement) };
          })(),
        ]);
        return splitByChange(diffRows(ours, theirs), changed);
      }),
  };
}

export interface CountsSinceHorizon {
  /** Every row of the table on each side. */
  primary: number;
  secondary: number;
  /** The rows of keys not changed since the horizon: these must agree. */
  primaryRest: number;
  secondaryRest: number;
  /** The keys changed since the horizon (as keyId), set apart from the rest. */
  changed: Set<string>;
}

/** Exact row counts of a whole table, with the keys changed since the horizon set apart. */
export async function countSinceHorizon(
  sides: Sides,
  sql: TableSql,
  tracking: ChangeTracking,
): Promise<CountsSinceHorizon> {
  const count = async (client: Client) =>
    Number((await client.query<{ n: string }>(sql.rowCount())).rows[0]!.n);
  return inSnapshots(sides, async () => {
    const [secondary, { primary, changed }] = await Promise.all([
      count(sides.secondary),
      (async () => {
        const changed = await changedKeys(sides.primary, sql, tracking, {});
        return { changed, primary: await count(sides.primary) };
      })(),
    ]);
    const [ours, theirs] = await Promise.all([
      countOf(sides.primary, sql, changed),
      countOf(sides.secondary, sql, changed),
    ]);
    return {
      primary,
      secondary,
      primaryRest: primary - ours,
      secondaryRest: secondary - theirs,
      changed: new Set(changed.map(keyId)),
    };
  });
}
