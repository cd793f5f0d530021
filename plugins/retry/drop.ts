// retry.drop_triggers: removes this job's triggers table by table, each DROP (ACCESS EXCLUSIVE)
// waiting at most retry.timeout, retrying busy tables in further rounds. The sync stays recorded
// until the last trigger is gone, so an interrupted or incomplete run never leaves a trigger outside
// a recorded sync; it is removed at the end, as bucardo.drop_triggers does.
import { runBucardo } from '../../src/core/bucardo/run.js';
import { isDaemonRunning } from '../../src/core/bucardo/daemon.js';
import { metadataDatabaseExists, syncRow, withMetadata } from '../../src/core/bucardo/metadata.js';
import { noTriggersCheck } from '../../src/core/bucardo/sync.js';
import { dropTriggersInRounds } from '../../src/core/bucardo/triggers.js';
import { withClient } from '../../src/core/db.js';
import { OperatorError } from '../../src/core/errors.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { recordedSyncs, syncNames } from '../../src/core/bucardo/syncs.js';
import { readJobRecords, refuseSharedRecords } from '../../src/core/bucardo/records.js';
import type { RetryRunData } from './format.js';
import { retryPolicy } from './settings.js';

export async function dropTriggers(ctx: CommandContext): Promise<CommandOutcome<RetryRunData>> {
  const { job, activity } = ctx;
  const started = Date.now();
  const records = await readJobRecords(ctx.db, activity);
  // Removing a sync another job runs under the same name would stop that job's replication.
  if (records) refuseSharedRecords(job, records, 'retry.drop_triggers', { includeKeepable: false });
  if (isDaemonRunning(job)) {
    throw new OperatorError(
      `The Bucardo daemon of ${job.name} is running: dropping its triggers now would silently stop capturing changes for a live sync. Stop it first with bucardo.stop, then run retry.drop_triggers.`,
    );
  }
  const steps: string[] = [];
  const policy = retryPolicy(job.config);
  // A session of its own: each table's drop is a transaction with SET LOCAL lock_timeout.
  const result = await withClient(job, { role: 'primary', login: 'schema_owner', activity }, (primary) =>
    dropTriggersInRounds(
      primary,
      job,
      activity,
      policy,
      ctx.progress,
      (rounds) => `could not be locked within retry.timeout (${policy.timeoutMs} ms) in ${rounds} round(s)`,
    ),
  );
  if (result.rounds > 0)
    steps.push(
      `dropped this job's triggers on ${result.total - result.waiting.length} of ${result.total} table(s) in ${result.rounds} round(s)`,
    );
  const data = (): RetryRunData => ({
    tables: result.total,
    alreadyDone: 0,
    rounds: result.rounds,
    waiting: result.waiting,
    steps,
    elapsedMs: Date.now() - started,
  });
  if (result.waiting.length > 0) {
    return {
      ok: false,
      data: data(),
      message: `${result.waiting.length} table(s) still carry this job's triggers: another session held their lock through every round (listed above with who holds it). Sync ${job.syncName} stays recorded until they are gone. Once those locks are released, run retry.drop_triggers again: it continues from here.`,
    };
  }
  let syncRemoved = false;
  const metadata = await metadataDatabaseExists(ctx.db, activity);
  for (const name of metadata ? syncNames(job) : []) {
    if (!(await withMetadata(ctx.db, (client) => syncRow(client, name), activity))) continue;
    // Only now: without the sync nothing re-creates the triggers, and none is left to orphan.
    await runBucardo(job, ['remove', 'sync', name], { activity });
    steps.push(
      `removed sync ${name} from Bucardo (retry.add_triggers or bucardo.add_triggers creates it again)`,
    );
    syncRemoved = true;
  }
  if (steps.length === 0)
    return {
      data: data(),
      message: `Nothing to do: no table carries this job's triggers and sync ${job.syncName} is not recorded.`,
    };
  return {
    data: data(),
    message: `No table carries this job's triggers any more${syncRemoved ? ` and sync ${job.syncName} is removed` : ''}.`,
  };
}

export async function validateDropTriggers(ctx: CommandContext): Promise<Check[]> {
  const { job } = ctx;
  const sync = (await metadataDatabaseExists(ctx.db))
    ? (await withMetadata(ctx.db, (client) => recordedSyncs(client, job)))[0]
    : undefined;
  return [
    await noTriggersCheck(ctx.db, ctx.activity),
    { name: `sync ${job.syncName} no longer recorded in Bucardo`, pass: sync === undefined },
  ];
}
