// Commit on the primary -> row visible on the secondary, p50/p95 over 60 commits, for
// (1) Bucardo's per-commit kick triggers, (2) this tool's kicker, (3) the original tool's method
// (`bucardo kick` spawned once a second, as `watch -n 1 bucardo kick` did); CPU seconds per minute of
// (2) and (3), syncrun rows written per idle minute; and A->C latency through a cascade.
// Run: node dist/bench/kick-latency.js   (about 6 minutes). BENCH_ONLY=kicker, BENCH_KICK_INTERVALS=0.25,1 and
// BENCH_WORKER_SLEEP=0.05 measure other settings of the kicker alone; BENCH_POLL_TABLES (1000) sets the
// delta tables of (4), what one look of the kicker costs the primary (BENCH_ONLY=look: that alone).
import { spawn } from 'node:child_process';
import pg from 'pg';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { sleep } from '../src/core/activity.js';
import { readPidFile } from '../src/core/process.js';
import { baseArguments, bucardoEnvironment } from '../src/core/bucardo/run.js';
import { createJob } from '../src/core/job.js';
import { loadConfig } from '../src/config/load.js';
import { PluginCatalog } from '../src/core/plugin.js';
import { kickerStatus } from '../src/core/kicker.js';
import type { ClusterInfo } from '../src/sandbox/cluster.js';
import { query } from '../test/support/tool.js';
import { benchClusters, cleanUp, cpuSeconds, job, percentile, run, syncrunRows } from './support.js';

const COMMITS = 60;
/** The kicker intervals measured in (2): BENCH_KICK_INTERVALS=0.25,1 (default 0.25,1). */
const KICK_INTERVALS = (process.env['BENCH_KICK_INTERVALS'] ?? '0.25,1').split(',').map(Number);
/** bucardo.worker_sleep for every job (default: the tool's default). */
const WORKER_SLEEP = process.env['BENCH_WORKER_SLEEP']
  ? { worker_sleep: Number(process.env['BENCH_WORKER_SLEEP']) }
  : {};
/** BENCH_ONLY=kicker measures (2) and (4) alone, BENCH_ONLY=look (4) alone. */
const ONLY_KICKER = process.env['BENCH_ONLY'] === 'kicker';
const ONLY_LOOK = process.env['BENCH_ONLY'] === 'look';
const IDLE_SECONDS = 30;
/** (4) the kicker's look on the primary with this many delta tables: BENCH_POLL_TABLES (default 1000). */
const POLL_TABLES = Number(process.env['BENCH_POLL_TABLES'] ?? 1000);
const SCHEMA = 'CREATE TABLE public.pings (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())';

async function latencies(
  primary: ClusterInfo,
  source: string,
  target: ClusterInfo,
  targetDb: string,
  offset: number,
): Promise<number[]> {
  const results: number[] = [];
  for (let i = 0; i < COMMITS; i++) {
    const id = offset + i;
    // Spread the commits over the kick cycle, as real traffic is.
    await sleep(Math.floor(Math.random() * 400));
    const started = performance.now();
    await query(primary, source, 'INSERT INTO public.pings (id) VALUES ($1)', [id]);
    for (;;) {
      if ((await query(target, targetDb, 'SELECT 1 FROM public.pings WHERE id = $1', [id])).length) break;
      if (performance.now() - started > 20_000) throw new Error(`row ${id} never arrived`);
      await sleep(10);
    }
    results.push(performance.now() - started);
  }
  return results;
}

function summary(label: string, values: number[]): string {
  // Printed at once too, so a long run shows its figures as it goes.
  console.log(
    `${label}: p50 ${percentile(values, 50).toFixed(0)} ms, p95 ${percentile(values, 95).toFixed(0)} ms`,
  );
  return `${label.padEnd(44)} p50 ${percentile(values, 50).toFixed(0).padStart(5)} ms   p95 ${percentile(values, 95).toFixed(0).padStart(5)} ms`;
}

/** Bucardo's MCP, controller and worker of a job, by the pid files in its pid dir. */
function bucardoPids(pidDir: string): number[] {
  return readdirSync(pidDir)
    .filter((f) => /^bucardo\.(mcp|ctl|kid)/.test(f))
    .map((f) => readPidFile(path.join(pidDir, f)))
    .filter((pid): pid is number => pid !== undefined);
}

/** CPU seconds of processes still alive (a worker that exited in between counts as 0 from then on). */
function sumCpu(pids: number[]): number {
  return pids.reduce((sum, pid) => {
    try {
      return sum + cpuSeconds(pid);
    } catch {
      return sum;
    }
  }, 0);
}

async function fresh(clusters: ClusterInfo[], db: string): Promise<void> {
  for (const cluster of clusters) {
    await query(cluster, 'postgres', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await query(cluster, 'postgres', `CREATE DATABASE ${db}`);
    await query(cluster, db, SCHEMA);
  }
}

/**
 * (4) What one look of the kicker costs the primary with POLL_TABLES delta tables: the statement of
 * src/kicker/main.ts (max(txntime) of each delta table, by its index, and their inserts so far), on
 * tables shaped like Bucardo's, 100 rows each; its server time per look and per minute at each interval.
 */
async function lookCost(primary: ClusterInfo): Promise<string> {
  const db = 'kpoll';
  await query(primary, 'postgres', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  await query(primary, 'postgres', `CREATE DATABASE ${db}`);
  await query(
    primary,
    db,
    `DO $$ BEGIN FOR i IN 1..${POLL_TABLES} LOOP
       EXECUTE format('CREATE TABLE delta_%s (id int, txntime timestamptz NOT NULL DEFAULT now())', i);
       EXECUTE format('CREATE INDEX ON delta_%s (txntime)', i);
       EXECUTE format('INSERT INTO delta_%s (id) SELECT generate_series(1, 100)', i);
     END LOOP; END $$; ANALYZE`,
  );
  const names = Array.from({ length: POLL_TABLES }, (_, i) => `delta_${i + 1}`);
  const text = `SELECT (SELECT max(m) FROM (${names.map((n) => `SELECT max(txntime) AS m FROM ${n}`).join(' UNION ALL ')}) d)::text AS newest,
      (SELECT sum(n_tup_ins) FROM pg_stat_user_tables WHERE relid = ANY($1::regclass[]))::text AS inserted`;
  const client = new pg.Client({ host: primary.host, port: primary.port, user: 'postgres', database: db });
  await client.connect();
  const times: number[] = [];
  let cpuMs = 0;
  try {
    // The server's CPU for the looks: its backend is a process on this machine.
    const backend = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    for (let i = 0; i < 10; i++) await client.query({ name: 'look', text, values: [names] });
    const cpuBefore = cpuSeconds(backend);
    for (let i = 0; i < 100; i++) {
      const began = performance.now();
      await client.query({ name: 'look', text, values: [names] });
      times.push(performance.now() - began);
    }
    cpuMs = ((cpuSeconds(backend) - cpuBefore) * 1000) / times.length;
  } finally {
    await client.end();
  }
  await query(primary, 'postgres', `DROP DATABASE ${db}`);
  const mean = times.reduce((sum, t) => sum + t, 0) / times.length;
  const perMinute = [0.25, 0.5, 1]
    .map((interval) => `${((cpuMs * 60) / interval / 1000).toFixed(2)} at ${interval} s`)
    .join(', ');
  const line = `(4) one look with ${POLL_TABLES} delta tables: ${mean.toFixed(1)} ms mean, ${percentile(times, 95).toFixed(1)} ms p95, ${cpuMs.toFixed(1)} ms of the server's CPU; its CPU-s/min looking ${perMinute}`;
  console.log(line);
  return line;
}

async function main(): Promise<void> {
  const [a, b, c] = await benchClusters(['A', 'B', 'C']);
  const lines: string[] = [];

  if (ONLY_LOOK) {
    await lookCost(a!);
    return;
  }

  // (1) Bucardo's own per-commit kick triggers.
  if (!ONLY_KICKER) {
    await fresh([a!, b!], 'k1');
    const triggers = job({
      name: 'kick_triggers',
      primary: { cluster: a!, dbname: 'k1' },
      secondary: { cluster: b!, dbname: 'k1' },
      asynchronousKicking: false,
      bucardoSettings: WORKER_SLEEP,
    });
    await run(triggers.file, 'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy');
    lines.push(summary('(1) per-commit kick triggers', await latencies(a!, 'k1', b!, 'k1', 0)));
    await run(triggers.file, 'bucardo.uninstall');
  }

  // (2) The kicker, at 0.25 s and at its default interval (1 s).
  for (const interval of KICK_INTERVALS) {
    const db = `k2_${String(interval).replace('.', '_')}`;
    await fresh([a!, b!], db);
    const kicked = job({
      name: `kicker_${db}`,
      primary: { cluster: a!, dbname: db },
      secondary: { cluster: b!, dbname: db },
      asynchronousKicking: true,
      kickInterval: interval,
      bucardoSettings: WORKER_SLEEP,
    });
    await run(kicked.file, 'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy');
    const config = await loadConfig(kicked.file, new PluginCatalog());
    const kickerPid = kickerStatus(createJob(config)).pid!;
    const daemonPids = bucardoPids(kicked.pidDir);
    const cpuBefore = cpuSeconds(kickerPid);
    const daemonBefore = sumCpu(daemonPids);
    const started = performance.now();
    lines.push(summary(`(2) kicker, kick_interval ${interval} s`, await latencies(a!, db, b!, db, 0)));
    const busyMinutes = (performance.now() - started) / 60_000;
    const cpuBusy = (cpuSeconds(kickerPid) - cpuBefore) / busyMinutes;
    const rowsBefore = await syncrunRows(a!, `kicker_${db}`);
    const idleCpuBefore = cpuSeconds(kickerPid);
    await sleep(IDLE_SECONDS * 1000);
    const idleCpu = (cpuSeconds(kickerPid) - idleCpuBefore) * (60 / IDLE_SECONDS);
    const daemonCpu = (sumCpu(daemonPids) - daemonBefore) / (busyMinutes + IDLE_SECONDS / 60);
    const idleRows = ((await syncrunRows(a!, `kicker_${db}`)) - rowsBefore) * (60 / IDLE_SECONDS);
    lines.push(
      `    CPU: ${cpuBusy.toFixed(2)} CPU-s/min under commits, ${idleCpu.toFixed(2)} CPU-s/min idle; syncrun rows per idle minute: ${idleRows}; Bucardo's MCP+CTL+KID ${daemonCpu.toFixed(2)} CPU-s/min`,
    );
    await run(kicked.file, 'bucardo.uninstall');
  }

  lines.push(await lookCost(a!));

  if (ONLY_KICKER) {
    console.log(`\nCommit -> visible on the target, ${COMMITS} commits each:`);
    for (const line of lines) console.log(line);
    return;
  }

  // (3) The original tool's method: kick triggers off, `bucardo kick` spawned once a second.
  await fresh([a!, b!], 'k3');
  const original = job({
    name: 'watch_kick',
    primary: { cluster: a!, dbname: 'k3' },
    secondary: { cluster: b!, dbname: 'k3' },
    asynchronousKicking: true,
  });
  await run(
    original.file,
    'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy bucardo.stop',
  );
  // Restart the daemon without our kicker (bucardo.start would start it), then kick like `watch -n 1`.
  const originalJob = createJob(await loadConfig(original.file, new PluginCatalog()));
  const daemon = spawn(
    'bucardo',
    [...baseArguments(originalJob), 'start', '--logdest', originalJob.paths.logDir],
    { env: bucardoEnvironment(originalJob), stdio: 'ignore' },
  );
  await new Promise((resolve) => daemon.on('exit', resolve));
  await sleep(3000);
  // The loop's command is an argument array handed to bash as positional parameters ("$@"), never
  // spliced into the script text.
  const loop = spawn(
    'bash',
    [
      '-c',
      'while true; do "$@" >/dev/null; sleep 1; done',
      'watch',
      'bucardo',
      ...baseArguments(originalJob),
      'kick',
      'watch_kick',
    ],
    { env: bucardoEnvironment(originalJob), stdio: 'ignore' },
  );
  const loopStarted = performance.now();
  const rowsBefore = await syncrunRows(a!, 'watch_kick');
  lines.push(summary('(3) `bucardo kick` once a second', await latencies(a!, 'k3', b!, 'k3', 0)));
  const cpuBusy = cpuSeconds(loop.pid!, true);
  const busyMinutes = (performance.now() - loopStarted) / 60_000;
  const idleRowsBefore = await syncrunRows(a!, 'watch_kick');
  await sleep(IDLE_SECONDS * 1000);
  const cpuAll = cpuSeconds(loop.pid!, true);
  loop.kill();
  const idleRows = ((await syncrunRows(a!, 'watch_kick')) - idleRowsBefore) * (60 / IDLE_SECONDS);
  lines.push(
    `    CPU: ${(cpuBusy / busyMinutes).toFixed(2)} CPU-s/min under commits, ${((cpuAll - cpuBusy) * (60 / IDLE_SECONDS)).toFixed(2)} CPU-s/min idle; syncrun rows per idle minute: ${idleRows} (${rowsBefore} before)`,
  );
  await run(original.file, 'bucardo.uninstall');

  // A->C through a cascade, both hops with the kicker at 0.25 s.
  await fresh([a!, b!, c!], 'kc');
  const aToB = job({
    name: 'cas_ab',
    primary: { cluster: a!, dbname: 'kc' },
    secondary: { cluster: b!, dbname: 'kc', cascade: true },
    metadata: a!,
    asynchronousKicking: true,
    kickInterval: 0.25,
    bucardoSettings: WORKER_SLEEP,
  });
  const bToC = job({
    name: 'cas_bc',
    primary: { cluster: b!, dbname: 'kc', cascade: true },
    secondary: { cluster: c!, dbname: 'kc' },
    metadata: b!,
    asynchronousKicking: true,
    kickInterval: 0.25,
    bucardoSettings: WORKER_SLEEP,
  });
  await run(
    ['-c1', aToB.file, '-c2', bToC.file],
    'c1.bucardo.install c1.bucardo.add_triggers c2.bucardo.install c2.bucardo.add_triggers c1.bucardo.start c1.bucardo.wait_for_copy c2.bucardo.start c2.bucardo.wait_for_copy',
  );
  lines.push(summary('A->B->C cascade, kicker 0.25 s on both hops', await latencies(a!, 'kc', c!, 'kc', 0)));
  await run(['-c1', aToB.file, '-c2', bToC.file], 'c2.bucardo.uninstall c1.bucardo.uninstall');

  console.log(
    `\nCommit -> visible on the target, ${COMMITS} commits each (2 cores, PostgreSQL 15, Bucardo 5.6):`,
  );
  for (const line of lines) console.log(line);
}

main().then(cleanUp, (error) => {
  console.error(error);
  cleanUp();
  process.exitCode = 1;
});
