// bucardo.uninstall: the daemon stopped, this job's triggers and the primary's bucardo schema dropped,
// then the metadata database dropped, or only this job's records removed when other jobs use it too.
import { runBucardo } from '../../src/core/bucardo/run.js';
import { withClient } from '../../src/core/db.js';
import { errorMessage, OperatorError } from '../../src/core/errors.js';
import type { Job } from '../../src/core/job.js';
import { quoteIdent } from '../../src/core/quote.js';
import type { CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { isDaemonRunning, stopDaemon } from '../../src/core/bucardo/daemon.js';
import { kickerStatus } from '../../src/core/kicker.js';
import { metadataDatabaseExists, withMetadata } from '../../src/core/bucardo/metadata.js';
import {
  otherJobs,
  readJobRecords,
  readRecords,
  refuseSharedRecords,
  removalPlan,
  removeRecords,
  type OtherJob,
  type RemovalPlan,
} from '../../src/core/bucardo/records.js';
import { jobTriggerNames, listTriggers } from '../../src/core/bucardo/triggers.js';
import { formatFailures } from '../../src/core/ddl.js';
import { dropBucardoSchema } from '../../src/core/bucardo/schema.js';
import { dropJobTriggers } from './triggers.js';

export interface UninstallData {
  steps: string[];
}

export async function uninstall(ctx: CommandContext): Promise<CommandOutcome<UninstallData>> {
  const { job, activity, progress } = ctx;
  const steps: string[] = [];
  // Its own session (not ctx.db): the metadata database may be dropped below.
  const records = await readJobRecords(job, activity);
  // A record named after this job that another job's replication uses (the same replication name
  // on other databases) is not this job's to remove. Records this job shares are kept for the other.
  if (records) refuseSharedRecords(job, records, 'bucardo.uninstall', { includeKeepable: false });
  const others = records ? otherJobs(records, job) : [];
  // The kicker too when the daemon is gone: another job of the metadata database may have stopped
  // their shared daemon, and the kicker's session would keep the metadata database from being dropped.
  if (isDaemonRunning(job) || kickerStatus(job).running) {
    progress('stopping the daemon');
    steps.push(...(await stopDaemon(job, ctx)).steps);
  }
  const plan = records && others.length ? removalPlan(records, job) : undefined;
  // In a shared metadata database the other jobs' daemon may validate syncs again: remove ours
  // first so nothing re-creates the triggers we are about to drop.
  for (const name of plan?.syncs ?? [])
    await runBucardo(job, ['remove', 'sync', name], { activity, allowFailure: true });
  progress('dropping triggers table by table');
  const drop = await dropJobTriggers(job, activity, progress);
  if (drop.dropped.length) steps.push(`dropped this job's triggers on ${drop.dropped.length} table(s)`);
  if (drop.failed.length) {
    ctx.log(formatFailures(drop.failed).join('\n'));
    return {
      ok: false,
      data: { steps },
      message: `Could not drop the triggers of ${drop.failed.length} table(s) within bucardo.lock_timeout (listed above with who holds the lock). Nothing else was removed; run bucardo.uninstall again when the locks are released, or use the retry plugin.`,
    };
  }
  progress('dropping the bucardo schema on the primary');
  // A session of its own: the drop is DDL under a lock timeout (a transaction with SET LOCAL).
  const schemaStep = await withClient(
    job,
    { role: 'primary', login: 'schema_owner', activity },
    async (client) => dropBucardoSchema(client, job),
  );
  steps.push(schemaStep);
  if (records) {
    if (plan) {
      // A session of its own: the records go in one transaction.
      await withMetadata(job, (client) => removeRecords(client, plan), activity);
      steps.push(...sharedRemovalSteps(job, plan, others));
    } else {
      progress(`dropping the metadata database ${job.metadataDb}`);
      // On the metadata server's fallback database; this command holds no session to the metadata database.
      const server = await ctx.db.metadataServer();
      try {
        await server.query(`DROP DATABASE IF EXISTS ${quoteIdent(job.metadataDb)}`);
      } catch (error) {
        const sessions = await server.query<{ pid: number; application_name: string }>(
          'SELECT pid, application_name FROM pg_stat_activity WHERE datname = $1',
          [job.metadataDb],
        );
        throw new OperatorError(
          `Could not drop the metadata database ${job.metadataDb}: ${errorMessage(error)}. Sessions still connected: ${sessions.rows.map((r) => `${r.pid} (${r.application_name || 'unnamed'})`).join(', ') || 'none'}. Stop whatever uses it (bucardo.stop) and run bucardo.uninstall again.`,
        );
      }
      steps.push(`dropped metadata database ${job.metadataDb}`);
    }
  }
  return { data: { steps }, message: `Uninstalled ${job.name}.` };
}

function sharedRemovalSteps(job: Job, plan: RemovalPlan, others: OtherJob[]): string[] {
  const kinds: [string, string[]][] = [
    ['sync', plan.syncs],
    ['relgroup', plan.relgroups],
    ['dbgroup', plan.dbgroups],
    ['database', plan.databases],
  ];
  const removed = kinds
    .filter(([, names]) => names.length)
    .map(([kind, names]) => `${kind} ${names.join(', ')}`);
  return [
    `metadata database ${job.metadataDb} kept: it also holds job(s) ${others.map((o) => o.name).join(', ')}; removed only this job's records (${removed.join('; ') || 'none left'})`,
    ...plan.kept.map((k) => `kept ${k.record}: job ${k.job} uses it too`),
  ];
}

export async function validateUninstall(ctx: CommandContext) {
  const { job } = ctx;
  const exists = await metadataDatabaseExists(ctx.db);
  // Kept when other jobs use it: then none of this job's records may be left in it.
  const left = exists ? removalPlan(await readRecords(await ctx.db.metadata()), job) : undefined;
  const leftover = left
    ? [...left.syncs, ...left.relgroups, ...left.dbgroups, ...left.databases].join(', ')
    : '';
  const primary = await ctx.db.primary();
  const triggers = await listTriggers(primary, jobTriggerNames(job));
  const schema =
    ((await primary.query("SELECT 1 FROM pg_namespace WHERE nspname = 'bucardo'")).rowCount ?? 0) > 0;
  return [
    exists
      ? {
          name: `no record of this job left in the metadata database ${job.metadataDb} (kept for other jobs)`,
          pass: leftover === '',
          ...(leftover ? { detail: leftover } : {}),
        }
      : { name: `metadata database ${job.metadataDb} gone`, pass: true },
    {
      name: 'no bucardo trigger of this job on the primary',
      pass: triggers.length === 0,
      ...(triggers.length
        ? { detail: triggers.map((t) => `${t.schema}.${t.table}:${t.trigger}`).join(', ') }
        : {}),
    },
    { name: 'no bucardo schema on the primary', pass: !schema },
    { name: 'daemon not running', pass: !isDaemonRunning(job) },
  ];
}
