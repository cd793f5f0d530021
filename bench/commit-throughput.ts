// Transactions per second on the primary with 8, 32 and 64 clients committing single-row inserts
// into a replicated table: no replication, Bucardo's per-commit kick triggers, and the kicker.
// Each is measured two ways, because the client's cost per commit decides how hard the NOTIFY lock
// bites: over the Unix socket with prepared statements (what busy applications do, and the only way
// the unreplicated figure reaches the baseline of 22,300 here) and over TCP with the simple protocol.
// Before each run the secondary has caught up with the last one, so no run pays for an earlier
// run's backlog; how long catching up took is printed too.
// Uses pgbench. Run: node dist/bench/commit-throughput.js   (about 9 minutes; BENCH_SECONDS per run, default 15 as in the baseline)
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PG_BIN, type ClusterInfo } from '../src/sandbox/cluster.js';
import { query } from '../test/support/tool.js';
import { benchClusters, benchDir, cleanUp, job, run } from './support.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 15);
const CLIENTS = [8, 32, 64];
const scriptDir = mkdtempSync(path.join(benchDir, 'pgbench-'));
const script = path.join(scriptDir, 'insert.sql');
writeFileSync(script, "INSERT INTO public.events (payload) VALUES ('x');\n");
// pgbench runs as root here but the cluster as postgres; the script must be readable, not the temp dir private.
chmodSync(scriptDir, 0o755);

interface ClientMode { label: string; host: (cluster: ClusterInfo) => string; pgbenchArgs: string[] }
const MODES: ClientMode[] = [
  { label: 'Unix socket, prepared statements', host: (cluster) => cluster.socketDir, pgbenchArgs: ['-M', 'prepared'] },
  { label: 'TCP, simple protocol', host: (cluster) => cluster.host, pgbenchArgs: [] },
];

function pgbench(cluster: ClusterInfo, db: string, clients: number, mode: ClientMode): number {
  const output = execFileSync(path.join(PG_BIN, 'pgbench'), ['-n', '-h', mode.host(cluster), '-p', String(cluster.port), '-U', 'postgres', ...mode.pgbenchArgs, '-f', script, '-c', String(clients), '-j', '2', '-T', String(SECONDS), db], { encoding: 'utf8' });
  return Number(/tps = ([\d.]+)/.exec(output)![1]);
}

async function fresh(clusters: ClusterInfo[], db: string): Promise<void> {
  for (const cluster of clusters) {
    await query(cluster, 'postgres', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await query(cluster, 'postgres', `CREATE DATABASE ${db}`);
    await query(cluster, db, 'CREATE TABLE public.events (id bigserial PRIMARY KEY, payload text)');
  }
}

type Results = Record<string, Record<string, number[]>>;

/** The newest id: one primary-key probe, so polling does not take CPU from Bucardo as count(*) would. */
async function newestId(cluster: ClusterInfo, db: string): Promise<number> {
  return Number((await query<{ max: string }>(cluster, db, 'SELECT coalesce(max(id), 0) AS max FROM public.events'))[0]!.max);
}

/** Seconds until the secondary has the primary's newest row (each run brings every change pending when it began). */
async function waitForCatchUp(primary: ClusterInfo, secondary: ClusterInfo, db: string): Promise<number> {
  const started = Date.now();
  const target = await newestId(primary, db);
  while (await newestId(secondary, db) < target) {
    if (Date.now() - started > 600_000) throw new Error(`the secondary did not catch up within 600 s (${db})`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return (Date.now() - started) / 1000;
}

async function main(): Promise<void> {
  const [a, b] = await benchClusters(['A', 'B']);
  const results: Results = Object.fromEntries(MODES.map((mode) => [mode.label, {}]));
  const catchUp: Results = Object.fromEntries(MODES.map((mode) => [mode.label, {}]));
  const measure = async (label: string, db: string, replicated: boolean): Promise<void> => {
    for (const mode of MODES) {
      const tps: number[] = [];
      const seconds: number[] = [];
      for (const clients of CLIENTS) {
        tps.push(pgbench(a!, db, clients, mode));
        if (replicated) seconds.push(await waitForCatchUp(a!, b!, db));
      }
      results[mode.label]![label] = tps;
      if (replicated) catchUp[mode.label]![label] = seconds;
    }
  };
  await fresh([a!, b!], 'tp0');
  await measure('no replication', 'tp0', false);
  for (const [label, asynchronousKicking] of [['per-commit kick triggers', false], ['kicker (kick triggers off)', true]] as const) {
    const db = asynchronousKicking ? 'tp2' : 'tp1';
    await fresh([a!, b!], db);
    const replicated = job({ name: `tp_${db}`, primary: { cluster: a!, dbname: db }, secondary: { cluster: b!, dbname: db }, asynchronousKicking, kickInterval: 1 });
    await run(replicated.file, 'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy');
    await measure(label, db, true);
    // A big delta table can keep autovacuum busy: retry the uninstall instead of losing the figures.
    for (let attempt = 1; ; attempt++) {
      try { await run(replicated.file, 'bucardo.uninstall'); break; } catch (error) { if (attempt >= 5) throw error; await new Promise((r) => setTimeout(r, 5000)); }
    }
  }
  for (const mode of MODES) {
    const byLabel = results[mode.label]!;
    console.log(`\nINSERT TPS on the primary, ${mode.label}, ${SECONDS} s per run (2 cores, PostgreSQL 15, Bucardo 5.6):`);
    console.log(`${'clients'.padEnd(30)}${CLIENTS.map((n) => String(n).padStart(10)).join('')}`);
    for (const [label, values] of Object.entries(byLabel)) console.log(`${label.padEnd(30)}${values.map((v) => v.toFixed(0).padStart(10)).join('')}`);
    console.log('seconds until the secondary had caught up after the run:');
    for (const [label, values] of Object.entries(catchUp[mode.label]!)) console.log(`${label.padEnd(30)}${values.map((v) => v.toFixed(1).padStart(10)).join('')}`);
    const triggers = byLabel['per-commit kick triggers']![2]!;
    const kicker = byLabel['kicker (kick triggers off)']![2]!;
    const none = byLabel['no replication']![2]!;
    console.log(`at 64 clients the kicker gives ${(kicker / triggers).toFixed(1)}x the throughput of per-commit kick triggers (goal: >= 4x); it keeps ${Math.round((kicker / none) * 100)}% of unreplicated throughput, the triggers ${Math.round((triggers / none) * 100)}%`);
  }
}

main().then(cleanUp, (error) => { console.error(error); cleanUp(); process.exitCode = 1; });
