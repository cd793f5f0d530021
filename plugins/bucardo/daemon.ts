// The Bucardo daemon of a job: start, stop (Bucardo's stop is asynchronous: wait until it is gone),
// restart, reload, and kicking a sync over SQL.
import { requireCommitFence } from '../../src/core/bucardo/commit-fence.js';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { sleep } from '../../src/core/activity.js';
import { runBucardo } from '../../src/core/bucardo/run.js';
import { OperatorError } from '../../src/core/errors.js';
import type { Job } from '../../src/core/job.js';
import { kickerStatus, startKicker } from '../../src/core/kicker.js';
import { maintainBookkeepingTables } from '../../src/core/maintenance.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { isProcessAlive, readPidFile } from '../../src/core/process.js';
import { ensureUpstreamCopied } from './cascade.js';
import { awaitAfterTables, parallelCopy, type ParallelCopy } from './copy.js';
import { ensureDirectory, jobPathSettings, storeSettingsVerbatim } from './bucardo-config.js';
import {
  daemonPid,
  kickSyncOn,
  liveBucardoPid,
  reloadDaemon,
  stopDaemon,
  syncLoaded,
  type DaemonData,
} from '../../src/core/bucardo/daemon.js';
import { metadataDatabaseExists, otherSyncs, recordedPidDir } from '../../src/core/bucardo/metadata.js';
import type { DatabaseContext } from '../../src/core/context.js';
import { recordedSyncs, syncNames } from '../../src/core/bucardo/syncs.js';
import { adoptRecordedNames, ownSyncNames } from '../../src/core/bucardo/records.js';

/**
 * Bucardo writes its pid files where bucardo_config's piddir says, recorded at install. When the
 * config's pid_dir has changed since, the new one is recorded before the start (or the tool would
 * look for the daemon in the wrong place). Refused while any Bucardo process still runs from the
 * old dir, and when the metadata database holds other jobs' syncs: one daemon serves them all, from
 * the dir they recorded.
 */
async function adoptPidDir(db: DatabaseContext): Promise<string | undefined> {
  const { job } = db;
  const metadata = await db.metadata();
  const recorded = await recordedPidDir(metadata);
  const others = await otherSyncs(metadata, ownSyncNames(job));
  if (recorded === undefined || recorded === job.paths.pidDir) return undefined;
  const running = liveBucardoPids(recorded, false);
  if (running.length) {
    throw new OperatorError(
      `Bucardo processes (pid ${running.join(', ')}) still run on the metadata database ${job.metadataDb} from pid dir ${recorded}, but this config's bucardo.pid_dir is ${job.paths.pidDir}. A second daemon would run the same syncs twice, so none was started. Stop them with the config that started them (bucardo.stop), or set bucardo.pid_dir back to ${recorded}.`,
    );
  }
  if (others.length) {
    throw new OperatorError(
      `The metadata database ${job.metadataDb} also holds other jobs' syncs (${others.join(', ')}), and its daemon keeps its pid files in ${recorded}, not in this config's bucardo.pid_dir ${job.paths.pidDir}. One daemon serves every sync of a metadata database, so nothing was started. Set bucardo.pid_dir to ${recorded} in this config, or give each job its own metadata database with the concurrency plugin.`,
    );
  }
  return `bucardo.pid_dir changed since the last install or start (${recorded} → ${job.paths.pidDir}): recorded the new one in Bucardo's settings`;
}

function lastLogLines(job: Job, count = 5): string {
  if (!existsSync(job.paths.logFile)) return '';
  return readFileSync(job.paths.logFile, 'utf8').trim().split('\n').slice(-count).join('\n');
}

async function requireInstalled(db: DatabaseContext): Promise<void> {
  const { job } = db;
  if (!(await metadataDatabaseExists(db))) {
    throw new OperatorError(
      `Bucardo is not installed for ${job.name}: the metadata database ${job.metadataDb} does not exist. Run bucardo.install (and bucardo.add_triggers) first.`,
    );
  }
}

/** Live Bucardo processes named by the pid files in a pid dir; with `workersOnly`, not the MCP's. */
function liveBucardoPids(pidDir: string, workersOnly: boolean): number[] {
  let files: string[] = [];
  const pattern = workersOnly ? /^bucardo\.(vac|ctl|kid)\..*pid$|^bucardo\.vac\.pid$/ : /^bucardo\..*pid$/;
  try {
    files = readdirSync(pidDir).filter((f) => pattern.test(f));
  } catch {
    return [];
  }
  return files
    .map((f) => liveBucardoPid(path.join(pidDir, f)))
    .filter((pid): pid is number => pid !== undefined);
}

/**
 * A daemon killed hard (kill -9) leaves its VAC, controllers and workers running; a new daemon would
 * run beside them and their cleanup later deletes the new daemon's pid files. Stop them first, by
 * the pids in this job's own pid dir, only when their command line says Bucardo.
 */
async function stopStrayWorkers(job: Job): Promise<number[]> {
  const pids = liveBucardoPids(job.paths.pidDir, true);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  for (let i = 0; i < 50 && pids.some(isProcessAlive); i++) await sleep(100);
  for (const pid of pids.filter(isProcessAlive)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  return pids;
}

/**
 * A change travels daemon → controller → worker, each polling for notices and sleeping in between:
 * with Bucardo's defaults (0.2, 0.2, 0.5 s) that alone adds up to 0.9 s to every change. The VAC
 * purges applied change records every vac_sleep (120 s by default) once vac_run has passed; until
 * then every worker run and delta check scans them. A controller restarts its sync's worker (gone after
 * the initial copy, or dead) only when it next checks on it, every ctl_checkonkids_time (10 s by
 * default): until then the sync replicates nothing. The daemon reads all of these at start. (They are
 * settings of the whole metadata database.)
 */
const SET_AT_START: Record<string, { configKey: string; value: (job: Job) => number }> = {
  mcp_loop_sleep: { configKey: 'bucardo.worker_sleep', value: (job) => job.config.bucardo.workerSleep },
  ctl_sleep: { configKey: 'bucardo.worker_sleep', value: (job) => job.config.bucardo.workerSleep },
  kid_sleep: { configKey: 'bucardo.worker_sleep', value: (job) => job.config.bucardo.workerSleep },
  vac_sleep: { configKey: 'bucardo.purge_interval', value: (job) => job.config.bucardo.purgeIntervalSeconds },
  vac_run: { configKey: 'bucardo.purge_interval', value: (job) => job.config.bucardo.purgeIntervalSeconds },
  ctl_checkonkids_time: {
    configKey: 'bucardo.worker_check_interval',
    value: (job) => job.config.bucardo.workerCheckSeconds,
  },
};

function loopSettings(job: Job): [string, string][] {
  return Object.entries(SET_AT_START).map(([name, { value }]) => [name, String(value(job))]);
}

/** The job-config key a Bucardo setting is set from at every start, if it is one of those. */
export function configKeySetting(name: string): string | undefined {
  return SET_AT_START[name]?.configKey;
}

/**
 * Starts the daemon; with copy_data parallel the console copies the rows first. Once they are copied
 * the daemon starts at once, while the copied tables' indexes may still be rebuilding: Bucardo's
 * first run then waits for each such table's lock (CREATE INDEX holds SHARE), so its start-up overlaps
 * the last builds instead of following them (docs/how-bucardo-behaves.md §18). The command ends only
 * when those builds have, whether the start succeeded or not.
 */
export async function startDaemon(job: Job, ctx: CommandContext): Promise<DaemonData> {
  const started: { copy?: ParallelCopy } = {};
  try {
    return await copyThenStart(job, ctx, started);
  } finally {
    if (started.copy) await awaitAfterTables(ctx, started.copy);
  }
}

async function copyThenStart(
  job: Job,
  ctx: CommandContext,
  started: { copy?: ParallelCopy },
): Promise<DaemonData> {
  const db = ctx.databases(job);
  await requireInstalled(db);
  // The kicker gets the job as it is now: its backlog queries name the dbgroup the sync records.
  await adoptRecordedNames(db, ctx.activity);
  const steps: string[] = [];
  ensureDirectory(job.paths.pidDir, 'pid directory');
  ensureDirectory(job.paths.logDir, 'log directory');
  let pid = daemonPid(job);
  // Any of the job's syncs recorded (bucardo.syncs: all of them once bucardo.add_triggers has run).
  const sync = (await recordedSyncs(await db.metadata(), job)).length > 0;
  // copy_data parallel: the console copies the rows before the daemon applies anything; the syncs'
  // triggers have recorded every change since add_triggers, which the daemon then applies.
  const copyFirst = job.config.bucardo.copyData === 'parallel' && sync;
  // The job's daemon calls the fence before every run: its source must have it first (a job set up
  // by an earlier version of the console gets it here).
  if (sync) {
    const fenced = await requireCommitFence(job, ctx);
    if (fenced) steps.push(fenced);
  }
  if (pid) {
    steps.push(`daemon already running (pid ${pid})`);
    if (copyFirst) {
      started.copy = await parallelCopy(ctx);
      steps.push(...started.copy.data.steps);
    }
    if (sync && !syncLoaded(job)) {
      // A sync added to a running daemon is not picked up until a full reload, and a reloaded sync is
      // not kicked (docs/how-bucardo-behaves.md §6): without both its initial copy never starts.
      ctx.progress('reloading the daemon so it loads the new sync');
      await reloadDaemon(job, ctx);
      steps.push('reloaded it so it loads the sync, and kicked the sync');
    }
  } else {
    const strays = await stopStrayWorkers(job);
    if (strays.length)
      steps.push(`stopped Bucardo processes left by a daemon that died (pids ${strays.join(', ')})`);
    if (copyFirst) {
      // parallelCopy checks the cascade's order itself.
      started.copy = await parallelCopy(ctx);
      steps.push(...started.copy.data.steps);
    } else {
      const note = await ensureUpstreamCopied(job, ctx.jobs);
      if (note) steps.push(note);
    }
    const moved = await adoptPidDir(db);
    if (moved) steps.push(moved);
    await storeSettingsVerbatim(job, [...jobPathSettings(job), ...loopSettings(job)], ctx.activity);
    if (sync && job.config.bucardo.maintainStatistics) {
      // The MCP kicks every sync as it starts, and that first delta check is planned with the
      // statistics of that moment: a backlog written while the daemon was stopped and never analyzed
      // makes it the nested loop that spins for minutes (docs/how-bucardo-behaves.md §13). The kicker
      // analyzes as it starts, but it starts after the daemon and may lose that race on a busy host.
      ctx.progress("refreshing the statistics of Bucardo's bookkeeping tables");
      const actions = await maintainBookkeepingTables(await db.primary());
      if (actions.length > 0)
        steps.push(
          `refreshed statistics before the daemon's first run: ${actions.map((a) => `${a.action} bucardo.${a.table} (${a.reason})`).join(', ')}`,
        );
    }
    ctx.progress('starting the Bucardo daemon');
    await runBucardo(
      job,
      ['start', '--logdest', job.paths.logDir, '--logextension', job.paths.logExtension],
      { activity: ctx.activity },
    );
    for (let i = 0; i < 200 && !(pid = daemonPid(job)); i++) await sleep(100, ctx.activity.signal);
    if (!pid)
      throw new OperatorError(
        `The Bucardo daemon did not stay up (no live process in ${job.paths.mcpPidFile} after 20 s). Last log lines (${job.paths.logFile}):\n${lastLogLines(job) || '(empty)'}`,
      );
    // The MCP forks itself once more and rewrites its pid file, so the first pid seen may be gone
    // soon; the final MCP forks the VAC and the controllers. With a sync, wait for its controller too:
    // the MCP kicks every sync once at start, and the check should see it loaded.
    const settled = (): boolean =>
      sync ? syncLoaded(job) : liveBucardoPid(path.join(job.paths.pidDir, 'bucardo.vac.pid')) !== undefined;
    for (let i = 0; i < (sync ? 100 : 50) && !settled(); i++) await sleep(100, ctx.activity.signal);
    pid = daemonPid(job) ?? pid;
    steps.push(`started the daemon (pid ${pid}), logging to ${job.paths.logFile}`);
    if (copyFirst && syncLoaded(job)) {
      // The MCP kicks every sync at start; kick once more now that the controller is up, so the
      // changes recorded during the copy are applied at once, whatever the kicking mode.
      await kickSyncOn(await db.metadata(), job);
      steps.push('kicked the sync: it applies the changes recorded during the copy');
    }
  }
  if (!sync) steps.push(`no sync yet: run bucardo.add_triggers to create sync ${syncNames(job).join(', ')}`);
  // The kicker runs in every mode: with kick triggers it only keeps statistics fresh and watches for stalls.
  const kicker = await startKicker(job);
  const kickerPid = kicker.pid;
  const role = job.config.bucardo.asynchronousKicking
    ? `kicks when changes are pending: looks every ${job.config.bucardo.kickInterval} s, every ${Math.min(job.config.bucardo.kickInterval, job.config.bucardo.kickIntervalBusy)} s while changes arrive`
    : 'maintenance and stall watchdog only';
  steps.push(
    kicker.started
      ? `started the kicker (pid ${kicker.pid}; ${role})`
      : `kicker already running (pid ${kicker.pid})`,
  );
  return { pid, kickerPid, steps };
}

const describe = (data: DaemonData) => data.steps.join('; ');

export async function start(ctx: CommandContext): Promise<CommandOutcome<DaemonData>> {
  const data = await startDaemon(ctx.job, ctx);
  return { data, message: `Started: ${describe(data)}.` };
}

export async function stop(ctx: CommandContext): Promise<CommandOutcome<DaemonData>> {
  const data = await stopDaemon(ctx.job, ctx);
  return { data, message: `Stopped: ${describe(data)}.` };
}

export async function restart(ctx: CommandContext): Promise<CommandOutcome<DaemonData>> {
  const stopped = await stopDaemon(ctx.job, ctx);
  const started = await startDaemon(ctx.job, ctx);
  const data = { ...started, steps: [...stopped.steps, ...started.steps] };
  return { data, message: `Restarted: ${describe(data)}.` };
}

export async function reload(ctx: CommandContext): Promise<CommandOutcome<DaemonData>> {
  await reloadDaemon(ctx.job, ctx);
  return {
    data: { steps: ['reloaded'] },
    message: "Reloaded the daemon's configuration and syncs, and kicked the sync.",
  };
}

export async function validateRunning(ctx: CommandContext): Promise<Check[]> {
  const { job } = ctx;
  const pid = readPidFile(job.paths.mcpPidFile);
  const checks: Check[] = [
    {
      name: 'pid file names a live Bucardo process',
      pass: daemonPid(job) !== undefined,
      detail:
        pid === undefined
          ? `no pid in ${job.paths.mcpPidFile}`
          : `pid ${pid}${isProcessAlive(pid) ? '' : ' is dead (or a zombie)'}`,
    },
  ];
  const kicker = kickerStatus(job);
  checks.push({
    name: 'exactly one live kicker for this job',
    pass: kicker.running,
    detail: kicker.running ? `pid ${kicker.pid}` : 'no live kicker',
  });
  return checks;
}

export async function validateStopped(ctx: CommandContext): Promise<Check[]> {
  const { job } = ctx;
  const pid = readPidFile(job.paths.mcpPidFile);
  return [
    { name: 'no Bucardo pid file', pass: !existsSync(job.paths.mcpPidFile), detail: job.paths.mcpPidFile },
    { name: 'no live Bucardo process', pass: pid === undefined || !isProcessAlive(pid) },
    { name: 'no kicker running', pass: !kickerStatus(job).running },
  ];
}
