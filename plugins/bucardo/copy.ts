// bucardo.copy: the console's own initial copy (copy_data: parallel), also run by bucardo.start.
// bucardo.wait_for_copy: waits for the initial copy, judged from Bucardo's metadata (never the log) or,
// with copy_data parallel, from the console's copy record, showing tables and bytes done of all, the
// table being copied, and an estimate of the time left.
import { sleep } from '../../src/core/activity.js';
import { OperatorError } from '../../src/core/errors.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { targetViews, type Job } from '../../src/core/job.js';
import { daemonPid, isDaemonRunning, reloadDaemon, syncLoaded } from '../../src/core/bucardo/daemon.js';
import { metadataDatabaseExists, syncRow } from '../../src/core/bucardo/metadata.js';
import type { DatabaseContext } from '../../src/core/context.js';
import { copySync, type CopyResult } from '../../src/core/copy/engine.js';
import { ensureUpstreamCopied } from './cascade.js';
import { jobSyncs, syncNames } from '../../src/core/bucardo/syncs.js';
import { copyState, type CopyProgress } from '../../src/core/copy/progress.js';
import { formatCopy, formatDuration } from './status-format.js';
import { withThousands } from '../../src/core/numbers.js';

/** Runs of the sync that failed since `since` (Bucardo records them as 'Failed : <error> (KID n)'). */
async function failuresSince(db: DatabaseContext, since: Date): Promise<{ count: number; last?: string }> {
  const metadata = await db.metadata();
  const { rows } = await metadata.query<{ count: string; last: string | null }>(
    `SELECT count(*) AS count, (array_agg(status ORDER BY started DESC))[1] AS last
       FROM bucardo.syncrun WHERE sync = ANY($1) AND started >= $2 AND status LIKE 'Failed%'`,
    [syncNames(db.job), since],
  );
  return { count: Number(rows[0]!.count), ...(rows[0]!.last ? { last: rows[0]!.last } : {}) };
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
    const copy = await copyState(ctx.db);
    if (copy.state === 'not requested')
      return { data: { ...copy, seconds: 0 }, message: 'No initial copy: copy_data is never.' };
    if (copy.state === 'done')
      return {
        data: { ...copy, seconds: seconds() },
        message:
          seconds() > 1 ? `Initial copy finished (waited ${seconds()} s).` : 'Initial copy is already done.',
      };
    if (job.config.bucardo.copyData === 'parallel') {
      if (copy.state !== 'running') {
        throw new OperatorError(
          `The initial copy of ${job.name} (copy_data parallel, the console's own copy) is ${copy.state}${copy.tablesDone !== undefined ? ` with ${copy.tablesDone} of ${copy.tablesTotal} table(s) done` : ''}, and no process is copying, so it will not progress. Run bucardo.start (it copies first, then starts the daemon) or bucardo.copy, then wait again.`,
        );
      }
      ctx.progress(`initial copy (console, parallel) ${formatCopy(copy)}`);
      await sleep(1000, activity.signal);
      continue;
    }
    if (!daemonPid(job)) {
      throw new OperatorError(
        `The initial copy of ${job.name} is ${copy.state}, but the Bucardo daemon is not running, so it will not progress. Start it with bucardo.start, then wait again.`,
      );
    }
    const failures = await failuresSince(ctx.db, beganAt);
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
  const copy = await copyState(ctx.db);
  return [
    {
      name: 'initial copy finished',
      pass: copy.state === 'done' || copy.state === 'not requested',
      detail: copy.state,
    },
  ];
}

export interface ParallelCopyData extends CopyResult {
  steps: string[];
  /** What other plugins did as tables were finished (indexes: rebuilt while the copy went on). */
  afterTables: string[];
}

/** The copy's data, and what its finished tables set off, still running (see CopyRun). */
export interface ParallelCopy {
  data: ParallelCopyData;
  afterTables: Promise<string[]>;
}

const nothingSetOff = (): Promise<string[]> => Promise.resolve([]);

/**
 * copy_data parallel: copies the sync's tables now, unless done already. Returns once every row is
 * on the secondary; what the finished tables set off (index rebuilds) may still run, and the caller
 * waits for `afterTables` before its command ends. Refused while the daemon
 * applies the sync (its delete-and-insert of changed rows would collide with the copy), and on the
 * B→C hop of a cascade until A→B's copy has filled B. Used by bucardo.copy and bucardo.start.
 */
export async function parallelCopy(ctx: CommandContext): Promise<ParallelCopy> {
  const { job, activity } = ctx;
  if (job.config.bucardo.copyData !== 'parallel') {
    throw new OperatorError(
      `bucardo.copy is the console's own initial copy, used with bucardo.copy_data: parallel; this job has copy_data ${job.config.bucardo.copyData}, so ${job.config.bucardo.copyData === 'never' ? 'no rows are copied' : 'Bucardo copies the rows itself when the daemon starts (bucardo.start, then bucardo.wait_for_copy)'}. Nothing was copied.`,
    );
  }
  const syncs = jobSyncs(job);
  const metadata = (await metadataDatabaseExists(ctx.db, activity)) ? await ctx.db.metadata() : undefined;
  const recorded = metadata ? await Promise.all(syncs.map((s) => syncRow(metadata, s.name))) : [];
  const missing = syncs.filter((_, i) => !recorded[i]).map((s) => s.name);
  if (missing.length) {
    throw new OperatorError(
      `Sync ${missing.join(', ')} does not exist yet, and the copy must begin after its triggers record changes (or changes made during the copy would be lost). Run bucardo.install and bucardo.add_triggers, then bucardo.start (it copies first) or bucardo.copy.`,
    );
  }
  const steps: string[] = [];
  const upstream = await ensureUpstreamCopied(job, ctx.jobs);
  if (upstream) steps.push(upstream);
  if (syncNames(job).some((name) => syncLoaded(job, name))) {
    const copy = await copyState(ctx.db);
    if (copy.state === 'done')
      return {
        data: {
          ...alreadyDone(job),
          steps: [...steps, 'initial copy already done; the daemon applies the sync'],
          afterTables: [],
        },
        afterTables: nothingSetOff(),
      };
    throw new OperatorError(
      `The Bucardo daemon of ${job.name} has sync ${syncNames(job).join(', ')} loaded, but the console's initial copy (copy_data parallel) is ${copy.state}: the daemon would apply changes into the tables while they are being copied. Nothing was copied. Stop it with bucardo.stop, then run bucardo.start: it copies first and then starts the daemon, which applies every change recorded since bucardo.add_triggers.`,
    );
  }
  // With several syncs (bucardo.syncs) each has its own copy record; they are copied one after the
  // other, each with copy_jobs connections, so the load on the servers stays what copy_jobs says.
  const results: CopyResult[] = [];
  const setOff: Promise<string[]>[] = [];
  // Every target (fan-out) gets its own copy from the primary, one after the other, each with its own
  // record: a target's copy that was interrupted resumes without copying the others again.
  const views = targetViews(job);
  for (const sync of syncs) {
    for (const view of views) {
      let result: CopyResult;
      try {
        const run = await copySync(view === job ? ctx : ctx.forJob(view), sync.name, sync.relgroup);
        result = run.result;
        setOff.push(run.afterTables);
      } catch (error) {
        // The tables of the syncs copied before still set off work: it ends before the error is told.
        await Promise.all(setOff);
        throw error;
      }
      results.push(result);
      const label = [syncs.length > 1 ? sync.name : '', job.config.fanOut ? `target ${view.target}` : '']
        .filter(Boolean)
        .join(', ');
      steps.push(
        `${label ? `${label}: ` : ''}${
          result.alreadyDone
            ? `initial copy already done (${result.tables} table(s))`
            : `copied ${result.tables} table(s) in ${result.units} unit(s), ${result.jobs} at a time: ${withThousands(result.rows)} rows in ${result.seconds.toFixed(1)} s${result.unitsSkipped.length ? ` (${result.unitsSkipped.length} unit(s) done by an earlier run, not copied again)` : ''}`
        }`,
      );
    }
  }
  return {
    data: { ...combineResults(job, results), steps, afterTables: [] },
    afterTables: Promise.all(setOff).then((lines) => lines.flat()),
  };
}

/**
 * Waits for what the copy's finished tables set off, showing it as progress, and keeps their lines
 * in the command's data. Never throws: each listener reports its own failures as lines.
 */
export async function awaitAfterTables(ctx: CommandContext, copy: ParallelCopy): Promise<void> {
  ctx.progress('waiting for the work the copied tables set off (index rebuilds)');
  copy.data.afterTables = await copy.afterTables;
}

function combineResults(job: Job, results: CopyResult[]): CopyResult {
  if (results.length === 1) return results[0]!;
  const sum = (pick: (r: CopyResult) => number) => results.reduce((total, r) => total + pick(r), 0);
  return {
    sync: syncNames(job).join(', '),
    alreadyDone: results.every((r) => r.alreadyDone),
    tables: sum((r) => r.tables),
    units: sum((r) => r.units),
    unitsCopied: results.flatMap((r) => r.unitsCopied),
    unitsSkipped: results.flatMap((r) => r.unitsSkipped),
    rows: sum((r) => r.rows),
    bytes: sum((r) => r.bytes),
    seconds: sum((r) => r.seconds),
    jobs: job.config.bucardo.copyJobs,
  };
}

function alreadyDone(job: Job): CopyResult {
  return {
    sync: job.syncName,
    alreadyDone: true,
    tables: 0,
    units: 0,
    unitsCopied: [],
    unitsSkipped: [],
    rows: 0,
    bytes: 0,
    seconds: 0,
    jobs: job.config.bucardo.copyJobs,
  };
}

/** bucardo.copy: the copy alone; a running daemon (without the sync loaded) is reloaded so it applies the backlog. */
export async function copyCommand(ctx: CommandContext): Promise<CommandOutcome<ParallelCopyData>> {
  const copy = await parallelCopy(ctx);
  await awaitAfterTables(ctx, copy);
  const { data } = copy;
  if (isDaemonRunning(ctx.job) && !syncLoaded(ctx.job)) {
    ctx.progress(
      'reloading the daemon so it loads the sync and applies the changes recorded during the copy',
    );
    await reloadDaemon(ctx.job, ctx);
    data.steps.push(
      'reloaded the daemon: it loads the sync and applies the changes recorded since add_triggers',
    );
  } else if (!isDaemonRunning(ctx.job)) {
    data.steps.push('run bucardo.start: the daemon then applies the changes recorded since add_triggers');
  }
  return { data, message: `Initial copy: ${data.steps.join('; ')}.` };
}
