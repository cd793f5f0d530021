// indexes.recreate: rebuilds on the secondary what indexes.drop removed, after Bucardo's initial copy
// (judged from Bucardo's metadata, never from its log). Only what is missing is built, so a rerun
// after an interruption or a failure continues where the last run stopped.
import { sleep } from '../../src/core/activity.js';
import { OperatorError } from '../../src/core/errors.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { quoteQualified } from '../../src/core/quote.js';
import { daemonPid } from '../../src/core/bucardo/daemon.js';
import { copyState, type CopyState } from '../../src/core/copy/progress.js';
import { presence, type IndexPresence } from './catalog.js';
import { indexName, rebuildInParallel, type RebuildResult, type RebuildTask } from './rebuild.js';
import {
  markRecreated,
  recordedIndexes,
  recordsInstalled,
  withRecords,
  type DroppedIndex,
} from './records.js';
import { indexSettings } from './settings.js';
import { formatSize } from './size.js';
import { attachSteps, rebuildSteps } from './statements.js';
import { withThousands } from '../../src/core/numbers.js';

export const NOW_ARG = '--now';

export interface RecreateData {
  recorded: number;
  alreadyPresent: number;
  conflicts: { index: string; problem: string }[];
  copyAtStart: CopyState;
  waitedSeconds: number;
  jobs: number;
  rebuilt: RebuildResult[];
  failed: RebuildResult[];
  rebuildSeconds: number;
}

export interface Work {
  tasks: RebuildTask[];
  present: DroppedIndex[];
  conflicts: { index: string; problem: string }[];
}

function qualified(record: DroppedIndex): string {
  return `${record.schema}.${record.index}`;
}

/** What the secondary still lacks, and which recorded names are taken by something else. */
export function planRebuild(records: DroppedIndex[], found: Map<string, IndexPresence>): Work {
  const work: Work = { tasks: [], present: [], conflicts: [] };
  for (const record of records) {
    const now = found.get(qualified(record)) ?? { exists: false, valid: false, constraintExists: false };
    const task = (steps: RebuildTask['steps']) =>
      work.tasks.push({
        schema: record.schema,
        index: record.index,
        table: `${record.schema}.${record.table}`,
        sizeBytes: record.sizeBytes,
        steps,
      });
    if (now.exists && now.definition !== record.indexDefinition) {
      work.conflicts.push({
        index: qualified(record),
        problem: `an index of that name exists with another definition (${now.definition}); drop or rename it, then rerun`,
      });
    } else if (now.exists && !now.valid) {
      // Left by someone's CREATE INDEX CONCURRENTLY that failed: it is unusable, so build it again.
      task([
        [`DROP INDEX IF EXISTS ${quoteQualified(record.schema, record.index)}`],
        ...rebuildSteps(record),
      ]);
    } else if (!now.exists) {
      task(rebuildSteps(record));
    } else if (record.constraintType === 'u' && !now.constraintExists) {
      task(attachSteps(record));
    } else if (record.constraintType === 'x' && !now.constraintExists) {
      work.conflicts.push({
        index: qualified(record),
        problem: 'an index of that name exists without its exclusion constraint; drop it, then rerun',
      });
    } else {
      work.present.push(record);
    }
  }
  return work;
}

async function loadWork(
  ctx: Pick<CommandContext, 'job' | 'db'>,
): Promise<{ records: DroppedIndex[]; work: Work }> {
  const { job } = ctx;
  const records = await withRecords(ctx.db, undefined, async (client) =>
    (await recordsInstalled(client)) ? recordedIndexes(client, job) : [],
  );
  const found =
    records.length === 0
      ? new Map<string, IndexPresence>()
      : await presence(await ctx.db.secondary(), records);
  return { records, work: planRebuild(records, found) };
}

/** Rebuild now, or first wait for the copy: from the arguments, the operator, or (list mode) the safe choice. */
async function chooseWhen(ctx: CommandContext, state: CopyState): Promise<'now' | 'wait'> {
  // Declared in index.ts as flags that exclude each other.
  if (ctx.options.flag('now')) return 'now';
  if (ctx.options.flag('wait')) return 'wait';
  if (!ctx.prompt.interactive) {
    ctx.log(
      `The initial copy is ${state}: waiting for it to finish before rebuilding (list mode; pass ${NOW_ARG} to rebuild at once).`,
    );
    return 'wait';
  }
  const answer = await ctx.prompt.select(
    `The initial copy is ${state}. Rebuilding now makes the rest of the copy maintain the new indexes row by row. When should the indexes be rebuilt?`,
    [
      { name: 'wait for the initial copy to finish, then rebuild (recommended)', value: 'wait' },
      { name: 'rebuild now', value: 'now' },
    ],
  );
  return answer === 'now' ? 'now' : 'wait';
}

async function waitForCopy(ctx: CommandContext): Promise<number> {
  const { job } = ctx;
  const began = Date.now();
  let daemonMissing = 0;
  for (;;) {
    // Polled every second on the command's shared sessions: no new connections per poll.
    const copy = await copyState(ctx.db);
    if (copy.state === 'done' || copy.state === 'not requested') return (Date.now() - began) / 1000;
    // Two polls in a row: a restart replaces the pid file for a moment.
    daemonMissing = daemonPid(job) ? 0 : daemonMissing + 1;
    if (daemonMissing >= 2) {
      throw new OperatorError(
        `The initial copy of ${job.name} is ${copy.state}, but the Bucardo daemon is not running, so waiting would never end. Nothing was rebuilt. Start it with bucardo.start, then run indexes.recreate again (or indexes.recreate ${NOW_ARG} to rebuild without waiting).`,
      );
    }
    const seconds = Math.round((Date.now() - began) / 1000);
    ctx.progress(
      `waiting for the initial copy (${copy.state}${copy.table ? `: ${copy.table}, ${withThousands(copy.rows!)} rows so far` : ''}), ${seconds} s`,
    );
    await sleep(1000, ctx.activity.signal);
  }
}

export async function recreateIndexes(ctx: CommandContext): Promise<CommandOutcome<RecreateData>> {
  const { job, activity } = ctx;
  const settings = indexSettings(job.config);
  let { records, work } = await loadWork(ctx);
  const copy = await copyState(ctx.db).catch(() => ({ state: 'unknown' as const }));
  const data: RecreateData = {
    recorded: records.length,
    alreadyPresent: work.present.length,
    conflicts: work.conflicts,
    copyAtStart: copy.state,
    waitedSeconds: 0,
    jobs: settings.jobs,
    rebuilt: [],
    failed: [],
    rebuildSeconds: 0,
  };
  if (records.length === 0)
    return { data, message: `No dropped index is recorded for ${job.name}: nothing to rebuild.` };
  await withRecords(ctx.db, undefined, (client) => markRecreated(client, job, work.present));
  if (work.tasks.length === 0) {
    return {
      ok: work.conflicts.length === 0,
      data,
      message: `All ${work.present.length} recorded index(es) are present and valid on the secondary${work.conflicts.length ? `; ${work.conflicts.length} name(s) are taken by something else (listed above)` : ''}.`,
    };
  }

  if (
    copy.state !== 'done' &&
    copy.state !== 'not requested' &&
    (await chooseWhen(ctx, copy.state)) === 'wait'
  ) {
    data.waitedSeconds = await waitForCopy(ctx);
    if (data.waitedSeconds >= 1)
      ctx.log(`Initial copy finished after ${Math.round(data.waitedSeconds)} s of waiting.`);
    // The wait can take hours; another session may have rebuilt some indexes meanwhile.
    ({ records, work } = await loadWork(ctx));
    Object.assign(data, {
      recorded: records.length,
      alreadyPresent: work.present.length,
      conflicts: work.conflicts,
    });
  }

  const total = work.tasks.reduce((sum, t) => sum + t.sizeBytes, 0);
  ctx.log(
    `Rebuilding ${work.tasks.length} index(es) (${formatSize(total)} on the primary), largest first, ${Math.min(settings.jobs, work.tasks.length)} at a time${work.present.length ? `; ${work.present.length} already present` : ''}.`,
  );
  const began = Date.now();
  const results = await rebuildInParallel(job, work.tasks, {
    jobs: settings.jobs,
    maintenanceWorkMemKb: settings.maintenanceWorkMemKb,
    activity,
    onProgress: (p) =>
      ctx.progress(
        `${p.done}/${p.total} rebuilt, ${Math.round(p.elapsedSeconds)} s; building ${p.building.join(', ') || '-'}`,
      ),
    onFinished: (r) =>
      ctx.log(
        r.error
          ? `  FAILED ${indexName(r)} after ${r.seconds.toFixed(1)} s: ${r.error}`
          : `  rebuilt ${indexName(r)} on ${r.table} in ${r.seconds.toFixed(1)} s`,
      ),
  });
  data.rebuildSeconds = (Date.now() - began) / 1000;
  data.rebuilt = results.filter((r) => !r.error);
  data.failed = results.filter((r) => r.error);
  await withRecords(ctx.db, undefined, (client) => markRecreated(client, job, data.rebuilt));
  const problems = data.failed.length + data.conflicts.length;
  if (problems) {
    return {
      ok: false,
      data,
      message: `Rebuilt ${data.rebuilt.length} of ${work.tasks.length} index(es) in ${data.rebuildSeconds.toFixed(1)} s; ${data.failed.length} failed and ${data.conflicts.length} conflict(s) (listed above). Fix the cause, then run indexes.recreate again: it rebuilds only what is missing.`,
    };
  }
  return {
    data,
    message: `Rebuilt ${data.rebuilt.length} index(es) in ${data.rebuildSeconds.toFixed(1)} s with ${Math.min(settings.jobs, work.tasks.length)} parallel build(s)${work.present.length ? `; ${work.present.length} were already present` : ''}.`,
  };
}

/** Every recorded index exists on the secondary, is valid, has its recorded definition, and its constraint. */
export async function validateRecreate(ctx: CommandContext): Promise<Check[]> {
  const { records, work } = await loadWork(ctx);
  const missing = [...work.tasks.map(indexName), ...work.conflicts.map((c) => c.index)];
  return [
    {
      name: `every recorded index exists and is valid on the secondary (${records.length} recorded)`,
      pass: missing.length === 0,
      ...(missing.length
        ? { detail: `${missing.length} missing, invalid or different: ${missing.slice(0, 5).join(', ')}` }
        : {}),
    },
  ];
}
