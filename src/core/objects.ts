// Finds the replication objects of a job from its include/exclude filters: plain tables and leaf
// partitions (never partitioned parents: Bucardo cannot trigger them), sequences, materialized views.
import type { ReplicationObjects } from '../config/types.js';
import type { Client } from './db.js';
import { closest } from '../config/reader.js';

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

/**
 * `roots (leaf, root)`: each partition's root, by a walk up pg_inherits rather than
 * pg_partition_root(), which only exists from PostgreSQL 12 (declarative partitions from 10). The
 * start of a WITH clause: the caller's SELECT follows and joins `roots`.
 */
export const PARTITION_ROOTS = `WITH RECURSIVE ancestry (leaf, ancestor) AS (
      SELECT c.oid, i.inhparent FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid WHERE c.relispartition
      UNION ALL
      SELECT a.leaf, i.inhparent FROM ancestry a JOIN pg_class p ON p.oid = a.ancestor AND p.relispartition
        JOIN pg_inherits i ON i.inhrelid = p.oid
    ), roots AS (
      SELECT a.leaf, a.ancestor AS root FROM ancestry a JOIN pg_class p ON p.oid = a.ancestor AND NOT p.relispartition
    )`;

/** Schemas that never hold replicated data. */
const SYSTEM_SCHEMA = `n.nspname NOT IN ('pg_catalog', 'information_schema', 'bucardo') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'`;

interface RelationRow {
  schema: string;
  name: string;
  kind: string;
  root_schema: string | null;
  root_name: string | null;
  has_pk: boolean;
  size_bytes: string;
}

export async function findReplicationObjects(
  client: Client,
  filters: ReplicationObjects,
  /**
   * sizes false: every sizeBytes is 0 and no table is locked. pg_table_size takes a table's
   * ACCESS SHARE lock, so a table someone holds in ACCESS EXCLUSIVE mode (an ALTER, a LOCK) would make
   * the caller wait: bucardo.status's drift check must never wait on the application.
   */
  { sizes = true }: { sizes?: boolean } = {},
): Promise<ReplicationScope> {
  const { rows } = await client.query<RelationRow>(`
    ${PARTITION_ROOTS}
    SELECT n.nspname AS schema, c.relname AS name, c.relkind AS kind,
           rn.nspname AS root_schema, r.relname AS root_name,
           EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p') AS has_pk,
           CASE WHEN ${sizes ? "c.relkind IN ('r', 'm')" : 'false'} THEN pg_table_size(c.oid) ELSE 0 END AS size_bytes
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
      ...(row.root_name && row.root_schema
        ? { partitionRoot: { schema: row.root_schema, name: row.root_name } }
        : {}),
    };
    if (!inScope(relation, filters)) continue;
    if (row.kind === 'r') scope.tables.push(relation);
    else if (row.kind === 'S') scope.sequences.push(relation);
    else scope.materializedViews.push(relation);
  }
  return scope;
}

/** What the scope rules need of a relation: its name, and its partitioned root's for a leaf partition. */
export type NamedRelation = Pick<Relation, 'schema' | 'name' | 'partitionRoot'>;

/**
 * The four lists combine with AND, as in the original tool: a relation is in scope when its schema is
 * in namespace_include (if given) and not in namespace_exclude, and its name is in table_include (if
 * given) and not in table_exclude. A leaf partition also answers to its partitioned root's name and
 * schema (Bucardo triggers leaves only). Sequences and materialized views follow the same rules.
 * The rules with examples: docs/scope.md.
 */
export function inScope(relation: NamedRelation, filters: ReplicationObjects): boolean {
  return exclusionReasons(relation, filters).length === 0;
}

/** A table filter entry read as a name: schema undefined for an unqualified entry ("orders"). */
export interface TableName {
  schema?: string;
  name: string;
}

/**
 * The names a table filter entry can mean. Names are case-sensitive and taken as written; double
 * quotes are needed only around a part that holds a dot or a quote ('"odd.name"', 'sales."Order ""x"""').
 * An unquoted entry with a dot means schema.table, or a table whose own name has a dot in it.
 */
export function readTableEntry(entry: string): TableName[] {
  if (!entry.includes('"')) {
    const dot = entry.indexOf('.');
    return dot > 0
      ? [{ schema: entry.slice(0, dot), name: entry.slice(dot + 1) }, { name: entry }]
      : [{ name: entry }];
  }
  const parts = quotedParts(entry);
  if (parts?.length === 1) return [{ name: parts[0]! }];
  if (parts?.length === 2) return [{ schema: parts[0]!, name: parts[1]! }];
  return [];
}

/** A schema filter entry: taken as written, or the inside of double quotes. */
export function readSchemaEntry(entry: string): string {
  const parts = entry.includes('"') ? quotedParts(entry) : undefined;
  return parts?.length === 1 ? parts[0]! : entry;
}

/** Splits 'a."b.c"' into ['a', 'b.c']; undefined when the quotes do not pair up. */
function quotedParts(entry: string): string[] | undefined {
  const parts: string[] = [];
  let at = 0;
  for (;;) {
    let part = '';
    if (entry[at] === '"') {
      at += 1;
      for (;;) {
        if (at >= entry.length) return undefined;
        if (entry[at] === '"') {
          if (entry[at + 1] !== '"') break;
          at += 1;
        }
        part += entry[at];
        at += 1;
      }
      at += 1;
    } else {
      while (at < entry.length && entry[at] !== '.' && entry[at] !== '"') part += entry[at++];
    }
    if (part === '') return undefined;
    parts.push(part);
    if (at === entry.length) return parts;
    if (entry[at] !== '.') return undefined;
    at += 1;
  }
}

/** The names a relation answers to: its own, and its partitioned root's for a leaf partition. */
function identities(relation: NamedRelation): { schema: string; name: string; viaRoot: boolean }[] {
  return [
    { schema: relation.schema, name: relation.name, viaRoot: false },
    ...(relation.partitionRoot ? [{ ...relation.partitionRoot, viaRoot: true }] : []),
  ];
}

function entryMatches(entry: string, identity: { schema: string; name: string }): boolean {
  return readTableEntry(entry).some(
    (t) => t.name === identity.name && (t.schema === undefined || t.schema === identity.schema),
  );
}

/**
 * Why a relation is out of scope, one reason per rule that keeps it out ("schema s2 not in
 * namespace_include"); empty when it is in scope.
 */
export function exclusionReasons(relation: NamedRelation, filters: ReplicationObjects): string[] {
  const includeSchemas = filters.namespaceInclude.map(readSchemaEntry);
  const excludeSchemas = filters.namespaceExclude.map(readSchemaEntry);
  const own = identities(relation);
  const via = (identity: { schema: string; name: string; viaRoot: boolean }) =>
    identity.viaRoot ? ` (its partitioned table ${identity.schema}.${identity.name})` : '';
  const reasons: string[] = [];
  for (const entry of filters.tableExclude) {
    const hit = own.find((identity) => entryMatches(entry, identity));
    if (hit) reasons.push(`table_exclude has '${entry}'${via(hit)}`);
  }
  for (const identity of own) {
    if (!excludeSchemas.includes(identity.schema)) continue;
    reasons.push(`schema ${identity.schema} is in namespace_exclude${via(identity)}`);
  }
  // Inclusion needs one name that passes both include lists: an unqualified table_include entry
  // means that table in the schemas namespace_include allows, never in any other.
  const schemaAllowed = own.filter(
    (identity) => includeSchemas.length === 0 || includeSchemas.includes(identity.schema),
  );
  const root = relation.partitionRoot;
  if (schemaAllowed.length === 0) {
    const rootSchema =
      root && root.schema !== relation.schema
        ? ` (nor is its partitioned table's schema ${root.schema})`
        : '';
    reasons.push(`schema ${relation.schema} not in namespace_include${rootSchema}`);
  } else if (
    filters.tableInclude.length > 0 &&
    !schemaAllowed.some((identity) => filters.tableInclude.some((entry) => entryMatches(entry, identity)))
  ) {
    reasons.push(
      `not in table_include${root ? ` (nor is its partitioned table ${root.schema}.${root.name})` : ''}`,
    );
  }
  return reasons;
}

export type FilterList = 'namespace_include' | 'namespace_exclude' | 'table_include' | 'table_exclude';

/** A filter entry that selects nothing, or includes only what the other lists keep out: usually a typo. */
export interface FilterWarning {
  list: FilterList;
  entry: string;
  problem: string;
}

/** Checks every filter entry against the relations of the primary (all of them, before filtering). */
export function filterWarnings(relations: NamedRelation[], filters: ReplicationObjects): FilterWarning[] {
  const warnings: FilterWarning[] = [];
  const all = relations.flatMap(identities);
  const schemas = [...new Set(all.map((identity) => identity.schema))].sort();
  const names = [
    ...new Set(all.flatMap((identity) => [identity.name, `${identity.schema}.${identity.name}`])),
  ].sort();
  const hint = (word: string, candidates: string[]) => {
    const near = closest(word, candidates);
    if (!near) return '';
    return ` (did you mean '${near}'?${near.toLowerCase() === word.toLowerCase() ? ' names are case-sensitive' : ''})`;
  };
  for (const list of ['namespace_include', 'namespace_exclude'] as const) {
    for (const entry of list === 'namespace_include' ? filters.namespaceInclude : filters.namespaceExclude) {
      const schema = readSchemaEntry(entry);
      if (schemas.includes(schema)) continue;
      const problem = `no table, sequence or materialized view in a schema named '${schema}' on the primary`;
      warnings.push({ list, entry, problem: `${problem}${hint(schema, schemas)}` });
    }
  }
  for (const list of ['table_include', 'table_exclude'] as const) {
    for (const entry of list === 'table_include' ? filters.tableInclude : filters.tableExclude) {
      const matched = relations.filter((relation) =>
        identities(relation).some((identity) => entryMatches(entry, identity)),
      );
      if (matched.length === 0) {
        const problem = 'matches no table, sequence or materialized view on the primary';
        warnings.push({ list, entry, problem: `${problem}${hint(entry, names)}` });
      } else if (list === 'table_include' && !matched.some((relation) => inScope(relation, filters))) {
        const first = matched[0]!;
        const more = matched.length > 1 ? ` and ${matched.length - 1} more` : '';
        const why = exclusionReasons(first, filters).join('; ');
        const problem = `matches ${first.schema}.${first.name}${more}, but the other lists keep ${more ? 'them' : 'it'} out: ${why}`;
        warnings.push({ list, entry, problem });
      }
    }
  }
  return warnings;
}

/** "schema.name" for messages (unquoted, readable). */
export function displayName(relation: Pick<Relation, 'schema' | 'name'>): string {
  return `${relation.schema}.${relation.name}`;
}

export interface ColumnShape {
  name: string;
  type: string;
}

/** Column names and types per table ("schema.name" → columns), for comparing primary and secondary. */
export async function tableColumns(
  client: Client,
  tables: Pick<Relation, 'schema' | 'name'>[],
): Promise<Map<string, ColumnShape[]>> {
  const result = new Map<string, ColumnShape[]>();
  if (tables.length === 0) return result;
  const { rows } = await client.query<{ schema: string; name: string; column: string; type: string }>(
    `
    SELECT n.nspname AS schema, c.relname AS name, a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type
      FROM unnest($1::text[], $2::text[]) AS wanted(schema, name)
      JOIN pg_namespace n ON n.nspname = wanted.schema
      JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = wanted.name AND c.relkind IN ('r', 'p')
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     ORDER BY n.nspname, c.relname, a.attnum`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  for (const row of rows) {
    const key = `${row.schema}.${row.name}`;
    if (!result.has(key)) result.set(key, []);
    result.get(key)!.push({ name: row.column, type: row.type });
  }
  return result;
}
