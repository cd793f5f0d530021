// The statements verify sends for one table. Rows are identified by their primary key (values as
// text, cast back to the key's type in the statement) and compared by a hash of their text form,
// summed per key range: order-independent, computed on the server, one short statement per chunk.
import type { Client } from '../db.js';
import { quoteIdent, quoteQualified } from '../quote.js';
import type { Column, TableShape } from './shape.js';

/**
 * hashtext: hashtextextended of the row's text (PostgreSQL 11+), about twice as fast as md5;
 * md5: for older servers. Both sides always use the same method.
 */
export type HashMethod = 'hashtext' | 'md5';

/** A key range: from `lower` (inclusive) to `upper` (exclusive); a missing end is open. */
export interface KeyRange {
  lower?: string[];
  upper?: string[];
}

export interface Statement {
  text: string;
  values: unknown[];
}

export class TableSql {
  readonly table: string;
  private readonly rowText: string;
  private readonly keyColumns: string[];
  private readonly keyTypes: string[];

  constructor(
    readonly shape: TableShape,
    readonly method: HashMethod,
    forceCollationC: boolean,
  ) {
    this.table = quoteQualified(shape.schema, shape.name);
    // Columns by name in the primary's order, so a different column order on the secondary does not matter.
    this.rowText = `ROW(${shape.columns.map(comparableColumn).join(', ')})::text`;
    this.keyColumns = shape.key.map(
      (k) => `${quoteIdent(k.name)}${forceCollationC && k.collation ? ' COLLATE "C"' : ''}`,
    );
    // format_type gives a type name that is valid SQL (quoted where needed).
    this.keyTypes = shape.key.map((k) => `${k.type}${forceCollationC && k.collation ? ' COLLATE "C"' : ''}`);
  }

  get hasKey(): boolean {
    return this.keyColumns.length > 0;
  }

  private rowHash(): string {
    return this.method === 'hashtext'
      ? `hashtextextended(${this.rowText}, 0)`
      : `('x' || left(md5(${this.rowText}), 16))::bit(64)::bigint`;
  }

  keyTuple(): string {
    return this.keyColumns.length === 1 ? this.keyColumns[0]! : `(${this.keyColumns.join(', ')})`;
  }

  keyTextArray(): string {
    return `ARRAY[${this.shape.key.map((k) => `${quoteIdent(k.name)}::text`).join(', ')}]`;
  }

  private boundTuple(firstParam: number): string {
    const parts = this.keyTypes.map((type, i) => `$${firstParam + i}::${type}`);
    return parts.length === 1 ? parts[0]! : `(${parts.join(', ')})`;
  }

  private orderBy(): string {
    return this.keyColumns.join(', ');
  }

  /** WHERE clause for a range, with its parameters numbered from firstParam. */
  private where(range: KeyRange, firstParam = 1): { text: string; values: unknown[] } {
    const { conditions, values } = this.rangeConditions(range, firstParam);
    return { text: conditions.length ? `WHERE ${conditions.join(' AND ')}` : '', values };
  }

  private rangeConditions(range: KeyRange, firstParam: number): { conditions: string[]; values: unknown[] } {
    const conditions: string[] = [];
    const values: unknown[] = [];
    if (range.lower) {
      conditions.push(`${this.keyTuple()} >= ${this.boundTuple(firstParam + values.length)}`);
      values.push(...range.lower);
    }
    if (range.upper) {
      conditions.push(`${this.keyTuple()} < ${this.boundTuple(firstParam + values.length)}`);
      values.push(...range.upper);
    }
    return { conditions, values };
  }

  /** Row count and the sum of row hashes in a range. */
  checksum(range: KeyRange): Statement {
    const where = this.where(range);
    return {
      text: `SELECT count(*)::text AS rows, coalesce(sum(${this.rowHash()}), 0)::text AS hash FROM ${this.table} ${where.text}`,
      values: where.values,
    };
  }

  /** The table's exact row count (a second aggregate, independent of the chunk checksums). */
  rowCount(): string {
    return `SELECT count(*)::text AS n FROM ${this.table}`;
  }

  /** The key `offset` rows past `from` (inclusive) in key order: the start of the next chunk. */
  nextBoundary(from: string[] | undefined, offset: number): Statement {
    const where = this.where(from ? { lower: from } : {});
    return {
      text: `SELECT ${this.keyTextArray()} AS key FROM ${this.table} ${where.text} ORDER BY ${this.orderBy()} OFFSET $${where.values.length + 1} LIMIT 1`,
      values: [...where.values, offset],
    };
  }

  /** Keys that cut a range into pieces of `step` rows (for narrowing a differing range). */
  splitPoints(range: KeyRange, step: number): Statement {
    const where = this.where(range);
    return {
      text: `SELECT key FROM (SELECT ${this.keyTextArray()} AS key, row_number() OVER (ORDER BY ${this.orderBy()}) AS n FROM ${this.table} ${where.text}) s
              WHERE n > 1 AND (n - 1) % $${where.values.length + 1} = 0 ORDER BY n`,
      values: [...where.values, step],
    };
  }

  /** Every row of a (small) range as key and hash. */
  rowHashes(range: KeyRange): Statement {
    const where = this.where(range);
    return {
      text: `SELECT ${this.keyTextArray()} AS key, ${this.rowHash()}::text AS hash FROM ${this.table} ${where.text} ORDER BY ${this.orderBy()}`,
      values: where.values,
    };
  }

  /** Key and hash of the rows with these keys (rows that do not exist are simply absent). */
  rowHashesFor(keys: string[][]): Statement {
    return {
      text: `SELECT ${this.keyTextArray()} AS key, ${this.rowHash()}::text AS hash FROM ${this.table}
              WHERE ${this.keyTuple()} IN (SELECT ${this.castKeys('w')} FROM ${this.unnestKeys('w')})`,
      values: transposeKeys(keys, this.shape.key.length),
    };
  }

  /**
   * The keys of a range that have a change record in `delta` (Bucardo's delta table of this table on
   * the primary, whose key columns carry the table's names and types) stamped at or after `from`;
   * every recorded key of the range when `from` is null.
   */
  changedKeys(delta: string, range: KeyRange, from: string | null): Statement {
    const { conditions, values } = this.rangeConditions(range, 2);
    return {
      text: `SELECT DISTINCT ${this.keyTextArray()} AS key FROM ${delta}
              WHERE ${['($1::timestamptz IS NULL OR txntime >= $1::timestamptz)', ...conditions].join(' AND ')}`,
      values: [from, ...values],
    };
  }

  /** How many of the given keys have a row. */
  countFor(keys: string[][]): Statement {
    return {
      text: `SELECT count(*)::text AS n FROM ${this.table}
              WHERE ${this.keyTuple()} IN (SELECT ${this.castKeys('w')} FROM ${this.unnestKeys('w')})`,
      values: transposeKeys(keys, this.shape.key.length),
    };
  }

  /** The given keys, cast from text to the key's types, as a select list over the unnest alias. */
  castKeys(alias: string): string {
    return this.keyTypes.map((type, i) => `${alias}.c${i}::${type}`).join(', ');
  }

  unnestKeys(alias: string, firstParam = 1): string {
    const arrays = this.keyTypes.map((_, i) => `$${firstParam + i}::text[]`).join(', ');
    return `unnest(${arrays}) AS ${alias}(${this.keyTypes.map((_, i) => `c${i}`).join(', ')})`;
  }
}

const FLOAT_SEND: Record<string, string> = { real: 'float4send', 'double precision': 'float8send' };

/**
 * A column as it enters the row text. Floats by their bits: their text depends on the server's major
 * version (before PostgreSQL 12, extra_float_digits = 3 prints 17 significant digits, from 12 the
 * shortest exact form), so the same value would hash differently on an 11 primary and a 15
 * secondary, and a lower extra_float_digits would hide a real difference in the last digits.
 */
export function comparableColumn(column: Column): string {
  const name = quoteIdent(column.name);
  const send = FLOAT_SEND[column.type];
  if (send) return `${send}(${name})`;
  const elementSend = column.type.endsWith('[]') ? FLOAT_SEND[column.type.slice(0, -2)] : undefined;
  if (!elementSend) return name;
  // Arrays of floats element by element, with their bounds, so '{}', NULL and '[0:1]={..}' stay apart.
  return (
    `CASE WHEN ${name} IS NOT NULL THEN coalesce(array_dims(${name}), '[]') || (SELECT array_agg(${elementSend}(e) ORDER BY o)` +
    ` FROM unnest(${name}) WITH ORDINALITY AS u(e, o))::text END`
  );
}

/** [[a1, b1], [a2, b2]] → [[a1, a2], [b1, b2]]: one text[] parameter per key column. */
export function transposeKeys(keys: string[][], width: number): string[][] {
  return Array.from({ length: width }, (_, i) => keys.map((key) => key[i]!));
}

/** Session settings that make a row's text form the same on both servers. */
export const COMPARABLE_SESSION = [
  "SET TimeZone = 'UTC'",
  "SET DateStyle = 'ISO, YMD'",
  "SET IntervalStyle = 'postgres'",
  'SET extra_float_digits = 3',
  "SET bytea_output = 'hex'",
  "SET lc_monetary = 'C'",
  "SET search_path = 'pg_catalog'",
  // Verify spreads its work over its own connections; parallel workers per chunk would only contend.
  'SET max_parallel_workers_per_gather = 0',
];

/** Puts a session in COMPARABLE_SESSION's settings. */
export async function prepareSession(client: Client): Promise<void> {
  await client.query(COMPARABLE_SESSION.join('; '));
}

/** The row hash both servers can compute: hashtextextended from PostgreSQL 11 on, md5 before. */
export async function hashMethod(primary: Client, secondary: Client): Promise<HashMethod> {
  const version = async (client: Client) =>
    Number(
      (await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]!.v,
    );
  const [ours, theirs] = await Promise.all([version(primary), version(secondary)]);
  return Math.min(ours, theirs) >= 110000 ? 'hashtext' : 'md5';
}
