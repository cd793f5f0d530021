// Benchmark (issue 27): cutover.verify while the application writes. Both sides hold the same
// BENCH_ROWS accounts (3,000,000); Bucardo replicates A→B with asynchronous kicking (kick_interval
// BENCH_KICK_INTERVAL, the default 1 s); pgbench runs BENCH_CLIENTS (16) clients aiming at
// BENCH_RATE (2,000) transactions/s (0: as fast as they can) of the issue's transaction:
//
//   \set id random(1, <rows>)          -- one account, never the one the variant changes on B
//   BEGIN; UPDATE acct SET bal = bal + 1 WHERE id = :id; INSERT INTO log (at) VALUES (clock_timestamp()); END;
//
// Under the load, cutover.verify runs BENCH_ROUNDS times (3): each prints its seconds, verdict, keys
// in flight and real differences. Then the variant: one account changed on the secondary behind
// Bucardo's back (session_replication_role = replica: no change record), verify (it must name exactly
// that key), cutover.repair, verify again, all under the same load. The job's cutover settings are
// the defaults (chunk_rows 100,000, settle_time 30 s, jobs 4 or the cores).
//
//   node dist/bench/verify-under-load.js     (about 6 minutes at 3,000,000 rows on 2 cores)
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { sleep } from '../src/core/activity.js';
import { pendingChanges } from '../src/core/pending.js';
import { handleSignalsYourself, PG_BIN, type ClusterInfo } from '../src/sandbox/cluster.js';
import { formatVerify } from '../plugins/cutover/format.js';
import { query, runTool } from '../test/support/tool.js';
import { benchClusters, benchDir, cleanUp, job, run } from './support.js';

const ROWS = Number(process.env['BENCH_ROWS'] ?? 3_000_000);
const CLIENTS = Number(process.env['BENCH_CLIENTS'] ?? 16);
const RATE = Number(process.env['BENCH_RATE'] ?? 2000);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const KICK_INTERVAL = Number(process.env['BENCH_KICK_INTERVAL'] ?? 1);
/** Seconds of load before the first verify, so that replication runs in its steady state. */
const WARM_UP = Number(process.env['BENCH_WARM_UP'] ?? 20);
const DB = 'accounts';
const NAME = 'underload';
/** The account the load never touches: the variant changes it on the secondary. */
const TAMPERED = Math.max(1, Math.floor(ROWS / 2) + 7);

const SCHEMA = `
CREATE TABLE public.acct (id int PRIMARY KEY, bal bigint NOT NULL, name text NOT NULL);
CREATE TABLE public.log (id bigserial PRIMARY KEY, at timestamptz NOT NULL);`;
const DATA = `INSERT INTO public.acct SELECT g, 0, 'account ' || g FROM generate_series(1, ${ROWS}) g`;
const SCRIPT = `\\set id random(1, ${ROWS})
\\if :id = ${TAMPERED}
\\set id ${TAMPERED === ROWS ? TAMPERED - 1 : TAMPERED + 1}
\\endif
BEGIN;
UPDATE public.acct SET bal = bal + 1 WHERE id = :id;
INSERT INTO public.log (at) VALUES (clock_timestamp());
END;
`;

// ---- pgbench, stopped by its pid on success, error or signal

let pgbench: ChildProcess | undefined;
const progress: number[] = [];

function startLoad(cluster: ClusterInfo): void {
  const dir = mkdtempSync(path.join(benchDir, 'pgbench-'));
  // pgbench runs as root here but the cluster as postgres; the script must be readable.
  chmodSync(dir, 0o755);
  writeFileSync(path.join(dir, 'acct.sql'), SCRIPT);
  pgbench = spawn(
    path.join(PG_BIN, 'pgbench'),
    [
      '-n',
      '-h',
      cluster.host,
      '-p',
      String(cluster.port),
      '-U',
      'postgres',
      '-c',
      String(CLIENTS),
      '-j',
      '2',
      '-T',
      '36000',
      '-P',
      '5',
      ...(RATE > 0 ? ['-R', String(RATE)] : []),
      '-f',
      path.join(dir, 'acct.sql'),
      DB,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  pgbench.stderr!.on('data', (chunk: Buffer) => {
    for (const match of chunk.toString().matchAll(/^progress: [\d.]+ s, ([\d.]+) tps/gm))
      progress.push(Number(match[1]));
  });
  pgbench.on('exit', (code, signal) => {
    if (!stopping) console.error(`pgbench exited early (code ${code}, signal ${signal})`);
  });
}

let stopping = false;
function stopLoad(): void {
  stopping = true;
  if (pgbench?.pid && pgbench.exitCode === null) {
    try {
      process.kill(pgbench.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
}

handleSignalsYourself();
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping pgbench, the daemon, the kicker and the clusters...`);
    stopLoad();
    cleanUp();
    process.exit(code);
  });
}

// ---- the tool and the figures

interface Outcome {
  ok: boolean;
  message?: string;
  error?: string;
  data?: any;
  checks?: { name: string; pass: boolean; detail?: string }[];
}

async function tool(jobFile: string, commands: string): Promise<{ seconds: number; outcome: Outcome }> {
  const started = Date.now();
  const result = await runTool(['-c', jobFile, '-l', `${commands} --json`], { timeoutMs: 1_800_000 });
  const line = result.stdout.split('\n').find((l) => l.startsWith('{"command"'));
  if (!line) throw new Error(`${commands}: no JSON outcome\n${result.stdout}\n${result.stderr}`);
  return { seconds: (Date.now() - started) / 1000, outcome: JSON.parse(line) as Outcome };
}

/** Changes recorded on the primary and not yet applied on the secondary (the backlog). */
async function backlog(client: pg.Client): Promise<number> {
  return (await pendingChanges(client, NAME)).reduce((sum, p) => sum + p.changes, 0);
}

interface Figure {
  run: string;
  seconds: number;
  verdict: string;
  inFlight: number;
  realDifferences: string;
  tps: number;
  backlogBefore: number;
}

function describeDifferences(data: any): string {
  const keys = (data.tables as any[]).flatMap((t) =>
    (t.keys as any[])
      .filter((k) => !k.inFlight)
      .map(
        (k) =>
          `${t.table} ${Object.entries(k.key)
            .map(([c, v]) => `${c}=${v}`)
            .join(',')} (${k.difference})`,
      ),
  );
  const ranges = (data.tables as any[]).reduce((sum, t) => sum + t.ranges.length, 0);
  return `${data.totals.mismatchedRows}${keys.length ? `: ${keys.slice(0, 3).join('; ')}` : ''}${ranges ? `; ${ranges} range(s) not narrowed` : ''}`;
}

async function verifyRun(
  label: string,
  jobFile: string,
  primary: pg.Client,
  options: { printReport?: boolean } = {},
): Promise<Figure> {
  const backlogBefore = await backlog(primary);
  const from = progress.length;
  const { seconds, outcome } = await tool(jobFile, 'cutover.verify');
  const data = outcome.data;
  const during = progress.slice(from);
  const figure: Figure = {
    run: label,
    seconds,
    verdict: data
      ? data.passed
        ? data.clean
          ? 'identical'
          : 'passed'
        : 'FAILED'
      : `error: ${outcome.error}`,
    inFlight: data?.totals.inFlightRows ?? 0,
    realDifferences: data ? describeDifferences(data) : '-',
    tps: during.length ? Math.round(during.reduce((sum, t) => sum + t, 0) / during.length) : NaN,
    backlogBefore,
  };
  console.log(
    `  ${label}: ${seconds.toFixed(1)} s, ${figure.verdict}, ${figure.inFlight} key(s) in flight, real differences ${figure.realDifferences}; pgbench ${figure.tps} tps, backlog ${backlogBefore} at the start`,
  );
  // What the operator sees without --json.
  if (options.printReport && data) for (const line of formatVerify(data)) console.log(`  ${line}`);
  console.log(`    ${outcome.message ?? outcome.error}`);
  return figure;
}

async function main(): Promise<void> {
  console.log(
    `verify under load: ${ROWS.toLocaleString('en')} accounts, pgbench ${CLIENTS} clients${RATE > 0 ? ` at ${RATE} tps` : ''}, kick_interval ${KICK_INTERVAL} s, ${ROUNDS} round(s)`,
  );
  const [a, b] = await benchClusters(['LoadA', 'LoadB']);
  for (const cluster of [a!, b!]) {
    await query(cluster, 'postgres', `CREATE DATABASE ${DB}`);
    await query(cluster, DB, SCHEMA);
  }
  const loadStarted = Date.now();
  await Promise.all(
    [a!, b!].map(async (cluster) => {
      await query(cluster, DB, DATA);
      await query(cluster, DB, 'VACUUM ANALYZE public.acct');
    }),
  );
  console.log(`both sides loaded in ${((Date.now() - loadStarted) / 1000).toFixed(1)} s`);
  const written = job({
    name: NAME,
    plugins: ['bucardo', 'cutover'],
    primary: { cluster: a!, dbname: DB },
    secondary: { cluster: b!, dbname: DB },
    copyData: 'never',
    asynchronousKicking: true,
    kickInterval: KICK_INTERVAL,
    extra: { cutover: {} },
  });
  await run(written.file, 'bucardo.install bucardo.add_triggers bucardo.start');
  const primary = new pg.Client({ host: a!.host, port: a!.port, user: 'postgres', database: DB });
  await primary.connect();
  const figures: Figure[] = [];
  try {
    startLoad(a!);
    console.log(`pgbench started; ${WARM_UP} s of warm-up`);
    await sleep(WARM_UP * 1000);
    for (let round = 1; round <= ROUNDS; round++)
      figures.push(await verifyRun(`verify ${round}`, written.file, primary));

    console.log(`variant: account ${TAMPERED} changed on the secondary behind Bucardo's back`);
    await query(
      b!,
      DB,
      `SET session_replication_role = replica; UPDATE public.acct SET name = 'changed behind Bucardo''s back' WHERE id = ${TAMPERED}`,
    );
    figures.push(await verifyRun('verify, 1 row changed on B', written.file, primary, { printReport: true }));
    const repair = await tool(written.file, 'cutover.repair');
    console.log(
      `  cutover.repair: ${repair.seconds.toFixed(1)} s: ${repair.outcome.message ?? repair.outcome.error} (its check: ${repair.outcome.checks?.map((c) => `${c.name} ${c.pass ? 'pass' : 'FAIL'}`).join(', ')})`,
    );
    figures.push(await verifyRun('verify after repair', written.file, primary));
  } finally {
    stopLoad();
    await primary.end().catch(() => undefined);
  }
  const tps = progress.length ? Math.round(progress.reduce((sum, t) => sum + t, 0) / progress.length) : NaN;
  console.log(`\npgbench averaged ${tps} tps over ${progress.length * 5} s`);
  console.log(
    `${'run'.padEnd(30)} ${'seconds'.padStart(8)}  ${'verdict'.padEnd(9)} ${'in flight'.padStart(9)}  real differences`,
  );
  for (const f of figures)
    console.log(
      `${f.run.padEnd(30)} ${f.seconds.toFixed(1).padStart(8)}  ${f.verdict.padEnd(9)} ${String(f.inFlight).padStart(9)}  ${f.realDifferences}`,
    );
}

main().then(
  () => cleanUp(),
  (error: unknown) => {
    console.error(error);
    stopLoad();
    cleanUp();
    process.exitCode = 1;
  },
);
