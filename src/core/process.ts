// Process liveness as this machine really behaves: PID 1 does not reap orphans, so a daemon that
// exited lingers as a zombie and kill -0 says "alive". Read the process state instead.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export function readPidFile(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim().split(/\s+/)[0] ?? '', 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** True when the process exists and is not a zombie. */
export function isProcessAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Format: pid (comm) state ...; comm may contain spaces and parentheses, so split at the last ')'.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X' && state !== '';
  } catch {
    return false;
  }
}

export function processCommandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** Seconds since the process started, from /proc (clock ticks since boot). */
export function processUptimeSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const startTicks = Number(fields[19]);
    const uptime = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    return Math.max(0, Math.round(uptime - startTicks / 100));
  } catch {
    return undefined;
  }
}

/**
 * Sends SIGTERM to every live process named by a *.pid file in the directory: how tests, benchmarks
 * and the demo stop what a job started, by pid, never by a broad name.
 */
export function stopProcessesIn(pidDir: string): number[] {
  let files: string[] = [];
  try {
    files = readdirSync(pidDir).filter((f) => f.endsWith('.pid'));
  } catch {
    return [];
  }
  const stopped: number[] = [];
  for (const file of files) {
    const pid = readPidFile(path.join(pidDir, file));
    if (pid && isProcessAlive(pid)) {
      try {
        process.kill(pid, 'SIGTERM');
        stopped.push(pid);
      } catch {
        /* exited meanwhile */
      }
    }
  }
  return stopped;
}
