// Key ranges: cutting a table into ranges of about chunk_rows rows, on the primary's keys (the first
// range is open below and the last open above, so rows that exist only on the secondary are covered
// too), and one range compared on both sides at once: row count and hash sum from each server.
import type { Client } from '../db.js';
import { quoteIdent } from '../quote.js';
import type { KeyRange, Statement, TableSql } from './sql.js';

/**
 * A single integer key: cut [min, max] into equal widths (two index lookups, no walk). Sparse keys
 * give uneven chunks, which only costs time.
 */
export async function integerChunks(primary: Client, sql: TableSql, chunkRows: number): Promise<KeyRange[]> {
  const key = sql.shape.key[0]!;
  const { rows } = await primary.query<{ low: string | null; high: string | null }>(
    `SELECT min(k)::text AS low, max(k)::text AS high FROM (SELECT ${quoteIdent(key.name)} AS k FROM ${sql.table}) s`,
  );
  const { low, high } = rows[0]!;
  if (low === null || high === null) return [{}];
  const min = BigInt(low);
  const span = BigInt(high) - min + 1n;
  const rowEstimate =
    sql.shape.estimatedRows > 0 ? sql.shape.estimatedRows : await plannerEstimate(primary, sql);
  // Unique integer keys: never more rows than values between min and max.
  const estimate =
    rowEstimate > 0 && BigInt(Math.ceil(rowEstimate)) < span ? BigInt(Math.ceil(rowEstimate)) : span;
  const pieces = (estimate + BigInt(chunkRows) - 1n) / BigInt(chunkRows);
  if (pieces <= 1n) return [{}];
  const width = (span + pieces - 1n) / pieces;
  const ranges: KeyRange[] = [];
  for (let i = 0n; i < pieces; i++) {
    const lower = i === 0n ? undefined : [String(min + i * width)];
    const upper = i === pieces - 1n ? undefined : [String(min + (i + 1n) * width)];
    ranges.push({ ...(lower ? { lower } : {}), ...(upper ? { upper } : {}) });
  }
  return ranges;
}

/** A table never analyzed has no reltuples; the planner still estimates its rows from its size. */
async function plannerEstimate(client: Client, sql: TableSql): Promise<number> {
  const { rows } = await client.query<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>(
    `EXPLAIN (FORMAT JSON) SELECT 1 FROM ${sql.table}`,
  );
  return Number(rows[0]?.['QUERY PLAN'][0]?.Plan['Plan Rows'] ?? 0);
}

/**
 * Any key: walk the primary key index, one short statement per chunk (OFFSET chunk_rows from the
 * previous boundary). Yields ranges as it goes, so checksumming starts at once.
 */
export async function* walkedChunks(
  primary: Client,
  sql: TableSql,
  chunkRows: number,
): AsyncGenerator<KeyRange> {
  if (sql.shape.estimatedRows > 0 && sql.shape.estimatedRows < chunkRows / 2) {
    // Clearly small: one statement for the whole table. (0 or -1 may be a table loaded since its last
    // ANALYZE, so those are walked; a walk of a small table is one statement anyway.)
    yield {};
    return;
  }
  let lower: string[] | undefined;
  for (;;) {
    const statement = sql.nextBoundary(lower, chunkRows);
    const { rows } = await primary.query<{ key: string[] }>(statement.text, statement.values);
    const next = rows[0]?.key;
    if (!next) {
      yield lower ? { lower } : {};
      return;
    }
    yield lower ? { lower, upper: next } : { upper: next };
    lower = next;
  }
}

/** A connection to each side, used together. */
export interface Sides {
  primary: Client;
  secondary: Client;
}

export interface SideSum {
  rows: number;
  hash: string;
}

export interface RangeComparison {
  range: KeyRange;
  /** Every row of the range on each side. */
  primary: SideSum;
  secondary: SideSum;
  /** Equal: every row, or with a horizon every row but those of the keys set apart (since-horizon.ts). */
  same: boolean;
  /** With a horizon: the keys set apart because they changed since it (compared one by one). */
  setApart?: number;
  /** With a horizon: those of the keys set apart that differ (in flight). */
  inFlight?: KeyDiff[];
}

/** A range's rows compared one by one: what differs, and (with a horizon) what of it is in flight. */
export interface RowComparison {
  differing: KeyDiff[];
  inFlight: KeyDiff[];
}

/**
 * How ranges are compared, as a whole and row by row: plainly (both sides at once), or with the keys
 * changed since a verify's horizon set apart (since-horizon.ts).
 */
export interface Comparer {
  range(sides: Sides, sql: TableSql, range: KeyRange): Promise<RangeComparison>;
  rows(sides: Sides, sql: TableSql, range: KeyRange): Promise<RowComparison>;
}

export async function sideSum(client: Client, statement: Statement): Promise<SideSum> {
  const { rows } = await client.query<{ rows: string; hash: string }>(statement.text, statement.values);
  return { rows: Number(rows[0]!.rows), hash: rows[0]!.hash };
}

export async function compareRange(sides: Sides, sql: TableSql, range: KeyRange): Promise<RangeComparison> {
  const statement = sql.checksum(range);
  const [primary, secondary] = await Promise.all([
    sideSum(sides.primary, statement),
    sideSum(sides.secondary, statement),
  ]);
  return {
    range,
    primary,
    secondary,
    same: primary.rows === secondary.rows && primary.hash === secondary.hash,
  };
}

export type RowHashes = Map<string, { key: string[]; hash: string }>;

export async function rowHashes(client: Client, statement: Statement): Promise<RowHashes> {
  const { rows } = await client.query<{ key: string[]; hash: string }>(statement.text, statement.values);
  return new Map(rows.map((row) => [keyId(row.key), row]));
}

export function keyId(key: string[]): string {
  return JSON.stringify(key);
}

/** Where a row differs: only on the primary (missing on the secondary), only on the secondary, or in content. */
export type DiffKind = 'missing' | 'extra' | 'changed';

export interface KeyDiff {
  key: string[];
  kind: DiffKind;
}

export function diffRows(primary: RowHashes, secondary: RowHashes): KeyDiff[] {
  const diffs: KeyDiff[] = [];
  for (const [id, row] of primary) {
    const other = secondary.get(id);
    if (!other) diffs.push({ key: row.key, kind: 'missing' });
    else if (other.hash !== row.hash) diffs.push({ key: row.key, kind: 'changed' });
  }
  for (const [id, row] of secondary) if (!primary.has(id)) diffs.push({ key: row.key, kind: 'extra' });
  return diffs;
}

/** Both sides read at once; nothing is set apart, so nothing is in flight at this level. */
export const plainComparer: Comparer = {
  range: compareRange,
  rows: async (sides, sql, range) => {
    const statement = sql.rowHashes(range);
    const [primary, secondary] = await Promise.all([
      rowHashes(sides.primary, statement),
      rowHashes(sides.secondary, statement),
    ]);
    return { differing: diffRows(primary, secondary), inFlight: [] };
  },
};
