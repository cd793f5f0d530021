// bucardo.status, once or with --watch [SECONDS]: then the status of every job of the session,
// redrawn in place every few seconds on a terminal (one block per job), with the backlog's and the
// lag's trend since the previous refresh, until Ctrl-C. Without a terminal each refresh is printed
// below the last.
import { sleep } from '../../src/core/activity.js';
import { InterruptedError, OperatorError } from '../../src/core/errors.js';
import type { CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { collectStatus } from './status.js';
import type { StatusData } from './status-data.js';
import { formatDuration, formatStatus } from './status-format.js';

/** The --watch interval the runner parsed (a bare --watch means its bareValue in index.ts), checked for range. */
export function watchSeconds(given: number | undefined): number | undefined {
  if (given === undefined) return undefined;
  if (!Number.isFinite(given) || given < 1 || given > 3600) {
    throw new OperatorError(
      `--watch takes a refresh interval of 1 to 3600 seconds, not '${given}'. Example: bucardo.status --watch 5`,
    );
  }
  return given;
}

function trend(now: number | undefined, before: number | undefined, show: (n: number) => string): string {
  if (now === undefined) return 'none';
  if (before === undefined) return show(now);
  const change = now - before;
  return `${show(now)} (${change === 0 ? 'steady' : change > 0 ? `up ${show(change)}` : `down ${show(-change)}`})`;
}

function block(data: StatusData, previous: StatusData | undefined): string[] {
  const backlog = trend(data.pendingTotal, previous?.pendingTotal, (n) => `${n} change(s)`);
  const lagBefore = previous ? (previous.oldestPendingSeconds ?? 0) : undefined;
  const lag = trend(data.oldestPendingSeconds ?? 0, lagBefore, formatDuration);
  return [...formatStatus(data), `  Trend         : backlog ${backlog}; lag ${lag}`];
}

export async function watchStatus(ctx: CommandContext, seconds: number): Promise<CommandOutcome<undefined>> {
  const terminal = Boolean(process.stdout.isTTY);
  const previous = new Map<string, StatusData>();
  let drawnLines = 0;
  let refresh = 0;
  let exitCode = 0;
  ctx.progress(`watching, every ${formatDuration(seconds)}; Ctrl-C stops`);
  try {
    for (;;) {
      refresh += 1;
      const all = await Promise.all(ctx.jobs.map((job) => collectStatus(ctx.databases(job), ctx.databases)));
      const clock = new Date().toISOString().slice(11, 19);
      const every = formatDuration(seconds);
      const head = `Status of ${ctx.jobs.length} job(s), refresh #${refresh}`;
      const lines = [`${head} at ${clock} UTC, every ${every}; Ctrl-C stops`];
      for (const [index, data] of all.entries()) {
        const job = ctx.jobs[index]!;
        const jobLines = block(data, previous.get(job.name));
        if (job.label) jobLines[0] = `${jobLines[0]} [${job.label}]`;
        lines.push(...jobLines);
        previous.set(job.name, data);
      }
      // The worst state of all jobs is the watch's exit code.
      exitCode = Math.max(...all.map((data) => data.exitCode));
      const text = lines.join('\n');
      // Up over the previous block and clear to the end of the screen: the block is redrawn in place.
      if (terminal && drawnLines > 0) ctx.log(`\u001b[${drawnLines}A\u001b[0J${text}`);
      else ctx.log(`${terminal || refresh === 1 ? '' : '\n'}${text}`);
      drawnLines = text.split('\n').length;
      await sleep(seconds * 1000, ctx.activity.signal);
    }
  } catch (error) {
    if (!(error instanceof InterruptedError)) throw error;
  }
  return { message: `Stopped watching after ${refresh} refresh(es).`, exitCode };
}

/** bucardo.status: the status once, or redrawn every --watch seconds. */
export async function status(ctx: CommandContext): Promise<CommandOutcome<StatusData | undefined>> {
  const seconds = watchSeconds(ctx.options.number('watch'));
  if (seconds !== undefined) return watchStatus(ctx, seconds);
  const data = await collectStatus(ctx.db, ctx.databases);
  return { data, message: `Verdict: ${data.verdict}`, exitCode: data.exitCode };
}
