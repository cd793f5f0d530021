// bucardo.wait_for_copy: waits for the initial copy, judged from Bucardo's metadata (never the log),
// showing tables and bytes done of all, the table being copied, and an estimate of the time left.
import { sleep } from '../../src/core/activity.js';
import { OperatorError } from '../../src/core/errors.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import type { Job } from '../../src/core/job.js';
import { daemonPid } from '../../src/core/bucardo/daemon.js';
import { withMetadata } from '../../src/core/bucardo/metadata.js';
import { syncNames } from '../../src/core/bucardo/syncs.js';
import { copyState, type CopyProgress } from '../../src/core/copy-progress.js';
import { formatCopy, formatDuration } from './status-format.js';

/** Runs of the sync that failed since `since` (Bucardo records them as 'Failed : <error> (KID n)'). */
async function failuresSince(job: Job, since: Date): Promise<{ count: number; last?: string }> {
  return withMetadata(job, async (client) => {
    const { rows } = await client.query<{ count: string; last: string | null }>(
      `SELECT count(*) AS count, (array_agg(status ORDER BY started DESC))[1] AS last
         FROM bucardo.syncrun WHERE sync = ANY($1) AND started >= $2 AND status LIKE 'Failed%'`,
      [syncNames(job), since],
    );
    return { count: Number(rows[0]!.count), ...(rows[0]!.last ? { last: rows[0]!.last } : {}) };
  });
}

/** The copy is not "running" if every attempt fails: say why instead of waiting forever. */
const FAILED_ATTEMPTS_LIMIT = 3;

export async function waitForCopy(
  ctx: CommandContext,
): Promise<CommandOutcome<CopyProgress & { seconds: number }>> {
  const { job, activity } = ctx;
  const began = Date.now();
  const beganAt = new Date(began - 1000);
  const seconds = () => Math.round((Date.now() - began) / 1000);
  for (;;) {
    const copy = await copyState(job);
    if (copy.state === 'not requested')
      return { data: { ...copy, seconds: 0 }, message: 'No initial copy: copy_data is never.' };
    if (copy.state === 'done')
      return {
        data: { ...copy, seconds: seconds() },
        message:
          seconds() > 1 ? `Initial copy finished (waited ${seconds()} s).` : 'Initial copy is already done.',
      };
    if (!daemonPid(job)) {
      throw new OperatorError(
        `The initial copy of ${job.name} is ${copy.state}, but the Bucardo daemon is not running, so it will not progress. Start it with bucardo.start, then wait again.`,
      );
    }
    const failures = await failuresSince(job, beganAt);
    if (failures.count >= FAILED_ATTEMPTS_LIMIT) {
      throw new OperatorError(
        `The initial copy of ${job.name} keeps failing (${failures.count} attempts since the wait began); Bucardo's last error: ${cleanBucardoError(failures.last ?? '')}. Fix the cause, then bucardo.restart and wait again; the log is ${job.paths.logFile}.`,
      );
    }
    ctx.progress(
      `initial copy ${formatCopy(copy)}${copy.elapsedSeconds === undefined ? ` (waited ${formatDuration(seconds())})` : ''}${failures.last ? `; last attempt failed: ${cleanBucardoError(failures.last)}` : ''}`,
    );
    await sleep(1000, activity.signal);
  }
}

function cleanBucardoError(status: string): string {
  return status
    .replace(/^Failed : /, '')
    .replace(/ at \/usr\/\S+ line \d+\./g, '')
    .replace(/\s+Line: \d+.*$/, '')
    .replace(/ \(KID \d+\)$/, '')
    .trim();
}

export async function validateCopyDone(ctx: CommandContext): Promise<Check[]> {
  const copy = await copyState(ctx.job);
  return [
    {
      name: 'initial copy finished',
      pass: copy.state === 'done' || copy.state === 'not requested',
      detail: copy.state,
    },
  ];
}
