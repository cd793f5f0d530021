// cutover.verify while the application writes (issue 27): pgbench's 16 clients run the issue's
// two-statement transaction (an account's balance updated, a log row inserted) against the primary
// while Bucardo replicates with asynchronous kicking. The ranges are small (chunk_rows), so every
// range holds rows changed during the verify. Verify must pass with the keys still on their way
// reported in flight, cutover.finish must then accept it and its final check cover those keys; a row
// changed on the secondary behind Bucardo's back must still be named exactly and be repaired; a
// table truncated on the primary and not yet on the secondary is in flight as a whole.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { isProcessAlive } from '../../src/core/process.js';
import { PG_BIN, type ClusterInfo } from '../../src/sandbox/cluster.js';
import {
  clusters,
  dropDatabase,
  forgetJob,
  freshDatabase,
  query,
  runningTools,
  runTool,
  tempDir,
  waitFor,
  writeJobConfig,
  type ToolResult,
} from '../support/harness.js';

const ACCOUNTS = 200_000;
/** The one account the load never touches: changed on the secondary behind Bucardo's back. */
const TAMPERED = 4242;
const CHUNK_ROWS = 4000;
const CLIENTS = 16;
/**
 * Transactions per second pgbench aims at: enough for every range to change during a verify (five
 * changes per range of acct a second, and a verify under this load takes seconds), and no more: each
 * transaction costs CPU on the primary and again in Bucardo's run on both sides.
 */
const RATE = 250;

const SCHEMA = `
CREATE TABLE public.acct (id int PRIMARY KEY, bal bigint NOT NULL, name text NOT NULL);
CREATE TABLE public.log (id bigserial PRIMARY KEY, at timestamptz NOT NULL);
INSERT INTO public.acct SELECT g, 0, 'account ' || g FROM generate_series(1, ${ACCOUNTS}) g;
INSERT INTO public.log (at) SELECT TIMESTAMPTZ '2026-01-01' + g * interval '1 second' FROM generate_series(1, 20000) g;
ANALYZE public.acct, public.log;`;

// The issue's transaction, with the table's size, skipping the tampered account.
const SCRIPT = `\\set id random(1, ${ACCOUNTS})
\\if :id = ${TAMPERED}
\\set id ${TAMPERED + 1}
\\endif
BEGIN;
UPDATE public.acct SET bal = bal + 1 WHERE id = :id;
INSERT INTO public.log (at) VALUES (clock_timestamp());
END;
`;

let a: ClusterInfo;
let b: ClusterInfo;
let job: { file: string; dir: string; pidDir: string };

function tool(list: string): Promise<ToolResult> {
  return runTool(['-c', job.file, '-l', list], { timeoutMs: 180_000 });
}

function outcome(result: ToolResult): {
  ok: boolean;
  message?: string;
  error?: string;
  data?: any;
  checks?: { name: string; pass: boolean; detail?: string }[];
} {
  const line = result.stdout.split('\n').find((l) => l.startsWith('{"command"'));
  assert.ok(line, `no JSON outcome in:\n${result.stdout}\n${result.stderr}`);
  return JSON.parse(line);
}

function tableReport(data: any, table: string): any {
  const report = data.tables.find((t: any) => t.table === table);
  assert.ok(report, `no report for ${table}`);
  return report;
}

interface Load {
  child: ChildProcess;
  /** Stops pgbench (by its pid) and waits for it to exit. */
  stop(): Promise<void>;
}

/** pgbench on the primary for at most `seconds`; stopped by stop(), or by the harness if the file is killed. */
function startLoad(seconds: number): Load {
  const script = path.join(tempDir('load'), 'acct.sql');
  writeFileSync(script, SCRIPT);
  const child = spawn(
    path.join(PG_BIN, 'pgbench'),
    [
      '-n',
      '-h',
      a.host,
      '-p',
      String(a.port),
      '-U',
      'postgres',
      '-c',
      String(CLIENTS),
      '-j',
      '2',
      '-R',
      String(RATE),
      '-T',
      String(seconds),
      '-f',
      script,
      'load_a',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  runningTools.add(child);
  child.stdout!.resume();
  child.stderr!.resume();
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return {
    child,
    stop: async () => {
      if (child.exitCode === null && child.pid && isProcessAlive(child.pid)) child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      runningTools.delete(child);
    },
  };
}

let load: Load | undefined;

/** Starts the load and waits until Bucardo carries it to the secondary. */
async function loadRunning(): Promise<void> {
  // A pgbench stopped by SIGINT may end by the signal (exitCode null, signalCode set).
  if (load && load.child.exitCode === null && load.child.signalCode === null) return;
  const [before] = await query<{ n: number }>(b, 'load_b', 'SELECT max(id)::int AS n FROM public.log');
  load = startLoad(240);
  await waitFor(
    async () =>
      (await query<{ n: number }>(b, 'load_b', 'SELECT max(id)::int AS n FROM public.log'))[0]!.n >
      before!.n + RATE,
    60_000,
    'the write load to reach the secondary',
  );
}

/**
 * The ranges of acct (numbered from 0; acct's integer key is cut into equal widths) holding accounts
 * changed while the verify ran: from its horizon (a failed verify records none: from its start).
 */
async function changedRanges(verify: any, chunks: number): Promise<number[]> {
  const rows = await query<{ range: number }>(
    a,
    'load_a',
    `SELECT DISTINCT (id - 1) / $1 AS range FROM bucardo.delta_public_acct
      WHERE txntime >= $2::timestamptz AND txntime < $3::timestamptz + make_interval(secs => $4) ORDER BY 1`,
    [
      Math.ceil(ACCOUNTS / chunks),
      verify.horizon?.from ?? verify.startedAt,
      verify.startedAt,
      verify.seconds,
    ],
  );
  return rows.map((row) => row.range);
}

async function fingerprint(cluster: ClusterInfo, database: string, table: string): Promise<string> {
  const [row] = await query<{ f: string }>(
    cluster,
    database,
    `SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, ',' ORDER BY t.id), '')) AS f FROM ${table} t`,
  );
  return row!.f;
}

before(async () => {
  ({ a, b } = await clusters());
  await freshDatabase(a, 'load_a', SCHEMA);
  await freshDatabase(b, 'load_b', SCHEMA);
  job = writeJobConfig({
    name: 'load',
    plugins: ['bucardo', 'cutover'],
    primary: { cluster: a, dbname: 'load_a' },
    secondary: { cluster: b, dbname: 'load_b' },
    copyData: 'never',
    asynchronousKicking: true,
    // Small ranges: each of acct's 50 ranges holds rows the load changes while verify reads it.
    extra: { cutover: { chunk_rows: CHUNK_ROWS, max_lag: 30, settle_time: 5 } },
  });
  const setup = await tool('bucardo.install bucardo.add_triggers bucardo.start');
  assert.equal(setup.code, 0, setup.stdout + setup.stderr);
});

after(async () => {
  await load?.stop().catch(() => undefined);
  // forgetJob stops the daemon by its pids: a bucardo.stop run first would only add its CPU.
  await forgetJob(job, a);
  await dropDatabase(a, 'load_a').catch(() => undefined);
  await dropDatabase(b, 'load_b').catch(() => undefined);
});

test('a table truncated on the primary and not yet on the secondary is in flight: the final check compares it whole', async () => {
  await loadRunning();
  const stopped = await tool('bucardo.stop');
  assert.equal(stopped.code, 0, stopped.stdout + stopped.stderr);
  await query(a, 'load_a', "SET lock_timeout = '10s'; TRUNCATE public.log");
  const verified = await tool('cutover.verify --json');
  assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  const data = outcome(verified).data;
  assert.equal(data.passed, true, data.verdict);
  const log = tableReport(data, 'public.log');
  assert.equal(log.status, 'in flight');
  assert.ok(log.inFlight > 0 && log.keys.every((k: any) => k.inFlight), 'every key named is in flight');
  assert.ok(
    log.problems.some((p: string) =>
      /truncated since the verify's horizon: .*final check compares the whole table/.test(p),
    ),
    log.problems.join('\n'),
  );
  assert.equal(data.totals.mismatchedRows, 0);

  // The catch-up and the truncate's arrival need no load: it stops here, and the next test starts it
  // again (each second of it costs most of a second of CPU, Bucardo's share included).
  await load!.stop();
  const started = await tool('bucardo.start');
  assert.equal(started.code, 0, started.stdout + started.stderr);
  await waitFor(
    async () =>
      (await query<{ n: number }>(b, 'load_b', 'SELECT min(id)::int AS n FROM public.log'))[0]!.n > 20_000,
    60_000,
    'the truncate to reach the secondary',
  );
});

test("under a 16-client write load: a row changed on the secondary behind Bucardo's back is named as the only difference and repaired; verify then passes with keys in flight, cutover.finish accepts it and its final check covers them", async () => {
  await loadRunning();
  await query(
    b,
    'load_b',
    `SET session_replication_role = replica; UPDATE public.acct SET name = 'changed behind Bucardo''s back' WHERE id = ${TAMPERED}`,
  );
  const found = await tool('cutover.verify --json');
  assert.equal(found.code, 1, found.stdout + found.stderr);
  const data = outcome(found).data;
  assert.match(data.verdict, /^FAILED: MISMATCH in 1 table\(s\): 1 row\(s\) changed[;.]/);
  const acct = tableReport(data, 'public.acct');
  assert.deepEqual(
    acct.keys.filter((k: any) => !k.inFlight),
    [{ key: { id: String(TAMPERED) }, difference: 'changed', inFlight: false }],
    'the tampered account, and nothing else, is a real difference',
  );
  assert.deepEqual(acct.ranges, [], 'narrowed down to keys, no range left');
  // The tampered account's range held rows the load changed while the verify ran.
  assert.ok(
    (await changedRanges(data, acct.chunks)).includes(
      Math.floor((TAMPERED - 1) / Math.ceil(ACCOUNTS / acct.chunks)),
    ),
    "the tampered account's range changed during the verify",
  );
  assert.equal(data.totals.mismatchedRows, 1);
  assert.notEqual(tableReport(data, 'public.log').status, 'mismatch');

  const repaired = await tool('cutover.repair --json');
  assert.equal(repaired.code, 0, repaired.stdout + repaired.stderr);
  const result = outcome(repaired);
  assert.match(
    result.data.verdict,
    /^Repaired: Bucardo re-applied 1 key\(s\) in [\d.]+ s and all 1 now match/,
  );
  assert.equal(result.checks![0]!.pass, true, result.checks![0]!.detail);
  const [row] = await query<{ name: string }>(b, 'load_b', 'SELECT name FROM public.acct WHERE id = $1', [
    TAMPERED,
  ]);
  assert.equal(row!.name, `account ${TAMPERED}`);

  // Verify again, the load still running: it passes, with keys in flight, and cutover.finish takes it.
  // (One test: the verify after the repair is the one the finish needs, and each verify under this
  // load costs seconds of CPU.)
  const again = await tool('cutover.verify --json');
  assert.equal(again.code, 0, again.stdout + again.stderr);
  const passed = outcome(again).data;
  assert.equal(passed.passed, true, passed.verdict);
  assert.equal(passed.clean, false, 'keys were in flight');
  assert.ok(passed.totals.inFlightRows > 0, `keys in flight (${passed.totals.inFlightRows})`);
  assert.equal(passed.totals.mismatchedRows, 0);
  assert.ok(passed.horizon?.from, `the verify recorded a horizon (${JSON.stringify(passed.horizon)})`);
  assert.match(
    passed.verdict,
    /^No differences: 2 table\(s\), [\d,]+ row\(s\), 1 sequence\(s\); but [\d,]+ key\(s\) in flight in [12] table\(s\) .*final check/,
  );
  const acctPassed = tableReport(passed, 'public.acct');
  assert.ok(acctPassed.chunks >= 40, `acct cut into ${acctPassed.chunks} ranges`);
  assert.equal(
    (await changedRanges(passed, acctPassed.chunks)).length,
    acctPassed.chunks,
    'every range held rows the load changed while this verify ran',
  );
  const listedInFlight = passed.tables.reduce(
    (sum: number, t: any) => sum + t.keys.filter((k: any) => k.inFlight).length,
    0,
  );

  await load!.stop();
  const finished = await tool('cutover.finish --writes-stopped --json');
  assert.equal(finished.code, 0, finished.stdout + finished.stderr);
  const final = outcome(finished).data.finalCheck;
  assert.equal(final.passed, true, final.verdict);
  assert.equal(
    final.verifyInFlight,
    listedInFlight,
    "the verify's keys in flight were compared in the pause",
  );
  assert.ok(final.keysCompared >= passed.totals.inFlightRows, `${final.keysCompared} key(s) compared`);
  for (const table of ['public.acct', 'public.log'])
    assert.equal(
      await fingerprint(b, 'load_b', table),
      await fingerprint(a, 'load_a', table),
      `${table} identical`,
    );
});
