// schema.diff: the replicated tables' definitions on the primary and the secondary compared, one line
// per difference with the statement or command that fixes it. What Bucardo needs to agree: the same
// tables (a table in scope missing on a side, or in scope but in none of the job's syncs), the same
// columns (Bucardo copies every column by name: docs/how-bucardo-behaves.md §23), the same primary keys
// (it deletes and copies by key); what a cutover needs besides: unique constraints, indexes (minus
// those the indexes plugin dropped on purpose until indexes.recreate), sequences, and every leaf
// partition of a replicated partitioned table.
import { recordedSequences, unreplicatedTables } from '../../src/core/bucardo/add-tables.js';
import { recordedTableSyncs } from '../../src/core/bucardo/syncs.js';
import { metadataDatabaseExists } from '../../src/core/bucardo/metadata.js';
import type { Client } from '../../src/core/db.js';
import type { Job } from '../../src/core/job.js';
import { tablesNotCarried, type TableNotCarried } from '../../src/core/left-behind.js';
import { displayName, findReplicationObjects } from '../../src/core/objects.js';
import type { CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { activeDirection } from '../../src/core/bucardo/direction.js';
import { quoteIdent } from '../../src/core/quote.js';
import {
  droppedOnPurpose,
  sequenceDefinitions,
  tableDefinitions,
  type ColumnDefinition,
  type TableDefinition,
} from './catalog.js';

export type DifferenceKind =
  'table' | 'partition' | 'not replicated' | 'column' | 'primary key' | 'unique' | 'index' | 'sequence';

export interface Difference {
  kind: DifferenceKind;
  /** "schema.table", or "schema.table.column" for a column. */
  object: string;
  /** What differs, in the operator's words. */
  detail: string;
  /** The statement (and where to run it) or the command that removes the difference. */
  fix: string;
}

export interface DiffData {
  job: string;
  tables: number;
  sequences: number;
  differences: Difference[];
  /** Tables of the primary the migration leaves behind (not a difference: the exit code ignores them). */
  notCarried: TableNotCarried[];
  /** While the way back runs: its sync (B compared as the source, A as the target). */
  wayBack?: string;
}

const split = (table: string) => {
  const dot = table.indexOf('.');
  return { schema: table.slice(0, dot), name: table.slice(dot + 1) };
};
/** A name as the operator would type it: quoted only when it must be (as PostgreSQL's quote_ident). */
function sqlName(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) && !RESERVED.has(name) ? name : quoteIdent(name);
}
const RESERVED = new Set([
  'all',
  'user',
  'order',
  'group',
  'table',
  'select',
  'where',
  'from',
  'to',
  'default',
  'check',
  'column',
  'primary',
  'references',
  'limit',
  'offset',
  'desc',
  'asc',
  'end',
  'case',
  'when',
]);
const quoted = (table: string) => {
  const { schema, name } = split(table);
  return `${sqlName(schema)}.${sqlName(name)}`;
};

function columnClause(column: ColumnDefinition): string {
  return [
    `${sqlName(column.name)} ${column.type}`,
    column.default !== null ? `DEFAULT ${column.default}` : '',
    column.notNull ? 'NOT NULL' : '',
  ]
    .filter(Boolean)
    .join(' ');
}

/** Column by column: missing on a side, type, nullability, default. */
function columnDifferences(
  table: string,
  primary: TableDefinition,
  secondary: TableDefinition,
): Difference[] {
  const found: Difference[] = [];
  const alter = `ALTER TABLE ${quoted(table)}`;
  for (const column of primary.columns) {
    const other = secondary.columns.find((c) => c.name === column.name);
    const object = `${table}.${column.name}`;
    if (!other) {
      found.push({
        kind: 'column',
        object,
        detail: `column ${column.name} (${column.type}) is missing on the secondary: Bucardo's copies of this table fail`,
        fix: `on the secondary: ${alter} ADD COLUMN ${columnClause(column)}; then bucardo.restart (or let schema.apply make such changes)`,
      });
      continue;
    }
    if (other.type !== column.type)
      found.push({
        kind: 'column',
        object,
        detail: `type ${column.type} on the primary, ${other.type} on the secondary`,
        fix: `on the secondary: ${alter} ALTER COLUMN ${sqlName(column.name)} TYPE ${column.type}`,
      });
    if (other.notNull !== column.notNull)
      found.push({
        kind: 'column',
        object,
        detail: `${column.notNull ? 'NOT NULL' : 'nullable'} on the primary, ${other.notNull ? 'NOT NULL' : 'nullable'} on the secondary`,
        fix: `on the secondary: ${alter} ALTER COLUMN ${sqlName(column.name)} ${column.notNull ? 'SET' : 'DROP'} NOT NULL`,
      });
    if (other.default !== column.default)
      found.push({
        kind: 'column',
        object,
        detail: `default ${column.default ?? 'none'} on the primary, ${other.default ?? 'none'} on the secondary`,
        fix: `on the secondary: ${alter} ALTER COLUMN ${sqlName(column.name)} ${column.default !== null ? `SET DEFAULT ${column.default}` : 'DROP DEFAULT'}`,
      });
  }
  for (const column of secondary.columns.filter((c) => !primary.columns.some((p) => p.name === c.name)))
    found.push({
      kind: 'column',
      object: `${table}.${column.name}`,
      detail: `column ${column.name} exists only on the secondary${column.notNull && column.default === null ? ' (NOT NULL without a default: every row Bucardo copies fails)' : ''}`,
      fix: `on the secondary: ${alter} DROP COLUMN ${sqlName(column.name)} (or add it on the primary with schema.apply)`,
    });
  return found;
}

function keyDifferences(
  table: string,
  primary: TableDefinition,
  secondary: TableDefinition,
  purposely: { indexes: Set<string>; constraints: Set<string> },
): Difference[] {
  const found: Difference[] = [];
  const alter = `ALTER TABLE ${quoted(table)}`;
  if (primary.primaryKey !== secondary.primaryKey)
    found.push({
      kind: 'primary key',
      object: table,
      detail: `${primary.primaryKey ?? 'no primary key'} on the primary, ${secondary.primaryKey ?? 'no primary key'} on the secondary: Bucardo deletes and copies rows by key`,
      fix: primary.primaryKey
        ? `on the secondary: ${secondary.primaryKey ? `${alter} DROP CONSTRAINT <its primary key>; ` : ''}${alter} ADD ${primary.primaryKey}; then bucardo.restart`
        : `give the primary the secondary's key (${secondary.primaryKey}) or exclude the table`,
    });
  for (const unique of primary.unique.filter((u) => !secondary.unique.includes(u))) {
    if (purposely.constraints.has(`${table} ${unique}`)) continue;
    found.push({
      kind: 'unique',
      object: table,
      detail: `${unique} is missing on the secondary`,
      fix: `on the secondary: ${alter} ADD ${unique}`,
    });
  }
  for (const unique of secondary.unique.filter((u) => !primary.unique.includes(u)))
    found.push({
      kind: 'unique',
      object: table,
      detail: `${unique} exists only on the secondary: a row the primary allows may fail there`,
      fix: `on the secondary: ${alter} DROP CONSTRAINT <the constraint with ${unique}>`,
    });
  const secondaryIndexes = new Set(secondary.indexes.map((i) => i.definition));
  const primaryIndexes = new Set(primary.indexes.map((i) => i.definition));
  for (const index of primary.indexes.filter((i) => !secondaryIndexes.has(i.definition))) {
    if (purposely.indexes.has(`${table} ${index.definition}`)) continue;
    found.push({
      kind: 'index',
      object: table,
      detail: `index ${index.name} is missing on the secondary`,
      fix: `on the secondary: ${index.original}`,
    });
  }
  for (const index of secondary.indexes.filter((i) => !primaryIndexes.has(i.definition)))
    found.push({
      kind: 'index',
      object: table,
      detail: `index ${index.name} exists only on the secondary`,
      fix: `on the secondary: DROP INDEX ${sqlName(split(table).schema)}.${sqlName(index.name)} (or create it on the primary)`,
    });
  return found;
}

/** Every difference between the job's two sides, and between the primary's scope and the job's syncs. */
export async function schemaDifferences(
  job: Job,
  clients: { primary: Client; secondary: Client; metadata?: Client },
  options: { wayBack?: boolean } = {},
): Promise<{ differences: Difference[]; tables: number; sequences: number }> {
  const filters = job.config.bucardo.replicationObjects;
  const [onPrimary, onSecondary] = await Promise.all([
    findReplicationObjects(clients.primary, filters),
    findReplicationObjects(clients.secondary, filters),
  ]);
  const all = new Map([...onSecondary.tables, ...onPrimary.tables].map((t) => [displayName(t), t]));
  const tables = [...all.values()];
  const [primary, secondary] = await Promise.all([
    tableDefinitions(clients.primary, tables),
    tableDefinitions(clients.secondary, tables),
  ]);
  const purposely = clients.metadata
    ? await droppedOnPurpose(clients.metadata, job.name)
    : { indexes: new Set<string>(), constraints: new Set<string>() };
  const recorded = clients.metadata ? await recordedTableSyncs(clients.metadata, job) : new Map();
  const differences: Difference[] = [];
  for (const table of [...all.keys()].sort()) {
    const p = primary.get(table);
    const s = secondary.get(table);
    if (p && !s) {
      differences.push(
        p.partition
          ? {
              kind: 'partition',
              object: table,
              detail: `leaf partition of ${p.partition.parent} is missing on the secondary: rows routed to it cannot be replicated`,
              fix: `on the secondary: CREATE TABLE ${quoted(table)} PARTITION OF ${quoted(p.partition.parent)} ${p.partition.bound}; then schema.add_tables`,
            }
          : {
              kind: 'table',
              object: table,
              detail: 'in scope on the primary, missing on the secondary',
              fix: `create it on the secondary with the primary's definition (pg_dump --schema-only --table ${quoted(table)}), then schema.add_tables`,
            },
      );
      continue;
    }
    if (!p && s) {
      differences.push({
        kind: s.partition ? 'partition' : 'table',
        object: table,
        detail: recorded.has(table)
          ? "missing on the primary but still in the job's sync: the sync fails on it"
          : 'exists only on the secondary',
        fix: recorded.has(table)
          ? `schema.apply --file=F with F holding DROP TABLE IF EXISTS ${quoted(table)} (removes it from the sync first, then drops it on the secondary)`
          : `drop it on the secondary (DROP TABLE ${quoted(table)}) or exclude it`,
      });
      continue;
    }
    if (!p || !s) continue;
    differences.push(...columnDifferences(table, p, s), ...keyDifferences(table, p, s, purposely));
  }
  if (clients.metadata) {
    const { missing } = await unreplicatedTables(job, {
      primary: clients.primary,
      secondary: clients.secondary,
      metadata: clients.metadata,
    });
    for (const table of missing.filter((t) => secondary.has(t.table)))
      differences.push({
        kind: 'not replicated',
        object: table.table,
        detail: `in scope${table.partitionOf ? ` (a leaf partition of ${table.partitionOf})` : ''} but in none of the job's syncs: its changes are not replicated`,
        fix: table.blocked ? `cannot be added: ${table.blocked}` : 'schema.add_tables',
      });
  }
  const sequences = new Map(
    [...onSecondary.sequences, ...onPrimary.sequences].map((t) => [displayName(t), t]),
  );
  // The way back carries no sequence: cutover.rollback sets A's past B's itself.
  if (clients.metadata && !options.wayBack) {
    // A sequence created since install: Bucardo sets only the sequences of its relgroups.
    const recordedSeq = await recordedSequences(clients.metadata, job);
    const onBoth = new Set(onSecondary.sequences.map(displayName));
    for (const sequence of onPrimary.sequences.map(displayName).sort())
      if (!recordedSeq.has(sequence) && onBoth.has(sequence))
        differences.push({
          kind: 'not replicated',
          object: sequence,
          detail:
            "a sequence in scope but in none of the job's relgroups: its value is not carried to the secondary",
          fix: 'schema.add_tables',
        });
  }
  const [pSeq, sSeq] = await Promise.all([
    sequenceDefinitions(clients.primary, [...sequences.values()]),
    sequenceDefinitions(clients.secondary, [...sequences.values()]),
  ]);
  for (const name of [...sequences.keys()].sort()) {
    const p = pSeq.get(name);
    const s = sSeq.get(name);
    if (p && !s)
      differences.push({
        kind: 'sequence',
        object: name,
        detail: 'in scope on the primary, missing on the secondary',
        fix: `on the secondary: CREATE SEQUENCE ${quoted(name)} AS ${p.type} INCREMENT ${p.increment}`,
      });
    else if (!p && s)
      differences.push({
        kind: 'sequence',
        object: name,
        detail: 'exists only on the secondary',
        fix: `drop it on the secondary (DROP SEQUENCE ${quoted(name)}) or exclude it`,
      });
    else if (p && s && (p.type !== s.type || p.increment !== s.increment))
      differences.push({
        kind: 'sequence',
        object: name,
        detail: `${p.type} increment ${p.increment} on the primary, ${s.type} increment ${s.increment} on the secondary`,
        fix: `on the secondary: ALTER SEQUENCE ${quoted(name)} AS ${p.type} INCREMENT ${p.increment}`,
      });
  }
  return { differences, tables: tables.length, sequences: sequences.size };
}

export async function diff(command: CommandContext): Promise<CommandOutcome<DiffData>> {
  // While the way back runs (for this target), B is the source: compared against A, with its sync.
  const direction = await activeDirection(command.job, command.db);
  const wayBack = direction !== command.job;
  const ctx = wayBack ? command.forJob(direction) : command;
  const { job } = ctx;
  const installed = await metadataDatabaseExists(ctx.db, ctx.activity);
  const found = await schemaDifferences(
    job,
    {
      primary: await ctx.db.primary(),
      secondary: await ctx.db.secondary(),
      ...(installed ? { metadata: await ctx.db.metadata() } : {}),
    },
    { wayBack },
  );
  const count = found.differences.length;
  const notCarried = await tablesNotCarried(await ctx.db.primary(), job.config.bucardo.replicationObjects);
  return {
    ok: count === 0,
    data: { job: command.job.name, ...found, notCarried, ...(wayBack ? { wayBack: job.syncName } : {}) },
    message:
      (count
        ? `${count} difference(s) between the primary and the secondary of ${command.job.name} (each listed with its fix).`
        : `No difference: the ${found.tables} table(s) and ${found.sequences} sequence(s) in scope match on both sides${installed ? `, and every table is in ${wayBack ? "the way back's sync" : "the job's syncs"}` : ''}.`) +
      (wayBack
        ? ` On the way back (sync ${job.syncName}): the secondary (B) takes the writes and is compared as the source, so in the lines above "the primary" is B and "the secondary" is A.`
        : ''),
  };
}
