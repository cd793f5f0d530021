// bucardo.syncs: N — a job's tables split over N Bucardo syncs, each applied by its own worker. A job
// with three syncs: six tables (two tied by a foreign key) recorded each in exactly one sync, the FK
// pair together; the copy, a write load reaching every table, status per sync and in total, kill -9 of
// the daemon and bucardo.restart (nothing lost, nothing extra), a clean uninstall. That job is the
// first hop of a cascade A→B→C whose second hop uses two syncs (one test: a job's life from install to
// uninstall costs some 10 s of CPU, and a cascade's first hop is a job like any other).
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { isProcessAlive, readPidFile } from '../../src/core/process.js';
import type { ClusterInfo } from '../../src/sandbox/cluster.js';
import {
  clusters,
  dropDatabase,
  forgetJob,
  freshDatabase,
  query,
  runTool,
  sameRowsEventually,
  tableRows,
  waitFor,
  writeJobConfig,
  type ToolResult,
} from '../support/harness.js';

const TABLES = ['public.t1', 'public.t2', 'public.t3', 'public.t4', 'public.parent', 'public.child'];
const SCHEMA = `
CREATE TABLE public.t1 (id int PRIMARY KEY, v int NOT NULL);
CREATE TABLE public.t2 (id int PRIMARY KEY, v int NOT NULL);
CREATE TABLE public.t3 (id int PRIMARY KEY, v int NOT NULL, pad text);
CREATE TABLE public.t4 (id int PRIMARY KEY, v int NOT NULL);
CREATE TABLE public.parent (id int PRIMARY KEY, v int NOT NULL);
CREATE TABLE public.child (id int PRIMARY KEY, parent int NOT NULL REFERENCES public.parent (id) ON DELETE CASCADE, v int NOT NULL);
CREATE SEQUENCE public.ticket;
`;
const DATA = `
INSERT INTO public.t1 SELECT g, g FROM generate_series(1, 500) g;
INSERT INTO public.t2 SELECT g, g FROM generate_series(1, 500) g;
-- t3 is the biggest by far: the balancing gives it a sync of its own.
INSERT INTO public.t3 SELECT g, g, repeat('x', 500) FROM generate_series(1, 4000) g;
INSERT INTO public.t4 SELECT g, g FROM generate_series(1, 500) g;
INSERT INTO public.parent SELECT g, g FROM generate_series(1, 300) g;
INSERT INTO public.child SELECT g, 1 + g % 300, g FROM generate_series(1, 600) g;
SELECT setval('public.ticket', 42);
`;

let a: ClusterInfo;
let b: ClusterInfo;

before(async () => {
  ({ a, b } = await clusters());
});
after(async () => {
  for (const [cluster, name] of [
    [a, 'syncs_a'],
    [b, 'syncs_b'],
    [a, 'syncs_c'],
  ] as const)
    await dropDatabase(cluster, name).catch(() => undefined);
});

/** Every JSON outcome a run printed, in order. */
function outcomes(result: ToolResult): { ok: boolean; data?: any; error?: string }[] {
  return result.stdout
    .split('\n')
    .filter((l) => l.startsWith('{"command"'))
    .map((l) => JSON.parse(l));
}

/** Writers on the primary touching every table (parent and child in one transaction). */
function startLoad(cluster: ClusterInfo, database: string, writers = 3) {
  let running = true;
  let operations = 0;
  const writer = async (index: number) => {
    let client: pg.Client | undefined;
    let next = 100_000 * index;
    while (running) {
      try {
        if (!client) {
          client = new pg.Client({ host: cluster.host, port: cluster.port, user: 'postgres', database });
          client.on('error', () => undefined);
          await client.connect();
        }
        const table = ['t1', 't2', 't3', 't4'][operations % 4]!;
        const id = 1 + Math.floor(Math.random() * 500);
        next += 1;
        await client.query(`INSERT INTO public.${table} (id, v) VALUES ($1, $2)`, [next, index]);
        await client.query(`UPDATE public.${table} SET v = v + 1 WHERE id = $1`, [id]);
        if (operations % 7 === 0) await client.query(`DELETE FROM public.${table} WHERE id = $1`, [id + 1]);
        await client.query('BEGIN');
        await client.query('INSERT INTO public.parent VALUES ($1, 0)', [next]);
        await client.query('INSERT INTO public.child VALUES ($1, $1, 0)', [next]);
        await client.query('UPDATE public.child SET v = v + 1 WHERE id = $1', [id]);
        await client.query('COMMIT');
        if (operations % 11 === 0) await client.query('DELETE FROM public.parent WHERE id = $1', [next]);
        operations += 1;
      } catch {
        await client?.end().catch(() => undefined);
        client = undefined;
        await new Promise((r) => setTimeout(r, 200));
      }
      // Paced, not as fast as the machine allows: the CPU a test costs must not grow with the CPU it
      // finds free (CONTRIBUTING.md, the suite's time), and with kick triggers each commit is a sync
      // run of Bucardo's; a few clients still overlap every step.
      await new Promise((r) => setTimeout(r, 50));
    }
    await client?.end().catch(() => undefined);
  };
  const done = Promise.all(Array.from({ length: writers }, (_, i) => writer(i + 1)));
  return {
    async stop() {
      running = false;
      await done;
      return operations;
    },
  };
}

async function assertSame(
  source: { cluster: ClusterInfo; dbname: string },
  target: { cluster: ClusterInfo; dbname: string },
): Promise<void> {
  for (const table of TABLES) {
    const [primary, secondary] = await Promise.all([
      tableRows(source.cluster, source.dbname, table),
      tableRows(target.cluster, target.dbname, table),
    ]);
    // Sets, not Array.includes: over t1's 20,500 rows that was a quadratic compare, seconds of CPU.
    const [onPrimary, onSecondary] = [new Set(primary), new Set(secondary)];
    const lost = primary.filter((row) => !onSecondary.has(row));
    const extra = secondary.filter((row) => !onPrimary.has(row));
    assert.deepEqual({ lost: lost.length, extra: extra.length }, { lost: 0, extra: 0 }, `${table} differs`);
  }
}

/** Waits for the target to hold the source's rows (a cheap digest polled), then compares them row by row. */
async function waitSame(
  source: { cluster: ClusterInfo; dbname: string },
  target: { cluster: ClusterInfo; dbname: string },
  what: string,
): Promise<void> {
  await sameRowsEventually(
    [source.cluster, source.dbname],
    [target.cluster, target.dbname],
    TABLES,
    60_000,
    what,
  );
}

/** relgroup → its tables, from Bucardo's metadata. */
async function recordedSyncs(metadata: ClusterInfo, db = 'bucardo'): Promise<Map<string, string[]>> {
  const rows = await query<{ sync: string; t: string }>(
    metadata,
    db,
    `SELECT s.name AS sync, g.schemaname || '.' || g.tablename AS t FROM bucardo.sync s
       JOIN bucardo.herdmap h ON h.herd = s.herd JOIN bucardo.goat g ON g.id = h.goat
      WHERE g.reltype = 'table' ORDER BY 1, 2`,
  );
  const result = new Map<string, string[]>();
  for (const row of rows) result.set(row.sync, [...(result.get(row.sync) ?? []), row.t]);
  return result;
}

function bucardoProcesses(pidDir: string): number[] {
  return readdirSync(pidDir)
    .filter((f) => f.startsWith('bucardo.') && f.endsWith('.pid'))
    .map((f) => readPidFile(path.join(pidDir, f)))
    .filter((pid): pid is number => pid !== undefined && isProcessAlive(pid));
}

test('syncs: 3 on A→B, 2 on its cascade B→C — six tables over three syncs (the FK pair together); B→C waits for every A→B copy; load, kill -9 and restart of A→B, changes reach B and C; status per sync, uninstall', async (t) => {
  const A = { cluster: a, dbname: 'syncs_a' };
  const B = { cluster: b, dbname: 'syncs_b' };
  const C = { cluster: a, dbname: 'syncs_c' };
  await freshDatabase(a, A.dbname, SCHEMA + DATA);
  await freshDatabase(b, B.dbname, SCHEMA);
  await freshDatabase(a, C.dbname, SCHEMA);
  const job = writeJobConfig({
    name: 'syncs3',
    plugins: ['bucardo', 'cutover'],
    primary: A,
    secondary: { ...B, cascade: true },
    metadata: a,
    bucardoSettings: { syncs: 3 },
    extra: { cutover: { chunk_rows: 1000, settle_time: 10 } },
  });
  const bToC = writeJobConfig({
    name: 'sb_to_c',
    primary: { ...B, cascade: true },
    secondary: C,
    metadata: b,
    asynchronousKicking: true,
    bucardoSettings: { syncs: 2 },
  });
  const tool = (list: string) =>
    runTool(['-c1', job.file, '-c2', bToC.file, '-l', list], { timeoutMs: 150_000 });
  let orphans: number[] = [];
  // forgetJob stops the daemon by its pids: a bucardo.stop run first would only add its CPU.
  t.after(async () => {
    for (const pid of orphans) if (isProcessAlive(pid)) process.kill(pid, 'SIGKILL');
    await forgetJob(bToC, b);
    await forgetJob(job, a);
  });
  await query(a, A.dbname, 'ANALYZE');

  // Both hops installed with their triggers; B→C refuses to start while A→B's copies are pending.
  const early = await tool(
    'c1.bucardo.install c1.bucardo.add_triggers c2.bucardo.install c2.bucardo.add_triggers c2.bucardo.start',
  );
  assert.equal(early.code, 1, early.stdout + early.stderr);
  assert.match(early.stderr, /sb_to_c replicates syncs_b, which syncs3 is still filling/);
  const syncs = await recordedSyncs(a);
  assert.deepEqual([...syncs.keys()], ['syncs3_1', 'syncs3_2', 'syncs3_3'], 'three syncs recorded');
  const all = [...syncs.values()].flat().sort();
  assert.deepEqual(all, [...TABLES].sort(), 'every table in exactly one sync');
  const home = (table: string) => [...syncs].find(([, tables]) => tables.includes(table))?.[0];
  assert.equal(home('public.parent'), home('public.child'), 'tables tied by a foreign key share a sync');
  assert.deepEqual(
    [...syncs].find(([, tables]) => tables.includes('public.t3'))?.[1],
    ['public.t3'],
    'the biggest table has a sync of its own',
  );
  const dbgroups = await query<{ dbs: string }>(a, 'bucardo', 'SELECT DISTINCT dbs FROM bucardo.sync');
  assert.deepEqual(dbgroups, [{ dbs: 'syncs3' }], 'the syncs share one dbgroup named after the job');
  const triggers = await query<{ t: string; tgname: string }>(
    a,
    'syncs_a',
    `SELECT c.relname AS t, tg.tgname FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
      WHERE tg.tgname LIKE 'bucardo_kick_%' ORDER BY 1`,
  );
  for (const row of triggers)
    assert.equal(
      row.tgname,
      `bucardo_kick_${home(`public.${row.t}`)}`,
      `${row.t}: its own sync's kick trigger`,
    );
  assert.equal(triggers.length, TABLES.length);

  // A second install and add_triggers change nothing: the assignment is read back, not recomputed.
  await query(
    a,
    'syncs_a',
    'INSERT INTO public.t1 SELECT g, g FROM generate_series(10001, 30000) g; ANALYZE',
  );
  // The rerun and both hops' starts in one run (a tool run costs its start): starting moves no table.
  const again = await tool(
    'c1.bucardo.install c1.bucardo.add_triggers c1.bucardo.start c1.bucardo.wait_for_copy c2.bucardo.start c2.bucardo.wait_for_copy',
  );
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.deepEqual(await recordedSyncs(a), syncs, 'a rerun keeps every table in its sync');
  assert.deepEqual([...(await recordedSyncs(b)).keys()], ['sb_to_c_1', 'sb_to_c_2'], 'B→C: two syncs');
  await waitSame(A, B, 'the initial copy');
  await waitSame(A, C, 'the initial copies to fill C');

  const load = startLoad(a, A.dbname);
  // Stopped also when the test fails: a load left running keeps the file (and the servers) busy.
  t.after(() => load.stop());
  // Short pauses: the faults need writes under way before, while and after the daemon is down, not
  // seconds of them (with kick triggers every second of load is seconds of Bucardo's CPU).
  await new Promise((r) => setTimeout(r, 1000));
  const mcp = readPidFile(path.join(job.pidDir, 'bucardo.mcp.pid'));
  assert.ok(mcp && isProcessAlive(mcp), 'the daemon runs');
  orphans = bucardoProcesses(job.pidDir);
  process.kill(mcp, 'SIGKILL');
  await waitFor(async () => !isProcessAlive(mcp), 5000, 'the daemon to die');
  await new Promise((r) => setTimeout(r, 500));
  const restart = await tool('c1.bucardo.restart');
  assert.equal(restart.code, 0, restart.stdout + restart.stderr);
  await new Promise((r) => setTimeout(r, 1000));
  const operations = await load.stop();
  assert.ok(operations > 50, `the load ran (${operations} operations)`);
  // The rows first, by SQL (a status run costs a tool's start): then status has little left to wait for.
  await waitSame(A, B, 'the load to arrive');
  await waitSame(A, C, 'changes on A to reach C');

  // The status as JSON (waited on), as text, then the verify: one run once A→B has caught up.
  let status: any;
  let verified: ToolResult | undefined;
  await waitFor(
    async () => {
      verified = await tool('c1.bucardo.status --json c1.bucardo.status c1.cutover.verify --json');
      status = outcomes(verified)[0]?.data;
      return status?.verdict === 'caught up';
    },
    60_000,
    'bucardo.status to say caught up',
  );
  await assertSame(A, B);
  assert.equal(status.syncs.length, 3);
  for (const sync of status.syncs) {
    assert.equal(sync.exists, true, sync.name);
    assert.equal(sync.loaded, true, sync.name);
    assert.equal(sync.pendingTotal, 0, sync.name);
    assert.ok(sync.lastGood, `${sync.name} has had a good run`);
    assert.equal(sync.tables, syncs.get(sync.name)!.length);
  }
  assert.equal(status.sync.exists, true);
  assert.equal(status.copy.state, 'done');
  assert.match(verified!.stdout, /Syncs\s+: 3, each applied by its own Bucardo worker/);
  assert.match(verified!.stdout, /syncs3_1\s+loaded/);
  const report = outcomes(verified!).at(-1)!.data;
  assert.equal(verified!.code, 0, `${report?.verdict}\n${verified!.stdout}`);
  assert.equal(report.totals.mismatchedRows, 0);
  assert.equal(
    (await query<{ v: string }>(b, 'syncs_b', 'SELECT last_value::text AS v FROM public.ticket'))[0]!.v,
    '42',
    'the sequence replicated with the first sync',
  );

  const removed = await tool('c2.bucardo.uninstall c1.bucardo.uninstall');
  assert.equal(removed.code, 0, removed.stdout + removed.stderr);
  const left = await query(a, A.dbname, "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'bucardo%'");
  assert.deepEqual(left, [], 'no Bucardo trigger left on the primary');
  const metadataLeft = await query(a, 'postgres', "SELECT 1 FROM pg_database WHERE datname = 'bucardo'");
  assert.deepEqual(metadataLeft, [], 'no sync left: the metadata database is gone');
});

test('syncs: 2 with the retry plugin: retry.add_triggers records both syncs, table by table; retry.drop_triggers removes them', async (t) => {
  await freshDatabase(a, 'syncs_a', SCHEMA + DATA);
  await freshDatabase(b, 'syncs_b', SCHEMA);
  const job = writeJobConfig({
    name: 'syncs_retry',
    plugins: ['bucardo', 'retry'],
    primary: { cluster: a, dbname: 'syncs_a' },
    secondary: { cluster: b, dbname: 'syncs_b' },
    metadata: a,
    bucardoSettings: { syncs: 2 },
    extra: { retry: { timeout: 2000, attempts: 3, backoff: 300 } },
  });
  const tool = (list: string) => runTool(['-c', job.file, '-l', list], { timeoutMs: 150_000 });
  t.after(() => forgetJob(job, a));
  // add_triggers twice in one run (a tool run costs its start): the second finds nothing to do.
  const add = await tool('bucardo.install retry.install retry.add_triggers retry.add_triggers');
  assert.equal(add.code, 0, add.stdout + add.stderr);
  const [, first, twice] = add.stdout.split(/^== retry\.add_triggers$/m);
  assert.ok(twice !== undefined, `two retry.add_triggers runs in:\n${add.stdout}`);
  assert.doesNotMatch(first!, /Nothing to do/);
  assert.match(twice, /Nothing to do: all 6 tables already carry this job's triggers/);
  const syncs = await recordedSyncs(a);
  assert.deepEqual([...syncs.keys()], ['syncs_retry_1', 'syncs_retry_2']);
  assert.deepEqual([...syncs.values()].flat().sort(), [...TABLES].sort());
  const drop = await tool('retry.drop_triggers');
  assert.equal(drop.code, 0, drop.stdout + drop.stderr);
  assert.deepEqual(await recordedSyncs(a), new Map(), 'no sync left');
  const left = await query(
    a,
    'syncs_a',
    `SELECT tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname <> 'bucardo' AND tgname LIKE 'bucardo%'`,
  );
  assert.deepEqual(left, [], 'no Bucardo trigger left on the replicated tables');
  const removed = await tool('bucardo.uninstall');
  assert.equal(removed.code, 0, removed.stdout + removed.stderr);
});
