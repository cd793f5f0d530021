// Sustained-load sweep (issue 19, `node dist/bench/sustained-load.js --sweep`): 8 tables, 64 clients
// committing single-row INSERTs and UPDATEs spread evenly over them, at increasing commit rates
// (pgbench -R), once with bucardo.syncs: 1 and once with bucardo.syncs: 4, in one run on the same
// clusters. A rate is kept up with when, during its BENCH_STEP_SECONDS of load, no sync went longer
// than 30 s without a successful run, and within 60 s after the load the oldest change not yet applied
// is younger than 5 s. For each number of syncs the sweep stops at the first rate not kept up with.
//
// Options (environment): BENCH_RATES (commits/s, comma-separated, default 1500,3000,4500,6000,7500,9000,
// 12000), BENCH_SYNCS (default 1,4), BENCH_STEP_SECONDS (default 40), BENCH_TABLES (default 8),
// BENCH_KICK_INTERVAL (default 1). A short sweep: BENCH_RATES=2000,6000 BENCH_STEP_SECONDS=20.
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config/load.js';
import { sleep } from '../src/core/activity.js';
import { createJob, metadataDbName } from '../src/core/job.js';
import { pendingChanges } from '../src/core/pending.js';
import { PluginCatalog } from '../src/core/plugin.js';
import { PG_BIN, type ClusterInfo } from '../src/sandbox/cluster.js';
import { query } from '../test/support/tool.js';
import pg from 'pg';
import { allStats, CpuWatch, readStat, type CpuSample } from './cpu.js';
import { benchClusters, benchDir, job, run } from './support.js';

type Spawn = (
  command: string,
  args: string[],
) => { child: ChildProcess; done: Promise<{ code: number; stdout: string; stderr: string }> };

const list = (value: string | undefined, fallback: number[]) =>
  value ? value.split(',').map((v) => Number(v.trim())) : fallback;
const RATES = list(process.env['BENCH_RATES'], [1500, 3000, 4500, 6000, 7500, 9000, 12000]);
const SYNCS = list(process.env['BENCH_SYNCS'], [1, 4]);
const STEP_SECONDS = Number(process.env['BENCH_STEP_SECONDS'] ?? 40);
const TABLES = Number(process.env['BENCH_TABLES'] ?? 8);
const KICK_INTERVAL = Number(process.env['BENCH_KICK_INTERVAL'] ?? 1);
const CLIENTS = 64;
const GOAL = { gapSeconds: 30, lagSeconds: 5, recoverSeconds: 60 };
const GOOD_RUN = "ended IS NOT NULL AND (lastgood OR status LIKE 'Complete%')";

const tableNames = Array.from({ length: TABLES }, (_, i) => `public.t${i + 1}`);
const schema = tableNames
  .map(
    (t) =>
      `CREATE TABLE ${t} (id bigserial PRIMARY KEY, payload text NOT NULL, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());`,
  )
  .join('\n');

/** A database of the same name on both clusters with the tables seeded on A, and its job's config. */
async function seededJob(a: ClusterInfo, b: ClusterInfo, name: string, syncs: number) {
  const db = name;
  for (const cluster of [a, b]) {
    await query(cluster, 'postgres', `CREATE DATABASE ${db}`);
    await query(cluster, db, schema);
  }
  for (const t of tableNames)
    await query(a, db, `INSERT INTO ${t} (payload) SELECT md5(g::text) FROM generate_series(1, 10000) g`);
  const written = job({
    name,
    primary: { cluster: a, dbname: db },
    secondary: { cluster: b, dbname: db },
    asynchronousKicking: true,
    kickInterval: KICK_INTERVAL,
    bucardoSettings: { syncs },
  });
  return { db, name, written };
}

/** pgbench's connection to A and its clients: the same for the sweep and the drain. */
function pgbenchConnection(a: ClusterInfo): string[] {
  return ['-n', '-h', a.host, '-p', String(a.port), '-U', 'postgres', '-c', String(CLIENTS), '-j', '2'];
}

interface StepResult {
  rate: number;
  tps: number;
  gapSeconds: number;
  lagRecoveredSeconds?: number;
  maxPending: number;
  keptUp: boolean;
}

function loadAverage(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

function pgbenchScripts(): string[] {
  const dir = mkdtempSync(path.join(benchDir, 'sweep-'));
  const args: string[] = [];
  for (const [i, table] of tableNames.entries()) {
    const insert = path.join(dir, `insert${i + 1}.sql`);
    const update = path.join(dir, `update${i + 1}.sql`);
    writeFileSync(insert, `INSERT INTO ${table} (payload) VALUES (md5(random()::text));\n`);
    // Ids 1..10,000 are seeded: an update of a random seeded row never misses.
    writeFileSync(
      update,
      `\\set id random(1, 10000)\nUPDATE ${table} SET payload = md5(random()::text), updated_at = clock_timestamp() WHERE id = :id;\n`,
    );
    args.push('-f', `${insert}@1`, '-f', `${update}@1`);
  }
  return args;
}

async function oldestPending(client: pg.Client, name: string): Promise<{ changes: number; age: number }> {
  const tables = await pendingChanges(client, name);
  const oldest = tables
    .map((t) => t.oldest?.getTime())
    .filter((t): t is number => t !== undefined)
    .sort((x, y) => x - y)[0];
  return {
    changes: tables.reduce((sum, t) => sum + t.changes, 0),
    age: oldest === undefined ? 0 : Math.max(0, (Date.now() - oldest) / 1000),
  };
}

/** Longest stretch of [from, to] without a good run, for the sync that had the longest one. */
async function longestGap(a: ClusterInfo, names: string[], from: number, to: number): Promise<number> {
  let worst = 0;
  for (const name of names) {
    const rows = await query<{ ended: Date }>(
      a,
      'bucardo',
      `SELECT ended FROM bucardo.syncrun WHERE sync = $1 AND ${GOOD_RUN} AND ended BETWEEN $2 AND $3 ORDER BY ended`,
      [name, new Date(from), new Date(to)],
    );
    const points = [from, ...rows.map((r) => r.ended.getTime()), to];
    for (let i = 1; i < points.length; i++) worst = Math.max(worst, (points[i]! - points[i - 1]!) / 1000);
  }
  return worst;
}

async function step(
  spawn: Spawn,
  a: ClusterInfo,
  db: string,
  name: string,
  syncNames: string[],
  rate: number,
): Promise<StepResult> {
  const sampler = new pg.Client({ host: a.host, port: a.port, user: 'postgres', database: db });
  await sampler.connect();
  await sampler.query('SET max_parallel_workers_per_gather = 0');
  try {
    let maxPending = 0;
    const loadStart = Date.now();
    const { done } = spawn(path.join(PG_BIN, 'pgbench'), [
      ...pgbenchConnection(a),
      '-T',
      String(STEP_SECONDS),
      '-R',
      String(rate),
      ...pgbenchScripts(),
      db,
    ]);
    const result = await done;
    const loadEnd = Date.now();
    if (result.code !== 0)
      throw new Error(`pgbench exited with ${result.code}: ${result.stderr.slice(-2000)}`);
    const tps = Number(/tps = ([\d.]+)/.exec(result.stdout)?.[1] ?? NaN);
    let lagRecoveredSeconds: number | undefined;
    // The lag goal: within 60 s of the load stopping, the oldest change not yet applied is under 5 s old.
    while (Date.now() - loadEnd <= GOAL.recoverSeconds * 1000) {
      const pending = await oldestPending(sampler, name);
      maxPending = Math.max(maxPending, pending.changes);
      if (pending.age < GOAL.lagSeconds) {
        lagRecoveredSeconds = (Date.now() - loadEnd) / 1000;
        break;
      }
      await sleep(1000);
    }
    const gapSeconds = await longestGap(a, syncNames, loadStart, loadEnd);
    const keptUp =
      gapSeconds <= GOAL.gapSeconds &&
      lagRecoveredSeconds !== undefined &&
      lagRecoveredSeconds <= GOAL.recoverSeconds;
    // Let the backlog drain before the next step (up to 3 min), so each step starts level.
    for (let i = 0; i < 180 && (await oldestPending(sampler, name)).changes > 0; i++) await sleep(1000);
    return {
      rate,
      tps,
      gapSeconds,
      maxPending,
      keptUp,
      ...(lagRecoveredSeconds !== undefined ? { lagRecoveredSeconds } : {}),
    };
  } finally {
    await sampler.end().catch(() => undefined);
  }
}

export async function sweep(spawn: Spawn): Promise<void> {
  const began = Date.now();
  console.log(
    `Sustained-load sweep: ${TABLES} tables, ${CLIENTS} clients, rates ${RATES.join(', ')} commits/s, ${STEP_SECONDS} s each, syncs ${SYNCS.join(' and ')}; ${availableParallelism()} cores, load average ${loadAverage()}`,
  );
  const [a, b] = await benchClusters(['SweepA', 'SweepB']);
  const best = new Map<number, StepResult | undefined>();
  const all = new Map<number, StepResult[]>();
  for (const syncs of SYNCS) {
    const { db, name, written } = await seededJob(a!, b!, `sweep${syncs}`, syncs);
    const syncNames = syncs === 1 ? [name] : Array.from({ length: syncs }, (_, i) => `${name}_${i + 1}`);
    console.log(`\nsyncs: ${syncs} — installing, copying...`);
    await run(written.file, 'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy');
    await query(a!, db, "INSERT INTO public.t1 (payload) VALUES ('warm-up')");
    for (let i = 0; i < 600; i++) {
      if ((await query(b!, db, "SELECT 1 FROM public.t1 WHERE payload = 'warm-up'")).length) break;
      await sleep(200);
    }
    const results: StepResult[] = [];
    for (const rate of RATES) {
      const result = await step(spawn, a!, db, name, syncNames, rate);
      results.push(result);
      console.log(
        `  syncs ${syncs}, -R ${rate}: ${result.tps.toFixed(0)} commits/s; longest gap between good runs ${result.gapSeconds.toFixed(1)} s; lag < 5 s after ${result.lagRecoveredSeconds !== undefined ? `${result.lagRecoveredSeconds.toFixed(0)} s` : `more than ${GOAL.recoverSeconds} s`}; backlog max ${result.maxPending.toLocaleString('en')}; ${result.keptUp ? 'kept up' : 'NOT kept up'} (load ${loadAverage()})`,
      );
      // pgbench short of the rate asked: the machine, not replication, set the pace of this step.
      if (result.tps < 0.9 * rate)
        console.log(
          `    pgbench reached ${result.tps.toFixed(0)} of the ${rate} commits/s asked: the host is saturated before replication is`,
        );
      if (!result.keptUp) break;
    }
    all.set(syncs, results);
    best.set(
      syncs,
      [...results].reverse().find((r) => r.keptUp),
    );
    await run(written.file, 'bucardo.uninstall');
  }
  console.log(
    '\nHighest commit rate kept up with (gap <= 30 s during the load, lag < 5 s within 60 s after it):',
  );
  for (const syncs of SYNCS) {
    const found = best.get(syncs);
    const failed = all.get(syncs)?.find((r) => !r.keptUp);
    console.log(
      `  syncs: ${syncs}  ${found ? `${found.tps.toFixed(0)} commits/s (-R ${found.rate})` : 'none of the rates'}${failed ? `; not at -R ${failed.rate} (${failed.tps.toFixed(0)} commits/s)` : '; every rate tried was kept up with'}`,
    );
  }
  const [one, many] = [best.get(SYNCS[0]!), best.get(SYNCS.at(-1)!)];
  if (one && many && SYNCS.length > 1)
    console.log(`  ratio syncs ${SYNCS.at(-1)} / syncs ${SYNCS[0]}: ${(many.tps / one.tps).toFixed(2)}`);
  console.log(
    `Wall time ${((Date.now() - began) / 1000).toFixed(0)} s; load average at the end ${loadAverage()}`,
  );
}

// --drain (issue 19): the apply rate alone, without a load generator competing for the cores. With the
// daemon stopped, pgbench commits BENCH_DRAIN_COMMITS single-row changes over the 8 tables as fast as it
// can (Bucardo's triggers record them); then bucardo.start, and the time from it until nothing is pending
// gives the changes applied per second, with bucardo.syncs 1 and 4 on the same clusters in one run.
// Bucardo's own records (bucardo.syncrun) give the apply time without the daemon's start-up, and
// bench/cpu.ts the CPU seconds of the daemon, of each cluster's backends and of the bench meanwhile.
// BENCH_CPUS (a taskset CPU list, e.g. 0) pins the two clusters, the bench and so the daemon it starts
// to those cores for the apply, to compare the ratio on fewer cores.
const DRAIN_COMMITS = Number(process.env['BENCH_DRAIN_COMMITS'] ?? 600_000);
const DRAIN_CPUS = process.env['BENCH_CPUS'];
const ALL_CPUS = `0-${availableParallelism() - 1}`;

/** Cores the apply may use: BENCH_CPUS counted ("0", "0,1", "0-1"), or all. */
function drainCores(): number {
  if (!DRAIN_CPUS) return availableParallelism();
  return DRAIN_CPUS.split(',').reduce((sum, part) => {
    const [from, to] = part.split('-').map(Number);
    return sum + (to === undefined ? 1 : to - from! + 1);
  }, 0);
}

/**
 * Sets the CPU affinity of each cluster's postmaster and of its processes now, and of this process: the
 * backends the postmasters fork later, and the tool and daemon this process starts, inherit it.
 */
function pin(cpus: string, clusters: ClusterInfo[]): void {
  const postmasters = clusters.map((c) => c.postmasterPid);
  const pids = [
    process.pid,
    ...postmasters,
    ...allStats()
      .filter((s) => postmasters.includes(s.ppid))
      .map((s) => s.pid),
  ];
  for (const pid of pids) spawnSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
}

interface SyncRun {
  sync: string;
  started: Date;
  ended: Date | null;
  changes: string;
  status: string | null;
}

interface DrainResult {
  syncs: number;
  backlog: number;
  /** bucardo.start to nothing pending, seconds. */
  seconds: number;
  /** bucardo.start to the first run's start, and the first run's start to the last run's end (syncrun). */
  startUp: number;
  apply: number;
  /** CPU seconds in the apply window (first run started .. last run ended) by class, and the machine's. */
  cpu: Record<string, number>;
  machine: number;
}

const CPU_CLASSES = ['Bucardo daemon', 'kicker', 'primary backends', 'secondary backends', 'bench and tool'];

/** CPU seconds by class between two times: sessions named from the pid files, clusters from postmasters. */
function cpuByClass(
  watch: CpuWatch,
  from: number,
  to: number,
  sessions: { daemon?: number; kicker?: number; bench: number },
  benchBackends: number[],
): Record<string, number> {
  const session = (sid: number | undefined) => (s: CpuSample) =>
    sid === undefined ? 0 : (s.sessions.get(sid) ?? 0);
  const backends = (s: CpuSample) => benchBackends.reduce((sum, pid) => sum + (s.pids.get(pid) ?? 0), 0);
  const ours = watch.between(from, to, backends);
  const kicker = sessions.kicker === sessions.daemon ? undefined : sessions.kicker;
  return {
    'Bucardo daemon': watch.between(from, to, session(sessions.daemon)),
    kicker: watch.between(from, to, session(kicker)),
    'primary backends': watch.between(from, to, (s) => s.clusters['primary'] ?? 0) - ours,
    'secondary backends': watch.between(from, to, (s) => s.clusters['secondary'] ?? 0),
    'bench and tool': watch.between(from, to, session(sessions.bench)) + ours,
  };
}

function sessionOfPidFile(file: string): number | undefined {
  try {
    // Bucardo's pid files hold more than the pid: it is the first number.
    return readStat(parseInt(readFileSync(file, 'utf8'), 10))?.session;
  } catch {
    return undefined;
  }
}

const sum = (values: Record<string, number>) => Object.values(values).reduce((s, v) => s + v, 0);
const secondsOf = (n: number) => n.toFixed(1);

export async function drain(spawn: Spawn): Promise<void> {
  const cores = drainCores();
  console.log(
    `Apply-rate (drain) benchmark, ${new Date().toISOString()}: ${TABLES} tables, ${DRAIN_COMMITS.toLocaleString('en')} single-row commits recorded with the daemon stopped, then applied; syncs ${SYNCS.join(' and ')}; ${availableParallelism()} cores, the apply on ${DRAIN_CPUS ? `CPUs ${DRAIN_CPUS} (taskset)` : 'all of them'}; load average ${loadAverage()}`,
  );
  const [a, b] = await benchClusters(['DrainA', 'DrainB']);
  const results: DrainResult[] = [];
  for (const syncs of SYNCS) {
    const { db, name, written } = await seededJob(a!, b!, `drain${syncs}`, syncs);
    const jobObject = createJob(await loadConfig(written.file, new PluginCatalog()));
    const metadataDb = metadataDbName(jobObject);
    await run(
      written.file,
      'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy bucardo.stop',
    );
    const perClient = Math.ceil(DRAIN_COMMITS / CLIENTS);
    const { done } = spawn(path.join(PG_BIN, 'pgbench'), [
      ...pgbenchConnection(a!),
      '-t',
      String(perClient),
      ...pgbenchScripts(),
      db,
    ]);
    const loaded = await done;
    if (loaded.code !== 0)
      throw new Error(`pgbench exited with ${loaded.code}: ${loaded.stderr.slice(-2000)}`);
    // The metadata database is on the primary's cluster (the bench's jobs put it there).
    const sampler = new pg.Client({ host: a!.host, port: a!.port, user: 'postgres', database: db });
    const runs = new pg.Client({ host: a!.host, port: a!.port, user: 'postgres', database: metadataDb });
    await sampler.connect();
    await runs.connect();
    try {
      const backlog = (await oldestPending(sampler, name)).changes;
      const benchBackends: number[] = [];
      for (const client of [sampler, runs])
        benchBackends.push(
          (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid,
        );
      if (DRAIN_CPUS) pin(DRAIN_CPUS, [a!, b!]);
      const watch = new CpuWatch({ primary: a!.postmasterPid, secondary: b!.postmasterPid }, benchBackends);
      watch.start();
      const started = Date.now();
      await run(written.file, 'bucardo.start');
      // Each sync applies its whole backlog in one run (one transaction on the secondary). Bucardo's
      // syncrun rows say when every sync has ended a run that applied changes; the pending count (a
      // heavier query on the primary) is only read then, to confirm nothing is left.
      let applied: SyncRun[] = [];
      let left = backlog;
      const limit = started + 900_000;
      while (Date.now() < limit) {
        await sleep(200);
        applied = (
          await runs.query<SyncRun>(
            `SELECT sync, started, ended, (inserts + deletes)::text AS changes, status FROM bucardo.syncrun
             WHERE sync LIKE $1 AND started >= $2 AND inserts + deletes > 0 ORDER BY started`,
            [`${name}%`, new Date(started)],
          )
        ).rows;
        const done = new Set(applied.filter((r) => r.ended).map((r) => r.sync));
        if (done.size < syncs) continue;
        left = (await oldestPending(sampler, name)).changes;
        if (left === 0) break;
      }
      const seconds = (Date.now() - started) / 1000;
      watch.stop();
      const sessions = {
        daemon: sessionOfPidFile(jobObject.paths.mcpPidFile),
        kicker: sessionOfPidFile(jobObject.paths.kickerPidFile),
        bench: readStat(process.pid)!.session,
      };
      if (DRAIN_CPUS) pin(ALL_CPUS, [a!, b!]);
      if (left > 0)
        console.log(`  syncs ${syncs}: ${left} change(s) still pending after ${seconds.toFixed(0)} s`);
      const firstStart = Math.min(...applied.map((r) => r.started.getTime()));
      const lastEnd = Math.max(...applied.map((r) => (r.ended ?? new Date()).getTime()));
      const result: DrainResult = {
        syncs,
        backlog,
        seconds,
        startUp: (firstStart - started) / 1000,
        apply: (lastEnd - firstStart) / 1000,
        cpu: cpuByClass(watch, firstStart, lastEnd, sessions, benchBackends),
        machine: watch.between(firstStart, lastEnd, (s) => s.machine),
      };
      results.push(result);
      const startUpCpu = cpuByClass(watch, started, firstStart, sessions, benchBackends);
      console.log(
        `\n  syncs ${syncs}: ${backlog.toLocaleString('en')} pending changes applied ${seconds.toFixed(1)} s after bucardo.start: ${(backlog / seconds).toFixed(0)} changes/s (load ${loadAverage()})`,
      );
      console.log(
        `    bucardo.syncrun: first run started ${secondsOf(result.startUp)} s after bucardo.start; first start to last end ${secondsOf(result.apply)} s: ${(backlog / result.apply).toFixed(0)} changes/s`,
      );
      for (const r of applied)
        console.log(
          `      ${r.sync}: ${Number(r.changes).toLocaleString('en')} rows deleted + inserted, started +${secondsOf((r.started.getTime() - started) / 1000)} s, ran ${r.ended ? secondsOf((r.ended.getTime() - r.started.getTime()) / 1000) : '?'} s (${r.status ?? ''})`,
        );
      console.log(
        `    CPU seconds, start-up (${secondsOf(result.startUp)} s) | apply (${secondsOf(result.apply)} s, ${cores} core(s) = ${secondsOf(cores * result.apply)} CPU s):`,
      );
      for (const name of CPU_CLASSES)
        console.log(
          `      ${name.padEnd(20)} ${secondsOf(startUpCpu[name]!).padStart(6)} | ${secondsOf(result.cpu[name]!).padStart(6)}  (${((100 * result.cpu[name]!) / (cores * result.apply)).toFixed(0)} %)`,
        );
      const ours = sum(result.cpu);
      console.log(
        `      ${'all of the above'.padEnd(20)} ${secondsOf(sum(startUpCpu)).padStart(6)} | ${secondsOf(ours).padStart(6)}  (${((100 * ours) / (cores * result.apply)).toFixed(0)} % of ${cores} core(s))`,
      );
      console.log(
        `      ${'whole machine'.padEnd(20)} ${secondsOf(watch.between(started, firstStart, (s) => s.machine)).padStart(6)} | ${secondsOf(result.machine).padStart(6)}  (${((100 * result.machine) / (availableParallelism() * result.apply)).toFixed(0)} % of ${availableParallelism()} cores)`,
      );
      const busiest = watch
        // A kid can keep its controller's process title: syncrun's status names the kid's pid.
        .processes((p) => p.session === sessions.daemon || p.cluster !== undefined)
        .filter((p) => p.seconds >= 0.2)
        .slice(0, 12);
      console.log(
        `    busiest processes from bucardo.start to the end (CPU seconds; sessions ${JSON.stringify(sessions)}):`,
      );
      for (const p of busiest)
        console.log(`      ${secondsOf(p.seconds).padStart(6)}  ${p.pid} ${p.name.slice(0, 90)}`);
    } finally {
      await sampler.end().catch(() => undefined);
      await runs.end().catch(() => undefined);
    }
    await run(written.file, 'bucardo.uninstall');
  }
  const [one, many] = [results[0], results.at(-1)];
  if (one && many && results.length > 1)
    console.log(
      `\n  syncs ${many.syncs} / syncs ${one.syncs}: ${(one.seconds / many.seconds).toFixed(2)} from bucardo.start, ${(one.apply / many.apply).toFixed(2)} on the apply alone (syncrun)`,
    );
  console.log(
    `\n| syncs | CPUs | from bucardo.start | start-up | apply (syncrun) | changes/s (apply) | Bucardo CPU s | primary CPU s | secondary CPU s | bench CPU s | total CPU s | of ${cores} core(s) |`,
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results)
    console.log(
      `| ${r.syncs} | ${DRAIN_CPUS ?? ALL_CPUS} | ${secondsOf(r.seconds)} s | ${secondsOf(r.startUp)} s | ${secondsOf(r.apply)} s | ${(r.backlog / r.apply).toFixed(0)} | ${secondsOf(r.cpu['Bucardo daemon']! + r.cpu['kicker']!)} | ${secondsOf(r.cpu['primary backends']!)} | ${secondsOf(r.cpu['secondary backends']!)} | ${secondsOf(r.cpu['bench and tool']!)} | ${secondsOf(sum(r.cpu))} | ${((100 * sum(r.cpu)) / (cores * r.apply)).toFixed(0)} % |`,
    );
}
