// Which way the schema plugin's commands work. Until cutover.finish --way-back switched the writes to
// B, replication runs A→B and the commands work on the job. While the way back runs, B takes the
// writes and the reverse sync carries them to A: the commands work on the B→A job (the core's
// reverseJob), whose "primary" is B and "secondary" A, so that every order stays the one that never
// breaks replication (what widens on A first, what narrows on B first), the way back's sync is the one
// reloaded and validated, and a new table joins it with its rows copied B→A. (docs/commands/schema.md,
// "On the way back".)
import { runningWayBack, type RunningWayBack } from '../../src/core/bucardo/direction.js';
import { followJob } from '../../src/core/bucardo/follow.js';
import { syncRow } from '../../src/core/bucardo/metadata.js';
import { adoptRecordedNames } from '../../src/core/bucardo/records.js';
import { OperatorError } from '../../src/core/errors.js';
import type { CommandContext } from '../../src/core/plugin.js';

export interface SchemaDirection {
  /** The context to work in: the command's own, or its view of the B→A job. */
  ctx: CommandContext;
  wayBack?: RunningWayBack;
}

/**
 * The direction a command that changes things works in. A fan-out job whose other targets follow B
 * (cutover.others: follow) is refused on the way back: the followers' sync carries B's rows to them,
 * and a change made on B and A only would stop it at the first row with a new column.
 */
export async function schemaDirection(ctx: CommandContext, command: string): Promise<SchemaDirection> {
  // The way back's names derive from the job's as recorded (a job installed with the old names).
  await adoptRecordedNames(ctx.db, ctx.activity);
  const wayBack = await runningWayBack(ctx.job, ctx.db);
  if (!wayBack) return { ctx };
  const follow = followJob(wayBack.switched);
  if (follow && (await syncRow(await ctx.db.metadata(), follow.syncName)))
    throw new OperatorError(
      `${command} works on the way back of ${ctx.job.name} (the secondary ${wayBack.switched.target} takes the writes, sync ${wayBack.reverse.syncName} carries them to the primary), but the other targets follow it too (sync ${follow.syncName}, cutover.others: follow): a change made on ${wayBack.switched.target} and the primary only would stop that sync at the first row it cannot apply. Nothing was changed. Remove the followers' sync first (cutover.release removes it together with the way back), or make the change on the other targets by hand before it reaches ${wayBack.switched.target}.`,
    );
  return { ctx: ctx.forJob(wayBack.reverse), wayBack };
}

/** The plan's first line on the way back: which side is which. */
export function wayBackPlanLine(wayBack: RunningWayBack): string {
  return `On the way back: the application writes to the secondary (B${wayBack.switched.config.fanOut ? `, target ${wayBack.switched.target}` : ''}) and sync ${wayBack.reverse.syncName} carries its rows to the primary (A), so B is the source here: what widens runs on A first, what narrows on B first, and new tables join the way back with their rows copied B→A.`;
}
