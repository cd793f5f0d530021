// Finds the replication objects of a job from its include/exclude filters: plain tables and leaf
// partitions (never partitioned parents: Bucardo cannot trigger them), sequences, materialized views.
import type { ReplicationObjects } from '../config/types.js';
import type { Client } from './db.js';
import { quoteQualified } from './quote.js';

export interface Relation {
  schema: string;
  name: string;
  /** The partitioned root's name when this is a leaf partition; filters on the root apply to its leaves. */
  partitionRoot?: { schema: string; name: string };
  hasPrimaryKey: boolean;
  /** Estimated size in bytes (pg_table_size). */
  sizeBytes: number;
}

export interface ReplicationScope {
  tables: Relation[];
  sequences: Relation[];
  materializedViews: Relation[];
}

/** Schemas that never hold replicated data. */
const SYSTEM_SCHEMA = `n.nspname NOT IN ('pg_catalog', 'information_schema', 'bucardo') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'`;

interface RelationRow { schema: string; name: string; kind: string; root_schema: string | null; root_name: string | null; has_pk: boolean; size_bytes: string }

export async function findReplicationObjects(client: Client, filters: ReplicationObjects): Promise<ReplicationScope> {
  // The partition root by a walk up pg_inherits rather than pg_partition_root(): that function only
  // exists from PostgreSQL 12, declarative partitions (relispartition) from 10.
  const { rows } = await client.query<RelationRow>(`
    WITH RECURSIVE ancestry (leaf, ancestor) AS (
      SELECT c.oid, i.inhparent FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid WHERE c.relispartition
      UNION ALL
      SELECT a.leaf, i.inhparent FROM ancestry a JOIN pg_class p ON p.oid = a.ancestor AND p.relispartition
        JOIN pg_inherits i ON i.inhrelid = p.oid
    ), roots AS (
      SELECT a.leaf, a.ancestor AS root FROM ancestry a JOIN pg_class p ON p.oid = a.ancestor AND NOT p.relispartition
    )
    SELECT n.nspname AS schema, c.relname AS name, c.relkind AS kind,
           rn.nspname AS root_schema, r.relname AS root_name,
           EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p') AS has_pk,
           CASE WHEN c.relkind IN ('r', 'm') THEN pg_table_size(c.oid) ELSE 0 END AS size_bytes
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN roots ON roots.leaf = c.oid
      LEFT JOIN pg_class r ON r.oid = roots.root
      LEFT JOIN pg_namespace rn ON rn.oid = r.relnamespace
     WHERE c.relkind IN ('r', 'S', 'm') AND c.relpersistence = 'p' AND ${SYSTEM_SCHEMA}
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
     ORDER BY n.nspname, c.relname`);
  const scope: ReplicationScope = { tables: [], sequences: [], materializedViews: [] };
  for (const row of rows) {
    const relation: Relation = {
      schema: row.schema,
      name: row.name,
      hasPrimaryKey: row.has_pk,
      sizeBytes: Number(row.size_bytes),
      ...(row.root_name && row.root_schema ? { partitionRoot: { schema: row.root_schema, name: row.root_name } } : {}),
    };
    if (!inScope(relation, filters)) continue;
    if (row.kind === 'r') scope.tables.push(relation);
    else if (row.kind === 'S') scope.sequences.push(relation);
    else scope.materializedViews.push(relation);
  }
  return scope;
}

/**
 * Filters name schemas, and tables either unqualified ("orders") or qualified ("sales.orders").
 * Rules: an excluded table is always out; an explicitly included table is in (even in an excluded
 * schema); otherwise an excluded schema is out; with a schema include list, only those schemas; with
 * only a table include list, only those tables; with no lists, everything.
 */
export function inScope(relation: Pick<Relation, 'schema' | 'name' | 'partitionRoot'>, filters: ReplicationObjects): boolean {
  const { namespaceInclude, namespaceExclude, tableInclude, tableExclude } = filters;
  const names = [relation, ...(relation.partitionRoot ? [relation.partitionRoot] : [])];
  const matches = (list: string[]) => names.some((n) => list.includes(n.name) || list.includes(`${n.schema}.${n.name}`));
  if (matches(tableExclude)) return false;
  if (matches(tableInclude)) return true;
  if (namespaceExclude.includes(relation.schema)) return false;
  if (namespaceInclude.length > 0) return namespaceInclude.includes(relation.schema);
  return tableInclude.length === 0;
}

export function qualifiedName(relation: Pick<Relation, 'schema' | 'name'>): string {
  return quoteQualified(relation.schema, relation.name);
}

/** "schema.name" for messages (unquoted, readable). */
export function displayName(relation: Pick<Relation, 'schema' | 'name'>): string {
  return `${relation.schema}.${relation.name}`;
}

export interface ColumnShape { name: string; type: string }

/** Column names and types per table ("schema.name" → columns), for comparing primary and secondary. */
export async function tableColumns(client: Client, tables: Pick<Relation, 'schema' | 'name'>[]): Promise<Map<string, ColumnShape[]>> {
  const result = new Map<string, ColumnShape[]>();
  if (tables.length === 0) return result;
  const { rows } = await client.query<{ schema: string; name: string; column: string; type: string }>(`
    SELECT n.nspname AS schema, c.relname AS name, a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type
      FROM unnest($1::text[], $2::text[]) AS wanted(schema, name)
      JOIN pg_namespace n ON n.nspname = wanted.schema
      JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = wanted.name AND c.relkind IN ('r', 'p')
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     ORDER BY n.nspname, c.relname, a.attnum`, [tables.map((t) => t.schema), tables.map((t) => t.name)]);
  for (const row of rows) {
    const key = `${row.schema}.${row.name}`;
    if (!result.has(key)) result.set(key, []);
    result.get(key)!.push({ name: row.column, type: row.type });
  }
  return result;
}
