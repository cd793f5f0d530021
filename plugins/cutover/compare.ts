// One key range compared on both sides at once: row count and hash sum from each server.
import type { Client } from '../../src/core/db.js';
import type { KeyRange, Statement, TableSql } from './sql.js';

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
  primary: SideSum;
  secondary: SideSum;
  same: boolean;
}

async function sum(client: Client, statement: Statement): Promise<SideSum> {
  const { rows } = await client.query<{ rows: string; hash: string }>(statement.text, statement.values);
  return { rows: Number(rows[0]!.rows), hash: rows[0]!.hash };
}

export async function compareRange(sides: Sides, sql: TableSql, range: KeyRange): Promise<RangeComparison> {
  const statement = sql.checksum(range);
  const [primary, secondary] = await Promise.all([
    sum(sides.primary, statement),
    sum(sides.secondary, statement),
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
