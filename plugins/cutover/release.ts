// cutover.release: lifts what the cutover keeps in place. Two things, each only when it is there:
// 1. the hold a passing cutover.verify puts on Bucardo's purge of change records (capture.ts), on
//    the primary (and, for a verify of the way back, on the secondary). cutover.finish lifts it
//    itself; run this when the cutover is postponed, so the delta tables do not keep growing until
//    then. A later cutover.verify puts a new hold in place.
// 2. the way back (way-back.ts): once the operator is confident in the secondary, the reverse sync
//    B→A and its triggers on B, removed table by table under bounded lock waits. After that the
//    primary no longer receives the secondary's writes: cutover.rollback is no longer possible.
// Running it again finds nothing left and says so.
import { adoptRecordedNames } from '../../src/core/bucardo/records.js';
import { formatFailures, type TableFailure } from '../../src/core/ddl.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { metadataDatabaseExists } from '../../src/core/bucardo/metadata.js';
import { reverseJob } from '../../src/core/bucardo/reverse.js';
import { holdInPlace, releaseHold } from './compare/index.js';
import { openRecords, readProgress } from './records.js';
import { wayBackExists } from '../../src/core/bucardo/direction.js';
import { removeWayBack, wayBackTriggers } from './way-back.js';
import { followExists, removeFollow, switchedTarget } from './follow.js';

export interface ReleaseData {
  steps: string[];
  released: boolean;
  wayBackRemoved: boolean;
  failed: TableFailure[];
}

export async function release(ctx: CommandContext): Promise<CommandOutcome<ReleaseData>> {
  await adoptRecordedNames(ctx.db, ctx.activity);
  // A fan-out job: the way back and the followers' sync start from the target the cutover chose.
  const job = await switchedTarget(ctx);
  const follow = await removeFollow(ctx);
  if (follow?.failed.length) {
    ctx.log(formatFailures(follow.failed).join('\n'));
    return {
      ok: false,
      data: { steps: follow.steps, released: false, wayBackRemoved: false, failed: follow.failed },
      message: `The followers' sync is removed, but ${follow.failed.length} table(s) still carry its triggers: each stayed locked longer than ${follow.limit} (listed above). End those sessions or wait for them, then run cutover.release again.`,
    };
  }
  // Every view of the job (a fan-out target) has the job's primary.
  const released = await releaseHold(await ctx.db.primary(), job.syncName);
  const steps = [
    ...(follow?.steps ?? []),
    released
      ? "lifted the hold on Bucardo's purge of change records: its VAC purges them at its next run"
      : "no hold on Bucardo's purge was in place",
  ];
  const installed = await metadataDatabaseExists(ctx.db, ctx.activity);
  const wayBack = installed && (await wayBackExists(job, ctx.db, ctx.activity));
  // A release interrupted after removing the sync leaves triggers behind: they are found on B itself.
  const leftOver =
    !wayBack &&
    (await wayBackTriggers(job, ctx.databases(job)).catch(() => [])).some(
      (t) => !t.endsWith(':bucardo_delta'),
    );
  if (!wayBack && !leftOver)
    return {
      data: { steps, released, wayBackRemoved: false, failed: [] },
      message: follow
        ? "Released: the followers' sync and its triggers are gone; the other targets keep what they hold and get nothing more."
        : released
          ? 'Released. cutover.finish now needs a new cutover.verify first (or it compares every row during the write pause).'
          : 'Nothing to release.',
    };
  const records = installed ? await openRecords(ctx.db) : undefined;
  const progress = records ? await readProgress(records, job) : {};
  const removal = await removeWayBack(job, ctx, Boolean(progress?.finished));
  steps.push(...removal.steps);
  if (removal.failed.length) {
    ctx.log(formatFailures(removal.failed).join('\n'));
    return {
      ok: false,
      data: { steps, released, wayBackRemoved: false, failed: removal.failed },
      message: `The way back's sync is removed, but ${removal.failed.length} table(s) of the secondary still carry its triggers: each stayed locked longer than ${removal.limit} (listed above, with the sessions holding locks). Writes to them are still recorded in the secondary's delta tables, for nothing. End those sessions or wait for them, then run cutover.release again.`,
    };
  }
  return {
    data: { steps, released, wayBackRemoved: true, failed: [] },
    message: `Released: the way back (sync ${reverseJob(job).syncName}) and its triggers on the secondary are gone; the primary no longer receives the secondary's writes, so cutover.rollback is no longer possible.`,
  };
}

export async function validateRelease(ctx: CommandContext): Promise<Check[]> {
  const job = await switchedTarget(ctx);
  const following = await followExists(job, ctx.activity, ctx.db);
  const held = await holdInPlace(await ctx.db.primary(), ctx.job.syncName);
  const installed = await metadataDatabaseExists(ctx.db);
  const wayBack = installed && (await wayBackExists(job, ctx.db, ctx.activity));
  const triggers = await wayBackTriggers(job, ctx.databases(job)).catch(() => []);
  return [
    { name: "no hold on Bucardo's purge left", pass: !held },
    { name: 'no way back (reverse sync) left in Bucardo', pass: !wayBack },
    ...(job.config.fanOut ? [{ name: "no followers' sync left in Bucardo", pass: !following }] : []),
    {
      name: 'no trigger of the way back left on the secondary',
      pass: triggers.length === 0,
      ...(triggers.length ? { detail: triggers.slice(0, 5).join(', ') } : {}),
    },
  ];
}
