// A→B→C as two jobs: A→B (databases.secondary.cascade) and B→C (databases.primary.cascade). Both
// bucardo.start and indexes.drop of the B→C hop must wait until A→B's initial copy has filled B.

import type { Job } from './job.js';

/**
 * The loaded A→B job whose secondary is this B→C job's primary: same host, port and dbname, and
 * marked cascade. Only an exact match counts: guessing another loaded cascade job when the addresses
 * differ could read an unrelated copy as done and let the B→C hop go ahead on a half-filled B.
 */
export function upstreamJob(job: Job, jobs: Job[]): Job | undefined {
  const b = job.config.databases.primary;
  return jobs.find((other) => {
    const secondary = other.config.databases.secondary;
    return (
      other !== job &&
      secondary.cascade &&
      secondary.host.toLowerCase() === b.host.toLowerCase() &&
      Number(secondary.port) === Number(b.port) &&
      secondary.dbname === b.dbname
    );
  });
}

/**
 * The loaded B→C job whose primary is this A→B job's secondary (same address, both marked cascade):
 * a schema change on A→B must reach C too, C first for what widens. The same exact match as
 * upstreamJob.
 */
export function downstreamJob(job: Job, jobs: Job[]): Job | undefined {
  if (!job.config.databases.secondary.cascade) return undefined;
  return jobs.find((other) => other !== job && upstreamJob(other, jobs) === job);
}
