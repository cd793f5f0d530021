// retry.drop_triggers: removes this job's triggers table by table, each DROP (ACCESS EXCLUSIVE)
// waiting at most retry.timeout, retrying busy tables in further rounds. The sync stays recorded
// until the last trigger is gone, so an interrupted or incomplete run never leaves a trigger outside
// a recorded sync; it is removed at the end, as bucardo.drop_triggers does.
import { sleep, type Activity } from '../../src/core/activity.js';
import { runBucardo } from '../../src/core/bucardo.js';
import { withClient, type Client } from '../../src/core/db.js';
import { OperatorError } from '../../src/core/errors.js';
import type { Job } from '../../src/core/job.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { quoteIdent, quoteQualified } from '../../src/core/quote.js';
import { isDaemonRunning } from '../bucardo/daemon.js';
import { metadataDatabaseExists, syncRow, withMetadata } from '../bucardo/metadata.js';
import { validateNoTriggers } from '../bucardo/sync.js';
import type { TableFailure } from '../bucardo/triggers.js';
import type { RetryRunData } from './add.js';
import { describeWaiting, tryTableDdl } from './locked-ddl.js';
import { RoundProgress } from './progress.js';
import { pauseBeforeRound, retrySettings } from './settings.js';
import { triggersToDrop } from './table-state.js';

export interface RoundsResult { total: number; rounds: number; waiting: TableFailure[] }

/**
 * Drops this job's triggers table by table in rounds, as the job's retry section says (also used by
 * cutover.finish when the retry plugin is enabled). A table still busy after the last round is
 * returned with the sessions holding its lock.
 */
export async function dropTriggersInRounds(primary: Client, job: Job, activity: Activity, report: (text: string) => void): Promise<RoundsResult> {
  const settings = retrySettings(job);
  let remaining = await triggersToDrop(primary, job);
  const total = remaining.size;
  const progress = new RoundProgress(total, 'done', report);
  while (remaining.size > 0 && progress.round < settings.attempts) {
    progress.round += 1;
    progress.waiting.clear();
    const pause = pauseBeforeRound(settings, progress.round);
    if (pause > 0) {
      remaining.forEach((_, key) => progress.waiting.add(key));
      progress.show(` (starts in ${(pause / 1000).toFixed(1)} s)`);
      await sleep(pause, activity.signal);
    }
    for (const [key, rows] of remaining) {
      activity.throwIfInterrupted();
      progress.show();
      const statements = rows.map((row) => `DROP TRIGGER IF EXISTS ${quoteIdent(row.trigger)} ON ${quoteQualified(row.schema, row.table)}`);
      const outcome = await tryTableDdl(primary, activity, settings.timeoutMs, statements);
      if (outcome === 'done') progress.markReady(key);
      else progress.markWaiting(key);
    }
    remaining = await triggersToDrop(primary, job);
  }
  const waitingTables = [...remaining.values()].map((rows) => ({ key: `${rows[0]!.schema}.${rows[0]!.table}`, schema: rows[0]!.schema, table: rows[0]!.table }));
  const waiting = await describeWaiting(primary, waitingTables, `could not be locked within retry.timeout (${settings.timeoutMs} ms) in ${progress.round} round(s)`);
  return { total, rounds: progress.round, waiting };
}

export async function dropTriggers(ctx: CommandContext): Promise<CommandOutcome<RetryRunData>> {
  const { job, activity } = ctx;
  const started = Date.now();
  if (isDaemonRunning(job)) {
    throw new OperatorError(`The Bucardo daemon of ${job.name} is running: dropping its triggers now would silently stop capturing changes for a live sync. Stop it first with bucardo.stop, then run retry.drop_triggers.`);
  }
  const steps: string[] = [];
  const result = await withClient(job, { role: 'primary', login: 'schema_owner', activity }, (primary) => dropTriggersInRounds(primary, job, activity, ctx.progress));
  if (result.rounds > 0) steps.push(`dropped this job's triggers on ${result.total - result.waiting.length} of ${result.total} table(s) in ${result.rounds} round(s)`);
  const data = (): RetryRunData => ({ tables: result.total, alreadyDone: 0, rounds: result.rounds, waiting: result.waiting, steps, elapsedMs: Date.now() - started });
  if (result.waiting.length > 0) {
    return {
      ok: false,
      data: data(),
      message: `${result.waiting.length} table(s) still carry this job's triggers: another session held their lock through every round (listed above with who holds it). Sync ${job.syncName} stays recorded until they are gone. Once those locks are released, run retry.drop_triggers again: it continues from here.`,
    };
  }
  let syncRemoved = false;
  if (await metadataDatabaseExists(job, activity) && await withMetadata(job, (client) => syncRow(client, job.syncName), activity)) {
    // Only now: without the sync nothing re-creates the triggers, and none is left to orphan.
    await runBucardo(job, ['remove', 'sync', job.syncName], { activity });
    steps.push(`removed sync ${job.syncName} from Bucardo (retry.add_triggers or bucardo.add_triggers creates it again)`);
    syncRemoved = true;
  }
  if (steps.length === 0) return { data: data(), message: `Nothing to do: no table carries this job's triggers and sync ${job.syncName} is not recorded.` };
  return { data: data(), message: `No table carries this job's triggers any more${syncRemoved ? ` and sync ${job.syncName} is removed` : ''}.` };
}

export async function validateDropTriggers(ctx: CommandContext): Promise<Check[]> {
  const { job } = ctx;
  const sync = await metadataDatabaseExists(job) ? await withMetadata(job, (client) => syncRow(client, job.syncName)) : undefined;
  return [...await validateNoTriggers(ctx), { name: `sync ${job.syncName} no longer recorded in Bucardo`, pass: sync === undefined }];
}
