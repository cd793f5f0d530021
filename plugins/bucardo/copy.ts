// bucardo.wait_for_copy: waits for the initial copy, judged from Bucardo's metadata (never the log).
import { sleep } from '../../src/core/activity.js';
import { OperatorError } from '../../src/core/errors.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { daemonPid } from './daemon.js';
import { copyState, type CopyProgress } from './status.js';

export async function waitForCopy(ctx: CommandContext): Promise<CommandOutcome<CopyProgress & { seconds: number }>> {
  const { job, activity } = ctx;
  const began = Date.now();
  const seconds = () => Math.round((Date.now() - began) / 1000);
  for (;;) {
    const copy = await copyState(job);
    if (copy.state === 'not requested') return { data: { ...copy, seconds: 0 }, message: 'No initial copy: copy_data is never.' };
    if (copy.state === 'done') return { data: { ...copy, seconds: seconds() }, message: seconds() > 1 ? `Initial copy finished (waited ${seconds()} s).` : 'Initial copy is already done.' };
    if (!daemonPid(job)) {
      throw new OperatorError(`The initial copy of ${job.name} is ${copy.state}, but the Bucardo daemon is not running, so it will not progress. Start it with bucardo.start, then wait again.`);
    }
    ctx.progress(`initial copy ${copy.state}${copy.table ? `: ${copy.table}, ${copy.rows!.toLocaleString('en-US')} rows so far` : ''} (${seconds()} s)`);
    await sleep(1000, activity.signal);
  }
}

export async function validateCopyDone(ctx: CommandContext): Promise<Check[]> {
  const copy = await copyState(ctx.job);
  return [{ name: 'initial copy finished', pass: copy.state === 'done' || copy.state === 'not requested', detail: copy.state }];
}
