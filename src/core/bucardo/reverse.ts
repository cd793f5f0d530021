// The way back of a cutover: reverse replication B→A after cutover.finish switched the writes to B.
// It is the same job seen the other way round: B is its primary (the source, where the triggers sit)
// and A its secondary (the target); its sync, relgroup, dbgroup and records carry the suffix `_back`. Every
// module that takes a Job (verify, drain, sequences, dropping triggers in rounds) works on it
// unchanged. Each database keeps its role name in messages (the config's `secondary` is still called
// the secondary database), so an operator reads the same names as in the config.
import { MAX_REPLICATION_NAME } from '../../config/load.js';
import type { Job } from '../job.js';

export const REVERSE_SUFFIX = '_back';

/** The reverse sync's name: the job's with `_back`, which must stay within Bucardo's 42 characters. */
export function reverseSyncName(job: Pick<Job, 'syncName'>): string {
  return `${job.syncName}${REVERSE_SUFFIX}`;
}

/** Why this job cannot have a way back, or undefined when it can. */
export function reverseNameProblem(job: Job): string | undefined {
  const name = reverseSyncName(job);
  if (name.length <= MAX_REPLICATION_NAME) return undefined;
  return (
    `the reverse sync would be named ${name} (${name.length} characters), and Bucardo keeps trigger ` +
    `names stable only up to ${MAX_REPLICATION_NAME}: shorten bucardo.replication_name to at most ` +
    `${MAX_REPLICATION_NAME - REVERSE_SUFFIX.length} characters for a job that needs the way back`
  );
}

/** The job B→A: primary and secondary swapped, names suffixed, copy never, kick triggers on B. */
export function reverseJob(job: Job): Job {
  const { primary, secondary } = job.config.databases;
  const { recordedWayBackDbgroup, ...forward } = job;
  return {
    ...forward,
    name: `${job.name}${REVERSE_SUFFIX}`,
    syncName: reverseSyncName(job),
    relgroupName: `${job.relgroupName}${REVERSE_SUFFIX}`,
    // The same two database records, the other way round; its own dbgroup (B source, A target),
    // named like its sync unless a recorded way back uses another.
    bucardoDbName: { primary: job.bucardoDbName.secondary, secondary: job.bucardoDbName.primary },
    dbgroupName: recordedWayBackDbgroup ?? reverseSyncName(job),
    // One target, A, whatever the forward job fans out to (B is the target the cutover chose).
    targets: [
      { name: 'secondary', recordName: job.bucardoDbName.primary, database: { ...primary, cascade: false } },
    ],
    target: 'secondary',
    config: {
      ...job.config,
      databases: {
        ...job.config.databases,
        // Ordinary triggers on B: the reverse sync's triggers must not fire for rows Bucardo applies.
        primary: { ...secondary, cascade: false },
        secondary: { ...primary, cascade: false },
      },
      targets: [{ name: 'secondary', database: { ...primary, cascade: false } }],
      fanOut: false,
      // A already holds the data (onetimecopy=0); the kicker only serves the forward sync, so the
      // reverse sync is kicked by its own per-commit kick triggers on B.
      bucardo: { ...job.config.bucardo, copyData: 'never', asynchronousKicking: false, syncs: 1 },
    },
  };
}
