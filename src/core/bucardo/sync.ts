// The sync as every plugin that creates or checks it sees it: the `bucardo add sync` arguments of a
// job, the secondary tables copy_data: always would empty (the commands ask the operator), Bucardo's
// failure texts turned into the operator's next step, and the checks that the triggers are (or are
// no longer) there. Plain values in, data out: no prompt and no command context here.
import { commitFenceCheck } from './commit-fence.js';
import { BucardoError } from './run.js';
import { DatabaseContext, withSession, type Risk } from '../context.js';
import { OperatorError } from '../errors.js';
import { targetViews, type Job } from '../job.js';
import type { Activity } from '../activity.js';
import type { Check } from '../plugin.js';
import { quoteQualified } from '../quote.js';
import { onetimecopyFor } from './names.js';
import { auditTriggers, jobTriggerNames, listTriggers } from './triggers.js';
import { relgroupMembers, withMetadata } from './metadata.js';
import { jobSyncs, type JobSync } from './syncs.js';
import { withThousands } from '../numbers.js';

/**
 * `bucardo add sync` for one of this job's syncs: copy_data as onetimecopy; no kick triggers with
 * asynchronous kicking. Each names its relgroup and the job's dbgroup, which ensureDbgroup
 * (records.ts) creates first: given `dbs=` instead, Bucardo would take any dbgroup with the same
 * databases, another job's too (docs/how-bucardo-behaves.md §20).
 */
export function addSyncArguments(job: Job, sync: JobSync = jobSyncs(job)[0]!): string[] {
  return [
    'add',
    'sync',
    sync.name,
    `relgroup=${sync.relgroup}`,
    `dbgroup=${job.dbgroupName}`,
    `onetimecopy=${onetimecopyFor(job.config.bucardo.copyData)}`,
    // With asynchronous kicking the kick triggers are never created: one table lock fewer than
    // creating and then disabling them, and no per-commit NOTIFY on the primary.
    `autokick=${job.config.bucardo.asynchronousKicking ? 0 : 1}`,
  ];
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
  source: Job | DatabaseContext,
  activity: Activity,
): Promise<FilledTable[]> {
  const job = source instanceof DatabaseContext ? source.job : source;
  const members = await withMetadata(
    source,
    async (client) =>
      (await Promise.all(jobSyncs(job).map((s) => relgroupMembers(client, s.relgroup)))).flat(),
    activity,
  );
  const tables = members.filter((m) => m.reltype === 'table');
  return withSession(
    source,
    { role: 'secondary' },
    async (client) => {
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
    },
    activity,
  );
}

/** What copy_data: always or parallel would empty on the secondary, in the operator's words. */
export type CopyOverwriteRisk = Risk;

/** Where copyOverwriteRisk counts: each target's sessions (a command's `ctx.databases`), and its progress. */
export interface CountingSessions {
  databases(view: Job): DatabaseContext;
  activity: Activity;
  progress(text: string): void;
}

/**
 * copy_data: always is Bucardo's onetimecopy=1, which empties every target table before copying it;
 * copy_data: parallel empties them too, before the console's own copy. Before the sync that sets
 * this up is created, the command that creates it names the secondary tables that hold rows and asks
 * (the asking is the command's: the core only finds them). Undefined when nothing would be emptied.
 */
export async function copyOverwriteRisk(
  job: Job,
  sessions: CountingSessions,
  command: string,
): Promise<CopyOverwriteRisk | undefined> {
  const mode = job.config.bucardo.copyData;
  if (mode !== 'always' && mode !== 'parallel') return undefined;
  sessions.progress(`counting rows in the secondary's tables (copy_data: ${mode} empties them)`);
  // Every target's (fan-out): each is emptied before its copy, counted on that target's sessions.
  const filled: (FilledTable & { target: string })[] = [];
  for (const view of targetViews(job))
    for (const table of await filledSecondaryTables(sessions.databases(view), sessions.activity))
      filled.push({ ...table, target: view.target });
  if (filled.length === 0) return undefined;
  const listed = filled.map(
    (f) =>
      `${job.config.fanOut ? `${f.target}: ` : ''}${f.table} (${f.atLeast ? 'more than ' : ''}${withThousands(f.rows)} rows)`,
  );
  const who = mode === 'always' ? "Bucardo's initial copy" : "the console's parallel copy (bucardo.copy)";
  return {
    what:
      `copy_data is ${mode}, so ${who} empties ${filled.length} secondary table(s) that hold` +
      ` rows before copying the primary's into them: ${listed.join(', ')}`,
    refusal:
      `Nothing was created. If those rows may go, run ${command} --yes; to keep them, set` +
      ' bucardo.copy_data to empty (copies only into empty tables) or never.',
    question: `Empty these ${filled.length} secondary table(s) and copy the primary's rows into them?`,
  };
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

/** The checks after a command that puts the job's triggers in place (bucardo and retry add_triggers). */
export async function triggerChecks(source: Job | DatabaseContext, activity?: Activity): Promise<Check[]> {
  const audit = await auditTriggers(source, activity);
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
    await commitFenceCheck(source, activity),
  ];
}

/** The check after a command that removes the job's triggers (bucardo and retry drop_triggers). */
export async function noTriggersCheck(source: Job | DatabaseContext, activity?: Activity): Promise<Check> {
  const job = source instanceof DatabaseContext ? source.job : source;
  const remaining = await withSession(
    source,
    { role: 'primary' },
    (client) => listTriggers(client, jobTriggerNames(job)),
    activity,
  );
  return {
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
  };
}
