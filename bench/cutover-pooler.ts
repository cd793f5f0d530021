// Benchmark (issue 30): a cutover behind PgBouncer under a write load, the tool's way against today's
// manual way, in the same run. pgbench's clients (BENCH_CLIENTS, each transaction an UPDATE of an
// account and an INSERT into a log) write through a real PgBouncer (transaction pooling) to A while
// Bucardo replicates BENCH_ROWS accounts; cutover.verify passes while they write; then, per round:
//   manual   the operator's way today: PAUSE on the pooler, cutover.finish --writes-stopped, the
//            entry edited, RELOAD, RESUME (timed here from PAUSE to RESUME);
//   tool     cutover.finish with cutover.pgbouncer set: the tool pauses, switches and resumes;
//   wayback  the same with --way-back, then (the load still running) cutover.verify and
//            cutover.rollback back to A.
// Each round starts from the same data (both databases created from a template), with a new job.
// Reported per round: failed client transactions (pgbench's per-transaction log and exit code),
// committed transactions against the log rows on the new primary (every one must be there), rows
// written on the old primary after the switch (must be none), the longest client stall (the slowest
// transaction's latency, from pgbench's log) with the slowest before the cutover beside it, and the
// pause from PAUSE to RESUME with the tool's steps (and the pre-check's rounds before the PAUSE).
//
//   node dist/bench/cutover-pooler.js   BENCH_ROWS=3000000, BENCH_CLIENTS=16, BENCH_RATE=200 (tps),
//                                       BENCH_ROUNDS=manual,tool,wayback,
//                                       BENCH_SECONDS=360 (pgbench -T; +120 s for wayback),
//                                       BENCH_CUTOVER_AT=200 (s after pgbench starts, if verify is done),
//                                       BENCH_ROW_COUNTS=0 (cutover.final_row_counts: false)
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { sleep } from '../src/core/activity.js';
import { PG_BIN, type ClusterInfo } from '../src/sandbox/cluster.js';
import { startPooler, stopPooler, type PoolerInfo } from '../src/sandbox/pgbouncer.js';
import { pointEntries } from '../plugins/cutover/pooler-config.js';
import { query, runTool } from '../test/support/tool.js';
import { benchClusters, benchDir, cleanUp, job, otherWork, run } from './support.js';

const ROWS = Number(process.env['BENCH_ROWS'] ?? 3_000_000);
const CLIENTS = Number(process.env['BENCH_CLIENTS'] ?? 16);
const RATE = Number(process.env['BENCH_RATE'] ?? 200);
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 360);
const CUTOVER_AT = Number(process.env['BENCH_CUTOVER_AT'] ?? 200);
const ROUNDS = (process.env['BENCH_ROUNDS'] ?? 'manual,tool,wayback').split(',') as Round[];
/** cutover.final_row_counts: off, the final check compares the changed keys only and does not grow with the rows. */
const ROW_COUNTS = process.env['BENCH_ROW_COUNTS'] !== '0';
type Round = 'manual' | 'tool' | 'wayback';

const ADMIN_PASSWORD = 'bench-admin';
const APP_PASSWORD = 'bench-app';

const SCHEMA = `
CREATE SCHEMA bench;
CREATE TABLE bench.acct (id int PRIMARY KEY, bal bigint NOT NULL, filler text NOT NULL);
CREATE TABLE bench.log (id bigserial PRIMARY KEY, client int NOT NULL, acct int NOT NULL, at timestamptz NOT NULL);`;
const DATA = `INSERT INTO bench.acct SELECT g, 0, repeat('x', 20) FROM generate_series(1, ${ROWS}) g;`;
const SCRIPT = `\\set id random(1, ${ROWS})
BEGIN;
UPDATE bench.acct SET bal = bal + 1 WHERE id = :id;
INSERT INTO bench.log (client, acct, at) VALUES (:client_id, :id, clock_timestamp());
END;
`;

interface Figures {
  round: Round;
  transactions: number;
  failed: number;
  pgbenchExit: number;
  onNewPrimary: number;
  missing: number;
  writtenOnOldAfter: number;
  stallMs: number;
  baselineMs: number;
  pauseSeconds: number;
  steps: string;
  back?: { pauseSeconds: number; steps: string; failed: number };
}

interface Pgbench {
  exited: Promise<number>;
  startedAt: number;
  logPrefix: string;
  stderr: () => string;
}

function startPgbench(pooler: PoolerInfo, dir: string, seconds: number): Pgbench {
  const script = path.join(dir, 'txn.sql');
  writeFileSync(script, SCRIPT);
  const logPrefix = path.join(dir, 'pgbench');
  const child = spawn(
    path.join(PG_BIN, 'pgbench'),
    [
      '-n',
      '-h',
      pooler.host,
      '-p',
      String(pooler.port),
      '-U',
      'bench_app',
      '-c',
      String(CLIENTS),
      '-j',
      '2',
      '-R',
      String(RATE),
      '-T',
      String(seconds),
      '-l',
      `--log-prefix=${logPrefix}`,
      '-f',
      script,
      'app',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PGPASSWORD: APP_PASSWORD } },
  );
  let stderr = '';
  child.stdout!.resume();
  child.stderr!.on('data', (chunk) => {
    stderr = (stderr + String(chunk)).slice(-20_000);
  });
  return {
    exited: new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 1))),
    startedAt: Date.now(),
    logPrefix,
    stderr: () => stderr,
  };
}

/** pgbench's per-transaction log: client, txn, latency µs (or "failed"), script, epoch s, µs. */
function readTransactions(prefix: string): { endMs: number; latencyMs: number; failed: boolean }[] {
  const dir = path.dirname(prefix);
  const base = path.basename(prefix);
  const rows: { endMs: number; latencyMs: number; failed: boolean }[] = [];
  for (const file of readdirSync(dir).filter((f) => f.startsWith(`${base}.`))) {
    for (const line of readFileSync(path.join(dir, file), 'utf8').split('\n')) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 6) continue;
      const failed = fields[2] === 'failed';
      rows.push({
        endMs: Number(fields[4]) * 1000 + Number(fields[5]) / 1000,
        latencyMs: failed ? 0 : Number(fields[2]) / 1000,
        failed,
      });
    }
  }
  return rows;
}

async function admin(pooler: PoolerInfo, text: string): Promise<void> {
  const client = new pg.Client({
    host: pooler.host,
    port: pooler.port,
    user: 'padmin',
    password: ADMIN_PASSWORD,
    database: 'pgbouncer',
  });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

function outcome(stdout: string): any {
  const line = stdout.split('\n').find((l) => l.startsWith('{"command"'));
  if (!line) throw new Error(`no JSON outcome in:\n${stdout}`);
  return JSON.parse(line);
}

async function tool(file: string, list: string): Promise<any> {
  const result = await runTool(['-c', file, '-l', list], {
    timeoutMs: 900_000,
    env: { BENCH_POOLER_ADMIN: ADMIN_PASSWORD },
  });
  const parsed = outcome(result.stdout);
  if (result.code !== 0)
    throw new Error(`${list} failed: ${parsed.message ?? parsed.error}\n${result.stderr}`);
  return parsed;
}

/** The steps from the write stop to the RESUME, in milliseconds (data.timeline), or the pause's seconds. */
function pauseSteps(data: any): string {
  const timeline: { step: string; ms?: number }[] = data.timeline ?? [];
  const first = timeline.findIndex((t) => t.step === 'stop writes');
  const last = timeline.findIndex((t) => t.step === 'resume writes');
  const steps =
    first >= 0 && last >= first
      ? timeline
          .slice(first, last + 1)
          .map((t) => `${t.step} ${t.ms ?? '-'} ms`)
          .join(', ')
      : data.pause.steps.map((s: any) => `${s.step} ${s.seconds}`).join(', ');
  const check = data.finalCheck;
  // The pre-check's rounds come before the write stop: not in the pause, but what took the keys out of it.
  const rounds: { keysCompared: number; seconds: number }[] = data.preCheck ?? [];
  const preCheck = rounds.length
    ? `; before the PAUSE, pre-check ${rounds.map((r) => `${r.keysCompared} keys in ${r.seconds} s`).join(', then ')}`
    : '';
  return check
    ? `${steps} [final check: ${check.keysCompared} keys since the ${check.since}, counting rows ${check.countSeconds ?? 0} s${preCheck}]`
    : steps;
}

async function measure(a: ClusterInfo, b: ClusterInfo, pooler: PoolerInfo, round: Round, original: string) {
  for (const cluster of [a, b]) {
    await query(cluster, 'postgres', 'DROP DATABASE IF EXISTS app WITH (FORCE)');
    await query(cluster, 'postgres', 'CREATE DATABASE app TEMPLATE tpl');
  }
  writeFileSync(pooler.configFile, original);
  await admin(pooler, 'RELOAD');
  const withPooler = round !== 'manual';
  const written = job({
    name: `pool_${round}`,
    plugins: ['bucardo', 'cutover'],
    primary: { cluster: a, dbname: 'app' },
    secondary: { cluster: b, dbname: 'app' },
    copyData: 'never',
    asynchronousKicking: true,
    extra: {
      cutover: {
        max_lag: 60,
        chunk_rows: 50_000,
        final_row_counts: ROW_COUNTS,
        ...(withPooler
          ? {
              fence: ['bench_app'],
              fence_grace: 2,
              pgbouncer: {
                host: pooler.host,
                port: pooler.port,
                user: 'padmin',
                password_env: 'BENCH_POOLER_ADMIN',
                databases: ['app'],
                config_file: pooler.configFile,
              },
            }
          : {}),
      },
    },
  });
  await run(written.file, 'bucardo.install bucardo.add_triggers bucardo.start');
  // The way back's round also verifies and rolls back while the load runs: two minutes more.
  const seconds = round === 'wayback' ? SECONDS + 120 : SECONDS;
  const load = startPgbench(pooler, written.dir, seconds);
  console.log(`${round}: pgbench ${CLIENTS} clients at ${RATE} tps through the pooler for ${seconds} s`);
  const verifyStarted = Date.now();
  await tool(written.file, 'cutover.verify --json');
  console.log(
    `  cutover.verify passed under the load in ${((Date.now() - verifyStarted) / 1000).toFixed(1)} s`,
  );
  const wait = load.startedAt + CUTOVER_AT * 1000 - Date.now();
  if (wait > 0) await sleep(wait);
  if (load.startedAt + (seconds - (round === 'wayback' ? 150 : 30)) * 1000 < Date.now())
    console.log('  WARNING: less than 30 s of load left for the cutover: raise BENCH_SECONDS');

  const cutoverStarted = Date.now();
  let pauseSeconds: number;
  let steps: string;
  let back: Figures['back'];
  if (round === 'manual') {
    const paused = Date.now();
    await admin(pooler, 'PAUSE app');
    const finished = await tool(written.file, 'cutover.finish --writes-stopped --json');
    writeFileSync(
      pooler.configFile,
      pointEntries(readFileSync(pooler.configFile, 'utf8'), ['app'], {
        host: b.host,
        port: b.port,
        dbname: 'app',
      }),
    );
    await admin(pooler, 'RELOAD');
    await admin(pooler, 'RESUME app');
    pauseSeconds = (Date.now() - paused) / 1000;
    steps = pauseSteps(finished.data);
  } else {
    const finished = await tool(
      written.file,
      `cutover.finish${round === 'wayback' ? ' --way-back' : ''} --json`,
    );
    pauseSeconds = finished.data.writeStop.poolerPauseSeconds;
    steps = pauseSteps(finished.data);
  }
  const switchedAt = Date.now();
  console.log(`  switched: PAUSE to RESUME ${pauseSeconds.toFixed(1)} s (tool steps: ${steps})`);
  const [{ n: onOldAtSwitch }] = await query<{ n: number }>(
    a,
    'app',
    'SELECT count(*)::int AS n FROM bench.log',
  );
  if (round === 'wayback') {
    await sleep(10_000);
    await tool(written.file, 'cutover.verify --json');
    const rolledBack = await tool(written.file, 'cutover.rollback --json');
    back = {
      pauseSeconds: rolledBack.data.writeStop.poolerPauseSeconds,
      steps: pauseSteps(rolledBack.data),
      failed: 0,
    };
    console.log(
      `  rolled back: PAUSE to RESUME ${back.pauseSeconds.toFixed(1)} s (tool steps: ${back.steps})`,
    );
  }
  const code = await load.exited;
  const transactions = readTransactions(load.logPrefix);
  const failed = transactions.filter((t) => t.failed).length + (load.stderr().match(/aborted/g)?.length ?? 0);
  const ok = transactions.filter((t) => !t.failed);
  const around = ok.filter((t) => t.endMs >= cutoverStarted && t.endMs <= Date.now());
  const before = ok.filter((t) => t.endMs < cutoverStarted);
  // Where the application's rows are now: B after finish, A after the rollback.
  const newPrimary = round === 'wayback' ? a : b;
  const [{ n: onNew }] = await query<{ n: number }>(
    newPrimary,
    'app',
    'SELECT count(*)::int AS n FROM bench.log',
  );
  let writtenOnOldAfter = 0;
  if (round !== 'wayback') {
    const [{ n: onOldNow }] = await query<{ n: number }>(
      a,
      'app',
      'SELECT count(*)::int AS n FROM bench.log',
    );
    writtenOnOldAfter = onOldNow - onOldAtSwitch;
  }
  // Every row on the old primary is on the new one (the log ids), and the count matches the commits.
  const oldIds = (
    await query<{ id: string }>(round === 'wayback' ? b : a, 'app', 'SELECT id FROM bench.log')
  ).map((r) => Number(r.id));
  const newIds = new Set(
    (await query<{ id: string }>(newPrimary, 'app', 'SELECT id FROM bench.log')).map((r) => Number(r.id)),
  );
  const missing = oldIds.filter((id) => !newIds.has(id)).length;
  console.log(
    `  pgbench exit ${code}: ${ok.length} committed, ${failed} failed; ${onNew} log rows on the new primary; ${missing} of the old primary's rows missing there; ${writtenOnOldAfter} written on the old primary after the switch (${((Date.now() - switchedAt) / 1000).toFixed(0)} s observed)`,
  );
  await run(written.file, 'bucardo.uninstall');
  return {
    round,
    transactions: ok.length,
    failed,
    pgbenchExit: code,
    onNewPrimary: onNew,
    missing,
    writtenOnOldAfter,
    stallMs: Math.max(0, ...around.map((t) => t.latencyMs)),
    baselineMs: Math.max(0, ...before.map((t) => t.latencyMs)),
    pauseSeconds,
    steps,
    ...(back ? { back } : {}),
  } satisfies Figures;
}

async function main(): Promise<void> {
  const started = new Date();
  const [a, b] = await benchClusters(['PoolA', 'PoolB']);
  console.log(`loading ${ROWS.toLocaleString('en')} accounts on both sides (a template database)`);
  await Promise.all(
    [a!, b!].map(async (cluster) => {
      await query(
        cluster,
        'postgres',
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bench_app') THEN CREATE ROLE bench_app LOGIN SUPERUSER; END IF; END $$",
      );
      await query(cluster, 'postgres', 'CREATE DATABASE tpl');
      await query(cluster, 'tpl', SCHEMA);
      await query(cluster, 'tpl', DATA);
      await query(cluster, 'tpl', 'VACUUM ANALYZE bench.acct');
    }),
  );
  const pooler = await startPooler({
    databases: { app: { host: a!.host, port: a!.port, dbname: 'app' } },
    users: { padmin: ADMIN_PASSWORD, bench_app: APP_PASSWORD },
    adminUser: 'padmin',
    settings: { default_pool_size: CLIENTS + 4 },
  });
  const original = readFileSync(pooler.configFile, 'utf8');
  const figures: Figures[] = [];
  try {
    for (const round of ROUNDS) figures.push(await measure(a!, b!, pooler, round, original));
  } finally {
    await stopPooler(pooler);
  }
  const others = otherWork([a!, b!]);
  console.log(
    `\ncutover behind PgBouncer, ${ROWS.toLocaleString('en')} accounts, ${CLIENTS} pgbench clients at ${RATE} tps, final_row_counts ${ROW_COUNTS} (started ${started.toISOString()}; ${others.clusters} other PostgreSQL clusters and ${others.bucardos} other Bucardo daemons on this machine)`,
  );
  console.log(
    `${'round'.padEnd(8)} ${'commits'.padStart(8)} ${'failed'.padStart(6)} ${'missing'.padStart(7)} ${'old+'.padStart(5)} ${'pause s'.padStart(8)} ${'stall ms'.padStart(9)} ${'before ms'.padStart(9)}  tool steps (s)`,
  );
  for (const f of figures) {
    console.log(
      `${f.round.padEnd(8)} ${String(f.transactions).padStart(8)} ${String(f.failed).padStart(6)} ${String(f.missing).padStart(7)} ${String(f.writtenOnOldAfter).padStart(5)} ${f.pauseSeconds.toFixed(1).padStart(8)} ${f.stallMs.toFixed(0).padStart(9)} ${f.baselineMs.toFixed(0).padStart(9)}  ${f.steps}`,
    );
    if (f.back)
      console.log(
        `${'  back'.padEnd(8)} ${''.padStart(8)} ${''.padStart(6)} ${''.padStart(7)} ${''.padStart(5)} ${f.back.pauseSeconds.toFixed(1).padStart(8)}  ${''.padStart(19)}  ${f.back.steps}`,
      );
  }
  console.log(`(bench dir ${benchDir})`);
}

main().then(
  () => cleanUp(),
  (error: unknown) => {
    console.error(error);
    cleanUp();
    process.exitCode = 1;
  },
);
