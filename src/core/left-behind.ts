// The tables of the primary a migration leaves behind: outside the replication filters, or in scope but
// not replicable by Bucardo (no primary key, unlogged, foreign). schema.diff, bucardo.scope and
// cutover.check list them with their size, so that none is a surprise after the cutover; cutover.check
// fails only on those whose rows would be lost without anyone having chosen it (rowsLeftBehind).
// Light imports only: the formats print leftBehindLine before the prompt appears.
import type { ReplicationObjects } from '../config/types.js';
import type { Client } from './db.js';
import { isLockWait, rolledBackWithLockTimeout } from './ddl.js';
import { exclusionReasons, PARTITION_ROOTS } from './objects.js';
import { quoteQualified } from './quote.js';
import { withThousands } from './numbers.js';

/** A table of the primary that the migration will not carry to the secondary, and why. */
export interface TableNotCarried {
  table: string;
  /** Why, in the operator's words. */
  reason: string;
  /** Chosen by the filters, or left out because Bucardo cannot carry it. */
  cause: 'outside the filters' | 'no primary key' | 'unlogged' | 'foreign';
  /** pg_class.reltuples: the planner's estimate; null when never analyzed (or a foreign table). */
  estimatedRows: number | null;
  /** relpages × block size: an estimate read without taking the table's lock. */
  estimatedBytes: number;
}

/**
 * Every table of the primary the migration leaves behind: outside the filters, in scope without a
 * primary key (Bucardo cannot replicate it), unlogged, or foreign. Read from the catalog only, so no
 * table's lock is taken (pg_table_size would take one).
 */
export async function tablesNotCarried(
  primary: Client,
  filters: ReplicationObjects,
): Promise<TableNotCarried[]> {
  const { rows } = await primary.query<{
    schema: string;
    name: string;
    kind: string;
    persistence: string;
    has_pk: boolean;
    root_schema: string | null;
    root_name: string | null;
    tuples: number;
    bytes: string;
  }>(`
    ${PARTITION_ROOTS}
    SELECT n.nspname AS schema, c.relname AS name, c.relkind AS kind, c.relpersistence AS persistence,
           EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p') AS has_pk,
           rn.nspname AS root_schema, r.relname AS root_name, c.reltuples::float8 AS tuples,
           (c.relpages::bigint * current_setting('block_size')::bigint)::text AS bytes
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN roots ON roots.leaf = c.oid
      LEFT JOIN pg_class r ON r.oid = roots.root LEFT JOIN pg_namespace rn ON rn.oid = r.relnamespace
     WHERE c.relkind IN ('r', 'f') AND c.relpersistence IN ('p', 'u')
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'bucardo')
       AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
     ORDER BY 1, 2`);
  const found: TableNotCarried[] = [];
  for (const row of rows) {
    const relation = {
      schema: row.schema,
      name: row.name,
      ...(row.root_schema && row.root_name
        ? { partitionRoot: { schema: row.root_schema, name: row.root_name } }
        : {}),
    };
    const outside = exclusionReasons(relation, filters);
    const cause: TableNotCarried['cause'] | undefined =
      row.kind === 'f'
        ? 'foreign'
        : row.persistence === 'u'
          ? 'unlogged'
          : outside.length
            ? 'outside the filters'
            : !row.has_pk
              ? 'no primary key'
              : undefined;
    if (!cause) continue;
    const reason = {
      foreign: 'a foreign table: its rows live on another server',
      unlogged: 'unlogged: Bucardo does not replicate it (its rows are not crash-safe either)',
      'outside the filters': `outside the filters (${outside.join('; ')})`,
      'no primary key':
        'in scope but without a primary key: Bucardo cannot replicate it (add one on both sides, then schema.add_tables)',
    }[cause];
    found.push({
      table: `${row.schema}.${row.name}`,
      reason,
      cause,
      estimatedRows: row.kind === 'f' || row.tuples < 0 ? null : Math.round(row.tuples),
      estimatedBytes: Number(row.bytes),
    });
  }
  return found;
}

/**
 * The tables left behind that hold rows nobody chose to leave: in scope (the filters select them) but
 * without a primary key or unlogged. A table outside the filters was left out on purpose; a foreign
 * table's rows live on another server. Each is asked whether it has a row, in one transaction rolled
 * back whose lock waits are bounded (pg_class's estimate is -1 until a table is analyzed); one still
 * locked after the bound counts as holding rows. Needs a dedicated session (a transaction).
 */
export async function rowsLeftBehind(
  primary: Client,
  tables: TableNotCarried[],
  lockTimeoutMs: number,
): Promise<(TableNotCarried & { rows: 'some' | 'unknown' })[]> {
  const candidates = tables.filter((t) => t.cause === 'no primary key' || t.cause === 'unlogged');
  if (candidates.length === 0) return [];
  const found: (TableNotCarried & { rows: 'some' | 'unknown' })[] = [];
  await rolledBackWithLockTimeout(primary, lockTimeoutMs, async () => {
    for (const table of candidates) {
      const dot = table.table.indexOf('.');
      await primary.query('SAVEPOINT left_behind');
      try {
        const { rows } = await primary.query<{ any: boolean }>(
          `SELECT EXISTS (SELECT FROM ${quoteQualified(table.table.slice(0, dot), table.table.slice(dot + 1))}) AS any`,
        );
        if (rows[0]!.any) found.push({ ...table, rows: 'some' });
        await primary.query('RELEASE SAVEPOINT left_behind');
      } catch (error) {
        await primary.query('ROLLBACK TO SAVEPOINT left_behind');
        // Dropped since the catalog was read: nothing left behind.
        if ((error as { code?: string }).code === '42P01') continue;
        // Not a lock wait given up (lock_not_available, deadlock): a real error.
        if (!isLockWait(error, true)) throw error;
        found.push({ ...table, rows: 'unknown' });
      }
    }
  });
  return found;
}

/** One table left behind, as the three commands print it: name, estimated rows and size, why. */
export function leftBehindLine(table: TableNotCarried): string {
  const rows = table.estimatedRows === null ? '?' : withThousands(table.estimatedRows);
  const bytes = table.estimatedBytes;
  const size =
    bytes < 1024 * 1024 ? `${Math.ceil(bytes / 1024)} kB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  return `${table.table} (~${rows} rows, ~${size}): ${table.reason}`;
}

/**
 * cutover.check's item for the tables left behind. It fails only when one would lose rows that nobody
 * chose to leave (rowsLeftBehind); otherwise it passes with the list as a warning, since leaving a
 * table out is usually deliberate but should be known before the switch.
 */
export async function leftBehindReadiness(
  primary: Client,
  filters: ReplicationObjects,
  lockTimeoutMs: number,
): Promise<{ pass: boolean; warning: boolean; detail: string; fix?: string }> {
  const tables = await tablesNotCarried(primary, filters);
  if (tables.length === 0)
    return { pass: true, warning: false, detail: 'every table of the primary is carried by the migration' };
  const losing = await rowsLeftBehind(primary, tables, lockTimeoutMs);
  const listed = (list: TableNotCarried[]) =>
    `${list.slice(0, 5).map(leftBehindLine).join('; ')}${list.length > 5 ? `; and ${list.length - 5} more (schema.diff or bucardo.scope --json list them all)` : ''}`;
  if (losing.length)
    return {
      pass: false,
      warning: false,
      detail: `${losing.length} table(s) in scope hold rows Bucardo does not carry, so they would be missing on the secondary after the switch: ${losing
        .map(
          (t) =>
            `${t.table} (${t.rows === 'some' ? 'has rows' : 'locked: could not tell whether it has rows'}; ${t.cause})`,
        )
        .join(', ')}`,
      fix: 'give each a primary key on both sides (unlogged: ALTER TABLE ... SET LOGGED), then schema.add_tables; or leave it out on purpose with bucardo.replication_objects.table_exclude and move its rows yourself',
    };
  return {
    pass: true,
    warning: true,
    detail: `${tables.length} table(s) left behind on purpose or empty: ${listed(tables)}`,
  };
}
