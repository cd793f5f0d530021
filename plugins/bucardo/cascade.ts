// A→B→C as two jobs: A→B (secondary.cascade) and B→C (primary.cascade). B→C's triggers on B fire
// ALWAYS (see triggers.ts expectedTriggers), so rows Bucardo applies to B travel on to C; no
// makedelta is used, which is why uninstalling either hop needs no manual step for the other.
import { OperatorError } from '../../src/core/errors.js';
import { upstreamJob } from '../../src/core/cascade.js';
import type { Job } from '../../src/core/job.js';
import { copyState } from '../../src/core/copy/progress.js';

/**
 * Starting B→C before A→B has filled B would copy a half-empty B to C. Refuses with the reason when
 * the A→B job is loaded and its copy is not done; returns a note when it cannot be checked.
 */
export async function ensureUpstreamCopied(job: Job, jobs: Job[]): Promise<string | undefined> {
  if (!job.config.databases.primary.cascade) return undefined;
  const upstream = upstreamJob(job, jobs);
  if (!upstream) {
    return 'could not check that A->B has finished its initial copy (load both configs with -c1 A->B -c2 B->C to let the tool check)';
  }
  const copy = await copyState(upstream);
  if (copy.state !== 'done' && copy.state !== 'not requested') {
    const prefix = upstream.label ? `${upstream.label}.` : '';
    throw new OperatorError(
      `${job.name} replicates ${job.config.databases.primary.dbname}, which ${upstream.name} is still filling (its initial copy is ${copy.state}). Starting now would copy a half-filled database. Start ${upstream.name} (${prefix}bucardo.start), wait for ${prefix}bucardo.wait_for_copy to report the copy done, then start ${job.name}.`,
    );
  }
  return undefined;
}
