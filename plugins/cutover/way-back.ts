// The way back: reverse replication B→A that cutover.finish --way-back leaves running, so that the
// operator can return to A (cutover.rollback) without losing what the application wrote to B.
//   set up  before the write pause: B's tables recorded in the relgroup <name>_back, the sync
//           <name>_back (source B, target A, onetimecopy=0 since A already holds the data) and its
//           ordinary triggers on B, created with a lock timeout; the daemon does not load it yet;
//   start   after the switch: the daemon, stopped by the finish, starts again and runs only it;
//   remove  cutover.release (or cutover.rollback): the sync and its triggers on B, table by table.
// Why nothing loops: Bucardo applies rows with session_replication_role = replica, so B's ordinary
// triggers do not fire for rows the forward sync applies there, nor A's for rows the reverse sync
// applies (docs/how-bucardo-behaves.md §9, docs/cutover.md).
import { requireCommitFence } from '../../src/core/bucardo/commit-fence.js';
import { sleep } from '../../src/core/activity.js';
import { runBucardo, BucardoError } from '../../src/core/bucardo/run.js';
import {
  daemonPid,
  kickSyncOn,
  reloadDaemon,
  stopDaemon,
  syncLoaded,
} from '../../src/core/bucardo/daemon.js';
import { metadataDatabaseExists, relgroupMembers, syncRow } from '../../src/core/bucardo/metadata.js';
import { ensureDbgroup, readRecords, refuseSharedRecords } from '../../src/core/bucardo/records.js';
import { REVERSE_SUFFIX, reverseJob, reverseNameProblem } from '../../src/core/bucardo/reverse.js';
import { wayBackExists } from '../../src/core/bucardo/direction.js';
import { followJob } from '../../src/core/bucardo/follow.js';
import { dropBucardoSchema } from '../../src/core/bucardo/schema.js';
import { addSyncArguments } from '../../src/core/bucardo/sync.js';
import { dropTriggersInRounds, jobTriggerNames, listTriggers } from '../../src/core/bucardo/triggers.js';
import type { DatabaseContext } from '../../src/core/context.js';
import { withClient } from '../../src/core/db.js';
import type { TableFailure } from '../../src/core/ddl.js';
import { errorMessage, OperatorError } from '../../src/core/errors.js';
import type { Job } from '../../src/core/job.js';
import { pendingChanges } from '../../src/core/pending.js';
import type { CommandContext } from '../../src/core/plugin.js';
import { bucardoRelationName } from '../../src/core/quote.js';
import { lockRounds } from '../../src/core/rounds.js';
import { releaseHold } from './compare/index.js';

/** Names per `bucardo add table` call: one Perl start per batch. */
const ADD_BATCH = 200;

/** The dbconn option that bounds every lock wait of a Bucardo session on that database. */
function withLockTimeout(conn: string, ms: number): string {
  const option = `-clock_timeout=${ms}`;
  const options = /(^|;)options=('([^']*)'|[^;]*)/.exec(conn);
  if (!options) return [conn, `options=${option}`].filter(Boolean).join(';');
  const current = options[3] ?? options[2]!;
  return conn.replace(options[0], `${options[1]}options='${current} ${option}'`);
}

/**
 * Creates the reverse sync, before the write pause. Bucardo's validate_sync creates the triggers on
 * B in one transaction over its own connection (how-bucardo-behaves.md §8); that connection gets a
 * lock_timeout for the duration through B's dbconn, then the dbconn is put back: the forward sync's
 * sessions on B never wait on a lock long, and B's recorded connection string stays the operator's.
 */
export async function setUpWayBack(job: Job, ctx: CommandContext): Promise<string[]> {
  const problem = reverseNameProblem(job);
  if (problem) throw new OperatorError(`No way back can be set up for ${job.name}: ${problem}.`);
  const { primary, secondary } = job.config.databases;
  if (primary.cascade || secondary.cascade)
    throw new OperatorError(
      `No way back can be set up for ${job.name}: it is a hop of a cascade, where B's tables already carry another sync's ALWAYS triggers, and reverse replication would carry rows in a circle. Finish without --way-back (and without cutover.way_back).`,
    );
  const reverse = reverseJob(job);
  if (await wayBackExists(job, ctx.db, ctx.activity))
    return [`the way back (sync ${reverse.syncName}, B→A) is already set up`];
  refuseSharedRecords(job, await readRecords(await ctx.db.metadata()), 'cutover.finish --way-back');
  const steps = await createSyncFromSecondary(job, reverse, ctx, 'cutover.finish --way-back');
  steps.push(
    `created sync ${reverse.syncName} (source the secondary, target the primary, no initial copy) with ordinary triggers on the secondary's tables; it runs once the switch is done`,
  );
  return steps;
}

/**
 * A sync whose source is the job's secondary (B): the way back (B→A) or the followers (B→C after a
 * fan-out's switch, follow.ts). B's tables are recorded in the derived job's relgroup, its dbgroup is
 * made, and the sync is added with onetimecopy=0 (its targets already hold the data). Bucardo's
 * validate_sync creates the triggers on B in one transaction over its own connection
 * (how-bucardo-behaves.md §8); that connection gets a lock_timeout for the duration through B's
 * dbconn, then the dbconn is put back. Tables B already has recorded for another such sync (its
 * goats) join the relgroup by SQL: `bucardo add table` skips them.
 */
export async function createSyncFromSecondary(
  job: Job,
  derived: Job,
  ctx: CommandContext,
  command: string,
): Promise<string[]> {
  const steps: string[] = [];
  // Single statements on the command's metadata session: the job's metadata database is every view's.
  const metadata = await ctx.db.metadata();
  const members = await relgroupMembers(metadata, job.relgroupName);
  const exists = new Set(
    (await relgroupMembers(metadata, derived.relgroupName)).map((m) => `${m.reltype}:${m.schema}.${m.name}`),
  );
  const sourceDb = derived.bucardoDbName.primary;
  // Sequences stay out: cutover.finish and cutover.rollback set them past the source's themselves.
  const tables = members.filter((m) => m.reltype === 'table' && !exists.has(`table:${m.schema}.${m.name}`));
  for (let start = 0; start < tables.length; start += ADD_BATCH) {
    ctx.activity.throwIfInterrupted();
    ctx.progress(`recording the secondary's tables for sync ${derived.syncName}: ${start}/${tables.length}`);
    await runBucardo(
      job,
      [
        'add',
        'table',
        ...tables.slice(start, start + ADD_BATCH).map((t) => bucardoRelationName(t.schema, t.name)),
        `db=${sourceDb}`,
        `relgroup=${derived.relgroupName}`,
      ],
      { activity: ctx.activity },
    );
  }
  await metadata.query(
    `INSERT INTO bucardo.herdmap (herd, goat)
     SELECT $1, g.id FROM bucardo.goat g
      WHERE g.db = $2 AND g.reltype = 'table' AND (g.schemaname, g.tablename) IN (SELECT * FROM unnest($3::text[], $4::text[]))
        AND NOT EXISTS (SELECT 1 FROM bucardo.herdmap m WHERE m.herd = $1 AND m.goat = g.id)`,
    [derived.relgroupName, sourceDb, tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  steps.push(`recorded ${tables.length} table(s) of the secondary in relgroup ${derived.relgroupName}`);
  // Its own dbgroup: `add sync ... dbs=` would take any with those databases.
  const dbgroup = await ensureDbgroup(derived, ctx.activity);
  if (dbgroup) steps.push(dbgroup);
  ctx.progress(`creating sync ${derived.syncName} (its triggers on the secondary's tables)`);
  const original =
    (await metadata.query<{ dbconn: string }>('SELECT dbconn FROM bucardo.db WHERE name = $1', [sourceDb]))
      .rows[0]?.dbconn ?? '';
  const storeConn = (conn: string) =>
    metadata.query('UPDATE bucardo.db SET dbconn = $1 WHERE name = $2', [conn, sourceDb]);
  await storeConn(withLockTimeout(original, job.config.bucardo.lockTimeoutMs));
  try {
    await runBucardo(job, addSyncArguments(derived), { activity: ctx.activity, safeToStop: false });
  } catch (error) {
    if (error instanceof BucardoError && /lock timeout/i.test(error.message))
      throw new OperatorError(
        `A table on the secondary was locked by another session for longer than bucardo.lock_timeout (${job.config.bucardo.lockTimeoutMs} ms), so Bucardo rolled the trigger installation of sync ${derived.syncName} back: nothing was created and nothing was switched. Run ${command} again when the lock is released (bucardo.status and pg_locks on the secondary show who holds it). Bucardo said: ${error.message}`,
      );
    throw error;
  } finally {
    await storeConn(original);
  }
  return steps;
}

/**
 * After the switch: the daemon (stopped by the finish) starts again and runs the syncs whose source
 * is the secondary (the way back, the followers' sync), or a daemon started by hand in between is
 * reloaded so that it loads them.
 */
export async function startSyncsFromSecondary(
  job: Job,
  syncs: Job[],
  ctx: CommandContext,
): Promise<string[]> {
  const carries = (sync: Job) =>
    `sync ${sync.syncName} carries the secondary's writes to ${sync === syncs.find((s) => s.name.endsWith(REVERSE_SUFFIX)) ? 'the primary' : sync.targets.map((t) => t.name).join(', ')}`;
  if (daemonPid(job)) {
    for (const sync of syncs) await reloadDaemon(sync, ctx);
    return syncs.map((sync) => `reloaded the running daemon: ${carries(sync)}`);
  }
  for (const sync of syncs) await requireCommitFence(sync, ctx);
  ctx.progress('starting the Bucardo daemon for the syncs from the secondary');
  // bucardo.start stored the pid dir, log settings and loop sleeps in Bucardo's settings; they still hold.
  await runBucardo(job, ['start', '--logdest', job.paths.logDir, '--logextension', job.paths.logExtension], {
    activity: ctx.activity,
  });
  const loaded = () => Boolean(daemonPid(job)) && syncs.every((sync) => syncLoaded(sync));
  for (let i = 0; i < 300 && !loaded(); i++) await sleep(100, ctx.activity.signal);
  const missing = syncs.filter((sync) => !syncLoaded(sync));
  if (missing.length)
    throw new OperatorError(
      `The cutover itself is finished (writes may go to the secondary), but the Bucardo daemon did not load sync ${missing.map((s) => s.syncName).join(', ')} within 30 s, so the secondary's writes are recorded on it but not yet carried on. Look at ${job.paths.logFile}, then run bucardo.start.`,
    );
  const metadata = await ctx.db.metadata();
  for (const sync of syncs) await kickSyncOn(metadata, sync);
  return syncs.map((sync) => `started the daemon (pid ${daemonPid(job)}): ${carries(sync)}`);
}

export interface WayBackRemoval {
  steps: string[];
  failed: TableFailure[];
  limit: string;
}

/**
 * Removes the reverse sync and its triggers on B, table by table under bounded lock waits. Safe to
 * run again: a sync or trigger already gone is skipped.
 */
export async function removeWayBack(
  job: Job,
  ctx: CommandContext,
  forwardFinished: boolean,
): Promise<WayBackRemoval> {
  // After the switch the daemon runs the way back, and the followers' sync of a fan-out job if any.
  const follow = followJob(job);
  const others = Boolean(follow && daemonPid(job) && syncLoaded(follow));
  return removeSyncFromSecondary(job, reverseJob(job), ctx, forwardFinished && !others, 'the way back');
}

/**
 * Removes a sync whose source is the secondary (the way back, the followers' sync) and its triggers
 * on B, table by table under bounded lock waits (B's bucardo_delta stays while another sync of B uses
 * it). `onlyOneRunning`: the daemon runs nothing else, so it is stopped first; otherwise a running
 * daemon is reloaded so that it forgets the sync. Safe to run again.
 */
export async function removeSyncFromSecondary(
  job: Job,
  reverse: Job,
  ctx: CommandContext,
  onlyOneRunning: boolean,
  what: string,
): Promise<WayBackRemoval> {
  const steps: string[] = [];
  const metadata = await ctx.db.metadata();
  const sync = await syncRow(metadata, reverse.syncName);
  if (sync) {
    if (onlyOneRunning && daemonPid(job)) {
      const stopped = await stopDaemon(job, ctx);
      steps.push(stopped.steps.join('; '));
    }
    await runBucardo(job, ['remove', 'sync', reverse.syncName], { activity: ctx.activity });
    steps.push(`removed sync ${reverse.syncName} from Bucardo`);
    // The daemon still runs another sync: a reload forgets the removed one.
    if (!onlyOneRunning && daemonPid(job) && syncLoaded(reverse)) await reloadDaemon(job, ctx);
  }
  const herd = (await metadata.query('SELECT 1 FROM bucardo.herd WHERE name = $1', [reverse.relgroupName]))
    .rowCount;
  if (herd) {
    await runBucardo(job, ['remove', 'relgroup', reverse.relgroupName], { activity: ctx.activity });
    steps.push(`removed relgroup ${reverse.relgroupName}`);
  }
  const dbgroup = (
    await metadata.query(
      'DELETE FROM bucardo.dbgroup g WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM bucardo.sync s WHERE s.dbs = g.name)',
      [reverse.dbgroupName],
    )
  ).rowCount;
  if (dbgroup) steps.push(`removed dbgroup ${reverse.dbgroupName}`);
  const { policy, setting } = lockRounds(job);
  // A session of its own on B: the triggers and the schema are dropped under a lock timeout (transactions).
  const result = await withClient(
    reverse,
    { role: 'primary', login: 'schema_owner', activity: ctx.activity },
    async (secondary) => {
      await releaseHold(secondary, reverse.syncName).catch(() => false);
      const dropped = await dropTriggersInRounds(
        secondary,
        reverse,
        ctx.activity,
        policy,
        ctx.progress,
        (rounds) => `could not be locked within ${setting} (${policy.timeoutMs} ms) in ${rounds} round(s)`,
      );
      // The schema Bucardo made on B goes with the last sync from B (kept while any trigger uses it).
      const schema =
        dropped.waiting.length === 0 ? await dropBucardoSchema(secondary, job, 'the secondary') : undefined;
      return { ...dropped, schema };
    },
  );
  const dropped = result.total - result.waiting.length;
  steps.push(
    result.total
      ? `dropped ${what}'s triggers on ${dropped} of ${result.total} secondary table(s) (each lock wait at most ${setting})`
      : `no trigger of ${what} left on the secondary's tables`,
  );
  if (result.schema) steps.push(result.schema);
  return { steps, failed: result.waiting, limit: `${setting} in each of ${result.rounds} round(s)` };
}

/**
 * The way back's triggers still on the secondary (B), for the checks: read on `sessions` (the
 * command's sessions of this job or view, whose secondary is the way back's source).
 */
export async function wayBackTriggers(job: Job, sessions: DatabaseContext): Promise<string[]> {
  const reverse = reverseJob(job);
  const rows = await listTriggers(await sessions.secondary(), jobTriggerNames(reverse));
  // On a cascade's B, bucardo_delta belongs to the B→C sync (no way back is set up there).
  const cascade = job.config.databases.secondary.cascade;
  return rows
    .filter((t) => !(cascade && t.trigger === 'bucardo_delta'))
    .map((t) => `${t.schema}.${t.table}:${t.trigger}`);
}

/**
 * Lines for bucardo.status while the way back exists: is it loaded, what is pending on B for A and
 * how old the oldest change is (the way back's lag). Nothing when there is no way back.
 */
export async function wayBackStatus(ctx: CommandContext): Promise<string[]> {
  const { job } = ctx;
  if (!(await wayBackInstalled(job, ctx, ctx.db))) return [];
  const reverse = reverseJob(job);
  let pending: Awaited<ReturnType<typeof pendingChanges>>;
  try {
    // The way back's source is the job's secondary: its shared session.
    pending = await pendingChanges(await ctx.db.secondary(), reverse.dbgroupName);
  } catch (error) {
    // Status reports what it can: an unreachable secondary is its own line, not a failed command.
    return [
      `way back (sync ${reverse.syncName}): could not read its backlog on the secondary: ${errorMessage(error)}`,
    ];
  }
  const changes = pending.reduce((sum, p) => sum + p.changes, 0);
  const oldest = pending.reduce<Date | null>(
    (min, p) => (p.oldest && (!min || p.oldest < min) ? p.oldest : min),
    null,
  );
  const lag = oldest ? `${Math.max(0, Math.round((Date.now() - oldest.getTime()) / 1000))} s` : '0 s';
  const loaded = daemonPid(job) && syncLoaded(reverse);
  return [
    `way back (sync ${reverse.syncName}, the secondary → the primary): ${loaded ? 'running' : 'NOT running (bucardo.start)'}; ` +
      `${changes} change(s) pending on the secondary, lag ${lag}`,
  ];
}

/** bucardo.uninstall's guard: refused while the way back exists (its triggers would stay on B). */
export async function refuseWhileWayBack(ctx: CommandContext): Promise<void> {
  const { job } = ctx;
  // Its own sessions, not ctx.db: bucardo.uninstall may drop the metadata database after this guard.
  if (!(await wayBackInstalled(job, ctx, job))) return;
  throw new OperatorError(
    `The way back of ${job.name} (sync ${reverseJob(job).syncName}) still exists, and its triggers sit on the secondary's tables: uninstalling would forget the sync and leave them recording every write on the secondary for nothing. Run cutover.release first (it removes the sync and its triggers, table by table), then bucardo.uninstall. Nothing was changed.`,
  );
}

/** For the hooks on bucardo's commands: a metadata database half installed (or none) has no way back. */
async function wayBackInstalled(
  job: Job,
  ctx: CommandContext,
  sessions: Job | DatabaseContext,
): Promise<boolean> {
  if (!(await metadataDatabaseExists(sessions, ctx.activity))) return false;
  return wayBackExists(job, sessions, ctx.activity).catch(() => false);
}
