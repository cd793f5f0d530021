// Test bed: the shared throwaway clusters of this run (or this file's own when run alone), helpers
// to make databases and job configs, and to run the tool as an operator would. Everything a test
// starts is stopped in after(), by pid, also when the test fails.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, beforeEach } from 'node:test';
import { isProcessAlive, readPidFile, stopProcessesIn } from '../../src/core/process.js';

export { stopProcessesIn };
import { startCluster, stopCluster, type ClusterInfo } from '../../src/sandbox/cluster.js';

import { FIXTURE_PLUGINS, ROOT } from './paths.js';
import { pauseSync } from './pause.js';
import { awaitPtyTools, signalPtyTools } from './pty.js';
import { query, runningTools, writeJobConfigIn, type JobOptions, type WrittenJob } from './tool.js';

export { FIXTURE_PLUGINS, ROOT };
export * from './tool.js';

/** A job config in a temp dir of this test file; its processes are stopped after the file. */
export function writeJobConfig(options: JobOptions): WrittenJob {
  const job = writeJobConfigIn(tempDir(options.name), options);
  pidDirs.add(job.pidDir);
  return job;
}

export interface TestClusters {
  a: ClusterInfo;
  b: ClusterInfo;
}

let own: TestClusters | undefined;
const pidDirs = new Set<string>();
const tempDirs = new Set<string>();

/**
 * The clusters of this file's lane (scripts/run-tests.js: files in other lanes use other clusters), or
 * two of this file's own when it runs alone, stopped after it.
 */
export async function clusters(): Promise<TestClusters> {
  const shared = process.env['BUCARDO_CONSOLE_TEST_CLUSTERS'];
  if (shared) return JSON.parse(shared) as TestClusters;
  if (!own) {
    const [a, b] = await Promise.all([startCluster('fileA'), startCluster('fileB')]);
    own = { a, b };
    after(() => {
      stopCluster(a);
      stopCluster(b);
    });
  }
  return own;
}

// The test under way, named when the file is stopped from outside (its report is not printed then).
let currentTest = 'the setup before the first test';
beforeEach((t) => {
  currentTest = t.name;
  cpuAtTestStart = cpuSeconds();
});

// The CPU a test took (scripts/run-tests.js names the cgroups: this file's processes and its lane's
// servers), printed under the test: the suite is CPU-bound, so this, not the time, says what it costs.
const cpuCgroups = JSON.parse(process.env['BUCARDO_CONSOLE_TEST_CGROUPS'] ?? '[]') as string[];
let cpuAtTestStart = 0;
function cpuSeconds(): number {
  let total = 0;
  for (const dir of cpuCgroups) {
    try {
      total += Number(readFileSync(path.join(dir, 'cpuacct.usage'), 'utf8')) / 1e9;
    } catch {
      // the runner removed it, or never made one
    }
  }
  return total;
}
afterEach((t) => {
  if (cpuCgroups.length > 0 && 'diagnostic' in t)
    t.diagnostic(`cpu ${(cpuSeconds() - cpuAtTestStart).toFixed(1)} s`);
});

// Killed from outside (a CI time limit, Ctrl-C, the runner's time limit per file): after() hooks do not
// run, so stop what we started now.
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  process.once(signal, () => {
    process.stderr.write(`${signal} during: ${currentTest}\n`);
    // A tool still starting a daemon or kicker would write its pid file after the sweep below: stop
    // the tools first, give what they had already spawned a moment to write its pid file, then sweep
    // the pid dirs twice.
    for (const tool of runningTools) tool.kill('SIGKILL');
    // A tool in a terminal (the demo) stops what it started itself when asked (its clusters are not
    // ours): asked now, waited for last, within the runner's 30 s before its SIGKILL.
    const ptyTools = signalPtyTools();
    pauseSync(1000);
    for (const dir of pidDirs) stopProcessesIn(dir);
    pauseSync(500);
    for (const dir of pidDirs) stopProcessesIn(dir);
    if (own) {
      stopCluster(own.a);
      stopCluster(own.b);
    }
    awaitPtyTools(ptyTools, 20_000);
    if (!process.env['BUCARDO_CONSOLE_KEEP_TEST_DIRS'])
      for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
    process.exit(1);
  });
}

after(async () => {
  // Stop every Bucardo process and kicker a test left, by the pids in its own pid dirs.
  for (const dir of pidDirs) stopProcessesIn(dir);
  // Let them exit before their directories go: a daemon still shutting down writes into its pid dir.
  for (let i = 0; i < 50 && [...pidDirs].some(liveProcessesIn); i++)
    await new Promise((r) => setTimeout(r, 100));
  if (!process.env['BUCARDO_CONSOLE_KEEP_TEST_DIRS']) {
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  }
});

function liveProcessesIn(pidDir: string): boolean {
  try {
    return readdirSync(pidDir)
      .filter((f) => f.endsWith('.pid'))
      .some((f) => isProcessAlive(readPidFile(path.join(pidDir, f)) ?? 0));
  } catch {
    return false;
  }
}

/**
 * Leaves no trace of a job whatever state a failed test left it in: its processes (by pid) and the
 * metadata database (the next test installs into the same cluster).
 */
export async function forgetJob(
  job: { pidDir: string },
  metadata: ClusterInfo,
  metadataDb = 'bucardo',
): Promise<void> {
  stopProcessesIn(job.pidDir);
  for (let i = 0; i < 50; i++) {
    let alive = false;
    try {
      alive = readdirSync(job.pidDir).some(
        (f) => f.startsWith('bucardo.mcp') && isProcessAlive(readPidFile(path.join(job.pidDir, f)) ?? 0),
      );
    } catch {
      /* no pid dir */
    }
    if (!alive) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await query(metadata, 'postgres', `DROP DATABASE IF EXISTS "${metadataDb}" WITH (FORCE)`).catch(
    () => undefined,
  );
}

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `bc-test-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

/** (Re)creates databases, dropping leftovers of an earlier failed run first. */
export async function freshDatabase(cluster: ClusterInfo, name: string, schemaSql = ''): Promise<void> {
  await query(cluster, 'postgres', `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await query(cluster, 'postgres', `CREATE DATABASE "${name}"`);
  if (schemaSql) await query(cluster, name, schemaSql);
}

export async function dropDatabase(cluster: ClusterInfo, name: string): Promise<void> {
  await query(cluster, 'postgres', `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
}
