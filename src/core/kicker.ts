// The kicker of a job: one detached background process (src/kicker/main.ts) that, with asynchronous
// kicking, NOTIFYs Bucardo when changes are pending instead of a per-commit kick trigger on every
// table, and in every mode keeps Bucardo's bookkeeping statistics fresh and watches for stalls.
// This module starts, stops and reports on it; its pid file and state live in the job's pid dir.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sleep } from './activity.js';
import type { Job } from './job.js';
import { isProcessAlive, processCommandLine, readPidFile } from './process.js';

export interface KickerState {
  pid: number;
  startedAt: string;
  lastKickAt?: string;
  kicks: number;
  connected: boolean;
  lastError?: string;
  lastErrorAt?: string;
  /** Seconds to its next look: kick_interval, or kick_interval_busy while changes arrive. */
  intervalSeconds: number;
  /** Bookkeeping-table maintenance runs (ANALYZE/VACUUM) so far, and the last one. */
  maintenance?: number;
  lastMaintenanceAt?: string;
  /** Stalls seen at the last watchdog look (cause and fix), and remedies applied. */
  stalls?: string[];
  remedies?: string[];
  /** Stall episodes seen (a look with stalls after one without) and remedies applied, since the start. */
  stallsDetected?: number;
  remediesApplied?: number;
  /** Where the kicker serves Prometheus metrics (metrics.listen), or why it could not. */
  metrics?: string;
  /** The safety net (src/core/recheck.ts), when bucardo.recheck_interval is not 0. */
  recheck?: RecheckState;
}

/** What the safety net did since the kicker started (counters), and at its last pass. */
export interface RecheckState {
  passes: number;
  /** Keys compared on both sides. */
  compared: number;
  /** Keys that differed with no change pending and were re-queued. */
  requeued: number;
  lastPassAt?: string;
  lastPassMs?: number;
  /** The last pass reached a limit per pass: records are waiting and passes follow each other at once. */
  behind?: boolean;
  /** The last re-queued keys, "<table> (<key>)", newest last. */
  lastRequeued?: string[];
  lastError?: string;
}

export interface KickerStatus {
  running: boolean;
  pid?: number;
  stalePidFile: boolean;
  state?: KickerState;
}

const KICKER_MAIN = fileURLToPath(new URL('../kicker/main.js', import.meta.url));

function isKickerProcess(pid: number, job: Job): boolean {
  // A recycled pid must not be mistaken for our kicker: its command line names this job's spec file.
  return isProcessAlive(pid) && processCommandLine(pid).includes(kickerSpecFile(job));
}

export function kickerSpecFile(job: Job): string {
  return `${job.paths.kickerStateFile.replace(/\.json$/, '')}.spec.json`;
}

export function kickerStatus(job: Job): KickerStatus {
  const pid = readPidFile(job.paths.kickerPidFile);
  const running = pid !== undefined && isKickerProcess(pid, job);
  let state: KickerState | undefined;
  try {
    state = JSON.parse(readFileSync(job.paths.kickerStateFile, 'utf8')) as KickerState;
  } catch {
    state = undefined;
  }
  return {
    running,
    ...(pid !== undefined ? { pid } : {}),
    stalePidFile: pid !== undefined && !running,
    ...(state ? { state } : {}),
  };
}

/** Starts the job's kicker unless one is already running; replaces a stale pid file. Returns its pid. */
export async function startKicker(job: Job): Promise<{ pid: number; started: boolean }> {
  const status = kickerStatus(job);
  if (status.running) return { pid: status.pid!, started: false };
  mkdirSync(job.paths.pidDir, { recursive: true });
  mkdirSync(job.paths.logDir, { recursive: true });
  rmSync(job.paths.kickerPidFile, { force: true });
  rmSync(job.paths.kickerStateFile, { force: true });
  // The spec is the job itself (plain data, no passwords): the kicker resolves credentials the same
  // way the shell does, from the environment it inherits and the password files.
  writeFileSync(kickerSpecFile(job), JSON.stringify(job), { mode: 0o600 });
  const log = openSync(job.paths.kickerLogFile, 'a');
  try {
    const child = spawn(process.execPath, [KICKER_MAIN, kickerSpecFile(job)], {
      detached: true,
      stdio: ['ignore', log, log],
      env: process.env,
      cwd: job.paths.pidDir,
    });
    child.unref();
    if (!child.pid) throw new Error('the kicker process did not start');
    writeFileSync(job.paths.kickerPidFile, `${child.pid}\n`);
    // Wait until it reports in (state file), so a kicker that dies at once is noticed now.
    for (let i = 0; i < 50; i++) {
      if (existsSync(job.paths.kickerStateFile)) break;
      if (!isProcessAlive(child.pid)) break;
      await sleep(100);
    }
    if (!isProcessAlive(child.pid)) {
      rmSync(job.paths.kickerPidFile, { force: true });
      const tail = existsSync(job.paths.kickerLogFile)
        ? readFileSync(job.paths.kickerLogFile, 'utf8').trim().split('\n').slice(-3).join(' ')
        : '';
      throw new Error(
        `the kicker exited at once: ${tail || 'no log output'} (log: ${job.paths.kickerLogFile})`,
      );
    }
    return { pid: child.pid, started: true };
  } finally {
    closeSync(log);
  }
}

/** Stops the kicker (SIGTERM, then SIGKILL after 5 s) and removes its pid file. */
export async function stopKicker(job: Job): Promise<boolean> {
  const status = kickerStatus(job);
  if (!status.running) {
    rmSync(job.paths.kickerPidFile, { force: true });
    return false;
  }
  const pid = status.pid!;
  process.kill(pid, 'SIGTERM');
  // Looked at every 20 ms: cutover.finish stops the kicker inside the write pause, and the kicker
  // usually exits within a few milliseconds of SIGTERM.
  for (let i = 0; i < 250 && isProcessAlive(pid); i++) await sleep(20);
  if (isProcessAlive(pid)) process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 100 && isProcessAlive(pid); i++) await sleep(20);
  rmSync(job.paths.kickerPidFile, { force: true });
  return true;
}
