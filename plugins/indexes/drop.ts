// indexes.drop: before Bucardo's initial copy, drops the secondary's indexes on large tables so the copy
// does not maintain them row by row. Order matters for safety: list, confirm, record every definition,
// check the record, and only then drop, table by table under a lock timeout.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { withClient } from '../../src/core/db.js';
import { lockBoundedDdl, tableFailure, type TableFailure } from '../../src/core/ddl.js';
import { errorMessage, OperatorError } from '../../src/core/errors.js';
import { targetKey, type Job } from '../../src/core/job.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { quoteIdent, quoteQualified } from '../../src/core/quote.js';
import {
  indexSizes,
  largeTables,
  presence,
  secondaryIndexes,
  type LargeTable,
  type SecondaryIndex,
} from './catalog.js';
import { requireCopyNotStarted, requireUpstreamCopyDone } from './copy-gate.js';
import {
  markDropped,
  recordDefinitions,
  recordedCountsByTable,
  recordedIndexes,
  requireRecords,
  withRecords,
} from './records.js';
import { indexSettings } from './settings.js';
import { formatSize } from './size.js';
import { rebuildScript } from './statements.js';

/** Declared in index.ts: list what would be dropped, drop nothing. */
export const DRY_RUN_FLAG = 'dry-run';

export interface PlannedIndex {
  table: string;
  index: string;
  kind: 'index' | 'unique constraint' | 'exclusion constraint';
  sizeBytes: number;
}

export interface DropData {
  largerThanBytes: number;
  tables: { table: string; sizeBytes: number }[];
  planned: PlannedIndex[];
  kept: { table: string; index: string; reason: string }[];
  plannedBytes: number;
  dryRun: boolean;
  dropped: PlannedIndex[];
  failed: TableFailure[];
  definitionsFile?: string;
  notes: string[];
}

function kindOf(index: SecondaryIndex): PlannedIndex['kind'] {
  return index.constraintType === 'u'
    ? 'unique constraint'
    : index.constraintType === 'x'
      ? 'exclusion constraint'
      : 'index';
}

function planned(index: SecondaryIndex): PlannedIndex {
  return {
    table: `${index.schema}.${index.table}`,
    index: index.index,
    kind: kindOf(index),
    sizeBytes: index.sizeBytes,
  };
}

export interface DropPlan {
  tables: LargeTable[];
  inScope: number;
  droppable: SecondaryIndex[];
  kept: SecondaryIndex[];
}

/** What indexes.drop would drop now (and what it keeps, with the reason); changes nothing. */
export async function planDrop(ctx: Pick<CommandContext, 'job' | 'db' | 'progress'>): Promise<DropPlan> {
  const settings = indexSettings(ctx.job.config);
  ctx.progress('measuring table sizes on the primary');
  const primary = await ctx.db.primary();
  const found = await largeTables(primary, settings.replicationObjects, settings.largerThanBytes);
  const { large, inScope } = found;
  const sizes = await indexSizes(primary, large);
  ctx.progress(`reading the indexes of ${large.length} table(s) on the secondary`);
  const indexes =
    large.length === 0 ? [] : await secondaryIndexes(await ctx.db.secondary('schema_owner'), large, sizes);
  return {
    tables: large,
    inScope,
    droppable: indexes.filter((i) => !i.keepReason),
    kept: indexes.filter((i) => i.keepReason),
  };
}

/** The dry-run listing shown before the confirmation. */
export function planLines(job: Job, plan: DropPlan, largerThanBytes: number): string[] {
  const secondary = job.config.databases.secondary;
  const lines = [
    `Tables larger than ${formatSize(largerThanBytes)} on the primary: ${plan.tables.length} of ${plan.inScope} in scope.`,
  ];
  for (const table of plan.tables) {
    const key = `${table.schema}.${table.name}`;
    const own = [...plan.droppable, ...plan.kept].filter((i) => `${i.schema}.${i.table}` === key);
    lines.push(
      `  ${key} (${formatSize(table.sizeBytes)})${own.length === 0 ? ': no index besides the primary key' : ''}`,
    );
    for (const index of own) {
      lines.push(
        index.keepReason
          ? `    keep  ${index.index}: ${index.keepReason}`
          : `    drop  ${index.index} (${kindOf(index)}, ${formatSize(index.sizeBytes)} on the primary)`,
      );
    }
  }
  const total = plan.droppable.reduce((sum, i) => sum + i.sizeBytes, 0);
  lines.push(
    `Would drop ${plan.droppable.length} index(es), ${formatSize(total)} on the primary, on the secondary ${secondary.dbname} at ${secondary.host}:${secondary.port}; ${plan.kept.length} kept.`,
  );
  return lines;
}

function definitionsFile(job: Job): string {
  return path.join(job.paths.stateDir, `dropped-indexes.${targetKey(job).replace(':', '.')}.sql`);
}

function dropStatements(indexes: SecondaryIndex[]): string[] {
  return indexes.map((index) =>
    index.constraintType
      ? `ALTER TABLE ${quoteQualified(index.schema, index.table)} DROP CONSTRAINT IF EXISTS ${quoteIdent(index.index)}`
      : `DROP INDEX IF EXISTS ${quoteQualified(index.schema, index.index)}`,
  );
}

export async function dropIndexes(ctx: CommandContext): Promise<CommandOutcome<DropData>> {
  const { job, activity } = ctx;
  const settings = indexSettings(job.config);
  const notes: string[] = [];
  const upstream = await requireUpstreamCopyDone(ctx);
  if (upstream) notes.push(upstream);
  await withRecords(ctx.db, undefined, (client) => requireRecords(client, job));
  await requireCopyNotStarted(job);

  const plan = await planDrop(ctx);
  for (const line of planLines(job, plan, settings.largerThanBytes)) ctx.log(line);
  const data: DropData = {
    largerThanBytes: settings.largerThanBytes,
    tables: plan.tables.map((t) => ({ table: `${t.schema}.${t.name}`, sizeBytes: t.sizeBytes })),
    planned: plan.droppable.map(planned),
    kept: plan.kept.map((i) => ({ table: `${i.schema}.${i.table}`, index: i.index, reason: i.keepReason! })),
    plannedBytes: plan.droppable.reduce((sum, i) => sum + i.sizeBytes, 0),
    dryRun: ctx.options.flag(DRY_RUN_FLAG),
    dropped: [],
    failed: [],
    notes,
  };
  if (plan.droppable.length === 0) {
    return {
      data,
      message: `Nothing to drop: no droppable index on a table larger than ${formatSize(settings.largerThanBytes)} is left on the secondary.`,
    };
  }
  if (data.dryRun)
    return { data, message: `Dry run: nothing was dropped (${plan.droppable.length} index(es) would be).` };
  if (
    !(await ctx.prompt.confirm(
      `Record these ${plan.droppable.length} definition(s) and drop the indexes on the secondary?`,
      true,
    ))
  ) {
    return { data: { ...data, dryRun: true }, message: 'Nothing was dropped.' };
  }

  // Every definition is saved and checked before the first drop: a drop can then fail at any point
  // and indexes.recreate still knows everything that is missing.
  ctx.progress(`recording ${plan.droppable.length} index definition(s) in ${job.metadataDb}`);
  const byTable = new Map<string, SecondaryIndex[]>();
  for (const index of plan.droppable)
    byTable.set(`${index.schema}.${index.table}`, [
      ...(byTable.get(`${index.schema}.${index.table}`) ?? []),
      index,
    ]);
  const records = await withRecords(job, activity, async (client) => {
    await recordDefinitions(client, job, plan.droppable);
    const counts = await recordedCountsByTable(client, job, plan.droppable);
    const wrong = [...byTable]
      .filter(([table, indexes]) => counts.get(table) !== indexes.length)
      .map(([table, indexes]) => `${table}: found ${indexes.length}, recorded ${counts.get(table) ?? 0}`);
    if (wrong.length) {
      throw new OperatorError(
        `The recorded index definitions do not match what was found on the secondary (${wrong.join('; ')}), so nothing was dropped. Another session may be changing the secondary's indexes; run indexes.drop again when it is done.`,
      );
    }
    return recordedIndexes(client, job);
  });
  try {
    const file = definitionsFile(job);
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(
      file,
      rebuildScript(
        targetKey(job),
        records.filter((r) => r.recreatedAt === null),
      ),
    );
    data.definitionsFile = file;
  } catch (error) {
    notes.push(
      `could not write the copy of the definitions to ${definitionsFile(job)}: ${errorMessage(error)} (they are recorded in the metadata database)`,
    );
  }

  // The drops on a session of their own: each is a transaction with SET LOCAL lock_timeout.
  await withRecords(ctx.db, undefined, (metadata) =>
    withClient(job, { role: 'secondary', login: 'schema_owner', activity }, async (secondary) => {
      let done = 0;
      for (const [table, indexes] of byTable) {
        activity.throwIfInterrupted();
        ctx.progress(
          `dropping: ${done++}/${byTable.size} tables done, now ${table} (${indexes.length} index(es))`,
        );
        // DROP INDEX takes an ACCESS EXCLUSIVE lock; waiting in the lock queue would block everything behind it.
        const outcome = await lockBoundedDdl(secondary, dropStatements(indexes), {
          timeoutMs: job.config.bucardo.lockTimeoutMs,
          activity,
          report: 'all',
          target: { schema: indexes[0]!.schema, table: indexes[0]!.table },
        });
        if (!outcome.done) {
          data.failed.push(tableFailure(table, outcome));
          continue;
        }
        data.dropped.push(...indexes.map(planned));
        await markDropped(metadata, job, indexes);
      }
    }),
  );
  const droppedBytes = data.dropped.reduce((sum, i) => sum + i.sizeBytes, 0);
  if (data.failed.length) {
    return {
      ok: false,
      data,
      message: `Dropped ${data.dropped.length} index(es); ${data.failed.length} table(s) kept theirs because a lock was not granted within bucardo.lock_timeout (listed above). Their definitions are recorded: run indexes.drop again when the locks are released.`,
    };
  }
  return {
    data,
    message: `Dropped ${data.dropped.length} index(es) (${formatSize(droppedBytes)} on the primary) on ${byTable.size} table(s) of the secondary; definitions recorded in ${job.metadataDb} and copied to ${data.definitionsFile ?? '(no file)'}. Run bucardo.start, then indexes.recreate.`,
  };
}

/** After a drop: no droppable index is left on the large tables, and every recorded one is gone from the secondary. */
export async function validateDrop(ctx: CommandContext): Promise<Check[]> {
  const { job } = ctx;
  if (ctx.options.flag(DRY_RUN_FLAG)) return [];
  const plan = await planDrop({ ...ctx, progress: () => undefined });
  const pending = (await withRecords(ctx.db, undefined, (client) => recordedIndexes(client, job))).filter(
    (r) => r.recreatedAt === null,
  );
  const present = await presence(await ctx.db.secondary(), pending);
  const stillThere = pending.filter((r) => present.get(`${r.schema}.${r.index}`)?.exists);
  return [
    {
      name: "no droppable index left on the secondary's large tables",
      pass: plan.droppable.length === 0,
      ...(plan.droppable.length
        ? {
            detail: plan.droppable
              .slice(0, 5)
              .map((i) => `${i.schema}.${i.index}`)
              .join(', '),
          }
        : {}),
    },
    {
      name: `every recorded index is dropped on the secondary (${pending.length} recorded in ${job.metadataDb} for indexes.recreate)`,
      pass: stillThere.length === 0,
      ...(stillThere.length
        ? {
            detail: stillThere
              .slice(0, 5)
              .map((r) => `${r.schema}.${r.index}`)
              .join(', '),
          }
        : {}),
    },
  ];
}
