// cutover.rollback: the switch back to the primary after cutover.finish --way-back, run as the B→A
// job (src/core/bucardo/reverse.ts) over the same step functions as cutover.finish (switch-steps.ts),
// without the way back and the followers before it, and with the bucardo schema on B dropped after it:
// the way back was the last sync from B.
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { OperatorError } from '../../src/core/errors.js';
import { reverseJob } from '../../src/core/bucardo/reverse.js';
import { adoptRecordedNames } from '../../src/core/bucardo/records.js';
import { switchedTarget } from './follow.js';
import { openRecords, readProgress } from './records.js';
import type { Step } from './steps.js';
import * as step from './switch-steps.js';
import { BACKWARD, runSwitch, validateSwitch, type FinishData, type SwitchRun } from './switch.js';
import { wayBackExists } from './way-back.js';
import { WriteStop } from './write-stop.js';

/** The switch back, step by step. */
export const ROLLBACK: Step<SwitchRun, FinishData>[] = [
  { name: 'earlier run', applies: (run) => run.progress.confirmed !== undefined, run: step.earlierRun },
  { name: 'scope', run: step.scope },
  { name: 'readiness', doneWhen: 'confirmed', run: step.readiness },
  { name: 'confirmation', doneWhen: 'confirmed', run: step.operatorConfirms },
  { name: 'open sessions', doneWhen: 'verified', run: step.openSessions },
  { name: 'stop writes', doneWhen: 'replication_stopped', marks: 'confirmed', run: step.stopWrites },
  { name: 'drain', doneWhen: 'drained', marks: 'drained', inPause: true, run: step.drain },
  { name: 'sequences', doneWhen: 'sequences', marks: 'sequences', inPause: true, run: step.sequences },
  { name: 'final check', doneWhen: 'verified', marks: 'verified', inPause: true, run: step.finalCheck },
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
  { name: 'drop the bucardo schema on the secondary', run: step.dropSchemaOnB },
];

/** cutover.rollback: only after the forward cutover finished with the way back set up. */
export async function rollback(ctx: CommandContext): Promise<CommandOutcome<FinishData>> {
  await adoptRecordedNames(ctx.db, ctx.activity);
  // A fan-out job rolls back from the target its cutover switched to.
  const job = await switchedTarget(ctx);
  const reverse = reverseJob(job);
  const records = await openRecords(ctx.databases(job));
  const forward = records ? await readProgress(records, job) : undefined;
  const back = forward?.finished ? await readProgress(records!, reverse) : undefined;
  if (!forward?.finished || (!back?.confirmed && !(await wayBackExists(job, ctx.activity))))
    throw new OperatorError(
      forward?.finished
        ? `There is no way back for ${job.name}: cutover.finish ran without --way-back (or cutover.release removed it), so nothing carried the secondary's writes to the primary since the switch. Nothing was changed; the primary lacks those writes, so returning to it needs a new migration from the secondary.`
        : `cutover.rollback returns writes to the primary after cutover.finish --way-back switched them to the secondary, and the cutover of ${job.name} has not finished. Nothing was changed; to call a cutover off before its end, let writes resume on the primary.`,
    );
  const writeStop = await WriteStop.prepare(ctx, reverse, job, 'rollback');
  return WriteStop.around(writeStop, () =>
    runSwitch(ctx, reverse, BACKWARD, writeStop, ROLLBACK, () => {
      const primary = job.config.databases.primary;
      return `Rollback finished: the way back is stopped, its triggers are gone from the secondary, and the primary (${primary.dbname} on ${primary.host}:${primary.port}) holds every write the secondary took. Point the writers back at it, and lift whatever kept the application from writing to it.`;
    }),
  );
}

export async function validateRollback(ctx: CommandContext): Promise<Check[]> {
  return validateSwitch(ctx, reverseJob(await switchedTarget(ctx)), false);
}
