// bucardo.scope: what the replication filters select on the primary, and why each other relation is
// left out, changing nothing. bucardo.install shows the same summary first. The rules: docs/scope.md.
import type { ReplicationObjects } from '../../src/config/types.js';
import type { DatabaseContext } from '../../src/core/context.js';
import type { Client } from '../../src/core/db.js';
import { tablesNotCarried, type TableNotCarried } from '../../src/core/left-behind.js';
import {
  displayName,
  exclusionReasons,
  filterWarnings,
  findReplicationObjects,
  type FilterWarning,
  type Relation,
} from '../../src/core/objects.js';
import type { CommandContext, CommandOutcome } from '../../src/core/plugin.js';

export type ScopeKind = 'table' | 'partition' | 'sequence' | 'materialized view';

export interface ScopedRelation {
  name: string;
  kind: ScopeKind;
  /** The partitioned table a leaf partition belongs to ("schema.name"). */
  partitionOf?: string;
  sizeBytes: number;
  /** pg_class.reltuples: the planner's estimate; null when the relation was never analyzed. */
  estimatedRows: number | null;
}

export interface ExcludedRelation {
  name: string;
  kind: ScopeKind;
  reasons: string[];
}

export interface ScopeReport {
  filters: ReplicationObjects;
  included: ScopedRelation[];
  excluded: ExcludedRelation[];
  warnings: FilterWarning[];
  /** Every table of the primary the migration leaves behind, with rows and size (src/core/left-behind.ts). */
  notCarried: TableNotCarried[];
}

const NO_FILTERS: ReplicationObjects = {
  namespaceInclude: [],
  namespaceExclude: [],
  tableInclude: [],
  tableExclude: [],
};

/** The planner's row estimates per "schema.name"; -1 (PostgreSQL 14+) means never analyzed. */
async function estimatedRows(client: Client): Promise<Map<string, number | null>> {
  const { rows } = await client.query<{ key: string; tuples: number }>(`
    SELECT n.nspname || '.' || c.relname AS key, c.reltuples::float8 AS tuples
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'm')`);
  return new Map(rows.map((row) => [row.key, row.tuples < 0 ? null : Math.round(row.tuples)]));
}

/** Every user relation of the primary judged against the filters; reads the catalog only. */
export async function scopeOnPrimary(client: Client, filters: ReplicationObjects): Promise<ScopeReport> {
  // Every candidate, found the same way the rest of the tool finds the scope, then judged here.
  const all = await findReplicationObjects(client, NO_FILTERS);
  const rows = await estimatedRows(client);
  const report: ScopeReport = {
    filters,
    included: [],
    excluded: [],
    warnings: [],
    notCarried: await tablesNotCarried(client, filters),
  };
  const judge = (relation: Relation, kind: ScopeKind) => {
    const name = displayName(relation);
    const reasons = exclusionReasons(relation, filters);
    if (reasons.length) {
      report.excluded.push({ name, kind, reasons });
      return;
    }
    report.included.push({
      name,
      kind,
      sizeBytes: relation.sizeBytes,
      estimatedRows: kind === 'sequence' ? null : (rows.get(name) ?? null),
      ...(relation.partitionRoot ? { partitionOf: displayName(relation.partitionRoot) } : {}),
    });
  };
  for (const table of all.tables) judge(table, table.partitionRoot ? 'partition' : 'table');
  for (const sequence of all.sequences) judge(sequence, 'sequence');
  for (const view of all.materializedViews) judge(view, 'materialized view');
  report.warnings = filterWarnings([...all.tables, ...all.sequences, ...all.materializedViews], filters);
  return report;
}

/** The scope on the command's shared primary session: install's preflight asks the same server next. */
export async function describeScope(db: DatabaseContext): Promise<ScopeReport> {
  return scopeOnPrimary(await db.primary(), db.job.config.bucardo.replicationObjects);
}

export async function scope(ctx: CommandContext): Promise<CommandOutcome<ScopeReport>> {
  ctx.progress("reading the primary's catalog");
  const report = await describeScope(ctx.db);
  const tables = report.included.filter((r) => r.kind === 'table' || r.kind === 'partition').length;
  const sequences = report.included.filter((r) => r.kind === 'sequence').length;
  if (tables === 0) {
    const message =
      'No table on the primary is in scope: check bucardo.replication_objects (the entries to check' +
      ' are listed above; names are case-sensitive) and databases.primary.dbname. Nothing was changed.';
    return { ok: false, data: report, message };
  }
  const warnings = report.warnings.length;
  const check = warnings ? `; ${warnings} filter entr${warnings === 1 ? 'y' : 'ies'} to check (above)` : '';
  const left = `${report.excluded.length} relation(s) left out`;
  const counts = `${tables} table(s) and ${sequences} sequence(s) in scope, ${left}`;
  return { data: report, message: `${counts}${check}. Nothing was changed.` };
}
