// The Bucardo daemon of a job as every plugin sees it: is it running, has it loaded the sync, kick
// it over SQL, stop it and wait until it is gone, reload it. Starting it (settings, pid dir, the
// kicker, a cascade's order) is bucardo.start's own work, in plugins/bucardo/daemon.ts.
import { requireCommitFence } from './commit-fence.js';
import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { sleep } from '../activity.js';
import { runBucardo } from './run.js';
import { OperatorError } from '../errors.js';
import type { Job } from '../job.js';
import type { Client } from '../db.js';
import { stopKicker } from '../kicker.js';
import type { CommandContext } from '../plugin.js';
import { isProcessAlive, processCommandLine, readPidFile } from '../process.js';
import { quoteIdent } from '../quote.js';
import { withMetadata } from './metadata.js';
import { recordedSyncs, syncNames } from './syncs.js';

export interface DaemonData {
  pid?: number;
  kickerPid?: number;
  steps: string[];
}

export function daemonPid(job: Job): number | undefined {
  return liveBucardoPid(job.paths.mcpPidFile);
}

export function liveBucardoPid(pidFile: string): number | undefined {
  const pid = readPidFile(pidFile);
  return pid !== undefined && isProcessAlive(pid) && /bucardo/i.test(processCommandLine(pid))
    ? pid
    : undefined;
}

export function isDaemonRunning(job: Job): boolean {
  return daemonPid(job) !== undefined;
}

/** The controller of a sync writes this pid file once the daemon has loaded the sync. */
function controllerPidFile(job: Job, syncName: string): string {
  return path.join(job.paths.pidDir, `bucardo.ctl.sync.${syncName}.pid`);
}

/** Whether the daemon has loaded the sync (by default: every sync of the job). */
export function syncLoaded(job: Job, syncName?: string): boolean {
  return (syncName === undefined ? syncNames(job) : [syncName]).every((name) => {
    const pid = readPidFile(controllerPidFile(job, name));
    return pid !== undefined && isProcessAlive(pid);
  });
}

/** NOTIFY on the metadata database: what `bucardo kick` does, without starting Perl (every sync by default). */
export async function kickSync(job: Job, syncName?: string): Promise<void> {
  await withMetadata(job, (client) => kickSyncOn(client, job, syncName));
}

/** kickSync on a metadata session the caller holds (cutover.finish's drain: no new connection in the pause). */
export async function kickSyncOn(client: Client, job: Job, syncName?: string): Promise<void> {
  const names = syncName === undefined ? syncNames(job) : [syncName];
  for (const name of names) await client.query(`NOTIFY ${quoteIdent(`bucardo_kick_sync_${name}`)}`);
}

/**
 * What `bucardo stop` does (how-bucardo-behaves.md §22), without starting Perl and a metadata session for
 * it (~0.25 s of CPU): the stop file every Bucardo process looks for, and the line Bucardo's CLI writes to
 * the job's restart-reason files (the reason file holds the last event, its .log all of them).
 */
function writeStopFile(job: Job, by: string): void {
  writeFileSync(job.paths.stopFile, `Stopped by bucardo-console (${by}) on ${new Date().toISOString()}\n`);
  const line = `${perlLocaltime(new Date())} | stop  | ${by}\n`;
  try {
    writeFileSync(job.paths.reasonFile, line);
    appendFileSync(job.paths.reasonFile.replace(/(\.[^./]+)?$/, '.log'), line);
  } catch {
    // The reason files are a record for the operator; the stop file above is what stops the daemon.
  }
}

/** Perl's `scalar localtime`, as Bucardo's CLI dates its reason lines: "Mon Dec  7 22:30:01 2026". */
function perlLocaltime(date: Date): string {
  const [weekday, month, day, year, time] = date.toString().split(' ');
  return `${weekday} ${month} ${day!.replace(/^0/, ' ')} ${time} ${year}`;
}

/** The KID of a sync writes this pid file while it lives; KIDs are the only processes that write to the target. */
function kidPidFile(job: Job, syncName: string): string {
  return path.join(job.paths.pidDir, `bucardo.kid.sync.${syncName}.pid`);
}

/**
 * Stops the job's syncs for good without waiting for the whole daemon: the kicker is stopped (side by
 * side with the rest), the stop file written (all `bucardo stop` does, without starting Perl), and this
 * returns once every KID has exited. Every Bucardo process looks for the stop file before each run, and
 * a KID, the only one that writes to the target, leaves at its next look (a run under way ends first),
 * so once they are gone nothing more reaches the target. The MCP itself needs 1.5 s more (its cleanup sleeps:
 * how-bucardo-behaves.md §22): stopDaemon waits for it, outside a write pause.
 */
export async function stopSyncWorkers(job: Job, ctx: CommandContext): Promise<DaemonData> {
  const steps: string[] = [];
  // The kicker's exit is waited for beside the workers', not before: both are inside the write pause,
  // and a kick that comes after the stop file starts no run (each KID looks for the file first).
  const kicker = stopKicker(job);
  kicker.catch(() => undefined);
  const pid = daemonPid(job);
  if (!pid) {
    if (await kicker) steps.push('stopped the kicker');
    steps.push('daemon not running');
    return { steps };
  }
  writeStopFile(job, 'cutover');
  const kids = syncNames(job)
    .map((name) => readPidFile(kidPidFile(job, name)))
    .filter((kid): kid is number => kid !== undefined && isProcessAlive(kid));
  ctx.progress(`stopping the syncs: waiting for ${kids.length} Bucardo worker(s) to exit`);
  for (let i = 0; i < 600 && kids.some((kid) => isProcessAlive(kid)); i++)
    await sleep(20, ctx.activity.signal);
  const left = kids.filter((kid) => isProcessAlive(kid));
  if (await kicker) steps.push('stopped the kicker');
  if (left.length)
    throw new OperatorError(
      `Bucardo's sync worker(s) ${left.join(', ')} of ${job.name} still run 12 s after the stop file was written: one may be in a long run. Look at ${job.paths.logFile}; run the command again to keep waiting.`,
    );
  steps.push(
    `stop file written, ${kids.length} sync worker(s) exited: nothing more reaches the target (daemon pid ${pid} exits next)`,
  );
  return { steps };
}

export async function stopDaemon(job: Job, ctx: CommandContext): Promise<DaemonData> {
  const steps: string[] = [];
  if (await stopKicker(job)) steps.push('stopped the kicker');
  const pid = daemonPid(job);
  if (!pid) {
    steps.push('daemon not running');
    return { steps };
  }
  ctx.progress(`stopping the Bucardo daemon (pid ${pid})`);
  writeStopFile(job, 'bucardo.stop');
  // The MCP notices the stop file at the top of its loop and exits a second or two later.
  for (let i = 0; i < 600 && (isProcessAlive(pid) || existsSync(job.paths.mcpPidFile)); i++)
    await sleep(100, ctx.activity.signal);
  if (isProcessAlive(pid))
    throw new OperatorError(
      `The Bucardo daemon (pid ${pid}) is still running 60 s after its stop file was written. Look at ${job.paths.logFile}; stop it with kill ${pid} if it hangs.`,
    );
  steps.push(`stopped the daemon (pid ${pid})`);
  return { steps };
}

export async function reloadDaemon(job: Job, ctx: CommandContext): Promise<void> {
  if (!isDaemonRunning(job))
    throw new OperatorError(
      `The Bucardo daemon of ${job.name} is not running, so there is nothing to reload. Start it with bucardo.start.`,
    );
  // The daemon calls the fence on the source before every run of the syncs it is about to load.
  await requireCommitFence(job, ctx);
  const exited = await reloadConfig(job, ctx);
  if (exited) await startAfterFailedReload(job, ctx);
  for (let i = 0; i < 100 && !syncLoaded(job); i++) await sleep(100, ctx.activity.signal);
  const metadata = await (job === ctx.job ? ctx.db : ctx.databases(job)).metadata();
  if ((await recordedSyncs(metadata, job)).length) await kickSyncOn(metadata, job);
}

/** How long the MCP may take to stop every controller, then load and validate every sync. */
const RELOAD_WAIT_MS = 120_000;

/**
 * What `bucardo reload_config` asks of the MCP (re-read bucardo_config, reload every sync), sent over
 * SQL: NOTIFY the request, wait for the MCP's confirmation. The executable first pings the MCP and
 * gives up after 2 s without an answer ("Looks like Bucardo is not running"), and the MCP does not
 * answer while it reconnects to a sync's databases after a worker died, which a schema change makes
 * every worker do until this very reload (how-bucardo-behaves.md §25). The pid file already says the
 * daemon runs; the wait is bounded and ends early if the daemon exits.
 */
async function reloadConfig(job: Job, ctx: CommandContext): Promise<boolean> {
  let exited = false;
  // A session of its own: it LISTENs for the MCP's confirmation and must hear nothing else's.
  await withMetadata(
    job,
    async (client) => {
      let confirmed = false;
      const listener = (message: { channel: string }) => {
        if (message.channel === 'bucardo_reload_config_finished') confirmed = true;
      };
      client.on('notification', listener);
      try {
        // The MCP's pid, taken once: while it reloads it renames itself ($0) and a read of its command
        // line can catch it mid-write, which daemonPid would take for another program (seen as a
        // spurious "exited" on a busy machine). Whether that process lives is the question here.
        const mcp = daemonPid(job);
        await client.query('LISTEN bucardo_reload_config_finished');
        await client.query('NOTIFY bucardo_reload_config');
        const started = Date.now();
        ctx.progress('waiting for the Bucardo daemon to reload its syncs');
        while (!confirmed) {
          if (mcp === undefined || !isProcessAlive(mcp)) {
            exited = true;
            return;
          }
          if (Date.now() - started > RELOAD_WAIT_MS)
            throw new OperatorError(
              `The Bucardo daemon of ${job.name} (pid ${daemonPid(job)}) did not confirm the reload of its syncs within ${RELOAD_WAIT_MS / 1000} s. Look at ${job.paths.logFile} for what it is doing, then run the command again.`,
            );
          await sleep(100, ctx.activity.signal);
        }
      } finally {
        client.off('notification', listener);
        await client.query('UNLISTEN *').catch(() => undefined);
      }
    },
    ctx.activity,
  );
  return exited;
}

/**
 * The MCP died while it reloaded: it validates every sync again, and a validation that fails (seen in
 * the full test suite under an application's load, the log saying why) ends the daemon. Starting it
 * loads the same configuration the reload was to load; once. A daemon that dies again is reported.
 */
async function startAfterFailedReload(job: Job, ctx: CommandContext): Promise<void> {
  ctx.progress('the Bucardo daemon exited while it reloaded; starting it again');
  // Its controllers and workers end with it; wait for the last of them before a new MCP starts.
  for (let i = 0; i < 50 && syncLoaded(job); i++) await sleep(100, ctx.activity.signal);
  await runBucardo(job, ['start', '--logdest', job.paths.logDir, '--logextension', job.paths.logExtension], {
    activity: ctx.activity,
  });
  for (let i = 0; i < 200 && !daemonPid(job); i++) await sleep(100, ctx.activity.signal);
  if (!daemonPid(job))
    throw new OperatorError(
      `The Bucardo daemon of ${job.name} exited while it reloaded its configuration, and did not stay up when started again. Look at ${job.paths.logFile} for why, then run bucardo.start and the command again.`,
    );
}
