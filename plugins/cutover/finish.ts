// cutover.finish: the guided switch to the secondary, as a table of steps (the step functions in
// switch-steps.ts, what a run holds and the check after it in switch.ts, the runner in steps.ts).
// Each row names a step; `doneWhen` is the point of the recorded progress (cutover.finish_progress)
// after which a rerun skips it, `marks` the point recorded once it is done, `inPause` puts its time in
// the write pause's report. With the way back, the reverse sync is created before the confirmation
// (the pause does not grow) and the daemon starts again after the switch, running only it.
import type { Job } from '../../src/core/job.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { followJob } from '../../src/core/bucardo/follow.js';
import { reverseJob } from '../../src/core/bucardo/reverse.js';
import { adoptRecordedNames } from '../../src/core/bucardo/records.js';
import { chooseTarget, otherTargets, switchedTarget } from './follow.js';
import { cutoverSettings } from './settings.js';
import type { Step } from './steps.js';
import * as step from './switch-steps.js';
import { FORWARD, runSwitch, validateSwitch, type FinishData, type SwitchRun } from './switch.js';
import { WriteStop } from './write-stop.js';

export type { FinishData } from './switch.js';

/** From an earlier run's check to the write stop's drain and sequences: the same both ways. */
export const OPENING_ROWS: Step<SwitchRun, FinishData>[] = [
  { name: 'earlier run', applies: (run) => run.progress.confirmed !== undefined, run: step.earlierRun },
  { name: 'scope', run: step.scope },
  // Before any pause: the tables copied at the switch exist on both sides with the same columns.
  { name: 'copy at the switch: check', doneWhen: 'confirmed', applies: copies, run: step.copyTablesChecked },
  { name: 'readiness', doneWhen: 'confirmed', run: step.readiness },
  { name: 'open sessions', doneWhen: 'verified', run: step.openSessions },
  // Before the write stop: what changed since the verify, compared while the application writes.
  { name: 'pre-check', doneWhen: 'confirmed', applies: step.preCheckApplies, run: step.preCheck },
  { name: 'confirmation', doneWhen: 'confirmed', run: step.operatorConfirms },
  { name: 'stop writes', doneWhen: 'replication_stopped', marks: 'confirmed', run: step.stopWrites },
  { name: 'drain', doneWhen: 'drained', marks: 'drained', inPause: true, run: step.drain },
  { name: 'sequences', doneWhen: 'sequences', marks: 'sequences', inPause: true, run: step.sequences },
];

function copies(run: SwitchRun): boolean {
  return run.settings.copyAtCutover.length > 0;
}

/**
 * The tables of cutover.copy_at_cutover copied whole, in the pause both ways, before the final check
 * (which compares them whole). Its time is recorded with the final check's point; until that point is
 * recorded, a rerun copies them again.
 */
export const COPY_ROW: Step<SwitchRun, FinishData> = {
  name: 'copy tables',
  doneWhen: 'verified',
  inPause: true,
  applies: copies,
  run: step.copyAtCutover,
};

/** The final check, run in the pause both ways (the followers' follows it going forward). */
export const FINAL_CHECK_ROW: Step<SwitchRun, FinishData> = {
  name: 'final check',
  doneWhen: 'verified',
  marks: 'verified',
  inPause: true,
  run: step.finalCheck,
};

/** From the late-write checks to the hold's release: the same both ways. */
export const CLOSING_ROWS: Step<SwitchRun, FinishData>[] = [
  { name: 'late-write checks', doneWhen: 'replication_stopped', inPause: true, run: step.lateWriteChecks },
  {
    name: 'switch',
    doneWhen: 'replication_stopped',
    inPause: true,
    applies: (run) => run.writeStop.switches,
    run: step.switchWrites,
  },
  {
    name: 'stop replication',
    doneWhen: 'replication_stopped',
    marks: 'replication_stopped',
    inPause: true,
    run: step.stopReplication,
  },
  { name: 'sequences again', doneWhen: 'triggers_removed', run: step.sequencesAgain },
  { name: 'late writes since the stop', doneWhen: 'triggers_removed', run: step.lateWritesSinceStop },
  { name: 'resume writes', doneWhen: 'finished', run: step.resumeWrites },
  {
    name: 'stop the daemon',
    doneWhen: 'triggers_removed',
    inPause: true,
    applies: step.daemonToStop,
    run: step.stopTheDaemon,
  },
  {
    name: 'remove triggers',
    doneWhen: 'triggers_removed',
    marks: 'triggers_removed',
    inPause: true,
    run: step.removeTriggers,
  },
  { name: 'new side writable', doneWhen: 'finished', marks: 'finished', run: step.newSideWritable },
  { name: 'measure the pause', run: step.measurePause },
  { name: 'release the hold', run: step.releaseTheHold },
];

/** The forward switch, step by step. */
export const FINISH: Step<SwitchRun, FinishData>[] = [
  { name: 'way back', run: step.wayBack },
  { name: 'followers', applies: (run) => Boolean(run.options.following), run: step.followers },
  ...OPENING_ROWS,
  {
    name: 'sequences of the followers',
    doneWhen: 'sequences',
    marks: 'sequences',
    inPause: true,
    applies: (run) => run.followers.length > 0,
    run: step.followersSequences,
  },
  COPY_ROW,
  FINAL_CHECK_ROW,
  {
    name: 'final check of the followers',
    doneWhen: 'verified',
    marks: 'verified',
    inPause: true,
    applies: (run) => run.followers.length > 0,
    run: step.followersFinalCheck,
  },
  ...CLOSING_ROWS,
  {
    name: 'start the syncs from the secondary',
    applies: (run) => Boolean(run.options.wayBack || run.options.following),
    run: step.startSyncsFromB,
  },
  {
    name: 'the other targets',
    applies: (run) => run.options.follow !== undefined,
    run: step.otherTargetsSaid,
  },
];

export async function finish(ctx: CommandContext): Promise<CommandOutcome<FinishData>> {
  await adoptRecordedNames(ctx.db, ctx.activity);
  // A fan-out job switches to the target --target names (follow.ts): every step acts on it.
  const job = await chooseTarget(ctx);
  const writeStop = await WriteStop.prepare(ctx, job, reverseJob(job), 'finish');
  const settings = cutoverSettings(job.config);
  // The other targets of a fan-out job (cutover.others: follow): B's triggers for them are in place
  // before the pause too, and they must hold exactly what B holds at the switch.
  const follow = followJob(job);
  const following = follow !== undefined && settings.others === 'follow';
  return WriteStop.around(writeStop, () =>
    runSwitch(
      ctx,
      job,
      FORWARD,
      writeStop,
      FINISH,
      finishedMessage,
      { ...(follow ? { follow } : {}), following },
      following ? otherTargets(job) : [],
    ),
  );
}

function finishedMessage(run: SwitchRun): string {
  const secondary = run.job.config.databases.secondary;
  if (run.options.wayBack)
    return `Cutover finished: the secondary (${secondary.dbname} on ${secondary.host}:${secondary.port}) holds the primary's data; point the writers at it. The way back runs: sync ${reverseJob(run.job).syncName} carries the secondary's writes to the primary, which the application must not write to (docs/cutover.md). cutover.rollback returns to the primary; cutover.release removes the way back.`;
  return `Cutover finished: replication is stopped, its triggers are gone, and the secondary (${secondary.dbname} on ${secondary.host}:${secondary.port}) holds the primary's data. Point the writers at it. Bucardo's metadata and the bucardo schema on the primary remain until bucardo.uninstall.`;
}

export async function validateFinish(ctx: CommandContext): Promise<Check[]> {
  const job: Job = await switchedTarget(ctx);
  return validateSwitch(ctx, job, true);
}
