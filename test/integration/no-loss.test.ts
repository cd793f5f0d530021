// The race that loses committed transactions in stock Bucardo (docs/how-bucardo-behaves.md §19), made
// deterministic on real clusters with the real daemon. Bucardo marks a change applied by its
// transaction time alone; two transactions with the same time, one committed before a sync run's
// snapshot and one after it, lose the second one's changes. Here T2 writes and stays open, T1 commits
// a change record carrying T2's transaction time (as a transaction that started in the same
// microsecond would), a sync run applies T1 while T2 is open, then T2 commits: T2's row must arrive.
// Stock Bucardo marks that time applied in the run and never sends T2's row.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import type { ClusterInfo } from '../../src/sandbox/cluster.js';
import {
  clusters,
  dropDatabase,
  forgetJob,
  freshDatabase,
  query,
  runTool,
  waitFor,
  writeJobConfig,
  type WrittenJob,
} from '../support/harness.js';

const SCHEMA = `
CREATE TABLE public.acct (id int PRIMARY KEY, bal int NOT NULL);
CREATE TABLE public."Log Book" (id bigserial PRIMARY KEY, at timestamptz NOT NULL);`;
const DATA = 'INSERT INTO public.acct SELECT g, 0 FROM generate_series(1, 1000) g;';
const DELTA = 'bucardo.delta_public_acct';
const TRACK = 'bucardo.track_public_acct';

let a: ClusterInfo;
let b: ClusterInfo;
const sessions = new Set<pg.Client>();

before(async () => {
  ({ a, b } = await clusters());
});

after(async () => {
  // End the test's own sessions first (an open T2 would hold locks the drops wait for).
  for (const session of sessions) await session.end().catch(() => undefined);
  for (const name of ['race_kicker_a', 'race_syncs_a']) await dropDatabase(a, name).catch(() => undefined);
  for (const name of ['race_kicker_b', 'race_syncs_b']) await dropDatabase(b, name).catch(() => undefined);
  await dropDatabase(a, 'bucardo').catch(() => undefined);
});

async function session(cluster: ClusterInfo, database: string): Promise<pg.Client> {
  const client = new pg.Client({
    host: cluster.host,
    port: cluster.port,
    user: 'postgres',
    database,
    statement_timeout: 60_000,
    connectionTimeoutMillis: 10_000,
  });
  await client.connect();
  sessions.add(client);
  return client;
}

async function closeSession(client: pg.Client): Promise<void> {
  sessions.delete(client);
  await client.end();
}

async function balanceOn(cluster: ClusterInfo, database: string, id: number): Promise<number | undefined> {
  const rows = await query<{ bal: number }>(cluster, database, 'SELECT bal FROM public.acct WHERE id = $1', [
    id,
  ]);
  return rows[0]?.bal;
}

async function setUp(
  name: string,
  settings: Record<string, unknown>,
  asynchronous: boolean,
): Promise<WrittenJob> {
  await freshDatabase(a, `${name}_a`, `${SCHEMA}${DATA}`);
  await freshDatabase(b, `${name}_b`, SCHEMA);
  const job = writeJobConfig({
    name,
    primary: { cluster: a, dbname: `${name}_a` },
    secondary: { cluster: b, dbname: `${name}_b` },
    copyData: 'empty',
    asynchronousKicking: asynchronous,
    kickInterval: 0.2,
    bucardoSettings: settings,
  });
  const flow = await runTool(
    ['-c', job.file, '-l', 'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy'],
    { timeoutMs: 180_000 },
  );
  assert.equal(flow.code, 0, flow.stdout + flow.stderr);
  return job;
}

/**
 * T2 open with a change, T1 committed with a change record of T2's transaction time, a sync run in
 * between (T1's row arrives), then T2 commits: both rows must arrive, and the time must not be marked
 * applied while T2 is open.
 */
async function sameTimeRace(name: string, t2Id: number, t1Id: number): Promise<void> {
  const primary = `${name}_a`;
  const secondary = `${name}_b`;
  const t2 = await session(a, primary);
  await t2.query('BEGIN');
  await t2.query('UPDATE public.acct SET bal = bal + 1 WHERE id = $1', [t2Id]);
  await t2.query('INSERT INTO public."Log Book" (at) VALUES (clock_timestamp())');
  const {
    rows: [record],
  } = await t2.query<{ txntime: string }>(`SELECT txntime::text FROM ${DELTA} WHERE id = $1`, [t2Id]);
  assert.ok(record, 'T2 sees its own change record');

  const t1 = await session(a, primary);
  await t1.query('BEGIN');
  await t1.query('UPDATE public.acct SET bal = bal + 1 WHERE id = $1', [t1Id]);
  await t1.query(`UPDATE ${DELTA} SET txntime = $2::timestamptz WHERE id = $1`, [t1Id, record.txntime]);
  await t1.query('COMMIT');
  await closeSession(t1);

  // A sync run sees T1 (committed) but not T2 (open).
  await waitFor(async () => (await balanceOn(b, secondary, t1Id)) === 1, 30_000, `T1's row on the secondary`);
  // Give the run time to mark what it applied, then check that T2's time is not among it.
  await new Promise((r) => setTimeout(r, 1500));
  const marked = await query(a, primary, `SELECT 1 FROM ${TRACK} WHERE txntime = $1::timestamptz`, [
    record.txntime,
  ]);
  assert.equal(marked.length, 0, 'a transaction time still in use by an open transaction was marked applied');

  await t2.query('COMMIT');
  await closeSession(t2);
  await waitFor(
    async () => (await balanceOn(b, secondary, t2Id)) === 1,
    30_000,
    `T2's row (committed after the sync run, same transaction time as T1) on the secondary`,
  );
  // With two syncs the log table may be the other sync's: it arrives in that sync's own run.
  await waitFor(
    async () =>
      (await query<{ n: number }>(b, secondary, 'SELECT count(*)::int AS n FROM public."Log Book"'))[0]!.n ===
      1,
    30_000,
    "T2's insert into the log table on the secondary",
  );
  // Now that T2 is done, the time is marked applied like any other.
  await waitFor(
    async () =>
      (await query(a, primary, `SELECT 1 FROM ${TRACK} WHERE txntime = $1::timestamptz`, [record.txntime]))
        .length > 0,
    30_000,
    'the shared transaction time to be marked applied once T2 committed',
  );
}

/**
 * The fence's rules on the source itself: an open writer's time is reported as in flight; a writer that
 * began before a fence but writes after it gets a time above the fence clock; a savepoint rolled back
 * takes its announced time with it.
 */
async function fenceRules(primary: string): Promise<void> {
  const key = async (time: string): Promise<number> =>
    (
      await query<{ k: number }>(a, primary, 'SELECT bucardo.console_txntime_key($1::timestamptz) AS k', [
        time,
      ])
    )[0]!.k;
  const ownTime = async (client: pg.Client, id: number): Promise<string> =>
    (await client.query<{ t: string }>(`SELECT max(txntime)::text AS t FROM ${DELTA} WHERE id = $1`, [id]))
      .rows[0]!.t;

  const open = await session(a, primary);
  await open.query('BEGIN');
  await open.query('UPDATE public.acct SET bal = bal WHERE id = 100');
  const openTime = await ownTime(open, 100);
  const late = await session(a, primary);
  await late.query('BEGIN');
  const [{ started }] = (await late.query<{ started: string }>('SELECT now()::text AS started')).rows as [
    { started: string },
  ];

  const fence = await session(a, primary);
  await fence.query('SELECT bucardo.console_commit_fence()');
  const inFlight = (
    await fence.query<{ v: string }>("SELECT current_setting('bucardo_console.fence_in_flight') AS v")
  ).rows[0]!.v;
  const upto = (
    await fence.query<{ t: string }>(
      "SELECT (timestamptz '1970-01-01 00:00:00+00' + current_setting('bucardo_console.fence_upto')::bigint * interval '1 microsecond')::text AS t",
    )
  ).rows[0]!.t;
  assert.ok(
    inFlight
      .replace(/[{}]/g, '')
      .split(',')
      .map(Number)
      .includes(await key(openTime)),
    `the open writer's time ${openTime} is in flight (${inFlight})`,
  );
  const settled = async (time: string): Promise<boolean> =>
    (await fence.query<{ s: boolean }>('SELECT bucardo.console_settled($1::timestamptz) AS s', [time]))
      .rows[0]!.s;
  assert.equal(await settled(openTime), false, "an open writer's time is not settled");

  await late.query('UPDATE public.acct SET bal = bal WHERE id = 101');
  const lateTime = await ownTime(late, 101);
  assert.ok(
    lateTime > upto && started < upto,
    `began before the fence (${started}), wrote after it: ${lateTime} > ${upto}`,
  );
  assert.equal(await settled(lateTime), false, 'a time above the fence clock is not settled');

  await late.query('SAVEPOINT s');
  await late.query('UPDATE public.acct SET bal = bal WHERE id = 102');
  await late.query('ROLLBACK TO SAVEPOINT s');
  await late.query('UPDATE public.acct SET bal = bal WHERE id = 103');
  assert.equal(await ownTime(late, 103), lateTime, 'later records of a transaction reuse its time');

  for (const client of [open, late]) {
    await client.query('ROLLBACK');
    await closeSession(client);
  }
  await fence.query('SELECT bucardo.console_commit_fence()');
  assert.equal(await settled(openTime), true, 'once the writer is gone its time settles');
  await closeSession(fence);
}

test('asynchronous kicking, one sync: a change committed after a run with the same transaction time arrives', async (t) => {
  const job = await setUp('race_kicker', {}, true);
  t.after(() => forgetJob(job, a));
  // The daemon runs the job's patched copy of Bucardo.pm (the MCP logs the file it loaded).
  const log = readFileSync(path.join(job.logDir, 'log.bucardo.race_kicker'), 'utf8');
  assert.match(log, /Bucardo\.pm: \S+\/state\/bucardo-code\/lib\/Bucardo\.pm/);
  await sameTimeRace('race_kicker', 7, 8);
  await fenceRules('race_kicker_a');
});

test('kick triggers, two syncs: a change committed after a run with the same transaction time arrives', async (t) => {
  const job = await setUp('race_syncs', { syncs: 2 }, false);
  t.after(() => forgetJob(job, a));
  await sameTimeRace('race_syncs', 17, 18);
});
