// bucardo.add_triggers and bucardo.drop_triggers: the sync and the triggers it puts on the primary.
import { BucardoError, runBucardo } from '../../src/core/bucardo.js';
import { onetimecopyFor } from '../../src/core/bucardo/names.js';
import { jobTriggerNames, listTriggers } from '../../src/core/bucardo/triggers.js';
import { withClient } from '../../src/core/db.js';
import { formatFailures, type TableFailure } from '../../src/core/ddl.js';
import { OperatorError } from '../../src/core/errors.js';
import type { Job } from '../../src/core/job.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { quoteQualified } from '../../src/core/quote.js';
import { isDaemonRunning, reloadDaemon } from './daemon.js';
import {
  metadataDatabaseExists,
  recordedDatabases,
  relgroupMembers,
  syncRow,
  withMetadata,
} from './metadata.js';
import { applyTriggerPolicy, auditTriggers, dropJobTriggers } from './triggers.js';

export interface TriggerData {
  steps: string[];
  failed: TableFailure[];
}

async function requireRecorded(job: Job): Promise<void> {
  const installed =
    (await metadataDatabaseExists(job)) &&
    (await withMetadata(job, recordedDatabases)).some((d) => d.name === job.bucardoDbName.primary);
  if (!installed)
    throw new OperatorError(
      `Bucardo is not installed for ${job.name} (no metadata database ${job.metadataDb} with the primary recorded). Run bucardo.install first.`,
    );
}

/** `bucardo add sync` for this job: copy_data as onetimecopy; no kick triggers with asynchronous kicking. */
export function addSyncArguments(job: Job): string[] {
  return [
    'add',
    'sync',
    job.syncName,
    `relgroup=${job.relgroupName}`,
    `dbs=${job.bucardoDbName.primary}:source,${job.bucardoDbName.secondary}:target`,
    `onetimecopy=${onetimecopyFor(job.config.bucardo.copyData)}`,
    // With asynchronous kicking the kick triggers are never created: one table lock fewer than
    // creating and then disabling them, and no per-commit NOTIFY on the primary.
    `autokick=${job.config.bucardo.asynchronousKicking ? 0 : 1}`,
  ];
}

/** --yes answers yes to copy_data: always emptying secondary tables (also in list mode). */
export function answeredYes(ctx: Pick<CommandContext, 'options'>): boolean {
  return ctx.options.flag('yes');
}

/** Rows are counted up to this many per table: enough to show what would be lost, bounded in cost. */
const COUNT_LIMIT = 1_000_000;

export interface FilledTable {
  table: string;
  rows: number;
  atLeast: boolean;
}

/** Tables of the job's relgroup that hold rows on the secondary (missing ones are preflight's concern). */
export async function filledSecondaryTables(
  job: Job,
  activity: CommandContext['activity'],
): Promise<FilledTable[]> {
  const members = await withMetadata(job, (client) => relgroupMembers(client, job.relgroupName), activity);
  const tables = members.filter((m) => m.reltype === 'table');
  return withClient(job, { role: 'secondary', activity }, async (client) => {
    const filled: FilledTable[] = [];
    for (const { schema, name } of tables) {
      activity.throwIfInterrupted();
      const table = quoteQualified(schema, name);
      const {
        rows: [exists],
      } = await client.query<{ oid: string | null }>('SELECT to_regclass($1)::oid AS oid', [table]);
      if (!exists?.oid) continue;
      const {
        rows: [counted],
      } = await client.query<{ rows: string }>(
        `SELECT count(*) AS rows FROM (SELECT 1 FROM ${table} LIMIT ${COUNT_LIMIT + 1}) AS sample`,
      );
      const rows = Number(counted!.rows);
      if (rows === 0) continue;
      filled.push({
        table: `${schema}.${name}`,
        rows: Math.min(rows, COUNT_LIMIT),
        atLeast: rows > COUNT_LIMIT,
      });
    }
    return filled;
  });
}

/**
 * copy_data: always is Bucardo's onetimecopy=1, which empties every target table before copying it:
 * before the sync that sets this up is created, name the secondary tables that hold rows and ask.
 * The shell asks (default no); a list refuses unless the command was given --yes. Throws when not
 * confirmed, before anything is created.
 */
export async function confirmCopyOverwrite(
  ctx: CommandContext,
  command: string,
): Promise<string | undefined> {
  const { job } = ctx;
  if (job.config.bucardo.copyData !== 'always') return undefined;
  ctx.progress("counting rows in the secondary's tables (copy_data: always empties them)");
  const filled = await filledSecondaryTables(job, ctx.activity);
  if (filled.length === 0) return undefined;
  const listed = filled.map(
    (f) => `${f.table} (${f.atLeast ? 'more than ' : ''}${f.rows.toLocaleString('en-US')} rows)`,
  );
  const what =
    `copy_data is always, so Bucardo's initial copy empties ${filled.length} secondary table(s) that hold` +
    ` rows before copying the primary's into them: ${listed.join(', ')}`;
  if (answeredYes(ctx)) return `${what}; confirmed with --yes`;
  const refusal =
    `Nothing was created. If those rows may go, run ${command} --yes; to keep them, set` +
    ' bucardo.copy_data to empty (copies only into empty tables) or never.';
  if (!ctx.prompt.interactive)
    throw new OperatorError(`${what}. A list cannot ask, so ${command} stops here. ${refusal}`);
  ctx.log(`${what}.`);
  const question = `Empty these ${filled.length} secondary table(s) and copy the primary's rows into them?`;
  if (!(await ctx.prompt.confirm(question, false))) throw new OperatorError(`Not confirmed. ${refusal}`);
  return `${what}; confirmed at the prompt`;
}

/** Bucardo's messages for a lock wait that hit lock_timeout, turned into the operator's next step. */
export function explainSyncFailure(error: unknown, job: Job): Error {
  if (error instanceof BucardoError && /lock timeout/i.test(error.message)) {
    return new OperatorError(
      `A table on the primary was locked by another session for longer than bucardo.lock_timeout (${job.config.bucardo.lockTimeoutMs} ms), so Bucardo rolled the whole trigger installation back: nothing was changed. Run bucardo.add_triggers again when the lock is released, or use retry.add_triggers, which works table by table and retries. Bucardo said: ${error.message}`,
    );
  }
  if (error instanceof BucardoError && /must specify a primary key/i.test(error.message)) {
    return new OperatorError(
      `${error.message}. Add a primary key to that table or exclude it (bucardo.replication_objects.table_exclude), then run bucardo.install and bucardo.add_triggers again.`,
    );
  }
  return error as Error;
}

export async function addTriggers(ctx: CommandContext): Promise<CommandOutcome<TriggerData>> {
  const { job, activity } = ctx;
  await requireRecorded(job);
  const steps: string[] = [];
  const asynchronous = job.config.bucardo.asynchronousKicking;
  const sync = await withMetadata(job, (client) => syncRow(client, job.syncName), activity);
  try {
    if (!sync) {
      const confirmed = await confirmCopyOverwrite(ctx, 'bucardo.add_triggers');
      if (confirmed) steps.push(confirmed);
      ctx.progress(`creating sync ${job.syncName} (Bucardo adds its triggers to every table)`);
      await runBucardo(job, addSyncArguments(job), { activity, safeToStop: false });
      steps.push(
        `created sync ${job.syncName} (copy_data ${job.config.bucardo.copyData}, ${asynchronous ? 'no kick triggers: asynchronous kicking' : 'per-commit kick triggers'})`,
      );
    } else {
      if (sync.autokick === asynchronous) {
        ctx.progress(`switching the sync's kick triggers ${asynchronous ? 'off' : 'on'}`);
        await runBucardo(job, ['update', 'sync', job.syncName, `autokick=${asynchronous ? 0 : 1}`], {
          activity,
          safeToStop: false,
        });
        steps.push(
          `sync ${job.syncName}: kick triggers ${asynchronous ? 'removed (asynchronous kicking)' : 'enabled'}`,
        );
      }
      ctx.progress(`validating sync ${job.syncName} (re-creates any missing trigger)`);
      await runBucardo(job, ['validate', job.syncName], { activity, safeToStop: false });
      steps.push(`sync ${job.syncName} already exists; validated it`);
    }
  } catch (error) {
    throw explainSyncFailure(error, job);
  }
  const policy = await applyTriggerPolicy(job, activity, ctx.progress);
  if (policy.changed.length)
    steps.push(
      `set trigger modes on ${policy.changed.length} table(s)${job.config.databases.primary.cascade ? ' (ENABLE ALWAYS: cascade middle hop)' : ''}`,
    );
  if (policy.failed.length === 0 && isDaemonRunning(job)) {
    ctx.progress('reloading the running daemon so it picks up the sync');
    await reloadDaemon(job, ctx);
    steps.push('reloaded the running daemon and kicked the sync');
  }
  if (policy.failed.length) {
    ctx.log(formatFailures(policy.failed).join('\n'));
    return {
      ok: false,
      data: { steps, failed: policy.failed },
      message: `Triggers are in place, but ${policy.failed.length} table(s) could not get their trigger mode within the lock timeout (listed above). Run bucardo.add_triggers again when the locks are released.`,
    };
  }
  return { data: { steps, failed: [] }, message: `Triggers in place: ${steps.join('; ')}.` };
}

export async function validateTriggers(ctx: CommandContext): Promise<Check[]> {
  const audit = await auditTriggers(ctx.job);
  const detail = audit.wrong
    .slice(0, 5)
    .map((w) => `${w.table}: ${w.problems.join(', ')}`)
    .join('; ');
  return [
    {
      name: `every table in scope carries exactly the expected bucardo triggers (${audit.tables.length} tables)`,
      pass: audit.wrong.length === 0 && audit.tables.length > 0,
      ...(audit.wrong.length ? { detail: `${audit.wrong.length} table(s) differ: ${detail}` } : {}),
    },
  ];
}

export async function dropTriggers(ctx: CommandContext): Promise<CommandOutcome<TriggerData>> {
  const { job, activity } = ctx;
  if (isDaemonRunning(job)) {
    throw new OperatorError(
      `The Bucardo daemon of ${job.name} is running: dropping its triggers now would silently stop capturing changes for a live sync. Stop it first with bucardo.stop, then run bucardo.drop_triggers.`,
    );
  }
  const steps: string[] = [];
  const report = await dropJobTriggers(job, activity, ctx.progress);
  steps.push(`dropped triggers on ${report.dropped.length} table(s)`);
  if (report.failed.length) {
    ctx.log(formatFailures(report.failed).join('\n'));
    return {
      ok: false,
      data: { steps, failed: report.failed },
      message: `${report.failed.length} table(s) kept their triggers: each was locked longer than bucardo.lock_timeout (listed above with the lock holders). The sync stays recorded until they are gone: run bucardo.drop_triggers again, or retry.drop_triggers.`,
    };
  }
  // Only now: while any trigger remains it must belong to a recorded sync (no orphans). The daemon
  // is stopped, so nothing re-creates the dropped ones in between.
  if (
    (await metadataDatabaseExists(job, activity)) &&
    (await withMetadata(job, (client) => syncRow(client, job.syncName), activity))
  ) {
    await runBucardo(job, ['remove', 'sync', job.syncName], { activity });
    steps.push(`removed sync ${job.syncName} from Bucardo (bucardo.add_triggers creates it again)`);
  }
  return { data: { steps, failed: [] }, message: `Dropped: ${steps.join('; ')}.` };
}

export async function validateNoTriggers(ctx: CommandContext): Promise<Check[]> {
  const remaining = await withClient(ctx.job, { role: 'primary' }, (client) =>
    listTriggers(client, jobTriggerNames(ctx.job)),
  );
  return [
    {
      name: 'no bucardo trigger of this job left',
      pass: remaining.length === 0,
      ...(remaining.length
        ? {
            detail: remaining
              .slice(0, 5)
              .map((r) => `${r.schema}.${r.table}:${r.trigger}`)
              .join(', '),
          }
        : {}),
    },
  ];
}
