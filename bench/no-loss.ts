// No lost transactions under load (issue 27): the commit fence (docs/how-bucardo-behaves.md §19)
// checked statistically. Stock Bucardo lost 5 of about 1.6 million transactions under this load, all
// of them pairs that shared a txntime around a sync run's snapshot. Run through the console as an
// operator would (bucardo.install, add_triggers, start, wait_for_copy), pgbench commits
//
//   \set id random(1, BENCH_ACCOUNTS)
//   BEGIN; UPDATE acct SET bal = bal + 1 WHERE id = :id; INSERT INTO log (at) VALUES (clock_timestamp()); END;
//
// in rounds of BENCH_SECONDS. After each round, once Bucardo has nothing pending (src/core/pending.ts),
// A and B are compared exactly: every committed transaction wrote one log row (log ids on A missing on
// B, and on B not on A) and added 1 to one balance (every account whose balance differs, and the sums).
//
// The matrix: clients (BENCH_CLIENTS, default 16,64) × kicking (BENCH_KICKING: kicker = asynchronous
// kicking, triggers = Bucardo's per-commit kick triggers) × bucardo.syncs (BENCH_SYNCS, default 1,4),
// each configuration on a fresh database with a freshly installed job. With N > 1 syncs the accounts
// are split over N−1 tables and every transaction updates one random account in each, then inserts its
// log row: one table per sync (the console's balancer puts them so; the bench prints where they went),
// and every transaction spans all N syncs, so every kid's fence has to hold back every open transaction.
// With one acct table and the log, two of four syncs would have nothing to do.
//
// Rounds: at least BENCH_ROUNDS (default 1) per configuration, and until the configuration has its share
// of BENCH_TRANSACTIONS (default 2,000,000 spread over the matrix; 0: exactly BENCH_ROUNDS rounds); the
// last round is shortened to about what is missing. BENCH_CATCHUP_SECONDS (default 600) bounds the wait.
//
// Then the fence's own cost on the primary's commits (BENCH_COST_ROUNDS, default 3; 0 skips it): the
// same script, daemon stopped, delta trigger on, txntime default now() (stock) against
// bucardo.console_txntime() (the fence), alternated per round, BENCH_COST_CLIENTS (16,64),
// BENCH_COST_SECONDS (20) per run, each run after emptying the delta tables and a checkpoint.
//
// BENCH_UNFENCED=1 is the control: once the daemon runs, the delta tables' txntime default goes back
// to stock now(), so the patched kid tracks every time as stock Bucardo does (no writer announces one)
// and the race is back: what stock tracking loses on this machine at the rate reached.
// BENCH_UNFENCED=ms amplifies it: txntime date_trunc('milliseconds', now()), so the transactions that
// start in the same millisecond, not microsecond, share a time (about a thousand times as many pairs).
//
// BENCH_COARSE_TXNTIME=1 is the same amplification for the fence: in the bench's database only, the
// fence's writer function picks its time as shipped and then rounds it up to the next whole
// millisecond (still above the fence clock), so every writer of the same millisecond shares a time and
// the race is tried about a thousand times as often; the rest of the fence is the shipped code. Kicker
// only: a time rounded into the future is marked applied by the next run, which kick triggers would
// start only on the next commit.
//
// BENCH_INJECT_LOSS=1 deletes one log row and changes one balance on B after the first round's
// catch-up, to show the comparison and the evidence path catch a loss. A difference (injected or not)
// keeps the bench dir, with an evidence file per round and Bucardo's log.
//
// Run: node dist/bench/no-loss.js   (50 minutes with the defaults on a busy 2-core machine; a smoke run:
// BENCH_SECONDS=10 BENCH_ACCOUNTS=100000 BENCH_CLIENTS=16 BENCH_KICKING=kicker BENCH_SYNCS=1
// BENCH_TRANSACTIONS=0 BENCH_ROUNDS=2 BENCH_COST_ROUNDS=1 BENCH_COST_SECONDS=5)
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadConfig } from '../src/config/load.js';
import { sleep } from '../src/core/activity.js';
import { TXNTIME_DEFAULT } from '../src/core/bucardo/commit-fence.js';
import { createJob, metadataDbName, type Job } from '../src/core/job.js';
import { pendingChanges } from '../src/core/pending.js';
import { PluginCatalog } from '../src/core/plugin.js';
import { quoteIdent, quoteQualified } from '../src/core/quote.js';
import { handleSignalsYourself, PG_BIN, type ClusterInfo } from '../src/sandbox/cluster.js';
import { pauseSync } from '../test/support/pause.js';
import { query, runningTools, runTool, type WrittenJob } from '../test/support/tool.js';
import { CpuWatch, readStat, type CpuSample } from './cpu.js';
import {
  benchClusters,
  benchDir,
  cleanUp,
  job,
  keepBenchDir,
  median,
  otherWork,
  run,
  stopJobProcesses,
} from './support.js';

const list = (value: string | undefined, fallback: string): string[] =>
  (value ?? fallback)
    .split(/[ ,]+/)
    .map((v) => v.trim())
    .filter(Boolean);
const ACCOUNTS = Number(process.env['BENCH_ACCOUNTS'] ?? 1_000_000);
const CLIENTS = list(process.env['BENCH_CLIENTS'], '16,64').map(Number);
const KICKING = list(process.env['BENCH_KICKING'], 'kicker,triggers') as Kicking[];
const SYNCS = list(process.env['BENCH_SYNCS'], '1,4').map(Number);
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 30);
const MIN_ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 1);
const TRANSACTIONS = Number(process.env['BENCH_TRANSACTIONS'] ?? 2_000_000);
/** Bounds a configuration whose rounds stay far below the expected rate. */
const MAX_ROUNDS = Number(process.env['BENCH_MAX_ROUNDS'] ?? 50);
const CATCH_UP_LIMIT_SECONDS = Number(process.env['BENCH_CATCHUP_SECONDS'] ?? 600);
const COST_ROUNDS = Number(process.env['BENCH_COST_ROUNDS'] ?? 3);
const COST_CLIENTS = list(process.env['BENCH_COST_CLIENTS'], '16,64').map(Number);
const COST_SECONDS = Number(process.env['BENCH_COST_SECONDS'] ?? 20);
const INJECT_LOSS = process.env['BENCH_INJECT_LOSS'] === '1';
/** The control's txntime default, as set and as PostgreSQL shows it back; undefined: the fence, as shipped. */
const CONTROL = (
  {
    '1': { set: 'now()', shown: 'now()' },
    ms: { set: "date_trunc('milliseconds', now())", shown: "date_trunc('milliseconds'::text, now())" },
  } as Record<string, { set: string; shown: string }>
)[process.env['BENCH_UNFENCED'] ?? ''];
const UNFENCED = CONTROL !== undefined;
if (process.env['BENCH_UNFENCED'] && !UNFENCED)
  throw new Error('BENCH_UNFENCED: 1 (now()) or ms (now() to the millisecond)');
const COARSE = process.env['BENCH_COARSE_TXNTIME'] === '1';
/** A difference found right after the catch-up is looked at again this much later: lost, or only late? */
const RECHECK_SECONDS = 30;
/** Rows per bucket of the comparison's digests. */
const BUCKET = 10_000;
const STOCK_TXNTIME_DEFAULT = 'now()';

type Kicking = 'kicker' | 'triggers';
interface Configuration {
  clients: number;
  kicking: Kicking;
  syncs: number;
}
for (const kicking of KICKING)
  if (kicking !== 'kicker' && kicking !== 'triggers')
    throw new Error(`BENCH_KICKING: '${kicking}' is neither kicker nor triggers`);
if (COARSE && (UNFENCED || KICKING.includes('triggers')))
  throw new Error(
    'BENCH_COARSE_TXNTIME=1 amplifies the fence with the kicker: set BENCH_KICKING=kicker and no BENCH_UNFENCED',
  );
for (const n of [...CLIENTS, ...SYNCS, ...COST_CLIENTS, ACCOUNTS, SECONDS])
  if (!Number.isInteger(n) || n < 1) throw new Error(`not a positive whole number in the settings: ${n}`);

const describe = (c: Configuration): string =>
  `${c.clients} clients, ${c.kicking === 'kicker' ? 'kicker' : 'kick triggers'}, syncs ${c.syncs}`;

// ---- processes this benchmark starts: every one is stopped by its pid, on success, error or signal

const children = new Set<ChildProcess>();

function spawnTracked(
  command: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  return new Promise((resolve, reject) => {
    child.on('error', (error) => {
      children.delete(child);
      reject(error);
    });
    child.on('exit', (code) => {
      children.delete(child);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

let cleaned = false;
function stopEverything(): void {
  if (cleaned) return;
  cleaned = true;
  // A tool still starting a daemon or kicker writes its pid file after a first sweep: stop the tools,
  // give what they had spawned a moment, then sweep the pid files (again in cleanUp).
  const tools = [...runningTools];
  for (const tool of tools) tool.kill('SIGKILL');
  for (const child of children) {
    if (child.pid && child.exitCode === null) {
      try {
        process.kill(child.pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
    }
  }
  if (tools.length) {
    pauseSync(1000);
    stopJobProcesses();
    pauseSync(500);
  }
  cleanUp();
}

handleSignalsYourself();
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping pgbench, the tool, the daemons, the kickers and the clusters...`);
    stopEverything();
    process.exit(code);
  });
}
process.on('exit', stopEverything);

// ---- the workload

function accountTables(syncs: number): string[] {
  return syncs === 1 ? ['acct'] : Array.from({ length: syncs - 1 }, (_, i) => `acct_${i + 1}`);
}

function accountsPerTable(syncs: number): number {
  return Math.ceil(ACCOUNTS / accountTables(syncs).length);
}

function schema(syncs: number): string {
  return [
    ...accountTables(syncs).map(
      (t) => `CREATE TABLE public.${quoteIdent(t)} (id int PRIMARY KEY, bal bigint NOT NULL DEFAULT 0);`,
    ),
    // started: the transaction's start (now()), stock Bucardo's txntime, kept to count the pairs that
    // would have shared one; the script does not write it.
    'CREATE TABLE public.log (id bigserial PRIMARY KEY, at timestamptz NOT NULL, started timestamptz NOT NULL DEFAULT now());',
  ].join('\n');
}

async function seed(a: ClusterInfo, b: ClusterInfo, db: string, syncs: number): Promise<void> {
  for (const cluster of [a, b]) {
    await query(cluster, 'postgres', `DROP DATABASE IF EXISTS ${quoteIdent(db)} WITH (FORCE)`);
    await query(cluster, 'postgres', `CREATE DATABASE ${quoteIdent(db)}`);
    await query(cluster, db, schema(syncs));
  }
  for (const t of accountTables(syncs)) {
    await query(
      a,
      db,
      `INSERT INTO public.${quoteIdent(t)} (id) SELECT g FROM generate_series(1, ${accountsPerTable(syncs)}) g`,
    );
    await query(a, db, `VACUUM ANALYZE public.${quoteIdent(t)}`);
  }
}

/** The pgbench script: with one sync exactly the issue's; with more, one update per account table. */
function pgbenchScript(syncs: number): string {
  const tables = accountTables(syncs);
  const variable = (i: number) => (tables.length === 1 ? 'id' : `id${i + 1}`);
  return [
    ...tables.map((_, i) => `\\set ${variable(i)} random(1, ${accountsPerTable(syncs)})`),
    'BEGIN;',
    ...tables.map((t, i) => `UPDATE public.${quoteIdent(t)} SET bal = bal + 1 WHERE id = :${variable(i)};`),
    'INSERT INTO public.log (at) VALUES (clock_timestamp());',
    'END;',
    '',
  ].join('\n');
}

function writeScript(syncs: number): string {
  const dir = mkdtempSync(path.join(benchDir, 'pgbench-'));
  // pgbench runs as root here but the cluster as postgres: keep the script readable like the other benches.
  chmodSync(dir, 0o755);
  const file = path.join(dir, `no-loss-${syncs}.sql`);
  writeFileSync(file, pgbenchScript(syncs));
  return file;
}

interface LoadResult {
  tps: number;
  transactions: number;
  failed: number;
}

/** pgbench over the Unix socket with prepared statements (as applications that commit a lot do). */
async function pgbench(
  cluster: ClusterInfo,
  db: string,
  script: string,
  clients: number,
  seconds: number,
): Promise<LoadResult> {
  const { code, stdout, stderr } = await spawnTracked(path.join(PG_BIN, 'pgbench'), [
    '-n',
    '-h',
    cluster.socketDir,
    '-p',
    String(cluster.port),
    '-U',
    'postgres',
    '-M',
    'prepared',
    '-c',
    String(clients),
    '-j',
    '2',
    '-T',
    String(seconds),
    '-f',
    script,
    db,
  ]);
  if (code !== 0) throw new Error(`pgbench exited with ${code}:\n${stdout}\n${stderr.slice(-3000)}`);
  const number = (pattern: RegExp) => Number(pattern.exec(stdout)?.[1] ?? NaN);
  return {
    tps: number(/tps = ([\d.]+)/),
    transactions: number(/number of transactions actually processed: (\d+)/),
    failed: number(/number of failed transactions: (\d+)/) || 0,
  };
}

// ---- Bucardo's tables on the source

interface DeltaTable {
  sync: string;
  table: string;
  delta: string;
  track: string;
  txntimeDefault: string | null;
}

async function deltaTables(client: pg.Client): Promise<DeltaTable[]> {
  return (
    await client.query<DeltaTable>(
      `SELECT dn.sync, dn.tablename AS table, dn.deltaname AS delta, dn.trackname AS track,
              pg_get_expr(d.adbin, d.adrelid) AS "txntimeDefault"
         FROM bucardo.bucardo_delta_names dn
         JOIN pg_class c ON c.oid = to_regclass('bucardo.' || dn.deltaname)
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'txntime'
         LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
        ORDER BY dn.tablename`,
    )
  ).rows;
}

/** The fence's writer function as shipped, but its time rounded up to the next whole millisecond. */
const FENCE_PLUS_ONE = "timestamptz '1970-01-01 00:00:00+00' + (fence + 1) * interval '1 microsecond'";
const SHIPPED_CHOICE = `chosen := greatest(clock_timestamp(),
                       ${FENCE_PLUS_ONE});`;
const COARSE_CHOICE = `chosen := date_trunc('milliseconds', greatest(clock_timestamp(), ${FENCE_PLUS_ONE}) + interval '999 microseconds');`;

async function coarsenFence(client: pg.Client): Promise<void> {
  const source = (
    await client.query<{ src: string }>(
      "SELECT prosrc AS src FROM pg_proc WHERE oid = 'bucardo.console_txntime()'::regprocedure",
    )
  ).rows[0]!.src;
  if (source.split(SHIPPED_CHOICE).length !== 2 || source.includes('$coarse$'))
    throw new Error(
      `bucardo.console_txntime() no longer holds "${SHIPPED_CHOICE}" once: update bench/no-loss.ts`,
    );
  await client.query(
    `CREATE OR REPLACE FUNCTION bucardo.console_txntime() RETURNS timestamptz LANGUAGE plpgsql VOLATILE AS $coarse$${source.replace(SHIPPED_CHOICE, () => COARSE_CHOICE)}$coarse$`,
  );
}

async function connect(cluster: ClusterInfo, database: string, name: string): Promise<pg.Client> {
  const client = new pg.Client({
    host: cluster.socketDir,
    port: cluster.port,
    user: 'postgres',
    database,
    application_name: `no-loss bench ${name}`,
    statement_timeout: 600_000,
    connectionTimeoutMillis: 10_000,
  });
  await client.connect();
  return client;
}

async function pendingTotal(client: pg.Client, name: string): Promise<number> {
  return (await pendingChanges(client, name)).reduce((sum, t) => sum + t.changes, 0);
}

/**
 * Seconds from `from` until nothing is pending for the job's dbgroup, or undefined after the limit. A
 * run commits on the targets before it marks the changes applied on the source, so nothing pending
 * means B has committed every change Bucardo considers sent.
 */
async function waitForCatchUp(
  client: pg.Client,
  name: string,
  from: number,
): Promise<{ seconds?: number; pending: number }> {
  for (;;) {
    const pending = await pendingTotal(client, name);
    if (pending === 0) return { seconds: (Date.now() - from) / 1000, pending };
    if (Date.now() - from > CATCH_UP_LIMIT_SECONDS * 1000) return { pending };
    await sleep(1000);
  }
}

// ---- comparing A and B

interface AccountDifference {
  table: string;
  id: number;
  a: number | null;
  b: number | null;
}

interface Comparison {
  logRowsA: number;
  logRowsB: number;
  /** Log ids on A that B does not have: each is a lost transaction. */
  missingOnB: number[];
  /** Log ids on B that A does not have (impossible unless something else writes to B). */
  extraOnB: number[];
  accounts: AccountDifference[];
  balanceSumA: number;
  balanceSumB: number;
  seconds: number;
}

/**
 * Lost transactions of a configuration, each counted once however many rounds still show it: a log row
 * missing on B (or extra), plus each unit of balance that differs (a transaction losing both its log
 * row and its update counts twice; any figure above 0 is a failure). A balance that a later change of
 * the same account put right stays counted: it was lost when it was compared.
 */
class LossLedger {
  private readonly logIds = new Set<string>();
  private readonly accounts = new Map<string, number>();

  private static items(c: Comparison): { logIds: string[]; accounts: Map<string, number> } {
    return {
      logIds: [...c.missingOnB.map((id) => `missing ${id}`), ...c.extraOnB.map((id) => `extra ${id}`)],
      accounts: new Map(c.accounts.map((d) => [`${d.table} ${d.id}`, Math.abs((d.a ?? 0) - (d.b ?? 0))])),
    };
  }

  /** What the comparison shows that was not recorded before. */
  unseen(c: Comparison): number {
    const { logIds, accounts } = LossLedger.items(c);
    let count = logIds.filter((id) => !this.logIds.has(id)).length;
    for (const [key, units] of accounts) count += Math.max(0, units - (this.accounts.get(key) ?? 0));
    return count;
  }

  /** Records the comparison; returns what it adds. */
  record(c: Comparison): number {
    const added = this.unseen(c);
    const { logIds, accounts } = LossLedger.items(c);
    for (const id of logIds) this.logIds.add(id);
    for (const [key, units] of accounts) this.accounts.set(key, Math.max(units, this.accounts.get(key) ?? 0));
    return added;
  }
}

interface Digest {
  bucket: string;
  total: string;
  hash: string;
}

async function digests(
  client: pg.Client,
  table: string,
  kind: 'log' | 'accounts',
): Promise<Map<string, Digest>> {
  const total = kind === 'log' ? 'count(*)' : 'sum(bal)';
  const item = kind === 'log' ? 'id::text' : "id || '=' || bal";
  const { rows } = await client.query<Digest>(
    `SELECT (id / ${BUCKET})::bigint::text AS bucket, ${total}::text AS total,
            md5(string_agg(${item}, ',' ORDER BY id)) AS hash
       FROM public.${quoteIdent(table)} GROUP BY 1`,
  );
  return new Map(rows.map((row) => [row.bucket, row]));
}

/** Buckets whose digest differs (or that one side lacks). */
function differingBuckets(a: Map<string, Digest>, b: Map<string, Digest>): number[] {
  const keys = new Set([...a.keys(), ...b.keys()]);
  return [...keys]
    .filter((k) => a.get(k)?.hash !== b.get(k)?.hash || a.get(k)?.total !== b.get(k)?.total)
    .map(Number)
    .sort((x, y) => x - y);
}

const totalOf = (digestsOf: Map<string, Digest>) =>
  [...digestsOf.values()].reduce((sum, d) => sum + Number(d.total), 0);

async function rowsIn(
  client: pg.Client,
  table: string,
  column: string,
  bucket: number,
): Promise<Map<number, number>> {
  const { rows } = await client.query<{ id: string; value: string }>(
    `SELECT id::text AS id, ${column}::text AS value FROM public.${quoteIdent(table)} WHERE id >= $1 AND id < $2`,
    [bucket * BUCKET, (bucket + 1) * BUCKET],
  );
  return new Map(rows.map((row) => [Number(row.id), Number(row.value)]));
}

/**
 * Every log id and every balance of A against B: digests per bucket of ids on both sides at once, and
 * row by row only in the buckets that differ.
 */
async function compare(a: pg.Client, b: pg.Client, syncs: number): Promise<Comparison> {
  const started = Date.now();
  const [logA, logB] = await Promise.all([digests(a, 'log', 'log'), digests(b, 'log', 'log')]);
  const missingOnB: number[] = [];
  const extraOnB: number[] = [];
  for (const bucket of differingBuckets(logA, logB)) {
    const [idsA, idsB] = await Promise.all([rowsIn(a, 'log', 'id', bucket), rowsIn(b, 'log', 'id', bucket)]);
    for (const id of idsA.keys()) if (!idsB.has(id)) missingOnB.push(id);
    for (const id of idsB.keys()) if (!idsA.has(id)) extraOnB.push(id);
  }
  const accounts: AccountDifference[] = [];
  let balanceSumA = 0;
  let balanceSumB = 0;
  for (const table of accountTables(syncs)) {
    const [balA, balB] = await Promise.all([digests(a, table, 'accounts'), digests(b, table, 'accounts')]);
    balanceSumA += totalOf(balA);
    balanceSumB += totalOf(balB);
    for (const bucket of differingBuckets(balA, balB)) {
      const [rowsA, rowsB] = await Promise.all([
        rowsIn(a, table, 'bal', bucket),
        rowsIn(b, table, 'bal', bucket),
      ]);
      for (const id of new Set([...rowsA.keys(), ...rowsB.keys()]))
        if (rowsA.get(id) !== rowsB.get(id))
          accounts.push({ table, id, a: rowsA.get(id) ?? null, b: rowsB.get(id) ?? null });
    }
  }
  return {
    logRowsA: totalOf(logA),
    logRowsB: totalOf(logB),
    missingOnB,
    extraOnB,
    accounts,
    balanceSumA,
    balanceSumB,
    seconds: (Date.now() - started) / 1000,
  };
}

function comparisonLine(c: Comparison): string {
  const accounts = c.accounts.length
    ? `${c.accounts.length} account(s) differ (${c.accounts
        .slice(0, 5)
        .map((d) => `${d.table} ${d.id}: A ${d.a} B ${d.b}`)
        .join('; ')}${c.accounts.length > 5 ? '; ...' : ''})`
    : 'no account differs';
  return `log rows A ${c.logRowsA.toLocaleString('en')} / B ${c.logRowsB.toLocaleString('en')}, missing on B ${c.missingOnB.length}${c.missingOnB.length ? ` (${c.missingOnB.slice(0, 10).join(', ')}${c.missingOnB.length > 10 ? ', ...' : ''})` : ''}, extra on B ${c.extraOnB.length}; ${accounts}; balance sum A ${c.balanceSumA.toLocaleString('en')} / B ${c.balanceSumB.toLocaleString('en')} (compared in ${c.seconds.toFixed(1)} s)`;
}

// ---- evidence of a difference: what Bucardo recorded for the rows B lacks, before its purge removes it

interface Context {
  a: ClusterInfo;
  b: ClusterInfo;
  db: string;
  name: string;
  configuration: Configuration;
  written: WrittenJob;
  jobObject: Job;
  tables: DeltaTable[];
}

/** Bucardo's log lines stamped between two times (it writes the host's local time, to the second). */
function bucardoLogBetween(file: string, from: number, to: number): string[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => {
      const stamp = /^\(\d+\) \[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]/.exec(line)?.[1];
      const at = stamp ? new Date(stamp).getTime() : NaN;
      return at >= from - 1000 && at <= to + 1000;
    })
    .slice(0, 1000);
}

async function gatherEvidence(
  ctx: Context,
  clientA: pg.Client,
  round: number,
  difference: Comparison,
  roundWindow: [number, number],
): Promise<string> {
  const target = `dbgroup ${ctx.name}`;
  const record = async (table: string, ids: number[]) => {
    const delta = ctx.tables.find((t) => t.table === `public.${table}`);
    if (!delta || ids.length === 0) return undefined;
    const changes = (
      await clientA.query<{ id: string; txntime: string }>(
        `SELECT id::text, txntime::text FROM ${quoteQualified('bucardo', delta.delta)} WHERE id = ANY($1) ORDER BY txntime`,
        [ids],
      )
    ).rows;
    const times = [...new Set(changes.map((c) => c.txntime))];
    const tracked = (
      await clientA.query<{ txntime: string; target: string }>(
        `SELECT txntime::text, target FROM ${quoteQualified('bucardo', delta.track)} WHERE txntime = ANY($1::timestamptz[])`,
        [times],
      )
    ).rows;
    const sharing = (
      await clientA.query<{ txntime: string; rows: string; ids: string }>(
        `SELECT txntime::text, count(*)::text AS rows, string_agg(id::text, ',' ORDER BY id) AS ids
           FROM ${quoteQualified('bucardo', delta.delta)} WHERE txntime = ANY($1::timestamptz[]) GROUP BY 1`,
        [times],
      )
    ).rows;
    return {
      sync: delta.sync,
      deltaTable: delta.delta,
      txntimeDefault: delta.txntimeDefault,
      changeRecords: changes,
      trackedForTarget: tracked.filter((t) => t.target === target),
      trackedOtherTargets: tracked.filter((t) => t.target !== target),
      changeRecordsSharingTheseTimes: sharing,
      noChangeRecord: ids.filter((id) => !changes.some((c) => Number(c.id) === id)),
    };
  };
  const missing = difference.missingOnB.slice(0, 50);
  const logRows = (
    await clientA.query<{ id: string; at: Date }>(
      'SELECT id::text, at FROM public.log WHERE id = ANY($1) ORDER BY id',
      [missing],
    )
  ).rows;
  const byTable = new Map<string, number[]>();
  for (const d of difference.accounts.slice(0, 50))
    byTable.set(d.table, [...(byTable.get(d.table) ?? []), d.id]);
  const accountRecords: Record<string, unknown> = {};
  for (const [table, ids] of byTable) accountRecords[table] = await record(table, ids);
  // Sync runs and Bucardo's log around the missing rows' commit times (their log row's
  // clock_timestamp()), or around the round's load when only balances differ.
  const times = logRows.map((r) => r.at.getTime());
  const window =
    times.length > 0
      ? [new Date(Math.min(...times) - 10_000), new Date(Math.max(...times) + 10_000)]
      : roundWindow.map((t) => new Date(t));
  const metadata = await connect(ctx.a, metadataDbName(ctx.jobObject), 'evidence');
  let syncRuns: unknown[] = [];
  try {
    syncRuns = (
      await metadata.query(
        `SELECT sync, started, ended, status, inserts, deletes FROM bucardo.syncrun
          WHERE started BETWEEN $1 AND $2 ORDER BY started`,
        window,
      )
    ).rows;
  } finally {
    await metadata.end().catch(() => undefined);
  }
  const evidence = {
    configuration: ctx.configuration,
    round,
    at: new Date().toISOString(),
    comparison: difference,
    missingLogRows: logRows,
    logRecords: await record('log', missing),
    accountRecords,
    syncRuns,
    bucardoLogLines: bucardoLogBetween(
      ctx.jobObject.paths.logFile,
      window[0]!.getTime(),
      window[1]!.getTime(),
    ),
    bucardoLog: ctx.jobObject.paths.logFile,
    kickerLog: ctx.jobObject.paths.kickerLogFile,
  };
  const file = path.join(ctx.written.dir, `evidence-round-${round}.json`);
  writeFileSync(file, JSON.stringify(evidence, null, 2));
  keepBenchDir(`a difference between A and B was found (evidence in ${file})`);
  return file;
}

// ---- CPU by class

interface CpuShares {
  machine: number;
  primary: number;
  secondary: number;
  bucardo: number;
  bench: number;
}

function sessionOfPidFile(file: string): number | undefined {
  try {
    // Bucardo's pid files hold more than the pid: it is the first number.
    return readStat(parseInt(readFileSync(file, 'utf8'), 10))?.session;
  } catch {
    return undefined;
  }
}

/** CPU seconds by class between two times: Bucardo (daemon and kicker), the clusters, pgbench and this bench. */
function cpuBetween(
  watch: CpuWatch,
  from: number,
  to: number,
  sessions: { daemon?: number; kicker?: number; bench: number },
  benchBackends: number[],
): CpuShares {
  const session = (sid: number | undefined) => (s: CpuSample) =>
    sid === undefined ? 0 : (s.sessions.get(sid) ?? 0);
  const ours = watch.between(from, to, (s) =>
    benchBackends.reduce((sum, pid) => sum + (s.pids.get(pid) ?? 0), 0),
  );
  const kicker = sessions.kicker === sessions.daemon ? undefined : sessions.kicker;
  return {
    machine: watch.between(from, to, (s) => s.machine),
    primary: watch.between(from, to, (s) => s.clusters['primary'] ?? 0) - ours,
    secondary: watch.between(from, to, (s) => s.clusters['secondary'] ?? 0),
    bucardo: watch.between(from, to, session(sessions.daemon)) + watch.between(from, to, session(kicker)),
    bench: watch.between(from, to, session(sessions.bench)) + ours,
  };
}

const addCpu = (x: CpuShares, y: CpuShares): CpuShares => ({
  machine: x.machine + y.machine,
  primary: x.primary + y.primary,
  secondary: x.secondary + y.secondary,
  bucardo: x.bucardo + y.bucardo,
  bench: x.bench + y.bench,
});
const NO_CPU: CpuShares = { machine: 0, primary: 0, secondary: 0, bucardo: 0, bench: 0 };

function cpuLine(cpu: CpuShares, seconds: number): string {
  const cores = availableParallelism();
  const share = (v: number) => `${Math.round((100 * v) / Math.max(0.001, seconds * cores))}%`;
  return `machine ${share(cpu.machine)}, primary ${share(cpu.primary)}, secondary ${share(cpu.secondary)}, Bucardo ${share(cpu.bucardo)}, pgbench+bench ${share(cpu.bench)} of ${cores} cores`;
}

// ---- one configuration

interface RoundResult {
  round: number;
  seconds: number;
  transactions: number;
  pgbenchTransactions: number;
  failed: number;
  tps: number;
  catchUpSeconds?: number;
  pendingLeft: number;
  /** Lost transactions first seen in this round (LossLedger). */
  lost: number;
  /** Differences right after the catch-up that were gone RECHECK_SECONDS later. */
  late: number;
  /** Lost transactions B still lacks after this round, earlier rounds' included. */
  stillDiffering: number;
  sameStart: number;
  sameTxntime: number;
  injected: boolean;
  evidence?: string;
  loadCpu: CpuShares;
  catchUpCpu: CpuShares;
}

interface ConfigurationResult {
  configuration: Configuration;
  rounds: RoundResult[];
  placement: string;
  status: string;
}

function roundLine(c: Configuration, r: RoundResult): string {
  return `  [${describe(c)}] round ${r.round}: ${r.transactions.toLocaleString('en')} transactions in ${r.seconds.toFixed(1)} s, ${r.tps.toFixed(0)} tps${r.failed ? `, ${r.failed} failed` : ''}${r.pgbenchTransactions !== r.transactions ? ` (pgbench counted ${r.pgbenchTransactions.toLocaleString('en')})` : ''}; ${r.sameStart} same-start pair(s), ${r.sameTxntime} same-txntime pair(s) in the log's change records; B caught up after ${r.catchUpSeconds !== undefined ? `${r.catchUpSeconds.toFixed(1)} s` : `NOT within ${CATCH_UP_LIMIT_SECONDS} s (${r.pendingLeft} pending)`}; lost ${r.lost}${r.late ? ` (${r.late} difference(s) gone ${RECHECK_SECONDS} s later)` : ''}${r.stillDiffering > r.lost ? ` (${r.stillDiffering} difference(s) in all, earlier rounds' included)` : ''}${r.injected ? ' (INJECTED loss)' : ''}; CPU during the load: ${cpuLine(r.loadCpu, r.seconds)}`;
}

async function logCount(client: pg.Client): Promise<{ rows: number; maxId: number }> {
  const row = (
    await client.query<{ n: string; max: string }>(
      'SELECT count(*)::text AS n, coalesce(max(id), 0)::text AS max FROM public.log',
    )
  ).rows[0]!;
  return { rows: Number(row.n), maxId: Number(row.max) };
}

/**
 * How often the race could have struck: transactions of the round that started in the same microsecond
 * as another (they would have shared stock Bucardo's txntime, now()), and change records of the log
 * table that share a txntime under the fence (those still in the delta table: the purge removes applied
 * ones after 45 s). Counted as groups: a group of three is one.
 */
async function sharedTimes(
  client: pg.Client,
  logDelta: string,
  afterId: number,
  since: number,
): Promise<{ sameStart: number; sameTxntime: number }> {
  const { rows } = await client.query<{ start: string; txntime: string }>(
    `SELECT (SELECT count(*) FROM (SELECT 1 FROM public.log WHERE id > $1 GROUP BY started HAVING count(*) > 1) g)::text AS start,
            (SELECT count(*) FROM (SELECT 1 FROM ${quoteQualified('bucardo', logDelta)} WHERE txntime >= $2 GROUP BY txntime HAVING count(*) > 1) g)::text AS txntime`,
    [afterId, new Date(since)],
  );
  return { sameStart: Number(rows[0]!.start), sameTxntime: Number(rows[0]!.txntime) };
}

async function measureConfiguration(
  a: ClusterInfo,
  b: ClusterInfo,
  configuration: Configuration,
  index: number,
  share: number,
): Promise<ConfigurationResult> {
  const { clients, kicking, syncs } = configuration;
  const db = `noloss${index}`;
  const name = `noloss${index}`;
  console.log(
    `\n== ${describe(configuration)} (database ${db}): seeding ${ACCOUNTS.toLocaleString('en')} accounts...`,
  );
  await seed(a, b, db, syncs);
  const written = job({
    name,
    primary: { cluster: a, dbname: db },
    secondary: { cluster: b, dbname: db },
    asynchronousKicking: kicking === 'kicker',
    kickInterval: 1,
    bucardoSettings: { syncs },
  });
  const jobObject = createJob(await loadConfig(written.file, new PluginCatalog()));
  const setUpStarted = Date.now();
  await run(written.file, 'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy');
  const clientA = await connect(a, db, 'primary');
  const clientB = await connect(b, db, 'secondary');
  const pendingClient = await connect(a, db, 'pending');
  // Counting the backlog reads whole delta tables: on one core, so it takes little from Bucardo.
  await pendingClient.query('SET max_parallel_workers_per_gather = 0');
  const script = writeScript(syncs);
  const rounds: RoundResult[] = [];
  let watch: CpuWatch | undefined;
  try {
    if (UNFENCED)
      for (const t of await deltaTables(clientA))
        await clientA.query(
          `ALTER TABLE ${quoteQualified('bucardo', t.delta)} ALTER COLUMN txntime SET DEFAULT ${CONTROL!.set}`,
        );
    if (COARSE) await coarsenFence(clientA);
    const tables = await deltaTables(clientA);
    const placement = tables.map((t) => `${t.table} → ${t.sync}`).join(', ');
    const expected = CONTROL?.shown ?? TXNTIME_DEFAULT;
    const unfenced = tables.filter((t) => t.txntimeDefault !== expected);
    const bucardoPm =
      /Bucardo\.pm: (\S+)/.exec(
        existsSync(jobObject.paths.logFile) ? readFileSync(jobObject.paths.logFile, 'utf8') : '',
      )?.[1] ?? 'not in the log';
    console.log(
      `  installed, started and copied in ${((Date.now() - setUpStarted) / 1000).toFixed(0)} s; tables: ${placement}; txntime defaults: ${unfenced.length ? `NOT ${expected}: ${unfenced.map((t) => `${t.delta} ${t.txntimeDefault}`).join(', ')}` : `all ${expected}${UNFENCED ? ' (CONTROL: tracking as stock Bucardo)' : ''}${COARSE ? ' (COARSE: its time rounded up to the millisecond)' : ''}`}; daemon's Bucardo.pm: ${bucardoPm}`,
    );
    if (unfenced.length) throw new Error(`not every delta table has the txntime default ${expected}`);
    const ctx: Context = { a, b, db, name, configuration, written, jobObject, tables };
    const logDelta = tables.find((t) => t.table === 'public.log')!.delta;

    // One transaction through before the load, so the rounds measure replication, not its start-up.
    const warmUp = Date.now();
    await clientA.query(
      pgbenchScript(syncs)
        .replace(/^\\set (\S+) .*$/gm, '')
        .replace(/:id\d*/g, '1'),
    );
    const warm = await waitForCatchUp(pendingClient, name, warmUp);
    if (warm.seconds === undefined)
      throw new Error(`the warm-up transaction was still pending after ${CATCH_UP_LIMIT_SECONDS} s`);
    for (let i = 0; (await logCount(clientB)).rows < 1; i++) {
      if (i > 600) throw new Error('the warm-up log row did not reach B');
      await sleep(200);
    }
    console.log(`  warm-up transaction applied after ${((Date.now() - warmUp) / 1000).toFixed(1)} s`);

    const benchBackends = [
      (await pendingClient.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid,
    ];
    watch = new CpuWatch({ primary: a.postmasterPid, secondary: b.postmasterPid }, benchBackends);
    // Every 500 ms: a sample reads every process's stat file, which costs a little CPU itself.
    watch.start(500);
    const sessions = {
      daemon: sessionOfPidFile(jobObject.paths.mcpPidFile),
      kicker: sessionOfPidFile(jobObject.paths.kickerPidFile),
      bench: readStat(process.pid)!.session,
    };
    let done = 0;
    const ledger = new LossLedger();
    for (let round = 1; round <= MAX_ROUNDS; round++) {
      if (round > MIN_ROUNDS && done >= share) break;
      const lastTps = rounds.at(-1)?.tps;
      const seconds =
        round >= MIN_ROUNDS && share > 0 && lastTps
          ? Math.max(5, Math.min(SECONDS, Math.ceil(((share - done) * 1.05) / lastTps) + 1))
          : SECONDS;
      const before = await logCount(clientA);
      const loadStart = Date.now();
      const load = await pgbench(a, db, script, clients, seconds);
      const loadEnd = Date.now();
      const transactions = (await logCount(clientA)).rows - before.rows;
      const caught = await waitForCatchUp(pendingClient, name, loadEnd);
      const caughtAt = Date.now();
      const shared = await sharedTimes(clientA, logDelta, before.maxId, loadStart);
      if (CONTROL && (await deltaTables(clientA)).some((t) => t.txntimeDefault !== CONTROL.shown))
        console.log(
          `  NOTE: a delta table's txntime default is no longer ${CONTROL.shown}: the control is fenced again`,
        );
      let injected = false;
      if (INJECT_LOSS && round === 1) {
        await clientB.query('DELETE FROM public.log WHERE id = (SELECT max(id) FROM public.log)');
        await clientB.query(
          `UPDATE public.${quoteIdent(accountTables(syncs)[0]!)} SET bal = bal - 1 WHERE id = (SELECT min(id) FROM public.${quoteIdent(accountTables(syncs)[0]!)} WHERE bal > 0)`,
        );
        injected = true;
      }
      let difference = await compare(clientA, clientB, syncs);
      const unseen = ledger.unseen(difference);
      let late = 0;
      let evidence: string | undefined;
      if (unseen > 0 || caught.seconds === undefined) {
        console.log(`  round ${round}: DIFFERENCE after the catch-up: ${comparisonLine(difference)}`);
        evidence = await gatherEvidence(ctx, clientA, round, difference, [loadStart, Date.now()]);
        console.log(`  evidence: ${evidence}; looking again in ${RECHECK_SECONDS} s`);
        await sleep(RECHECK_SECONDS * 1000);
        difference = await compare(clientA, clientB, syncs);
        console.log(`  ${RECHECK_SECONDS} s later: ${comparisonLine(difference)}`);
        late = Math.max(0, unseen - ledger.unseen(difference));
      }
      const lost = ledger.record(difference);
      const stillDiffering = new LossLedger().record(difference);
      if (difference.balanceSumA !== accountTables(syncs).length * difference.logRowsA)
        console.log(
          `  NOTE: on A the balances sum to ${difference.balanceSumA}, not ${accountTables(syncs).length} × ${difference.logRowsA} log rows`,
        );
      done += transactions;
      const result: RoundResult = {
        round,
        seconds: (loadEnd - loadStart) / 1000,
        transactions,
        pgbenchTransactions: load.transactions,
        failed: load.failed,
        tps: load.tps,
        pendingLeft: caught.pending,
        lost,
        late,
        stillDiffering,
        ...shared,
        injected,
        loadCpu: cpuBetween(watch, loadStart, loadEnd, sessions, benchBackends),
        catchUpCpu: cpuBetween(watch, loadEnd, caughtAt, sessions, benchBackends),
        ...(caught.seconds !== undefined ? { catchUpSeconds: caught.seconds } : {}),
        ...(evidence ? { evidence } : {}),
      };
      rounds.push(result);
      console.log(roundLine(configuration, result));
      // Replication that did not catch up would carry its backlog into the next round: stop here.
      if (caught.seconds === undefined) break;
    }
    watch.stop();
    const status = await runTool(['-c', written.file, '-l', 'bucardo.status'], { timeoutMs: 300_000 });
    const verdict = `exit ${status.code} (${/State\s*:\s*(.+)/.exec(status.stdout)?.[1]?.trim() ?? status.stdout.trim().slice(0, 200)})`;
    console.log(`  bucardo.status ${verdict}`);
    return { configuration, rounds, placement, status: verdict };
  } finally {
    watch?.stop();
    for (const client of [clientA, clientB, pendingClient]) await client.end().catch(() => undefined);
    await uninstall(written.file);
    for (const cluster of [a, b])
      await query(cluster, 'postgres', `DROP DATABASE IF EXISTS ${quoteIdent(db)} WITH (FORCE)`);
  }
}

/** A big delta table can keep autovacuum busy: retry the uninstall rather than lose the figures. */
async function uninstall(jobFile: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await run(jobFile, 'bucardo.uninstall');
      return;
    } catch (error) {
      if (attempt >= 5) throw error;
      await sleep(5000);
    }
  }
}

// ---- the fence's cost on the primary's commits

interface CostResult {
  clients: number;
  stock: number[];
  fence: number[];
}

async function fenceCost(a: ClusterInfo, b: ClusterInfo): Promise<CostResult[]> {
  const db = 'fence_cost';
  console.log(
    `\n== The fence's cost: ${COST_ROUNDS} round(s), ${COST_CLIENTS.join(' and ')} clients, ${COST_SECONDS} s per run, daemon stopped, txntime default ${STOCK_TXNTIME_DEFAULT} (stock) against ${TXNTIME_DEFAULT} (fence)`,
  );
  await seed(a, b, db, 1);
  const written = job({
    name: 'fencecost',
    primary: { cluster: a, dbname: db },
    secondary: { cluster: b, dbname: db },
    asynchronousKicking: true,
  });
  const script = writeScript(1);
  const results: CostResult[] = COST_CLIENTS.map((clients) => ({ clients, stock: [], fence: [] }));
  try {
    // Only the delta trigger stays (the kick triggers are off with the kicker): what every commit pays.
    await run(
      written.file,
      'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy bucardo.stop',
    );
    const client = await connect(a, db, 'cost');
    try {
      const tables = await deltaTables(client);
      for (let round = 1; round <= COST_ROUNDS; round++) {
        for (const result of results) {
          // Alternate which default goes first, so a drift of the machine favours neither.
          const order = round % 2 ? (['stock', 'fence'] as const) : (['fence', 'stock'] as const);
          for (const kind of order) {
            const expression = kind === 'stock' ? STOCK_TXNTIME_DEFAULT : TXNTIME_DEFAULT;
            for (const t of tables) {
              await client.query(
                `ALTER TABLE ${quoteQualified('bucardo', t.delta)} ALTER COLUMN txntime SET DEFAULT ${expression}`,
              );
              await client.query(`TRUNCATE ${quoteQualified('bucardo', t.delta)}`);
            }
            await client.query('CHECKPOINT');
            const load = await pgbench(a, db, script, result.clients, COST_SECONDS);
            result[kind].push(load.tps);
            console.log(
              `  round ${round}, ${result.clients} clients, txntime default ${expression}: ${load.tps.toFixed(0)} tps (load ${loadAverage()})`,
            );
          }
        }
      }
    } finally {
      await client.end().catch(() => undefined);
    }
  } finally {
    await uninstall(written.file);
    for (const cluster of [a, b])
      await query(cluster, 'postgres', `DROP DATABASE IF EXISTS ${quoteIdent(db)} WITH (FORCE)`);
  }
  return results;
}

// ---- the benchmark

function loadAverage(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

const thousands = (n: number) => Math.round(n).toLocaleString('en');

async function main(): Promise<void> {
  const began = Date.now();
  const configurations: Configuration[] = SYNCS.flatMap((syncs) =>
    KICKING.flatMap((kicking) => CLIENTS.map((clients) => ({ clients, kicking, syncs }))),
  );
  const share = TRANSACTIONS > 0 ? Math.ceil(TRANSACTIONS / configurations.length) : 0;
  console.log(
    `No lost transactions under load, ${new Date().toISOString()}: ${configurations.length} configuration(s) (clients ${CLIENTS.join(',')} × kicking ${KICKING.join(',')} × syncs ${SYNCS.join(',')}), ${ACCOUNTS.toLocaleString('en')} accounts, rounds of ${SECONDS} s, ${share ? `about ${share.toLocaleString('en')} transactions per configuration (at least ${MIN_ROUNDS} round(s))` : `${MIN_ROUNDS} round(s) per configuration`}; ${availableParallelism()} cores, load average ${loadAverage()}`,
  );
  const [a, b] = await benchClusters(['NoLossA', 'NoLossB']);
  const others = otherWork([a!, b!]);
  console.log(
    `Other work on the host: ${others.clusters} other PostgreSQL cluster(s), ${others.bucardos} Bucardo daemon(s)`,
  );
  const cost = COST_ROUNDS > 0 ? await fenceCost(a!, b!) : [];
  const results: ConfigurationResult[] = [];
  for (const [index, configuration] of configurations.entries())
    results.push(await measureConfiguration(a!, b!, configuration, index + 1, share));

  // ---- summary
  const othersAtEnd = otherWork([a!, b!]);
  console.log(
    `\nNo lost transactions under load: ${ACCOUNTS.toLocaleString('en')} accounts, rounds of up to ${SECONDS} s, pgbench -M prepared over the Unix socket (${availableParallelism()} cores, PostgreSQL 15, Bucardo 5.6 ${CONTROL ? `CONTROL: the patched daemon with the txntime default ${CONTROL.set}, so without the fence` : `with the commit fence${COARSE ? ', its writer time rounded up to the millisecond' : ''}`})`,
  );
  console.log(
    '| clients | kicking | syncs | rounds | transactions | tps (median of rounds; min–max) | same-start pairs / same-txntime pairs | lost (log rows + balance units) | B caught up after (median; max) | CPU during the load: machine / primary / secondary / Bucardo / pgbench |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  let total = 0;
  let totalLost = 0;
  let totalSeconds = 0;
  let notCaughtUp = 0;
  let injectedRounds = 0;
  let sameStart = 0;
  for (const r of results) {
    const transactions = r.rounds.reduce((sum, x) => sum + x.transactions, 0);
    const seconds = r.rounds.reduce((sum, x) => sum + x.seconds, 0);
    const lost = r.rounds.reduce((sum, x) => sum + x.lost, 0);
    const tps = r.rounds.map((x) => x.tps);
    const catchUps = r.rounds.map((x) => x.catchUpSeconds ?? Infinity);
    const cpu = r.rounds.reduce((sum, x) => addCpu(sum, x.loadCpu), NO_CPU);
    const cores = availableParallelism();
    const pct = (v: number) => `${Math.round((100 * v) / Math.max(0.001, seconds * cores))}%`;
    total += transactions;
    totalLost += lost;
    totalSeconds += seconds;
    notCaughtUp += r.rounds.filter((x) => x.catchUpSeconds === undefined).length;
    injectedRounds += r.rounds.filter((x) => x.injected).length;
    const starts = r.rounds.reduce((sum, x) => sum + x.sameStart, 0);
    sameStart += starts;
    const c = r.configuration;
    console.log(
      `| ${c.clients} | ${c.kicking === 'kicker' ? 'kicker' : 'kick triggers'} | ${c.syncs} | ${r.rounds.length} | ${thousands(transactions)} | ${thousands(median(tps))} (${thousands(Math.min(...tps))}–${thousands(Math.max(...tps))}) | ${thousands(starts)} / ${thousands(r.rounds.reduce((sum, x) => sum + x.sameTxntime, 0))} | ${lost} | ${median(catchUps).toFixed(1)} s; ${Math.max(...catchUps).toFixed(1)} s | ${pct(cpu.machine)} / ${pct(cpu.primary)} / ${pct(cpu.secondary)} / ${pct(cpu.bucardo)} / ${pct(cpu.bench)} |`,
    );
  }
  console.log(
    `Overall: ${thousands(total)} transactions in ${thousands(totalSeconds)} s of load (${thousands(total / Math.max(1, totalSeconds))} tps on average), ${thousands(sameStart)} pairs of transactions started in the same microsecond (stock Bucardo's txntime), lost ${totalLost}${injectedRounds ? ` (including ${injectedRounds} round(s) with an INJECTED loss)` : ''}${notCaughtUp ? `; ${notCaughtUp} round(s) did NOT catch up within ${CATCH_UP_LIMIT_SECONDS} s` : ''}`,
  );
  for (const r of results)
    console.log(`  ${describe(r.configuration)}: ${r.placement}; bucardo.status ${r.status}`);
  if (cost.length) {
    console.log(
      `\nThe fence's cost on the primary (delta trigger on, daemon stopped, ${COST_SECONDS} s per run, ${COST_ROUNDS} round(s) alternating; median, each run in brackets):`,
    );
    console.log(
      `| clients | txntime default ${STOCK_TXNTIME_DEFAULT} (tps) | ${TXNTIME_DEFAULT} (tps) | fence / stock |`,
    );
    console.log('|---|---|---|---|');
    for (const c of cost) {
      const ratios = c.fence.map((f, i) => (f / c.stock[i]!).toFixed(2));
      console.log(
        `| ${c.clients} | ${thousands(median(c.stock))} (${c.stock.map(thousands).join(' / ')}) | ${thousands(median(c.fence))} (${c.fence.map(thousands).join(' / ')}) | ${(median(c.fence) / median(c.stock)).toFixed(2)} (per round ${ratios.join(', ')}) |`,
      );
    }
  }
  console.log(
    `Wall time ${((Date.now() - began) / 60_000).toFixed(1)} min; load average at the end ${loadAverage()}; other PostgreSQL clusters at the end: ${othersAtEnd.clusters}, Bucardo daemons: ${othersAtEnd.bucardos}`,
  );
  // The control is expected to lose transactions: that it can is what it shows.
  if ((totalLost > 0 && !UNFENCED) || notCaughtUp > 0) process.exitCode = 1;
}

main().then(stopEverything, (error) => {
  console.error(error);
  stopEverything();
  process.exitCode = 1;
});
