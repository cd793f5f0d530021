// What the secondary must have besides the rows before it takes over: the primary's indexes (the
// indexes plugin may have dropped some to speed up the copy) and populated materialized views
// (Bucardo does not replicate them). Read straight from the catalogs of both sides.
import type { Client } from '../../../src/core/db.js';
import type { Relation } from '../../../src/core/objects.js';

interface IndexRow {
  table: string;
  definition: string;
  valid: boolean;
}

async function indexesOf(client: Client, tables: Pick<Relation, 'schema' | 'name'>[]): Promise<IndexRow[]> {
  if (tables.length === 0) return [];
  // The index's own name is cut out of its definition: a recreated index may be named differently.
  const { rows } = await client.query<IndexRow>(
    `
    SELECT n.nspname || '.' || c.relname AS table,
           replace(pg_get_indexdef(i.oid), ' INDEX ' || quote_ident(i.relname) || ' ON ', ' INDEX ON ') AS definition,
           x.indisvalid AS valid
      FROM unnest($1::text[], $2::text[]) AS wanted(schema, name)
      JOIN pg_namespace n ON n.nspname = wanted.schema
      JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = wanted.name
      JOIN pg_index x ON x.indrelid = c.oid
      JOIN pg_class i ON i.oid = x.indexrelid`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  return rows;
}

export interface IndexGap {
  missing: { table: string; definition: string }[];
  invalid: { table: string; definition: string }[];
}

/** Indexes the primary has and the secondary lacks (by definition), and invalid ones on the secondary. */
export async function indexGap(primary: Client, secondary: Client, tables: Relation[]): Promise<IndexGap> {
  // Definitions name the table qualified; make both sides print them the same way.
  await Promise.all([
    primary.query("SET search_path = 'pg_catalog'"),
    secondary.query("SET search_path = 'pg_catalog'"),
  ]);
  const [ours, theirs] = await Promise.all([indexesOf(primary, tables), indexesOf(secondary, tables)]);
  const present = new Map<string, number>();
  for (const row of theirs)
    if (row.valid) present.set(row.definition, (present.get(row.definition) ?? 0) + 1);
  const missing: IndexGap['missing'] = [];
  for (const row of ours) {
    const count = present.get(row.definition) ?? 0;
    if (count > 0) present.set(row.definition, count - 1);
    else missing.push({ table: row.table, definition: row.definition });
  }
  const invalid = theirs
    .filter((row) => !row.valid)
    .map((row) => ({ table: row.table, definition: row.definition }));
  return { missing, invalid };
}

export interface ViewGap {
  missing: string[];
  unpopulated: string[];
}

/** Materialized views populated on the primary that are absent or unpopulated on the secondary. */
export async function materializedViewGap(
  primary: Client,
  secondary: Client,
  views: Relation[],
): Promise<ViewGap> {
  if (views.length === 0) return { missing: [], unpopulated: [] };
  const read = async (client: Client) => {
    const { rows } = await client.query<{ view: string; populated: boolean }>(
      `SELECT m.schemaname || '.' || m.matviewname AS view, m.ispopulated AS populated
         FROM pg_matviews m JOIN unnest($1::text[], $2::text[]) AS wanted(schema, name) ON m.schemaname = wanted.schema AND m.matviewname = wanted.name`,
      [views.map((v) => v.schema), views.map((v) => v.name)],
    );
    return new Map(rows.map((row) => [row.view, row.populated]));
  };
  const [ours, theirs] = await Promise.all([read(primary), read(secondary)]);
  const gap: ViewGap = { missing: [], unpopulated: [] };
  for (const [view, populated] of ours) {
    if (!populated) continue;
    if (!theirs.has(view)) gap.missing.push(view);
    else if (!theirs.get(view)) gap.unpopulated.push(view);
  }
  return gap;
}
