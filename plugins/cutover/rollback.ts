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
import { CLOSING_ROWS, COPY_ROW, FINAL_CHECK_ROW, OPENING_ROWS } from './finish.js';
import type { Step } from './steps.js';
import * as step from './switch-steps.js';
import { BACKWARD, runSwitch, validateSwitch, type FinishData, type SwitchRun } from './switch.js';
import { wayBackExists } from '../../src/core/bucardo/direction.js';
import { WriteStop } from './write-stop.js';

/** The switch back, step by step. */
export const ROLLBACK: Step<SwitchRun, FinishData>[] = [
  ...OPENING_ROWS,
  COPY_ROW,
  FINAL_CHECK_ROW,
  ...CLOSING_ROWS,
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
  if (!forward?.finished || (!back?.confirmed && !(await wayBackExists(job, ctx.db, ctx.activity))))
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
