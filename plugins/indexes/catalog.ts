// What the catalogs say: the tables large enough on the primary, their indexes on the secondary (with
// what can be dropped safely and why the rest stays), and whether recorded indexes exist again.
import type { Client } from '../../src/core/db.js';
import { findReplicationObjects, type Relation } from '../../src/core/objects.js';
import type { ReplicationObjects } from '../../src/config/types.js';

export interface SecondaryIndex {
  schema: string;
  table: string;
  index: string;
  indexDefinition: string;
  constraintType: 'u' | 'x' | null;
  constraintDefinition: string | null;
  deferrable: boolean;
  initiallyDeferred: boolean;
  tablespace: string | null;
  comment: string | null;
  constraintComment: string | null;
  clustered: boolean;
  /** The index's size on the primary (the secondary's copy is empty before the initial copy). */
  sizeBytes: number;
  /** Why the index must stay; undefined when it can be dropped. */
  keepReason?: string;
}

export interface LargeTable {
  schema: string;
  name: string;
  sizeBytes: number;
}

/** Tables in scope whose size on the primary is larger than the threshold, largest first. */
export async function largeTables(
  primary: Client,
  filters: ReplicationObjects,
  largerThanBytes: number,
): Promise<{ large: LargeTable[]; inScope: number }> {
  const scope = await findReplicationObjects(primary, filters);
  const large = scope.tables
    .filter((table: Relation) => table.sizeBytes > largerThanBytes)
    .map((table) => ({ schema: table.schema, name: table.name, sizeBytes: table.sizeBytes }))
    .sort((a, b) => b.sizeBytes - a.sizeBytes);
  return { large, inScope: scope.tables.length };
}

/** Sizes of the indexes of these tables on the primary, keyed "schema.index". */
export async function indexSizes(primary: Client, tables: LargeTable[]): Promise<Map<string, number>> {
  const { rows } = await primary.query<{ schema: string; index: string; size_bytes: string }>(
    `SELECT n.nspname AS schema, i.relname AS index, pg_relation_size(i.oid) AS size_bytes
       FROM unnest($1::text[], $2::text[]) AS wanted(schema, name)
       JOIN pg_namespace n ON n.nspname = wanted.schema
       JOIN pg_class t ON t.relnamespace = n.oid AND t.relname = wanted.name
       JOIN pg_index x ON x.indrelid = t.oid
       JOIN pg_class i ON i.oid = x.indexrelid`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  return new Map(rows.map((row) => [`${row.schema}.${row.index}`, Number(row.size_bytes)]));
}

interface IndexRow {
  schema: string;
  table: string;
  index: string;
  index_definition: string;
  constraint_type: 'u' | 'x' | null;
  constraint_definition: string | null;
  deferrable: boolean | null;
  initially_deferred: boolean | null;
  tablespace: string | null;
  comment: string | null;
  constraint_comment: string | null;
  clustered: boolean;
  referenced_by: string | null;
  partitioned_parent: string | null;
  replica_identity: boolean;
}

/**
 * The non-primary-key indexes of these tables on the secondary. Primary keys always stay: Bucardo
 * finds rows by them. Indexes a foreign key relies on stay too: dropping them would mean dropping
 * and re-validating foreign keys on other tables. Indexes attached to a partitioned table's index
 * cannot be dropped alone, and a replica identity index would lose its role if dropped.
 */
export async function secondaryIndexes(
  secondary: Client,
  tables: LargeTable[],
  sizes: Map<string, number>,
): Promise<SecondaryIndex[]> {
  const { rows } = await secondary.query<IndexRow>(
    `SELECT n.nspname AS schema, t.relname AS table, i.relname AS index, pg_get_indexdef(x.indexrelid) AS index_definition,
            con.contype AS constraint_type, pg_get_constraintdef(con.oid) AS constraint_definition,
            con.condeferrable AS deferrable, con.condeferred AS initially_deferred,
            ts.spcname AS tablespace, obj_description(x.indexrelid, 'pg_class') AS comment,
            obj_description(con.oid, 'pg_constraint') AS constraint_comment, x.indisclustered AS clustered,
            (SELECT string_agg(format('%s (%s)', fk.conrelid::regclass, fk.conname), ', ' ORDER BY fk.conname)
               FROM pg_constraint fk WHERE fk.contype = 'f' AND fk.conindid = x.indexrelid) AS referenced_by,
            (SELECT h.inhparent::regclass::text FROM pg_inherits h WHERE h.inhrelid = x.indexrelid) AS partitioned_parent,
            x.indisreplident AS replica_identity
       FROM unnest($1::text[], $2::text[]) AS wanted(schema, name)
       JOIN pg_namespace n ON n.nspname = wanted.schema
       JOIN pg_class t ON t.relnamespace = n.oid AND t.relname = wanted.name
       JOIN pg_index x ON x.indrelid = t.oid
       JOIN pg_class i ON i.oid = x.indexrelid
       LEFT JOIN pg_tablespace ts ON ts.oid = i.reltablespace
       LEFT JOIN pg_constraint con ON con.conindid = x.indexrelid AND con.conrelid = t.oid AND con.contype IN ('u', 'x')
      WHERE NOT x.indisprimary
      ORDER BY n.nspname, t.relname, i.relname`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  return rows.map((row) => {
    const keepReason = row.referenced_by
      ? `a foreign key relies on it: ${row.referenced_by}`
      : row.partitioned_parent
        ? `part of the partitioned index ${row.partitioned_parent}`
        : row.replica_identity
          ? "it is the table's replica identity"
          : undefined;
    return {
      schema: row.schema,
      table: row.table,
      index: row.index,
      indexDefinition: row.index_definition,
      constraintType: row.constraint_type,
      constraintDefinition: row.constraint_definition,
      deferrable: row.deferrable ?? false,
      initiallyDeferred: row.initially_deferred ?? false,
      tablespace: row.tablespace,
      comment: row.comment,
      constraintComment: row.constraint_comment,
      clustered: row.clustered,
      sizeBytes: sizes.get(`${row.schema}.${row.index}`) ?? 0,
      ...(keepReason ? { keepReason } : {}),
    };
  });
}

export interface IndexPresence {
  /** The index exists on the table. */
  exists: boolean;
  valid: boolean;
  /** pg_get_indexdef of what exists. */
  definition?: string;
  /** The unique or exclusion constraint of that name exists on the table. */
  constraintExists: boolean;
}

/** What the secondary has now under each recorded name, keyed "schema.index". */
export async function presence(
  secondary: Client,
  wanted: { schema: string; table: string; index: string }[],
): Promise<Map<string, IndexPresence>> {
  const { rows } = await secondary.query<{
    schema: string;
    index: string;
    exists: boolean;
    valid: boolean | null;
    definition: string | null;
    constraint_exists: boolean;
  }>(
    `SELECT w.schema, w.index, x.indexrelid IS NOT NULL AS exists, x.indisvalid AS valid, pg_get_indexdef(x.indexrelid) AS definition,
            EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conrelid = t.oid AND con.conname = w.index AND con.contype IN ('u', 'x')) AS constraint_exists
       FROM unnest($1::text[], $2::text[], $3::text[]) AS w(schema, "table", index)
       LEFT JOIN pg_namespace n ON n.nspname = w.schema
       LEFT JOIN pg_class t ON t.relnamespace = n.oid AND t.relname = w.table
       LEFT JOIN pg_class i ON i.relnamespace = n.oid AND i.relname = w.index AND i.relkind = 'i'
       LEFT JOIN pg_index x ON x.indexrelid = i.oid AND x.indrelid = t.oid`,
    [wanted.map((w) => w.schema), wanted.map((w) => w.table), wanted.map((w) => w.index)],
  );
  return new Map(
    rows.map((row) => [
      `${row.schema}.${row.index}`,
      {
        exists: row.exists,
        valid: row.valid === true,
        ...(row.definition ? { definition: row.definition } : {}),
        constraintExists: row.constraint_exists,
      },
    ]),
  );
}
