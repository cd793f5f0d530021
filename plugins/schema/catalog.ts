// The definitions schema.diff compares, read from one side's catalog: for each table, its columns
// (name, type, nullability, default), primary key and unique constraints, other indexes (each without
// its name, which may differ between sides), and where it is a leaf partition, its parent and bounds;
// the sequences in scope with their settings.
import type { Client } from '../../src/core/db.js';

export interface ColumnDefinition {
  name: string;
  type: string;
  notNull: boolean;
  default: string | null;
}

export interface TableDefinition {
  table: string;
  columns: ColumnDefinition[];
  primaryKey: string | null;
  /** pg_get_constraintdef of each unique constraint, sorted. */
  unique: string[];
  /** Each index not backing a constraint: its definition without its name, and its name. */
  indexes: { definition: string; name: string; original: string }[];
  /** A leaf partition: its parent ("schema.name") and bound (FOR VALUES ...). */
  partition?: { parent: string; bound: string };
}

export interface SequenceDefinition {
  sequence: string;
  type: string;
  increment: string;
}

/** "CREATE INDEX name ON ..." → "CREATE INDEX ON ...": index names differ between sides harmlessly. */
export function anonymousIndex(definition: string, name: string): string {
  const quoted = /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
  return definition.replace(` INDEX ${quoted} ON `, ' INDEX ON ');
}

/** The definitions of the given tables ("schema.name") that exist on this side. */
export async function tableDefinitions(
  client: Client,
  tables: { schema: string; name: string }[],
): Promise<Map<string, TableDefinition>> {
  const { rows } = await client.query<{
    table: string;
    columns: ColumnDefinition[] | null;
    primary_key: string | null;
    unique: string[] | null;
    indexes: { definition: string; name: string }[] | null;
    parent: string | null;
    bound: string | null;
  }>(
    `SELECT n.nspname || '.' || c.relname AS table,
            (SELECT json_agg(json_build_object('name', a.attname, 'type', format_type(a.atttypid, a.atttypmod),
                    'notNull', a.attnotnull, 'default', pg_get_expr(d.adbin, d.adrelid)) ORDER BY a.attnum)
               FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
            (SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p') AS primary_key,
            (SELECT array_agg(pg_get_constraintdef(k.oid) ORDER BY 1) FROM pg_constraint k
              WHERE k.conrelid = c.oid AND k.contype = 'u') AS unique,
            (SELECT json_agg(json_build_object('definition', pg_get_indexdef(i.indexrelid), 'name', ic.relname) ORDER BY ic.relname)
               FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
              WHERE i.indrelid = c.oid
                AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = c.oid)) AS indexes,
            (SELECT pn.nspname || '.' || p.relname FROM pg_inherits h JOIN pg_class p ON p.oid = h.inhparent
               JOIN pg_namespace pn ON pn.oid = p.relnamespace WHERE h.inhrelid = c.oid AND c.relispartition) AS parent,
            pg_get_expr(c.relpartbound, c.oid) AS bound
       FROM unnest($1::text[], $2::text[]) AS wanted(schema, name)
       JOIN pg_namespace n ON n.nspname = wanted.schema
       JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = wanted.name AND c.relkind IN ('r', 'p')`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  return new Map(
    rows.map((row) => [
      row.table,
      {
        table: row.table,
        columns: row.columns ?? [],
        primaryKey: row.primary_key,
        unique: row.unique ?? [],
        indexes: (row.indexes ?? []).map((i) => ({
          definition: anonymousIndex(i.definition, i.name),
          name: i.name,
          original: i.definition,
        })),
        ...(row.parent && row.bound ? { partition: { parent: row.parent, bound: row.bound } } : {}),
      },
    ]),
  );
}

/** The given sequences' settings on this side. */
export async function sequenceDefinitions(
  client: Client,
  sequences: { schema: string; name: string }[],
): Promise<Map<string, SequenceDefinition>> {
  const { rows } = await client.query<SequenceDefinition>(
    `SELECT n.nspname || '.' || c.relname AS sequence, format_type(s.seqtypid, NULL) AS type, s.seqincrement::text AS increment
       FROM unnest($1::text[], $2::text[]) AS wanted(schema, name)
       JOIN pg_namespace n ON n.nspname = wanted.schema
       JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = wanted.name AND c.relkind = 'S'
       JOIN pg_sequence s ON s.seqrelid = c.oid`,
    [sequences.map((t) => t.schema), sequences.map((t) => t.name)],
  );
  return new Map(rows.map((row) => [row.sequence, row]));
}

/**
 * "schema.table definition" of the indexes (anonymous) and unique constraints the indexes plugin
 * dropped on the secondary and has not rebuilt yet.
 */
export async function droppedOnPurpose(
  metadata: Client,
  jobName: string,
): Promise<{ indexes: Set<string>; constraints: Set<string> }> {
  const indexes = new Set<string>();
  const constraints = new Set<string>();
  // The indexes plugin's record (manage_indexes.dropped_index, docs/commands/indexes.md), read by name:
  // it may not be installed, and this plugin must not import its files.
  const { rows: present } = await metadata.query<{ ok: boolean }>(
    "SELECT to_regclass('manage_indexes.dropped_index') IS NOT NULL AS ok",
  );
  if (!present[0]?.ok) return { indexes, constraints };
  const { rows } = await metadata.query<{
    table: string;
    definition: string;
    name: string;
    constraint: string | null;
  }>(
    `SELECT schema_name || '.' || table_name AS table, index_definition AS definition, index_name AS name,
            constraint_definition AS constraint
       FROM manage_indexes.dropped_index WHERE job = $1 AND dropped_at IS NOT NULL AND recreated_at IS NULL`,
    [jobName],
  );
  for (const row of rows) {
    if (row.constraint) constraints.add(`${row.table} ${row.constraint}`);
    else indexes.add(`${row.table} ${anonymousIndex(row.definition, row.name)}`);
  }
  return { indexes, constraints };
}
