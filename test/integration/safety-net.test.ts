// The kicker's safety net on real clusters with the real daemon: a change that Bucardo's bookkeeping
// says was applied but that never reached the secondary (made here by marking a transaction's own time
// applied in the track table, the symptom of a lost transaction) is found by re-comparing the applied
// keys on both sides, re-queued, logged with its table and key, and counted in bucardo.status and the
// metrics, while clients write. The safety net's own bookkeeping lets Bucardo purge what it compared.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { freePort, type ClusterInfo } from '../../src/sandbox/cluster.js';
import {
  clusters,
  dropDatabase,
  forgetJob,
  freshDatabase,
  query,
  runTool,
  waitFor,
  writeJobConfig,
} from '../support/harness.js';

const SCHEMA = `
CREATE TABLE public.acct (id int PRIMARY KEY, bal int NOT NULL);
CREATE TABLE public.log (id bigserial PRIMARY KEY, at timestamptz NOT NULL);`;
const DATA = 'INSERT INTO public.acct SELECT g, 0 FROM generate_series(1, 5000) g;';
const LOST_ID = 4242;

let a: ClusterInfo;
let b: ClusterInfo;
const writers: pg.Client[] = [];

before(async () => {
  ({ a, b } = await clusters());
});

after(async () => {
  for (const client of writers) await client.end().catch(() => undefined);
  await dropDatabase(a, 'net_a').catch(() => undefined);
  await dropDatabase(b, 'net_b').catch(() => undefined);
  await dropDatabase(a, 'bucardo').catch(() => undefined);
});

/** Clients writing the transaction (an update and an insert) until `until` resolves. */
async function writeLoad(clients: number, stop: { done: boolean }): Promise<number> {
  let committed = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      const client = new pg.Client({ host: a.host, port: a.port, user: 'postgres', database: 'net_a' });
      await client.connect();
      writers.push(client);
      while (!stop.done) {
        const id = 1 + Math.floor(Math.random() * 4000);
        await client.query('BEGIN');
        await client.query('UPDATE public.acct SET bal = bal + 1 WHERE id = $1', [id]);
        await client.query('INSERT INTO public.log (at) VALUES (clock_timestamp())');
        await client.query('COMMIT');
        committed += 1;
      }
    }),
  );
  return committed;
}

test('a change marked applied but never sent is found, re-queued, logged and counted under load', async (t) => {
  await freshDatabase(a, 'net_a', `${SCHEMA}${DATA}`);
  await freshDatabase(b, 'net_b', SCHEMA);
  const port = await freePort();
  const job = writeJobConfig({
    name: 'net',
    primary: { cluster: a, dbname: 'net_a' },
    secondary: { cluster: b, dbname: 'net_b' },
    asynchronousKicking: true,
    bucardoSettings: { recheck_interval: 1 },
    extra: { metrics: { listen: `127.0.0.1:${port}` } },
  });
  t.after(() => forgetJob(job, a));
  const setUp = await runTool(
    ['-c', job.file, '-l', 'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy'],
    { timeoutMs: 180_000 },
  );
  assert.equal(setUp.code, 0, setUp.stdout + setUp.stderr);

  const stop = { done: false };
  const load = writeLoad(4, stop);
  const loadStarted = Date.now();
  await new Promise((r) => setTimeout(r, 3000));
  // The lost change: its own time is marked applied in the same transaction, so Bucardo never sends it.
  const lost = new pg.Client({ host: a.host, port: a.port, user: 'postgres', database: 'net_a' });
  await lost.connect();
  writers.push(lost);
  await lost.query('BEGIN');
  await lost.query('UPDATE public.acct SET bal = -1 WHERE id = $1', [LOST_ID]);
  await lost.query(
    "INSERT INTO bucardo.track_public_acct (txntime, target) SELECT txntime, 'dbgroup net' FROM bucardo.delta_public_acct WHERE id = $1",
    [LOST_ID],
  );
  await lost.query('COMMIT');

  await waitFor(
    async () =>
      (await query<{ bal: number }>(b, 'net_b', 'SELECT bal FROM public.acct WHERE id = $1', [LOST_ID]))[0]
        ?.bal === -1,
    60_000,
    'the lost change to reach the secondary through the safety net',
  );
  // Some more writing after the repair, then the safety net compares what Bucardo applied meanwhile.
  await new Promise((r) => setTimeout(r, Math.max(0, loadStarted + 10_000 - Date.now())));
  stop.done = true;
  const committed = await load;
  assert.ok(committed > 100, `the clients wrote (${committed} transactions)`);
  const kickerState = path.join(job.pidDir, 'kicker.net.json');
  await waitFor(
    async () => (JSON.parse(readFileSync(kickerState, 'utf8')).recheck?.compared ?? 0) > 100,
    30_000,
    'the safety net to compare the keys the clients changed',
  );

  const kickerLog = readFileSync(path.join(job.logDir, 'kicker.net.log'), 'utf8');
  assert.match(
    kickerLog,
    /safety net: public\.acct \(4242\) differed on the secondary with every change applied; re-queued it/,
  );
  const status = await runTool(['-c', job.file, '-l', 'bucardo.status']);
  assert.match(
    status.stdout,
    /Safety net {4}: [\d,]+ applied key\(s\) re-compared on both sides in \d+ pass\(es\)/,
  );
  assert.match(status.stdout, /re-queued public\.acct \(4242\)/);
  const json = await runTool(['-c', job.file, '-l', 'bucardo.status', '--json']);
  const line = json.stdout.split('\n').find((l) => l.startsWith('{"command"'));
  const recheck = JSON.parse(line!).data.kicker.recheck;
  assert.ok(recheck.requeued >= 1 && recheck.compared > 100, JSON.stringify(recheck));
  const metrics = await (
    await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(15_000) })
  ).text();
  assert.match(metrics, /bucardo_console_recheck_keys_requeued_total\{job="net"\} [1-9]/);

  // Both sides end identical, and the safety net released what it compared to Bucardo's purge.
  await waitFor(
    async () => {
      const sum = async (c: ClusterInfo, db: string) =>
        (await query<{ s: string }>(c, db, 'SELECT sum(bal)::text || count(*) AS s FROM public.acct'))[0]!.s;
      return (await sum(a, 'net_a')) === (await sum(b, 'net_b'));
    },
    60_000,
    'both sides identical',
  );
  const [released] = await query<{ n: number }>(
    a,
    'net_a',
    "SELECT count(*)::int AS n FROM bucardo.track_public_acct WHERE target = 'recheck net'",
  );
  assert.ok(released!.n > 0, 'the safety net marked the times it compared');
});
