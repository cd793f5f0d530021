// When dropping indexes makes sense: before this job's initial copy starts (Bucardo's, or the console's
// own with copy_data parallel; an interrupted parallel copy is 'pending' and allows it), and on the B→C hop of a
// cascade only once A→B's copy has filled B (before that B is empty, so no table looks large and
// the copy into C would run with every index in place).
import { upstreamJob } from '../../src/core/cascade.js';
import type { CommandContext } from '../../src/core/plugin.js';
import { OperatorError } from '../../src/core/errors.js';
import { jobTitle, type Job } from '../../src/core/job.js';
import { copyState } from '../../src/core/copy/progress.js';

export const UPSTREAM_CONFIRM_ARG = '--upstream-copy-done';
/** Declared in index.ts as a flag of indexes.drop. */
const UPSTREAM_CONFIRM_FLAG = 'upstream-copy-done';

/** Throws when this job's own initial copy makes a drop pointless or impossible. */
export async function requireCopyNotStarted(job: Job): Promise<void> {
  const copy = await copyState(job);
  if (copy.state === 'not requested') {
    throw new OperatorError(
      `bucardo.copy_data is 'never' for ${job.name}: Bucardo copies no rows, so dropping indexes on the secondary speeds nothing up. Nothing was dropped.`,
    );
  }
  if (copy.state === 'done') {
    throw new OperatorError(
      `The initial copy of ${job.name} has already finished, so dropping indexes now speeds nothing up. Nothing was dropped. If indexes were dropped earlier, run indexes.recreate.`,
    );
  }
  if (copy.state === 'running' && job.config.bucardo.copyData === 'parallel') {
    throw new OperatorError(
      `The console's initial copy of ${job.name} (copy_data parallel) is running${copy.table ? ` (now ${copy.table})` : ''}: dropping an index needs an exclusive lock on a table it is writing. Nothing was dropped. Drop indexes after bucardo.add_triggers and before bucardo.start (or bucardo.copy); for this copy, let it finish and skip indexes.drop.`,
    );
  }
  if (copy.state === 'running') {
    throw new OperatorError(
      `The initial copy of ${job.name} is already running${copy.table ? ` (now ${copy.table})` : ''}: dropping an index needs an exclusive lock on a table Bucardo is writing. Nothing was dropped. Drop indexes before bucardo.start; for this copy, let it finish and skip indexes.drop.`,
    );
  }
}

/** On a B→C job, refuses until A→B's initial copy is known to be done. Returns a note for the operator. */
export async function requireUpstreamCopyDone(ctx: CommandContext): Promise<string | undefined> {
  const { job } = ctx;
  if (!job.config.databases.primary.cascade) return undefined;
  const upstream = upstreamJob(job, ctx.jobs);
  if (upstream) {
    const copy = await copyState(upstream);
    if (copy.state === 'done' || copy.state === 'not requested')
      return `A→B job ${jobTitle(upstream)}: initial copy ${copy.state}`;
    throw new OperatorError(
      `${job.name} is the B→C hop of a cascade, and the A→B initial copy (job ${jobTitle(upstream)}) is ${copy.state}: until it is done, B is not filled, so no table looks large and indexes.drop would drop the wrong set. Wait with ${upstream.label ? `${upstream.label}.` : ''}bucardo.wait_for_copy, then run indexes.drop again.`,
    );
  }
  if (ctx.options.flag(UPSTREAM_CONFIRM_FLAG)) return 'A→B initial copy confirmed done by the operator';
  const question = `${job.name} is the B→C hop of a cascade and the A→B config is not loaded. Has the A→B initial copy finished (its bucardo.status says the copy is done)?`;
  if (ctx.prompt.interactive && (await ctx.prompt.confirm(question, false)))
    return 'A→B initial copy confirmed done by the operator';
  throw new OperatorError(
    `${job.name} is the B→C hop of a cascade (databases.primary.cascade is true), and indexes.drop must wait until the A→B initial copy has filled B. The A→B job is not loaded in this session, so that cannot be checked. Load both configs (node wrapper.js -c1 a_to_b.yml -c2 b_to_c.yml, then c2.indexes.drop), or, after checking the A→B copy is done with bucardo.status on the A→B config, confirm it: answer yes at the prompt, or in list mode run "indexes.drop ${UPSTREAM_CONFIRM_ARG}".`,
  );
}
