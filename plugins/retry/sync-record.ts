// Recording the sync for retry.add_triggers: the same `bucardo add sync` as bucardo.add_triggers, but
// in defer mode (patch.ts), so the sync row is committed before any table gets a trigger.
import { runBucardo } from '../../src/core/bucardo.js';
import type { Job } from '../../src/core/job.js';
import type { CommandContext } from '../../src/core/plugin.js';
import { syncRow, withMetadata } from '../../src/core/bucardo/metadata.js';
import { addSyncArguments, confirmCopyOverwrite, explainSyncFailure } from '../../src/core/bucardo/sync.js';

/** Session options for a bucardo call that must record or change the sync without touching any table. */
function deferEnvironment(): Record<string, string> {
  return {
    PGOPTIONS: [process.env['PGOPTIONS'], '-c bucardo_console.retry_mode=defer'].filter(Boolean).join(' '),
  };
}

/** Records the sync (or switches its kick triggers) in defer mode: no table is locked here. */
export async function ensureSync(job: Job, ctx: CommandContext): Promise<string[]> {
  const asynchronous = job.config.bucardo.asynchronousKicking;
  const options = { activity: ctx.activity, safeToStop: false, extraEnv: deferEnvironment() };
  const sync = await withMetadata(job, (client) => syncRow(client, job.syncName), ctx.activity);
  try {
    if (!sync) {
      const confirmed = await confirmCopyOverwrite(ctx, 'retry.add_triggers');
      ctx.progress(`recording sync ${job.syncName} (no table is touched yet)`);
      await runBucardo(job, addSyncArguments(job), options);
      const kicking = asynchronous ? 'no kick triggers: asynchronous kicking' : 'per-commit kick triggers';
      const recorded = `recorded sync ${job.syncName} (copy_data ${job.config.bucardo.copyData}, ${kicking})`;
      return confirmed ? [confirmed, recorded] : [recorded];
    }
    if (sync.autokick === asynchronous) {
      ctx.progress(`switching the sync's kick triggers ${asynchronous ? 'off' : 'on'}`);
      await runBucardo(job, ['update', 'sync', job.syncName, `autokick=${asynchronous ? 0 : 1}`], options);
      return [
        `sync ${job.syncName}: kick triggers ${asynchronous ? 'to be removed (asynchronous kicking)' : 'to be added'}, table by table`,
      ];
    }
  } catch (error) {
    throw explainSyncFailure(error, job);
  }
  return [];
}
