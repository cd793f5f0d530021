// bucardo.add_triggers and bucardo.drop_triggers: the sync and the triggers it puts on the primary.
import { runBucardo } from '../../src/core/bucardo/run.js';
import { formatFailures, type TableFailure } from '../../src/core/ddl.js';
import { OperatorError } from '../../src/core/errors.js';
import { confirmOrRefuse, type DatabaseContext } from '../../src/core/context.js';
import type { CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { isDaemonRunning, reloadDaemon } from '../../src/core/bucardo/daemon.js';
import {
  metadataDatabaseExists,
  recordedDatabases,
  syncRow,
  withMetadata,
} from '../../src/core/bucardo/metadata.js';
import { applyTriggerPolicy, dropJobTriggers } from './triggers.js';
import { describeFenceOutcome, ensureCommitFence } from '../../src/core/bucardo/commit-fence.js';
import { lockRounds } from '../../src/core/rounds.js';
import { copyState } from '../../src/core/copy/progress.js';
import { addSyncArguments, copyOverwriteRisk, explainSyncFailure } from '../../src/core/bucardo/sync.js';
import { jobSyncs, syncNames } from '../../src/core/bucardo/syncs.js';
import { readJobRecords, ensureDbgroup, refuseSharedRecords } from '../../src/core/bucardo/records.js';

export interface TriggerData {
  steps: string[];
  failed: TableFailure[];
}

async function requireRecorded(db: DatabaseContext): Promise<void> {
  const { job } = db;
  const installed =
    (await metadataDatabaseExists(db)) &&
    (await withMetadata(db, recordedDatabases)).some((d) => d.name === job.bucardoDbName.primary);
  if (!installed)
    throw new OperatorError(
      `Bucardo is not installed for ${job.name} (no metadata database ${job.metadataDb} with the primary recorded). Run bucardo.install first.`,
    );
}

export async function addTriggers(ctx: CommandContext): Promise<CommandOutcome<TriggerData>> {
  const { job, activity } = ctx;
  const records = await readJobRecords(ctx.db, activity);
  await requireRecorded(ctx.db);
  if (records) refuseSharedRecords(job, records, 'bucardo.add_triggers');
  const steps: string[] = [];
  const asynchronous = job.config.bucardo.asynchronousKicking;
  const syncs = jobSyncs(job);
  const recorded = await withMetadata(
    ctx.db,
    async (client) => ({ rows: await Promise.all(syncs.map((s) => syncRow(client, s.name))) }),
    activity,
  );
  try {
    if (recorded.rows.some((row) => !row)) {
      // copy_data always or parallel empties the secondary's tables: asked before the sync exists.
      const risk = await copyOverwriteRisk(job, ctx, 'bucardo.add_triggers');
      if (risk) steps.push(await confirmOrRefuse(ctx, risk, 'bucardo.add_triggers'));
      const dbgroup = await ensureDbgroup(job, activity, ctx.db);
      if (dbgroup) steps.push(dbgroup);
    }
    for (const [i, sync] of syncs.entries()) {
      const row = recorded.rows[i];
      if (!row) {
        ctx.progress(
          `creating sync ${sync.name} (Bucardo adds its triggers to every table of ${sync.relgroup})`,
        );
        await runBucardo(job, addSyncArguments(job, sync), { activity, safeToStop: false });
        steps.push(
          `created sync ${sync.name} (copy_data ${job.config.bucardo.copyData}, ${asynchronous ? 'no kick triggers: asynchronous kicking' : 'per-commit kick triggers'})`,
        );
        continue;
      }
      if (row.autokick === asynchronous) {
        ctx.progress(`switching the kick triggers of ${sync.name} ${asynchronous ? 'off' : 'on'}`);
        await runBucardo(job, ['update', 'sync', sync.name, `autokick=${asynchronous ? 0 : 1}`], {
          activity,
          safeToStop: false,
        });
        steps.push(
          `sync ${sync.name}: kick triggers ${asynchronous ? 'removed (asynchronous kicking)' : 'enabled'}`,
        );
      }
      ctx.progress(`validating sync ${sync.name} (re-creates any missing trigger)`);
      await runBucardo(job, ['validate', sync.name], { activity, safeToStop: false });
      steps.push(`sync ${sync.name} already exists; validated it`);
    }
  } catch (error) {
    throw explainSyncFailure(error, job);
  }
  const policy = await applyTriggerPolicy(ctx.db, activity, ctx.progress);
  if (policy.changed.length)
    steps.push(
      `set trigger modes on ${policy.changed.length} table(s)${job.config.databases.primary.cascade ? ' (ENABLE ALWAYS: cascade middle hop)' : ''}`,
    );
  // At once, while the new change tables are young: no sync run may mark changes applied before it.
  const fence = await ensureCommitFence(job, {
    activity,
    db: ctx.db,
    policy: lockRounds(job).policy,
    progress: ctx.progress,
  });
  const fenced = describeFenceOutcome(fence);
  if (fenced) steps.push(fenced);
  policy.failed.push(...fence.failed);
  const copyPending = job.config.bucardo.copyData === 'parallel' && (await copyState(job)).state !== 'done';
  if (policy.failed.length === 0 && isDaemonRunning(job) && copyPending) {
    // Loading the sync now would let the daemon apply changes into tables the copy is about to fill.
    steps.push(
      'the daemon is running but not given the sync yet: bucardo.start copies the tables, then loads it',
    );
  } else if (policy.failed.length === 0 && isDaemonRunning(job)) {
    ctx.progress('reloading the running daemon so it picks up the sync');
    await reloadDaemon(job, ctx);
    steps.push(`reloaded the running daemon and kicked the sync${syncNames(job).length > 1 ? 's' : ''}`);
  }
  if (policy.failed.length) {
    ctx.log(formatFailures(policy.failed).join('\n'));
    return {
      ok: false,
      data: { steps, failed: policy.failed },
      message: `Triggers are in place, but ${policy.failed.length} table(s) could not get their trigger mode or the commit fence within the lock timeout (listed above). Run bucardo.add_triggers again when the locks are released.`,
    };
  }
  return { data: { steps, failed: [] }, message: `Triggers in place: ${steps.join('; ')}.` };
}

export async function dropTriggers(ctx: CommandContext): Promise<CommandOutcome<TriggerData>> {
  const { job, activity } = ctx;
  const records = await readJobRecords(ctx.db, activity);
  // Removing a sync another job runs under the same name would stop that job's replication.
  if (records) refuseSharedRecords(job, records, 'bucardo.drop_triggers', { includeKeepable: false });
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
  if (await metadataDatabaseExists(ctx.db, activity)) {
    for (const name of syncNames(job)) {
      if (!(await withMetadata(ctx.db, (client) => syncRow(client, name), activity))) continue;
      await runBucardo(job, ['remove', 'sync', name], { activity });
      steps.push(`removed sync ${name} from Bucardo (bucardo.add_triggers creates it again)`);
    }
  }
  return { data: { steps, failed: [] }, message: `Dropped: ${steps.join('; ')}.` };
}
