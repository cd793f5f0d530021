// The runner of a switch's table of steps (cutover.finish in finish.ts, cutover.rollback in
// rollback.ts; the step functions in switch-steps.ts). A table is data: each row names a step, says
// which point of the recorded progress it belongs to (records.ts, cutover.finish_progress) and whether
// it is part of the write pause. The runner times every step, skips the steps whose point an earlier
// run recorded, and records a point when the last of its steps is done, so a rerun after any
// interruption (an error, Ctrl-C, a killed process) continues at the first step whose point is not
// recorded. Adding a step to the switch is one function and one row.
import type { CommandOutcome } from '../../src/core/plugin.js';
import type { FinishProgress, FinishStep, StepTime } from './records.js';

export type { StepTime };

/** What a step may tell the runner; nothing when it simply did its work. */
export interface StepResult<D> {
  /** The time to record for its point (the confirmation: the primary's clock); the metadata server's now() else. */
  at?: string;
  /** The name it ran under, when it chose its way at run time (a full verify instead of the final check). */
  as?: string;
  /** Ends the table here with this outcome (a failed final check, triggers still locked). */
  stop?: CommandOutcome<D>;
}

export interface Step<R, D> {
  /** The operator's name of the step: in the timeline, the pause report and --json. */
  name: string;
  /** Skipped (listed as done earlier) once an earlier run, or this one, recorded this point. */
  doneWhen?: FinishStep;
  /** The point recorded when this step is done, unless a later step of the table that applies records it too. */
  marks?: FinishStep;
  /** Part of the write pause: its time is listed in data.pause.steps. */
  inPause?: boolean;
  /** Whether the step belongs to this run at all (the way back, a fan-out's followers); asked when it is reached. */
  applies?: (run: R) => boolean;
  run: (run: R) => Promise<StepResult<D> | void>;
}

/** The state a table runs over: the recorded progress and how to record a point. */
export interface StepRun {
  progress: FinishProgress;
  readonly timeline: StepTime[];
  /** Records a point with the times of the steps done since the last one, in one statement. */
  mark(point: FinishStep, at: string | undefined, times: StepTime[]): Promise<void>;
}

/**
 * Runs the steps of a table in order. Returns the outcome of a step that stopped the table, or
 * undefined when every step was done. A step that throws is listed as failed and the error goes on.
 */
export async function runSteps<R extends StepRun, D>(
  table: Step<R, D>[],
  run: R,
): Promise<CommandOutcome<D> | undefined> {
  let unrecorded: StepTime[] = [];
  for (const [index, step] of table.entries()) {
    if (step.applies && !step.applies(run)) continue;
    const doneAt = step.doneWhen ? run.progress[step.doneWhen] : undefined;
    if (doneAt !== undefined) {
      run.timeline.push({ step: step.name, status: 'done earlier', recordedAt: doneAt });
      continue;
    }
    const started = new Date();
    const entry: StepTime = { step: step.name, status: 'failed', startedAt: started.toISOString() };
    if (step.inPause) entry.inPause = true;
    run.timeline.push(entry);
    unrecorded.push(entry);
    let result: StepResult<D> | void;
    try {
      result = await step.run(run);
    } finally {
      const ended = new Date();
      entry.endedAt = ended.toISOString();
      entry.ms = ended.getTime() - started.getTime();
    }
    if (result?.as) entry.step = result.as;
    if (result?.stop) {
      entry.status = 'stopped';
      return result.stop;
    }
    entry.status = 'done';
    const point = step.marks;
    const laterMarksToo = table
      .slice(index + 1)
      .some((s) => s.marks === point && (!s.applies || s.applies(run)));
    if (point && run.progress[point] === undefined && !laterMarksToo) {
      await run.mark(point, result?.at, unrecorded);
      unrecorded = [];
    }
  }
  return undefined;
}
