// Transactions per second on the primary with 8, 32 and 64 clients committing single-row inserts
// into a replicated table: no replication, Bucardo's per-commit kick triggers, and the kicker.
// Uses pgbench. Run: node dist/bench/commit-throughput.js   (about 3 minutes)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PG_BIN, type ClusterInfo } from '../src/sandbox/cluster.js';
import { query } from '../test/support/tool.js';
import { benchClusters, benchDir, cleanUp, job, run } from './support.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 10);
const CLIENTS = [8, 32, 64];
const script = path.join(mkdtempSync(path.join(benchDir, 'pgbench-')), 'insert.sql');
writeFileSync(script, "INSERT INTO public.events (payload) VALUES ('x');\n");

function pgbench(cluster: ClusterInfo, db: string, clients: number): number {
  const output = execFileSync(path.join(PG_BIN, 'pgbench'), ['-n', '-h', cluster.host, '-p', String(cluster.port), '-U', 'postgres', '-f', script, '-c', String(clients), '-j', '2', '-T', String(SECONDS), db], { encoding: 'utf8' });
  return Number(/tps = ([\d.]+)/.exec(output)![1]);
}

async function fresh(clusters: ClusterInfo[], db: string): Promise<void> {
  for (const cluster of clusters) {
    await query(cluster, 'postgres', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await query(cluster, 'postgres', `CREATE DATABASE ${db}`);
    await query(cluster, db, 'CREATE TABLE public.events (id bigserial PRIMARY KEY, payload text)');
  }
}

async function main(): Promise<void> {
  const [a, b] = await benchClusters(['A', 'B']);
  const results: Record<string, number[]> = {};
  await fresh([a!, b!], 'tp0');
  results['no replication'] = CLIENTS.map((n) => pgbench(a!, 'tp0', n));
  for (const [label, asynchronousKicking] of [['per-commit kick triggers', false], ['kicker (kick triggers off)', true]] as const) {
    const db = asynchronousKicking ? 'tp2' : 'tp1';
    await fresh([a!, b!], db);
    const replicated = job({ name: `tp_${db}`, primary: { cluster: a!, dbname: db }, secondary: { cluster: b!, dbname: db }, asynchronousKicking, kickInterval: 1 });
    await run(replicated.file, 'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy');
    results[label] = CLIENTS.map((n) => pgbench(a!, db, n));
    // A big delta table can keep autovacuum busy: retry the uninstall instead of losing the figures.
    for (let attempt = 1; ; attempt++) {
      try { await run(replicated.file, 'bucardo.uninstall'); break; } catch (error) { if (attempt >= 5) throw error; await new Promise((r) => setTimeout(r, 5000)); }
    }
  }
  console.log(`\nINSERT TPS on the primary, ${SECONDS} s per run (2 cores, PostgreSQL 15, Bucardo 5.6):`);
  console.log(`${'clients'.padEnd(30)}${CLIENTS.map((n) => String(n).padStart(10)).join('')}`);
  for (const [label, values] of Object.entries(results)) console.log(`${label.padEnd(30)}${values.map((v) => v.toFixed(0).padStart(10)).join('')}`);
  const triggers = results['per-commit kick triggers']![2]!;
  const kicker = results['kicker (kick triggers off)']![2]!;
  console.log(`at 64 clients the kicker gives ${(kicker / triggers).toFixed(1)}x the throughput of per-commit kick triggers (goal: >= 4x)`);
}

main().then(cleanUp, (error) => { console.error(error); cleanUp(); process.exitCode = 1; });
