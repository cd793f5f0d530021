// While the console's own copy runs (copy_data parallel), a table's dropped indexes are rebuilt as soon
// as all its rows are on the secondary, while the next tables copy: the copy and the builds overlap
// instead of adding up, as pgcopydb does. The copy engine announces each finished table
// (tableCopied); this listener builds what indexes.drop recorded for it, at most indexes.jobs builds at
// once across tables, and marks them rebuilt. What fails stays recorded as dropped, so
// indexes.recreate builds it later; nothing here can fail the copy.
import type { Activity } from '../../src/core/activity.js';
import type { CommandContext, CopiedTable } from '../../src/core/plugin.js';
import { Slots } from '../../src/core/pool.js';
import { INDEX_BUILD_APPLICATION } from '../../src/core/watchdog.js';
import { presence } from './catalog.js';
import { planRebuild } from './recreate.js';
import { indexName, rebuildOne, withRebuildSession, type RebuildResult } from './rebuild.js';
import { markRecreated, recordedIndexes, recordsInstalled, withRecords } from './records.js';
import { indexSettings } from './settings.js';

/** One limit per command run: every table's builds share indexes.jobs. */
const slotsByRun = new WeakMap<Activity, Slots>();

function slotsFor(ctx: CommandContext, jobs: number): Slots {
  let slots = slotsByRun.get(ctx.activity);
  if (!slots) {
    slots = new Slots(jobs);
    slotsByRun.set(ctx.activity, slots);
  }
  return slots;
}

export async function rebuildCopiedTable(ctx: CommandContext, table: CopiedTable): Promise<string[]> {
  const { job, activity } = ctx;
  const records = await withRecords(ctx.db, undefined, async (client) =>
    (await recordsInstalled(client)) ? recordedIndexes(client, job) : [],
  );
  const mine = records.filter((r) => r.schema === table.schema && r.table === table.name);
  if (mine.length === 0) return [];
  const work = planRebuild(mine, await presence(await ctx.db.secondary(), mine));
  const lines = work.conflicts.map(
    (c) => `${c.index} not rebuilt: ${c.problem} (indexes.recreate builds it once that is fixed)`,
  );
  await withRecords(ctx.db, undefined, (client) => markRecreated(client, job, work.present));
  if (work.tasks.length === 0) return lines;

  const settings = indexSettings(job.config);
  const slots = slotsFor(ctx, settings.jobs);
  const began = Date.now();
  // Largest first (the records come so): the longest build starts as soon as a slot is free.
  const results: RebuildResult[] = await Promise.all(
    work.tasks.map((task) =>
      slots.run(() =>
        withRebuildSession(
          job,
          {
            maintenanceWorkMemKb: settings.maintenanceWorkMemKb,
            activity,
            applicationName: `${INDEX_BUILD_APPLICATION} (after copy)`,
          },
          (client) => rebuildOne(client, task),
        ),
      ),
    ),
  );
  const rebuilt = results.filter((r) => !r.error);
  await withRecords(ctx.db, undefined, (client) => markRecreated(client, job, rebuilt));
  const seconds = ((Date.now() - began) / 1000).toFixed(1);
  const where = `${table.schema}.${table.name}`;
  if (rebuilt.length)
    lines.push(
      `rebuilt ${rebuilt.length} index(es) of ${where} in ${seconds} s as soon as its rows were copied (${rebuilt.map(indexName).join(', ')})`,
    );
  for (const failed of results.filter((r) => r.error))
    lines.push(
      `FAILED to rebuild ${indexName(failed)} on ${where}: ${failed.error}; it stays recorded, and indexes.recreate builds it once the cause is fixed`,
    );
  return lines;
}
