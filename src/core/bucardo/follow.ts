// The followers of a fan-out job's cutover: after `cutover.finish --target B` switched the writes to B,
// the job's other targets (C, ...) follow B with `cutover.others: follow`. They already hold every
// row A had at the switch (the forward sync was drained into all of them), so the sync B→{C, ...} is
// created without a copy, and its triggers on B are in place before the switch: from the first write
// on B, nothing is missed. It is the job seen from B: B its primary, the other targets its targets,
// its sync, relgroup and dbgroup named <name>_follow. Like the way back (reverse.ts), every module
// that takes a Job (triggers, drain, status) works on it unchanged.
import { MAX_REPLICATION_NAME } from '../../config/load.js';
import type { Job } from '../job.js';

export const FOLLOW_SUFFIX = '_follow';

/** The follow sync's name: the job's with `_follow`, within Bucardo's 42 characters. */
export function followSyncName(job: Pick<Job, 'syncName'>): string {
  return `${job.syncName}${FOLLOW_SUFFIX}`;
}

/** Why the other targets cannot follow the chosen one, or undefined when they can. */
export function followNameProblem(job: Job): string | undefined {
  const name = followSyncName(job);
  if (name.length <= MAX_REPLICATION_NAME) return undefined;
  return (
    `the follow sync would be named ${name} (${name.length} characters), and Bucardo keeps trigger names ` +
    `stable only up to ${MAX_REPLICATION_NAME}: shorten bucardo.replication_name to at most ` +
    `${MAX_REPLICATION_NAME - FOLLOW_SUFFIX.length} characters, or set cutover.others: stop`
  );
}

/**
 * The job B→{the other targets}, for the view of the chosen target B (targetView); undefined when the
 * job has no other target.
 */
export function followJob(view: Job): Job | undefined {
  const source = view.targets.find((t) => t.name === view.target);
  const others = view.targets.filter((t) => t.name !== view.target);
  if (!source || others.length === 0) return undefined;
  const first = others[0]!;
  const name = followSyncName(view);
  const job: Job = {
    ...view,
    name,
    syncName: name,
    relgroupName: name,
    dbgroupName: name,
    bucardoDbName: { primary: source.recordName, secondary: first.recordName },
    targets: others,
    target: first.name,
    config: {
      ...view.config,
      databases: {
        ...view.config.databases,
        // Ordinary triggers on B: they must not fire for rows Bucardo applies there (the way back's).
        primary: { ...source.database, cascade: false },
        secondary: { ...first.database, cascade: false },
      },
      targets: others.map(({ name: target, database }) => ({ name: target, database })),
      fanOut: true,
      // The others hold the data already; the kicker serves the forward sync only, so B's kick
      // triggers kick this one.
      bucardo: { ...view.config.bucardo, copyData: 'never', asynchronousKicking: false, syncs: 1 },
    },
  };
  // The way back's recorded dbgroup is the forward job's, not this sync's.
  delete job.recordedWayBackDbgroup;
  return job;
}
