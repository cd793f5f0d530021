// What verify needs to know about a table on each side: its columns and types, and its primary key
// (columns in key order, with types and collations). Comparing the two shapes finds schema
// differences before any data is read: a table whose shape differs cannot be compared row by row.
import type { Client } from '../db.js';
import type { Relation } from '../objects.js';

export interface Column {
  name: string;
  type: string;
}
export interface KeyColumn extends Column {
  /** The collation the key's ordering uses on this server ('' for non-collatable types). */
  collation: string;
}

export interface TableShape {
  schema: string;
  name: string;
  columns: Column[];
  /** Primary key columns in key order; empty when the table has no primary key. */
  key: KeyColumn[];
  /** The planner's row estimate (pg_class.reltuples; -1 when never analyzed). */
  estimatedRows: number;
}

interface ShapeRow {
  schema: string;
  name: string;
  column: string;
  type: string;
  key_position: number | null;
  collation: string | null;
  reltuples: number;
}

export async function readShapes(
  client: Client,
  tables: Pick<Relation, 'schema' | 'name'>[],
): Promise<Map<string, TableShape>> {
  const shapes = new Map<string, TableShape>();
  if (tables.length === 0) return shapes;
  const { rows } = await client.query<ShapeRow>(
    `
    SELECT n.nspname AS schema, c.relname AS name, a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type,
           (SELECT k.ord FROM pg_index i, unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
             WHERE i.indrelid = c.oid AND i.indisprimary AND k.attnum = a.attnum)::int AS key_position,
           CASE WHEN a.attcollation = 0 THEN NULL
                WHEN co.collname = 'default' THEN 'default:' || (SELECT datcollate FROM pg_database WHERE datname = current_database())
                ELSE co.collname END AS collation,
           c.reltuples::float8 AS reltuples
      FROM unnest($1::text[], $2::text[]) AS wanted(schema, name)
      JOIN pg_namespace n ON n.nspname = wanted.schema
      JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = wanted.name AND c.relkind = 'r'
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_collation co ON co.oid = a.attcollation
     ORDER BY n.nspname, c.relname, a.attnum`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  const keyOrder = new Map<string, { position: number; column: KeyColumn }[]>();
  for (const row of rows) {
    const id = tableId(row);
    let shape = shapes.get(id);
    if (!shape) {
      shape = {
        schema: row.schema,
        name: row.name,
        columns: [],
        key: [],
        estimatedRows: Number(row.reltuples),
      };
      shapes.set(id, shape);
      keyOrder.set(id, []);
    }
    shape.columns.push({ name: row.column, type: row.type });
    if (row.key_position !== null)
      keyOrder.get(id)!.push({
        position: row.key_position,
        column: { name: row.column, type: row.type, collation: row.collation ?? '' },
      });
  }
  for (const [id, keys] of keyOrder)
    shapes.get(id)!.key = keys.sort((x, y) => x.position - y.position).map((k) => k.column);
  return shapes;
}

export function tableId(table: { schema: string; name: string }): string {
  return `${table.schema}.${table.name}`;
}

/** Differences that make a row-by-row comparison meaningless (or the cutover unsafe). */
export function shapeProblems(primary: TableShape, secondary: TableShape | undefined): string[] {
  if (!secondary) return ['missing on the secondary'];
  const problems: string[] = [];
  const theirs = new Map(secondary.columns.map((c) => [c.name, c.type]));
  const ours = new Map(primary.columns.map((c) => [c.name, c.type]));
  const missing = primary.columns.filter((c) => !theirs.has(c.name)).map((c) => c.name);
  const extra = secondary.columns.filter((c) => !ours.has(c.name)).map((c) => c.name);
  const retyped = primary.columns
    .filter((c) => theirs.has(c.name) && theirs.get(c.name) !== c.type)
    .map((c) => `${c.name} (${c.type} on the primary, ${theirs.get(c.name)} on the secondary)`);
  if (missing.length) problems.push(`columns missing on the secondary: ${missing.join(', ')}`);
  if (extra.length) problems.push(`columns only on the secondary: ${extra.join(', ')}`);
  if (retyped.length) problems.push(`column types differ: ${retyped.join('; ')}`);
  const keyText = (shape: TableShape) => shape.key.map((k) => k.name).join(', ');
  if (keyText(primary) !== keyText(secondary))
    problems.push(
      `primary keys differ: (${keyText(primary) || 'none'}) on the primary, (${keyText(secondary) || 'none'}) on the secondary`,
    );
  return problems;
}

/** Key columns whose ordering differs between the servers: ranges must then be compared in the "C" collation. */
export function collationsDiffer(primary: TableShape, secondary: TableShape): boolean {
  return primary.key.some((k, i) => k.collation !== (secondary.key[i]?.collation ?? ''));
}

const INTEGER_TYPES = new Set(['smallint', 'integer', 'bigint']);

/** A single integer key column: chunks can be cut by arithmetic instead of walking the index. */
export function hasIntegerKey(shape: TableShape): boolean {
  return shape.key.length === 1 && INTEGER_TYPES.has(shape.key[0]!.type);
}
