// A fan-out job's cutover (databases.secondaries): `cutover.finish --target B` switches the writes to
// B, and the other targets either follow B or stop (cutover.others). Following is a sync B→{the
// others} (src/core/bucardo/follow.ts) created before the write pause without a copy: at the switch
// every target holds what A held (the final check compares each follower too), and B's triggers
// record every write B takes from then on. Stopping leaves the others as they were at the switch.
import { daemonPid, syncLoaded } from '../../src/core/bucardo/daemon.js';
import { followJob, followNameProblem, followSyncName } from '../../src/core/bucardo/follow.js';
import { metadataDatabaseExists, syncRow, withMetadata } from '../../src/core/bucardo/metadata.js';
import type { Activity } from '../../src/core/activity.js';
import type { DatabaseContext } from '../../src/core/context.js';
import { readRecords, refuseSharedRecords } from '../../src/core/bucardo/records.js';
import { reverseSyncName } from '../../src/core/bucardo/reverse.js';
import { errorMessage, OperatorError } from '../../src/core/errors.js';
import { jobTitle, targetView, unknownTargetMessage, type Job } from '../../src/core/job.js';
import { pendingChanges } from '../../src/core/pending.js';
import type { CommandContext } from '../../src/core/plugin.js';
import { chosenTarget, openRecords } from './records.js';
import { cutoverSettings } from './settings.js';
import { createSyncFromSecondary, removeSyncFromSecondary, type WayBackRemoval } from './way-back.js';

/**
 * The view of the target cutover.finish switches to: the one --target names, the one an earlier run
 * began switching to, or the only one. A fan-out job with several targets must name one.
 */
export async function chooseTarget(ctx: CommandContext): Promise<Job> {
  const { job } = ctx;
  const named = ctx.options.string('target');
  if (!job.config.fanOut) {
    if (named !== undefined) throw new OperatorError(unknownTargetMessage(job, named));
    return job;
  }
  if (named !== undefined && !job.targets.some((t) => t.name === named))
    throw new OperatorError(unknownTargetMessage(job, named));
  const records = await openRecords(ctx.db);
  const earlier = records ? await chosenTarget(records, job) : undefined;
  if (earlier !== undefined && named !== undefined && earlier !== named)
    throw new OperatorError(
      `The cutover of ${jobTitle(job)} was begun towards target ${earlier}, not ${named}: a cutover switches to one target. Nothing was changed. Run cutover.finish --target ${earlier} to continue it (or let writes resume on the primary and start again after cutover.release).`,
    );
  const name = named ?? earlier ?? (job.targets.length === 1 ? job.targets[0]!.name : undefined);
  if (name === undefined)
    throw new OperatorError(
      `${jobTitle(job)} replicates to ${job.targets.length} targets (${job.targets.map((t) => t.name).join(', ')}): name the one that becomes the new primary with cutover.finish --target NAME. The others then ${cutoverOthers(job) === 'follow' ? 'follow it (cutover.others: follow)' : 'stop where they are (cutover.others: stop)'}. Nothing was changed.`,
    );
  return targetView(job, name);
}

/** The target the cutover switched to (cutover.rollback, cutover.release): recorded by finish. */
export async function switchedTarget(ctx: CommandContext): Promise<Job> {
  const { job } = ctx;
  if (!job.config.fanOut) return job;
  const records = await openRecords(ctx.db);
  const recorded = records ? await chosenTarget(records, job) : undefined;
  return recorded !== undefined && job.targets.some((t) => t.name === recorded)
    ? targetView(job, recorded)
    : job;
}

function cutoverOthers(job: Job): 'follow' | 'stop' {
  return cutoverSettings(job.config).others;
}

/** The views of the targets other than the chosen one. */
export function otherTargets(view: Job): Job[] {
  return view.targets.filter((t) => t.name !== view.target).map((t) => targetView(view, t.name));
}

/** Creates the followers' sync B→{others} before the write pause (like the way back). Safe to rerun. */
export async function setUpFollow(view: Job, follow: Job, ctx: CommandContext): Promise<string[]> {
  const problem = followNameProblem(view);
  if (problem)
    throw new OperatorError(`The other targets of ${view.name} cannot follow ${view.target}: ${problem}.`);
  // Every view of the job (a target, the followers' sync) keeps its records in the job's metadata database.
  const metadata = await ctx.db.metadata();
  if (await syncRow(metadata, follow.syncName))
    return [
      `the followers' sync ${follow.syncName} (${view.target} → ${followerNames(follow)}) is already set up`,
    ];
  refuseSharedRecords(view, await readRecords(metadata), 'cutover.finish');
  const steps = await createSyncFromSecondary(view, follow, ctx, `cutover.finish --target ${view.target}`);
  steps.push(
    `created sync ${follow.syncName} (source ${view.target}, target${follow.targets.length > 1 ? 's' : ''} ${followerNames(follow)}, no initial copy: they hold the data) with ordinary triggers on ${view.target}'s tables; it runs once the switch is done`,
  );
  return steps;
}

function followerNames(follow: Job): string {
  return follow.targets.map((t) => t.name).join(', ');
}

/**
 * Whether the followers' sync of the job (or of the view of its switched target) exists, read on
 * `sessions` when given (the command's `ctx.db`: the job's metadata database is every view's), else on
 * a session of its own (the uninstall guard: the metadata database may be dropped after it).
 */
export async function followExists(
  job: Job,
  activity?: Activity,
  sessions: Job | DatabaseContext = job,
): Promise<boolean> {
  if (!job.config.fanOut || !(await metadataDatabaseExists(sessions, activity))) return false;
  return Boolean(await withMetadata(sessions, (client) => syncRow(client, followSyncName(job)), activity));
}

/** cutover.release (and before bucardo.uninstall): the followers' sync and its triggers on B. */
export async function removeFollow(ctx: CommandContext): Promise<WayBackRemoval | undefined> {
  const view = await switchedTarget(ctx);
  const follow = followJob(view);
  if (!follow || !(await followExists(view, ctx.activity, ctx.db))) return undefined;
  // The way back may still run beside it: then the daemon is reloaded, not stopped.
  const wayBackRuns = Boolean(await syncRow(await ctx.db.metadata(), reverseSyncName(view)));
  return removeSyncFromSecondary(view, follow, ctx, !wayBackRuns, "the followers' sync");
}

/** A line for bucardo.status while the followers' sync exists: loaded or not, its backlog on B. */
export async function followStatus(ctx: CommandContext): Promise<string[]> {
  if (!(await followExists(ctx.job, ctx.activity, ctx.db).catch(() => false))) return [];
  const view = await switchedTarget(ctx);
  const follow = followJob(view);
  if (!follow) return [];
  const loaded = Boolean(daemonPid(view)) && syncLoaded(follow);
  try {
    // The followers' source is the switched target, the view's secondary: its shared session.
    const source = await ctx.databases(view).secondary();
    const pending = await pendingChanges(source, follow.dbgroupName);
    const changes = pending.reduce((sum, p) => sum + p.changes, 0);
    const oldest = pending.reduce<Date | null>(
      (min, p) => (p.oldest && (!min || p.oldest < min) ? p.oldest : min),
      null,
    );
    const lag = oldest ? `${Math.max(0, Math.round((Date.now() - oldest.getTime()) / 1000))} s` : '0 s';
    return [
      `followers (sync ${follow.syncName}, ${view.target} → ${followerNames(follow)}): ${loaded ? 'running' : 'NOT running (bucardo.start)'}; ${changes} change(s) pending on ${view.target}, lag ${lag}`,
    ];
  } catch (error) {
    return [
      `followers (sync ${follow.syncName}): could not read its backlog on ${view.target}: ${errorMessage(error)}`,
    ];
  }
}

/** bucardo.uninstall's guard: the followers' sync would be forgotten while its triggers stay on B. */
export async function refuseWhileFollowing(ctx: CommandContext): Promise<void> {
  // Its own session, not ctx.db: bucardo.uninstall may drop the metadata database after this guard.
  if (!(await followExists(ctx.job, ctx.activity).catch(() => false))) return;
  throw new OperatorError(
    `The followers' sync of ${ctx.job.name} (${followSyncName(ctx.job)}) still carries the new primary's writes to the other targets, and its triggers sit on the new primary's tables: uninstalling would forget it and leave them recording every write for nothing. Run cutover.release first (it removes the way back and the followers' sync with their triggers, table by table), then bucardo.uninstall. Nothing was changed.`,
  );
}
