#!/usr/bin/env node
// Runs every test file in lanes: each lane has its own pair of throwaway PostgreSQL clusters and runs
// one file at a time, so files in different lanes share no server, database, role or Bucardo install.
// A file marked `// run-tests: alone` runs after the lanes are done, with nothing beside it. Each
// file's output is printed whole when it ends; a summary follows. The clusters are stopped
// afterwards, also when tests fail, a file overruns its time limit or the run is interrupted.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, existsSync, mkdirSync, writeFileSync, rmdirSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const { startCluster, stopCluster, stopAllClusters, handleSignalsYourself } = await import(
  path.join(root, 'dist/src/sandbox/cluster.js')
);
handleSignalsYourself();

// Major-version pairs (test/integration/versions.test.ts): the suite runs one pair, an old primary to a new
// secondary; --version-matrix (npm run test:versions) runs only that file, over every pair of the
// version matrix (plugins/bucardo/version-matrix.json, the one list preflight names pairs from). Given
// the whole matrix, that file fails when a pair of it does not pass, and records the run's date there.
const args = process.argv.slice(2);
const versionMatrix = args.includes('--version-matrix');
const lanesArg = args.find((arg) => arg.startsWith('--lanes='));
const only = args.filter((arg) => arg !== '--version-matrix' && arg !== lanesArg);
if (versionMatrix) only.push('integration/versions.test');
const matrixPairs = JSON.parse(readFileSync(path.join(root, 'plugins/bucardo/version-matrix.json'), 'utf8'))
  .pairs.filter((pair) => !pair.refused)
  .map((pair) => `${pair.primary}:${pair.secondary}`)
  .join(',');
const wholeMatrix = versionMatrix && process.env.BUCARDO_CONSOLE_VERSION_PAIRS === undefined;
const versionEnv = {
  BUCARDO_CONSOLE_VERSION_PAIRS:
    process.env.BUCARDO_CONSOLE_VERSION_PAIRS ?? (versionMatrix ? matrixPairs : '11:17'),
  BUCARDO_CONSOLE_VERSION_CONCURRENCY:
    process.env.BUCARDO_CONSOLE_VERSION_CONCURRENCY ?? (versionMatrix ? '3' : '2'),
  ...(wholeMatrix ? { BUCARDO_CONSOLE_VERSION_MATRIX: '1' } : {}),
};
// Three lanes on 2 cores: most of a test's time is spent waiting for Bucardo's loops, not computing.
const requestedLanes = Number(
  lanesArg?.slice('--lanes='.length) ?? process.env.BUCARDO_CONSOLE_TEST_LANES ?? 3,
);
if (!Number.isInteger(requestedLanes) || requestedLanes < 1) {
  console.error(
    `--lanes / BUCARDO_CONSOLE_TEST_LANES must be a whole number of at least 1, not "${requestedLanes}".`,
  );
  process.exit(2);
}
// A file that overruns this is stopped (SIGTERM: its harness stops its daemons) and counts as failed.
const fileTimeoutMs = Number(process.env.BUCARDO_CONSOLE_TEST_FILE_TIMEOUT ?? 1200) * 1000;
if (!(fileTimeoutMs > 0)) {
  console.error(
    `BUCARDO_CONSOLE_TEST_FILE_TIMEOUT must be a number of seconds, not "${process.env.BUCARDO_CONSOLE_TEST_FILE_TIMEOUT}".`,
  );
  process.exit(2);
}

// Seconds each file took alone (2026-12-02; syncs, parallel-copy, cutover-wayback, context: estimated from
// their time in lanes): the lanes start the longest first, so no long file is
// left for the end. A file not listed counts as a long one (60 s); the figures only order the queue.
const EXPECTED_SECONDS = {
  'integration/syncs': 120,
  'integration/schema': 200,
  'integration/cutover-hold': 25,
  'integration/parallel-copy': 105,
  'integration/stall': 114,
  'integration/bucardo': 87,
  'integration/faults': 76,
  'integration/shared-metadata': 100,
  'integration/cutover-wayback': 70,
  'integration/cascade': 100,
  'integration/concurrency': 64,
  'integration/cutover': 63,
  'integration/cutover-load': 25,
  'integration/fan-out': 150,
  'integration/cutover-pooler': 110,
  'integration/no-loss': 35,
  'integration/retry': 55,
  'integration/demo': 54,
  'integration/status': 95,
  'integration/versions': 40,
  'integration/ssl': 37,
  'integration/watchdog': 32,
  'integration/kicker-interval': 48,
  'integration/metrics': 32,
  'integration/fork-bucardo': 31,
  'integration/indexes': 29,
  'integration/credentials': 20,
  'integration/context': 8,
  'integration/mat_views': 16,
  'integration/scope': 15,
  'integration/arguments': 12,
  'integration/shell': 5,
  'integration/status-watch': 3,
  'integration/status-audit': 2,
  'integration/original-config': 2,
};
const expectedSeconds = (file) => {
  const key = path.relative(path.join(root, 'dist/test'), file).replace(/\.test\.js$/, '');
  return EXPECTED_SECONDS[key] ?? (key.startsWith('unit/') ? 1 : 60);
};

const files = ['unit', 'integration']
  .map((dir) => path.join(root, 'dist/test', dir))
  .filter(existsSync)
  .flatMap((dir) =>
    readdirSync(dir)
      .filter((f) => f.endsWith('.test.js'))
      .sort()
      .map((f) => path.join(dir, f)),
  )
  // Words match below dist/test ("integration/cascade"), never the checkout's own path: a checkout in
  // a directory named after a test would otherwise select every file.
  .filter(
    (file) =>
      only.length === 0 || only.some((name) => path.relative(path.join(root, 'dist/test'), file).includes(name)),
  );
const alone = (file) => /^\/\/ run-tests: alone\b/m.test(readFileSync(file, 'utf8'));
const queue = files.filter((file) => !alone(file)).sort((x, y) => expectedSeconds(y) - expectedSeconds(x));
const aloneFiles = files.filter(alone);
const needClusters =
  !versionMatrix && files.some((file) => file.includes(`${path.sep}integration${path.sep}`));
const laneCount = Math.max(1, Math.min(requestedLanes, queue.length));

const running = new Set();
let clusterTurn = Promise.resolve();
let interrupted = false;
const results = [];
const startedAt = Date.now();
/** Busy and total jiffies of all CPUs (/proc/stat): the share of the machine the run kept busy. */
const cpuTimes = () => {
  try {
    const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
    const idle = fields[3] + fields[4];
    const total = fields.reduce((sum, n) => sum + n, 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
};
const cpuAtStart = cpuTimes();

// CPU per file, where the cpuacct cgroup is writable (root on Linux): each file's processes and all
// they start (the tool's runs, Bucardo's daemons, clusters of its own) go to a cgroup of the file's,
// each lane's clusters to one of the lane's (their backends are the file's work too, counted while
// it runs). The suite is CPU-bound on 2 cores: the CPU a file costs, not its time beside two others,
// is what to cut. Daemonized processes stay in their cgroup, so nothing escapes the count.
const CPUACCT = '/sys/fs/cgroup/cpuacct';
const cgroupRoot = (() => {
  const dir = path.join(CPUACCT, `bucardo-console-tests-${process.pid}`);
  try {
    mkdirSync(dir);
    return dir;
  } catch {
    return undefined;
  }
})();
const cgroup = (name) => {
  if (!cgroupRoot) return undefined;
  const dir = path.join(cgroupRoot, name.replace(/[^A-Za-z0-9_.-]/g, '_'));
  mkdirSync(dir, { recursive: true });
  return dir;
};
const joinCgroup = (dir, pid) => {
  try {
    writeFileSync(path.join(dir, 'cgroup.procs'), String(pid));
  } catch {
    // Gone already, or no cgroup: the figure is then a little low, nothing else changes.
  }
};
const cpuSeconds = (dir) => {
  try {
    return Number(readFileSync(path.join(dir, 'cpuacct.usage'), 'utf8')) / 1e9;
  } catch {
    return 0;
  }
};
/** A cluster's postmaster and the processes it already forked (checkpointer, walwriter, …), to a cgroup. */
const clusterToCgroup = (cluster, dir) => {
  if (!dir) return;
  let postmasterPid = cluster.postmasterPid;
  try {
    postmasterPid = Number(readFileSync(path.join(cluster.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    // not running: nothing of it to count
  }
  joinCgroup(dir, postmasterPid);
  for (const entry of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === postmasterPid)
        joinCgroup(dir, entry);
    } catch {
      // exited meanwhile
    }
  }
};
/** Moves whatever is left in our cgroups back to the root one and removes them. */
const removeCgroups = () => {
  if (!cgroupRoot) return;
  for (const name of [
    ...readdirSync(cgroupRoot, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name),
    '',
  ]) {
    const dir = path.join(cgroupRoot, name);
    try {
      for (const pid of readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean))
        joinCgroup(CPUACCT, pid);
      rmdirSync(dir);
    } catch {
      // a process that would not move: the empty cgroup stays until it exits; nothing depends on it
    }
  }
};
const short = (file) => path.relative(path.join(root, 'dist/test'), file);

/** Runs one test file with the spec reporter; resolves with its exit code, output and counts. */
function runFile(file, lane, env) {
  return new Promise((resolve) => {
    const began = Date.now();
    console.log(`▷ lane ${lane}: ${short(file)}`);
    // BUCARDO_CONSOLE_TEST_NAME: run only the tests whose name matches (node's --test-name-pattern).
    const namePattern = process.env.BUCARDO_CONSOLE_TEST_NAME
      ? [`--test-name-pattern=${process.env.BUCARDO_CONSOLE_TEST_NAME}`]
      : [];
    const fileCgroup = cgroup(`lane${lane}-${short(file)}`);
    const serversCgroup = cgroupRoot && cgroup(`lane${lane}-servers`);
    // The harness prints each test's CPU from these (test/support/harness.ts).
    const cgroupEnv = fileCgroup
      ? { BUCARDO_CONSOLE_TEST_CGROUPS: JSON.stringify([fileCgroup, serversCgroup]) }
      : {};
    const child = spawn(process.execPath, ['--test-reporter=spec', ...namePattern, file], {
      env: { ...env, ...cgroupEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (fileCgroup) joinCgroup(fileCgroup, child.pid);
    // A file may have restarted the lane's servers (faults.test does): their new processes are its.
    if (serversCgroup && env.BUCARDO_CONSOLE_TEST_CLUSTERS)
      for (const cluster of Object.values(JSON.parse(env.BUCARDO_CONSOLE_TEST_CLUSTERS)))
        clusterToCgroup(cluster, serversCgroup);
    const serversAtStart = serversCgroup ? cpuSeconds(serversCgroup) : 0;
    running.add(child);
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    let timedOut = false;
    let killer;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
      killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    }, fileTimeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(killer);
      running.delete(child);
      const seconds = (Date.now() - began) / 1000;
      const count = (name) => Number(output.match(new RegExp(`^ℹ ${name} (\\d+)$`, 'm'))?.[1] ?? 0);
      const failed = code !== 0 || signal !== null;
      const note = timedOut
        ? `, stopped after the ${fileTimeoutMs / 1000} s limit`
        : signal
          ? `, ended by ${signal}`
          : '';
      const cpu = fileCgroup
        ? { own: cpuSeconds(fileCgroup), servers: cpuSeconds(serversCgroup) - serversAtStart }
        : undefined;
      const cpuNote = cpu
        ? `, cpu ${(cpu.own + cpu.servers).toFixed(1)} s (lane servers ${cpu.servers.toFixed(1)} s)`
        : '';
      const header = `── ${short(file)}: lane ${lane}, ${seconds.toFixed(1)} s${cpuNote}, ${failed ? 'FAILED' : 'ok'}${note} ──`;
      process.stdout.write(`${header}\n${output}${output.endsWith('\n') ? '' : '\n'}`);
      // The spec reporter's own list of failures with their errors, repeated at the end of the run: a CI
      // page that shows only the head and the tail of the output still shows why a test failed.
      const failures = failed
        ? output.slice(output.lastIndexOf('✖ failing tests:')) || output.slice(-3000)
        : '';
      const result = {
        file,
        seconds,
        cpu,
        failed,
        failures,
        lane,
        endedAt: Date.now(),
        tests: count('tests'),
        pass: count('pass'),
        fail: count('fail'),
        cancelled: count('cancelled'),
        skipped: count('skipped'),
        todo: count('todo'),
      };
      results.push(result);
      resolve(result);
    });
  });
}

/** A lane: its own pair of clusters (started as the lane begins), then files from the queue until it is empty. */
async function runLane(lane, files, env) {
  const startPair = async () => {
    // One lane's clusters after the other's: the first lane runs its first file while the next start.
    const pair = (clusterTurn = clusterTurn.then(async () =>
      interrupted
        ? undefined
        : { a: await startCluster(`test${lane}A`), b: await startCluster(`test${lane}B`) },
    ));
    const clusters = await pair;
    if (clusters)
      for (const cluster of Object.values(clusters)) clusterToCgroup(cluster, cgroup(`lane${lane}-servers`));
    return clusters && { ...env, BUCARDO_CONSOLE_TEST_CLUSTERS: JSON.stringify(clusters) };
  };
  if (needClusters && !env.BUCARDO_CONSOLE_TEST_CLUSTERS) env = (await startPair()) ?? env;
  while (files.length > 0 && !interrupted) {
    const result = await runFile(files.shift(), lane, env);
    // A failed file (above all one stopped at its time limit: no after() hook ran) may leave databases,
    // roles or a metadata database behind: the next file of the lane gets a fresh pair.
    if (result.failed && needClusters && !interrupted && files.length > 0) {
      for (const cluster of Object.values(JSON.parse(env.BUCARDO_CONSOLE_TEST_CLUSTERS)))
        stopCluster(cluster);
      env = (await startPair()) ?? env;
    }
  }
  return env;
}

/** Stops the queue and every running file (SIGTERM: each stops its own daemons and clusters). */
function stopEverything() {
  interrupted = true;
  for (const child of running) {
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 30_000).unref();
  }
}
// The lanes' clusters go once the files exited (the finally below).
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, stopEverything);

let exitCode = 1;
try {
  const env = { ...process.env, ...versionEnv };
  delete env.BUCARDO_CONSOLE_TEST_CLUSTERS;
  console.log(
    `${files.length} test file(s) in ${laneCount} lane(s)${aloneFiles.length ? `, then ${aloneFiles.length} alone` : ''}`,
  );
  // The first lane's clusters start first, so its first file runs while the other lanes start theirs.
  const lanes = Array.from({ length: laneCount }, (_, i) => i + 1);
  const laneEnvs = await Promise.all(
    lanes.map((lane) =>
      runLane(lane, queue, env).catch((error) => {
        // A lane that cannot start its clusters: stop the others too, so nothing outlives the run.
        console.error(`lane ${lane}: ${error.stack ?? error}`);
        stopEverything();
        return env;
      }),
    ),
  );
  if (aloneFiles.length > 0 && !interrupted) await runLane(1, aloneFiles, laneEnvs[0]);

  const sum = (key) => results.reduce((total, r) => total + r[key], 0);
  const failedFiles = results.filter((r) => r.failed);
  const notRun = files.length - results.length;
  console.log('\nslowest files:');
  for (const r of [...results].sort((x, y) => y.seconds - x.seconds).slice(0, 10))
    console.log(`  ${r.seconds.toFixed(1).padStart(6)} s  ${short(r.file)}`);
  const measured = results.filter((r) => r.cpu);
  if (measured.length > 0) {
    const total = (r) => r.cpu.own + r.cpu.servers;
    console.log("\nmost CPU (the file's processes and its lane's servers while it ran):");
    for (const r of [...measured].sort((x, y) => total(y) - total(x)).slice(0, 10))
      console.log(
        `  ${total(r).toFixed(1).padStart(6)} s  ${short(r.file)} (servers ${r.cpu.servers.toFixed(1)} s)`,
      );
    console.log(`ℹ cpu_seconds ${Math.round(measured.reduce((t, r) => t + total(r), 0))} (all files)`);
  }
  for (const key of ['tests', 'pass', 'fail', 'cancelled', 'skipped', 'todo'])
    console.log(`ℹ ${key} ${sum(key)}`);
  console.log(`ℹ files ${results.length} of ${files.length}, ${laneCount} lane(s)`);
  console.log(`ℹ duration_ms ${Date.now() - startedAt}`);
  // When each lane ran out of files: a lane that ends long before the others is idle time at the end.
  const laneEnds = lanes.map((lane) =>
    Math.max(startedAt, ...results.filter((r) => r.lane === lane).map((r) => r.endedAt)),
  );
  console.log(
    `ℹ lanes ended after ${laneEnds.map((end) => `${Math.round((end - startedAt) / 1000)} s`).join(', ')}`,
  );
  const cpuAtEnd = cpuTimes();
  if (cpuAtStart && cpuAtEnd)
    console.log(
      `ℹ cpu busy ${Math.round((100 * (cpuAtEnd.busy - cpuAtStart.busy)) / (cpuAtEnd.total - cpuAtStart.total))} % (the whole machine, over the run)`,
    );
  for (const r of failedFiles) {
    console.log(`\n✖ failed: ${short(r.file)}`);
    // Node's own frames say nothing about the test: left out, so the 60 lines hold more failures.
    const lines = r.failures
      .split('\n')
      .filter(
        (line) =>
          !/^\s+at .*(node:|\(native\))/.test(line) &&
          !/^\s+at (Test|AsyncResource|async Promise)\b/.test(line),
      );
    console.log(lines.slice(0, 60).join('\n'));
  }
  for (const r of failedFiles) console.log(`✖ failed: ${short(r.file)}`);
  if (notRun > 0) console.log(`✖ ${notRun} file(s) not run (interrupted)`);
  exitCode = failedFiles.length === 0 && notRun === 0 && !interrupted ? 0 : 1;
} finally {
  stopAllClusters();
  removeCgroups();
}
process.exit(exitCode);
