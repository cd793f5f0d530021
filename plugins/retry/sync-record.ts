// Recording the sync for retry.add_triggers: the same `bucardo add sync` as bucardo.add_triggers, but
// in defer mode (patch.ts), so the sync row is committed before any table gets a trigger.
import { runBucardo } from '../../src/core/bucardo.js';
import type { Job } from '../../src/core/job.js';
import type { CommandContext } from '../../src/core/plugin.js';
import { syncRow, withMetadata, type SyncRow } from '../../src/core/bucardo/metadata.js';
import { addDbgroupArguments, dbgroupName, jobSyncs, type JobSync } from '../../src/core/bucardo/syncs.js';
import { addSyncArguments, confirmCopyOverwrite, explainSyncFailure } from '../../src/core/bucardo/sync.js';

/** Session options for a bucardo call that must record or change the sync without touching any table. */
function deferEnvironment(): Record<string, string> {
  return {
    PGOPTIONS: [process.env['PGOPTIONS'], '-c bucardo_console.retry_mode=defer'].filter(Boolean).join(' '),
  };
}

/** Records the job's syncs (or switches their kick triggers) in defer mode: no table is locked here. */
export async function ensureSync(job: Job, ctx: CommandContext): Promise<string[]> {
  const steps: string[] = [];
  const syncs = jobSyncs(job);
  const rows = await withMetadata(
    job,
    (client) => Promise.all(syncs.map((s) => syncRow(client, s.name))),
    ctx.activity,
  );
  try {
    if (rows.some((row) => !row)) {
      const confirmed = await confirmCopyOverwrite(ctx, 'retry.add_triggers');
      if (confirmed) steps.push(confirmed);
    }
    const dbgroup = await withMetadata(job, (client) =>
      client.query('SELECT 1 FROM bucardo.dbgroup WHERE name = $1', [dbgroupName(job)]),
    );
    if (syncs.length > 1 && !dbgroup.rowCount)
      await runBucardo(job, addDbgroupArguments(job), { activity: ctx.activity });
    for (const [i, sync] of syncs.entries()) steps.push(...(await ensureOneSync(job, ctx, sync, rows[i])));
  } catch (error) {
    throw explainSyncFailure(error, job);
  }
  return steps;
}

async function ensureOneSync(
  job: Job,
  ctx: CommandContext,
  sync: JobSync,
  row: SyncRow | undefined,
): Promise<string[]> {
  const asynchronous = job.config.bucardo.asynchronousKicking;
  const options = { activity: ctx.activity, safeToStop: false, extraEnv: deferEnvironment() };
  if (!row) {
    ctx.progress(`recording sync ${sync.name} (no table is touched yet)`);
    await runBucardo(job, addSyncArguments(job, sync), options);
    const kicking = asynchronous ? 'no kick triggers: asynchronous kicking' : 'per-commit kick triggers';
    return [`recorded sync ${sync.name} (copy_data ${job.config.bucardo.copyData}, ${kicking})`];
  }
  if (row.autokick === asynchronous) {
    ctx.progress(`switching the kick triggers of ${sync.name} ${asynchronous ? 'off' : 'on'}`);
    await runBucardo(job, ['update', 'sync', sync.name, `autokick=${asynchronous ? 0 : 1}`], options);
    return [
      `sync ${sync.name}: kick triggers ${asynchronous ? 'to be removed (asynchronous kicking)' : 'to be added'}, table by table`,
    ];
  }
  return [];
}
