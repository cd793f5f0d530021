// The CPU each command of a plain job's life takes, counted whole: the tool's node process, the bucardo
// executables it runs, the daemon and the PostgreSQL backends of both servers. Everything this bench
// starts (two throwaway clusters, the tool, the daemon) runs in a cpuacct cgroup of its own, so other
// work on the machine does not count and a daemonized process does not escape. The suite is CPU-bound
// on 2 cores (docs/performance.md#the-test-suite): these are the fixed costs every integration test pays.
//   BENCH_ROWS   rows in the replicated table (default 1000)
//   BENCH_ROUNDS repetitions of the whole flow, medians printed (default 3)
//   BENCH_BASELINE another built checkout (its wrapper.js and dist/): each round runs the flow with
//                it and with this tree, in turns, and both columns are printed. On a shared machine
//                the CPU of one flow varies by a quarter with the load; flows side by side compare.
// Needs root (the cgroup) and the project's setup (PostgreSQL 15, Bucardo).
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stopProcessesIn } from '../src/core/process.js';
import { startCluster, stopCluster, type ClusterInfo } from '../src/sandbox/cluster.js';
import { FIXTURE_PLUGINS, ROOT } from '../test/support/paths.js';
import { query, runTool, writeJobConfigIn, type ToolResult } from '../test/support/tool.js';

const CPUACCT = '/sys/fs/cgroup/cpuacct';
const rows = Number(process.env['BENCH_ROWS'] ?? 1000);
const rounds = Number(process.env['BENCH_ROUNDS'] ?? 3);
const baseline = process.env['BENCH_BASELINE'] ? path.resolve(process.env['BENCH_BASELINE']) : undefined;
const trees = baseline ? [baseline, ROOT] : [ROOT];

const cgroup = path.join(CPUACCT, `bench-command-cpu-${process.pid}`);
try {
  mkdirSync(cgroup);
  writeFileSync(path.join(cgroup, 'cgroup.procs'), String(process.pid));
} catch (error) {
  console.error(
    `This bench counts CPU in a cpuacct cgroup and cannot make one (${(error as Error).message}): run it as root on Linux.`,
  );
  process.exit(2);
}
const cpuSeconds = () => Number(readFileSync(path.join(cgroup, 'cpuacct.usage'), 'utf8')) / 1e9;

const STEPS = [
  'bucardo.scope',
  'bucardo.install',
  'bucardo.add_triggers',
  'bucardo.start',
  'bucardo.wait_for_copy',
  'bucardo.status --json',
  '(10 s idle, replicating nothing)',
  '(100 single-row updates, 5 s)',
  'bucardo.stop',
  'bucardo.uninstall',
  '--help (the tool alone)',
] as const;
const figures = new Map<string, Map<string, number[]>>(
  trees.map((tree) => [tree, new Map(STEPS.map((step) => [step, []]))]),
);

/** runTool of test/support, with the tool of another checkout when asked. */
function runToolOf(tree: string, args: string[]): Promise<ToolResult> {
  if (tree === ROOT) return runTool(args);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(tree, 'wrapper.js'), ...args], {
      cwd: tree,
      env: { ...process.env, NO_COLOR: '1', BUCARDO_CONSOLE_PLUGIN_PATH: FIXTURE_PLUGINS },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let [stdout, stderr] = ['', ''];
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

async function round(a: ClusterInfo, b: ClusterInfo, n: number, tree: string): Promise<void> {
  const [primaryDb, secondaryDb] = [`cpu${n}_a`, `cpu${n}_b`];
  for (const [cluster, db] of [
    [a, primaryDb],
    [b, secondaryDb],
  ] as const) {
    await query(cluster, 'postgres', `CREATE DATABASE ${db}`);
    await query(cluster, db, 'CREATE TABLE public.t (id int PRIMARY KEY, v text)');
  }
  await query(a, primaryDb, `INSERT INTO public.t SELECT g, 'x' FROM generate_series(1, ${rows}) g`);
  const job = writeJobConfigIn(mkdtempSync(path.join(tmpdir(), 'bench-command-cpu-')), {
    name: `cpu${n}`,
    primary: { cluster: a, dbname: primaryDb },
    secondary: { cluster: b, dbname: secondaryDb },
  });
  let mark = cpuSeconds();
  const lap = (step: (typeof STEPS)[number]) => {
    const now = cpuSeconds();
    figures
      .get(tree)!
      .get(step)!
      .push(now - mark);
    mark = now;
  };
  try {
    for (const step of STEPS) {
      if (step.startsWith('(10 s')) await new Promise((r) => setTimeout(r, 10_000));
      else if (step.startsWith('(100')) {
        for (let id = 1; id <= 100; id++)
          await query(a, primaryDb, 'UPDATE public.t SET v = $1 WHERE id = $2', ['y', id]);
        await new Promise((r) => setTimeout(r, 5_000));
      } else {
        const args = step.startsWith('--help') ? ['--help'] : ['-c', job.file, '-l', step];
        const result = await runToolOf(tree, args);
        if (result.code !== 0 && !step.startsWith('--help'))
          throw new Error(`${step} failed:\n${result.stdout}\n${result.stderr}`);
      }
      lap(step);
    }
  } finally {
    // A failed step may leave the daemon or the kicker running: stopped by the pids in the job's dir.
    stopProcessesIn(job.pidDir);
  }
  await query(a, 'postgres', `DROP DATABASE ${primaryDb} WITH (FORCE)`);
  await query(b, 'postgres', `DROP DATABASE ${secondaryDb} WITH (FORCE)`);
}

const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!;
const a = await startCluster('cpuA');
const b = await startCluster('cpuB');
try {
  let n = 0;
  for (let r = 1; r <= rounds; r++) {
    // In turns, each tree first every other round: neither always meets the same moment of the load.
    for (const tree of r % 2 ? trees : [...trees].reverse()) await round(a, b, ++n, tree);
  }
  console.log(
    `CPU seconds per step (median of ${rounds}; ${rows} rows; tool, bucardo, daemon and both servers)${baseline ? `; columns: ${baseline}, this tree` : ''}:`,
  );
  const totals = trees.map(() => 0);
  const column = (value: number) => `${value.toFixed(2).padStart(6)} s`;
  for (const step of STEPS) {
    const values = trees.map((tree) => median(figures.get(tree)!.get(step)!));
    if (!step.startsWith('--help') && !step.startsWith('('))
      values.forEach((value, i) => (totals[i]! += value));
    console.log(`  ${values.map(column).join('  ')}  ${step}`);
  }
  console.log(
    `  ${totals.map(column).join('  ')}  the commands of one job's life (install to uninstall, one status)`,
  );
} finally {
  stopCluster(a);
  stopCluster(b);
  try {
    writeFileSync(path.join(CPUACCT, 'cgroup.procs'), String(process.pid));
    rmdirSync(cgroup);
  } catch {
    // a process still inside: the empty cgroup goes when it exits
  }
}
