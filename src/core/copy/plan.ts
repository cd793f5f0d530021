// copy_data: parallel — what to copy: the sync's tables on the primary, their columns, and for a large
// table with a single integer primary key the key ranges it is split into. The plan is computed once
// per sync and kept in the copy's state file, so a resumed copy uses the same ranges.
import type { Client } from '../db.js';
import { quoteIdent, quoteQualified } from '../quote.js';

/** One piece of work: a whole table, or the rows of one key range of it. */
export interface CopyUnit {
  /** `schema.table`, or `schema.table#3` for its fourth range: the key recorded when it is done. */
  id: string;
  schema: string;
  name: string;
  /** Columns copied (generated columns are left out: COPY cannot write them). */
  columns: string[];
  /** For a range: the key column and its bounds (lower included, upper excluded; absent = open). */
  range?: { column: string; from?: string; to?: string };
  /** The primary's estimates, for ordering (largest first) and the progress figures. */
  rows: number;
  bytes: number;
  /**
   * An ordinary table (relkind 'r'), so a whole-table unit can be read with COPY table TO, which skips
   * the executor; absent in plans recorded before this was known (they use COPY (SELECT ...)).
   */
  plain?: boolean;
}

/** The primary's COPY TO statement for a unit: the table itself when whole, else a SELECT of its range. */
export function copyOutStatement(unit: CopyUnit): string {
  const table = quoteQualified(unit.schema, unit.name);
  const columns = unit.columns.map(quoteIdent).join(', ');
  // COPY table TO reads only the table's own rows, as SELECT ... FROM ONLY does.
  if (!unit.range && unit.plain) return `COPY ${table} (${columns}) TO STDOUT`;
  return `COPY (SELECT ${columns} FROM ONLY ${table}${rangePredicate(unit)}) TO STDOUT`;
}

/** Key types whose values are plain integers: they can go into SQL text as validated literals. */
const INTEGER_TYPES = new Set(['smallint', 'integer', 'bigint']);

/** Most ranges a table is cut into: beyond that the per-range overhead outweighs the parallelism. */
const MAX_RANGES = 64;

/** Rows sampled to place range bounds (percentiles of the key over a block sample). */
const SAMPLE_ROWS = 100_000;

interface TableFacts {
  plain: boolean;
  rows: number;
  bytes: number;
  columns: string[];
  key: { column: string; type: string }[];
}

async function tableFacts(client: Client, schema: string, name: string): Promise<TableFacts> {
  const table = quoteQualified(schema, name);
  const {
    rows: [facts],
  } = await client.query<{
    plain: boolean;
    rows: string;
    bytes: string;
    columns: string[];
    key: string[];
    types: string[];
  }>(
    // relpages, not pg_relation_size: planning must not wait for a lock on a busy table.
    `SELECT c.relkind = 'r' AS plain, c.reltuples::bigint AS rows, c.relpages::bigint * current_setting('block_size')::bigint AS bytes,
            ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
                     AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum) AS columns,
            ARRAY(SELECT a.attname::text FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, n)
                    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                   WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY k.n) AS key,
            ARRAY(SELECT format_type(a.atttypid, NULL) FROM pg_index i
                    CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, n)
                    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                   WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY k.n) AS types
       FROM pg_class c WHERE c.oid = $1::regclass`,
    [table],
  );
  let rows = Number(facts!.rows);
  let bytes = Number(facts!.bytes);
  // Never analyzed (reltuples -1, or 0 before PostgreSQL 14): count a small table, guess a large one.
  if (rows <= 0) {
    bytes = Number(
      (await client.query<{ b: string }>('SELECT pg_relation_size($1::regclass) AS b', [table])).rows[0]!.b,
    );
    rows =
      bytes < 64 * 1024 * 1024
        ? Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n)
        : Math.round(bytes / 100);
  }
  return {
    plain: facts!.plain,
    rows: Math.max(0, rows),
    bytes,
    columns: facts!.columns,
    key: facts!.key.map((column, i) => ({ column, type: facts!.types[i]! })),
  };
}

/**
 * Range bounds for a single integer key: percentiles over a block sample of about SAMPLE_ROWS rows
 * (the whole table when it is small), so ranges hold similar row counts even when the keys are not
 * evenly spread. Duplicated bounds (few distinct keys) are merged.
 */
async function rangeBounds(
  client: Client,
  table: string,
  column: string,
  rows: number,
  ranges: number,
): Promise<string[]> {
  const percent = Math.min(100, Math.max(0.01, (100 * SAMPLE_ROWS) / Math.max(1, rows)));
  const fractions = Array.from({ length: ranges - 1 }, (_, i) => (i + 1) / ranges);
  const {
    rows: [sample],
  } = await client.query<{ bounds: string[] | null }>(
    `SELECT percentile_disc($1::float8[]) WITHIN GROUP (ORDER BY ${quoteIdent(column)})::text[] AS bounds
       FROM ${table} TABLESAMPLE SYSTEM (${percent})`,
    [fractions],
  );
  const bounds = (sample?.bounds ?? []).filter((b): b is string => b !== null && /^-?\d+$/.test(b));
  return [...new Set(bounds)].sort((x, y) => (BigInt(x) < BigInt(y) ? -1 : BigInt(x) > BigInt(y) ? 1 : 0));
}

/**
 * The units of one sync's tables, read on the primary. A table with more than `splitRows` rows and a
 * single-column integer primary key becomes ranges of about `splitRows` rows; any other table (a
 * composite or non-integer key) is copied whole. Largest first, so the long ones start early.
 */
export async function planCopy(
  client: Client,
  tables: { schema: string; name: string }[],
  splitRows: number,
): Promise<CopyUnit[]> {
  const units: CopyUnit[] = [];
  for (const { schema, name } of tables) {
    const facts = await tableFacts(client, schema, name);
    const base = { schema, name, columns: facts.columns, plain: facts.plain };
    const key = facts.key.length === 1 && INTEGER_TYPES.has(facts.key[0]!.type) ? facts.key[0]! : undefined;
    const wanted = Math.min(MAX_RANGES, Math.ceil(facts.rows / splitRows));
    const bounds =
      key && wanted > 1
        ? await rangeBounds(client, quoteQualified(schema, name), key.column, facts.rows, wanted)
        : [];
    if (!key || bounds.length === 0) {
      units.push({ ...base, id: `${schema}.${name}`, rows: facts.rows, bytes: facts.bytes });
      continue;
    }
    const parts = bounds.length + 1;
    for (let i = 0; i < parts; i++) {
      units.push({
        ...base,
        id: `${schema}.${name}#${i}`,
        range: {
          column: key.column,
          ...(i > 0 ? { from: bounds[i - 1] } : {}),
          ...(i < bounds.length ? { to: bounds[i] } : {}),
        },
        rows: Math.round(facts.rows / parts),
        bytes: Math.round(facts.bytes / parts),
      });
    }
  }
  return units.sort((x, y) => y.bytes - x.bytes);
}

/** The unit's WHERE clause ('' for a whole table). Bounds are integers checked again here. */
export function rangePredicate(unit: CopyUnit): string {
  if (!unit.range) return '';
  const { column, from, to } = unit.range;
  const literal = (value: string) => {
    if (!/^-?\d+$/.test(value)) throw new Error(`range bound is not an integer: ${value}`);
    return value;
  };
  const parts: string[] = [];
  if (from !== undefined) parts.push(`${quoteIdent(column)} >= ${literal(from)}`);
  if (to !== undefined) parts.push(`${quoteIdent(column)} < ${literal(to)}`);
  return parts.length ? ` WHERE ${parts.join(' AND ')}` : '';
}

/** The tables a plan covers, with how many units each has. */
export function planTables(units: CopyUnit[]): Map<string, string[]> {
  const tables = new Map<string, string[]>();
  for (const unit of units) {
    const table = `${unit.schema}.${unit.name}`;
    tables.set(table, [...(tables.get(table) ?? []), unit.id]);
  }
  return tables;
}
