// Which way replication runs for a job: A→B (the job itself) until cutover.finish --way-back switched
// the writes to B, then B→A (reverseJob) while the way back exists. The cutover plugin (verify, check,
// rollback, release) and the schema plugin (schema.apply, diff, add_tables on the way back) ask the
// same question, so the answer lives here. It reads what the cutover plugin records in the metadata
// database (its schema `cutover`, table finish_progress: when the forward finish was done, and a fan-out
// job's chosen target) without creating it: a job whose cutover never ran has no such table yet.
import type { Activity } from '../activity.js';
import type { DatabaseContext } from '../context.js';
import type { Client } from '../db.js';
import { targetView, type Job } from '../job.js';
import { metadataDatabaseExists, syncRow, withMetadata } from './metadata.js';
import { reverseJob } from './reverse.js';

/** Where the cutover plugin records how far cutover.finish got (plugins/cutover/records.ts). */
const FINISH_PROGRESS = 'cutover.finish_progress';

/**
 * Whether the reverse sync exists in Bucardo's metadata, read on `sessions`: the command's `ctx.db`
 * (the job's metadata database is every view's), or the job itself for the one caller that must not
 * keep a session on that database (bucardo.uninstall's guard, which may drop it next).
 */
export async function wayBackExists(
  job: Job,
  sessions: Job | DatabaseContext,
  activity?: Activity,
): Promise<boolean> {
  const reverse = reverseJob(job);
  return Boolean(await withMetadata(sessions, (client) => syncRow(client, reverse.syncName), activity));
}

/** What the forward cutover recorded: whether it finished, and a fan-out job's chosen target. */
export interface ForwardFinish {
  finished: boolean;
  target?: string;
}

async function forwardFinish(metadata: Client, job: Job): Promise<ForwardFinish> {
  const { rows } = await metadata
    .query<{ finished: boolean; target: string | null }>(
      `SELECT finished_at IS NOT NULL AS finished, target FROM ${FINISH_PROGRESS} WHERE job = $1`,
      [job.name],
    )
    .catch((error: { code?: string }) => {
      // No such table: the cutover plugin never recorded anything for this metadata database.
      if (error.code === '42P01') return { rows: [] };
      throw error;
    });
  const row = rows[0];
  return row
    ? { finished: row.finished, ...(row.target ? { target: row.target } : {}) }
    : { finished: false };
}

/** The target a fan-out job's cutover switched (or began switching) to, if any. */
export async function chosenTarget(metadata: Client, job: Job): Promise<string | undefined> {
  return (await forwardFinish(metadata, job)).target;
}

/**
 * The direction verify, check and rollback work in: B→A once the forward cutover finished and the
 * way back exists; A→B otherwise. `job` is a view (a fan-out job's target): the way back starts from
 * the target the cutover chose, so any other target's view stays as it is.
 */
export async function activeDirection(job: Job, db: DatabaseContext): Promise<Job> {
  if (!(await wayBackExists(job, db, db.activity).catch(() => false))) return job;
  const forward = await forwardFinish(await db.metadata(), job);
  if (job.config.fanOut && forward.target !== undefined && forward.target !== job.target) return job;
  return forward.finished ? reverseJob(job) : job;
}

/** The way back of a whole job while it runs: the B→A job, and the view of B it starts from. */
export interface RunningWayBack {
  reverse: Job;
  /** The job's view of B (a fan-out job's chosen target), whose reverse job `reverse` is. */
  switched: Job;
}

/**
 * The way back of a whole job, when it runs (B a fan-out job's chosen target), or undefined while
 * replication still runs forward (or the forward cutover finished without it).
 */
export async function runningWayBack(job: Job, db: DatabaseContext): Promise<RunningWayBack | undefined> {
  // No metadata database, no way back; any other failure to read it must not pass for "forward".
  if (!(await metadataDatabaseExists(db, db.activity))) return undefined;
  const forward = await forwardFinish(await db.metadata(), job);
  if (!forward.finished) return undefined;
  const switched =
    job.config.fanOut && forward.target !== undefined && job.targets.some((t) => t.name === forward.target)
      ? targetView(job, forward.target)
      : job;
  if (!(await wayBackExists(switched, db, db.activity))) return undefined;
  return { reverse: reverseJob(switched), switched };
}
