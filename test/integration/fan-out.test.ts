// Fan-out (issue 28): one primary A replicating to two targets B and C with databases.secondaries, on
// real clusters (C on a cluster of its own, so that restarting it leaves A and B alone) and the real
// daemon. Under a write load the daemon is killed with -9 and C's server restarted; both targets must
// end identical to A, by cutover.verify and row by row. Then `cutover.finish --target b`: with
// cutover.others follow, rows written on B afterwards reach C and never A; with stop (switching to C
// with the way back, then rolling back to A), B keeps what it had at the switch. Afterwards nothing of
// the job is left on any of the three.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import yaml from 'js-yaml';
import pg from 'pg';
import { isProcessAlive, readPidFile } from '../../src/core/process.js';
import {
  freePort,
  restartCluster,
  startCluster,
  stopCluster,
  type ClusterInfo,
} from '../../src/sandbox/cluster.js';
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
  type WrittenJob,
} from '../support/harness.js';
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const SCHEMA = `
CREATE TABLE public.orders (id bigint PRIMARY KEY, src text NOT NULL, n int NOT NULL DEFAULT 0);
CREATE TABLE public.lines (order_id bigint NOT NULL, no int NOT NULL, qty int NOT NULL, PRIMARY KEY (order_id, no));
CREATE SEQUENCE public.order_no;`;
const ROWS = `
INSERT INTO public.orders SELECT g, 'a', 0 FROM generate_series(1, 500) g;
INSERT INTO public.lines SELECT g, 1, g % 7 FROM generate_series(1, 500) g;
SELECT setval('public.order_no', 500);`;
const TABLES = ['public.orders', 'public.lines'];

let a: ClusterInfo;
let b: ClusterInfo;
let c: ClusterInfo | undefined;

before(async () => {
  ({ a, b } = await clusters());
  await dropDatabase(a, 'bucardo');
  c = await startCluster('fanoutC');
});

after(async () => {
  await dropDatabase(a, 'bucardo').catch(() => undefined);
  if (c) stopCluster(c);
});

/** A job from A to targets b (cluster b) and c (its own cluster), written as databases.secondaries. */
function fanOutJob(name: string, dbs: { a: string; b: string; c: string }, extra: Record<string, unknown>) {
  const job = writeJobConfig({
    name,
    plugins: ['bucardo', 'cutover'],
    metadata: a,
    primary: { cluster: a, dbname: dbs.a },
    secondary: { cluster: b, dbname: dbs.b },
    extra,
  });
  const config = yaml.load(readFileSync(job.file, 'utf8')) as { databases: Record<string, unknown> };
  const target = (cluster: ClusterInfo, dbname: string) => ({
    host: cluster.host,
    port: cluster.port,
    dbname,
    database_owner: 'postgres',
    schema_owner: 'postgres',
  });
  delete config.databases['secondary'];
  config.databases['secondaries'] = { b: target(b, dbs.b), c: target(c!, dbs.c) };
  writeFileSync(job.file, yaml.dump(config));
  return job;
}

function tool(job: WrittenJob, list: string): Promise<ToolResult> {
  return runTool(['-c', job.file, '-l', list], { timeoutMs: 240_000 });
}

async function ok(job: WrittenJob, list: string): Promise<ToolResult> {
  const result = await tool(job, list);
  assert.equal(result.code, 0, `${list}:\n${result.stdout}\n${result.stderr}`);
  return result;
}

/** Every JSON outcome a run printed (a command that acts on each target prints one per target). */
function outcomes(result: ToolResult): { command: string; target?: string; ok: boolean; data?: any }[] {
  return result.stdout
    .split('\n')
    .filter((l) => l.startsWith('{"command"'))
    .map((l) => JSON.parse(l));
}

/**
 * Waits for the target to hold the source's rows: a digest polled (fetching and sorting both tables
 * five times a second cost seconds of CPU while Bucardo caught up after the faults), then row by row.
 */
async function sameRows(target: [ClusterInfo, string], source: [ClusterInfo, string], what: string) {
  await sameRowsEventually(source, target, TABLES, 90_000, `${what}: ${target[1]} to match ${source[1]}`);
}

/** Clients writing multi-statement transactions until stopped; a broken connection reconnects. */
function writeLoad(cluster: ClusterInfo, db: string, clients: number) {
  let stopping = false;
  const workers = Array.from({ length: clients }, async (_, worker) => {
    let commits = 0;
    for (let i = 0; !stopping; i++) {
      const client = new pg.Client({
        host: cluster.host,
        port: cluster.port,
        user: 'postgres',
        database: db,
      });
      client.on('error', () => undefined);
      try {
        await client.connect();
        for (; !stopping; i++) {
          const id = 10_000 + worker * 1_000_000 + i;
          await client.query('BEGIN');
          await client.query("INSERT INTO public.orders VALUES ($1, 'a', 0)", [id]);
          await client.query('INSERT INTO public.lines VALUES ($1, 1, 1), ($1, 2, 2)', [id]);
          await client.query('UPDATE public.orders SET n = n + 1 WHERE id = $1', [
            1 + ((i * 7 + worker) % 500),
          ]);
          await client.query('DELETE FROM public.lines WHERE order_id = $1 AND no = 2', [id - 1]);
          await client.query('COMMIT');
          commits += 1;
          // Paced: the load's CPU and Bucardo's grow with the rate, the faults need only commits
          // under way from every client.
          await new Promise((r) => setTimeout(r, 50));
        }
      } catch {
        await pause(200);
      } finally {
        await client.end().catch(() => undefined);
      }
    }
    return commits;
  });
  return {
    stop: async () => {
      stopping = true;
      return (await Promise.all(workers)).reduce((s, n) => s + n, 0);
    },
  };
}

/** Bucardo triggers and the bucardo schema on a database: what the job may leave behind. */
async function leftovers(cluster: ClusterInfo, db: string): Promise<string[]> {
  const rows = await query<{ what: string }>(
    cluster,
    db,
    `SELECT 'trigger ' || c.relname || '.' || t.tgname AS what FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
      WHERE NOT t.tgisinternal AND t.tgname LIKE 'bucardo%'
     UNION ALL SELECT 'schema bucardo' FROM pg_namespace WHERE nspname = 'bucardo'`,
  );
  return rows.map((r) => r.what);
}

test('fan-out A→{B, C} under load, kill -9 of the daemon and a restart of C: both identical; finish --target b, C follows B', async (t) => {
  const dbs = { a: 'fan_a', b: 'fan_b', c: 'fan_c' };
  await freshDatabase(a, dbs.a, SCHEMA + ROWS);
  await freshDatabase(b, dbs.b, SCHEMA);
  await freshDatabase(c!, dbs.c, SCHEMA);
  const port = await freePort();
  const job = fanOutJob('fan', dbs, {
    cutover: { settle_time: 3, chunk_rows: 1000, max_lag: 30 },
    metrics: { listen: `127.0.0.1:${port}` },
  });
  const load = { stop: async () => 0 };
  let running = load;
  t.after(async () => {
    await running.stop().catch(() => 0);
    await forgetJob(job, a);
    await dropDatabase(a, dbs.a).catch(() => undefined);
    await dropDatabase(b, dbs.b).catch(() => undefined);
    await dropDatabase(c!, dbs.c).catch(() => undefined);
  });

  // One run (each costs a tool's start); the install's outcome is its only JSON line.
  const installed = await ok(
    job,
    'bucardo.install --json bucardo.add_triggers bucardo.start bucardo.wait_for_copy',
  );
  const steps: string[] = outcomes(installed)[0]!.data.steps;
  assert.ok(
    steps.some((s) => /target b as fan_b/.test(s)) && steps.some((s) => /target c as fan_c/.test(s)),
    steps.join('; '),
  );
  const dbgroup = await query<{ db: string; role: string }>(
    a,
    'bucardo',
    "SELECT db, role FROM bucardo.dbmap WHERE dbgroup = 'fan' ORDER BY db",
  );
  assert.deepEqual(dbgroup, [
    { db: 'fan_b', role: 'target' },
    { db: 'fan_c', role: 'target' },
    { db: 'fan_primary', role: 'source' },
  ]);
  await sameRows([b, dbs.b], [a, dbs.a], 'the initial copy into b');
  await sameRows([c!, dbs.c], [a, dbs.a], 'the initial copy into c');

  // The load, a kill -9 of the daemon, a restart of C's server, all while clients commit.
  running = writeLoad(a, dbs.a, 6);
  await pause(1000);
  const mcp = readPidFile(path.join(job.pidDir, 'bucardo.mcp.pid'));
  assert.ok(mcp && isProcessAlive(mcp), 'the daemon runs');
  process.kill(mcp, 'SIGKILL');
  await waitFor(async () => !isProcessAlive(mcp), 5000, 'the daemon to die');
  // The killed daemon's children outlive it; bucardo.restart stops them by their pid files.
  await ok(job, 'bucardo.restart');
  await pause(1000);
  c = restartCluster(c!);
  await pause(1000);
  const commits = await running.stop();
  running = load;
  assert.ok(commits > 100, `the load committed (${commits} transactions)`);

  await sameRows([b, dbs.b], [a, dbs.a], 'after the faults, b');
  await sameRows([c!, dbs.c], [a, dbs.a], 'after the faults, c');
  // Verify on every target, status, and verify of b alone (--target picks it), in one run: each run
  // costs a tool's start.
  const checked = outcomes(
    await ok(job, 'cutover.verify --json bucardo.status --json cutover.verify --target=b --json'),
  );
  const statusAt = checked.findIndex((o) => o.command === 'bucardo.status');
  const verified = checked.slice(0, statusAt);
  assert.deepEqual(
    verified.map((o) => [o.target, o.ok]),
    [
      ['b', true],
      ['c', true],
    ],
    'cutover.verify runs on each target and passes',
  );
  // The kicker's metrics, labelled by target.
  const metrics = await (
    await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(15_000) })
  ).text();
  for (const target of ['b', 'c']) {
    assert.match(metrics, new RegExp(`bucardo_console_target_reachable\\{job="fan",target="${target}"\\} 1`));
    assert.match(
      metrics,
      new RegExp(`bucardo_console_target_verify_passed\\{job="fan",target="${target}"\\} 1`),
    );
    assert.match(
      metrics,
      new RegExp(`bucardo_console_target_pending_changes\\{job="fan",target="${target}"\\} \\d+`),
    );
  }
  const status = checked[statusAt]!.data;
  assert.deepEqual(
    status.targets.map((s: { name: string; reachable: boolean }) => [s.name, s.reachable]),
    [
      ['b', true],
      ['c', true],
    ],
  );

  // Only b: --target picks it; an unknown name is refused before anything runs.
  assert.deepEqual(
    checked.slice(statusAt + 1).map((o) => [o.command, o.target]),
    [['cutover.verify', 'b']],
  );
  const unknown = await tool(job, 'cutover.verify --target=z');
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.stdout + unknown.stderr, /has no target named 'z': its targets are b, c/);
  const unnamed = await tool(job, 'cutover.finish --writes-stopped');
  assert.notEqual(unnamed.code, 0);
  assert.match(
    unnamed.stdout + unnamed.stderr,
    /name the one that becomes the new primary with cutover\.finish --target NAME/,
  );

  const finished = outcomes(await ok(job, 'cutover.finish --target=b --writes-stopped --json'))[0]!;
  assert.ok(
    finished.data.steps.some((s: string) => /final check \(follower c\)/.test(s)),
    `the follower was checked too: ${finished.data.steps.join('; ')}`,
  );
  const before = await tableRows(a, dbs.a, 'public.orders');
  await query(
    b,
    dbs.b,
    "INSERT INTO public.orders VALUES (900001, 'b', 1); UPDATE public.orders SET n = n + 5 WHERE id <= 10;",
  );
  await sameRows([c!, dbs.c], [b, dbs.b], 'the writes on the new primary b, on c');
  assert.deepEqual(await tableRows(a, dbs.a, 'public.orders'), before, 'nothing written on b reaches a');

  await ok(job, 'cutover.release bucardo.uninstall');
  for (const [cluster, db] of [
    [a, dbs.a],
    [b, dbs.b],
    [c!, dbs.c],
  ] as const)
    assert.deepEqual(await leftovers(cluster, db), [], `nothing of the job left on ${db}`);
});

test('fan-out with cutover.others stop and the way back: B keeps what it had at the switch, C rolls back to A; bad configs are refused', async (t) => {
  const dbs = { a: 'fst_a', b: 'fst_b', c: 'fst_c' };
  await freshDatabase(a, dbs.a, SCHEMA + ROWS);
  await freshDatabase(b, dbs.b, SCHEMA);
  await freshDatabase(c!, dbs.c, SCHEMA);
  const job = fanOutJob('fst', dbs, { cutover: { settle_time: 3, chunk_rows: 1000, others: 'stop' } });
  t.after(async () => {
    await forgetJob(job, a);
    await dropDatabase(a, dbs.a).catch(() => undefined);
    await dropDatabase(b, dbs.b).catch(() => undefined);
    await dropDatabase(c!, dbs.c).catch(() => undefined);
  });
  await ok(job, 'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy');
  // A target status cannot reach: the job's state is unknown (exit 3) and the verdict names it.
  await query(c!, 'postgres', `ALTER DATABASE ${dbs.c} WITH ALLOW_CONNECTIONS false`);
  try {
    const blind = await tool(job, 'bucardo.status --json');
    const seen = outcomes(blind)[0]!.data;
    assert.equal(seen.exitCode, 3, blind.stdout);
    assert.match(seen.verdict, /^target c: unknown: cannot reach the target c/);
    assert.deepEqual(
      seen.targets.map((t: { name: string; state: string }) => [t.name, t.state]),
      [
        ['b', 'caught up'],
        ['c', 'unknown'],
      ],
    );
  } finally {
    await query(c!, 'postgres', `ALTER DATABASE ${dbs.c} WITH ALLOW_CONNECTIONS true`);
  }
  await query(a, dbs.a, 'UPDATE public.orders SET n = n + 1 WHERE id <= 50');
  await sameRows([c!, dbs.c], [a, dbs.a], 'c before the switch');
  // The switch to c with the way back (c→a): the one-target way back, for the chosen target.
  await ok(job, 'cutover.verify --target=c cutover.finish --target=c --writes-stopped --way-back');
  const atSwitch = await tableRows(b, dbs.b, 'public.orders');
  assert.deepEqual(atSwitch, await tableRows(a, dbs.a, 'public.orders'), 'b held what a held at the switch');
  await query(c!, dbs.c, "INSERT INTO public.orders VALUES (900002, 'c', 1)");
  await sameRows([a, dbs.a], [c!, dbs.c], "the way back carries c's writes to a");
  assert.deepEqual(await tableRows(b, dbs.b, 'public.orders'), atSwitch, 'b gets nothing after the switch');
  const sync = await query(a, 'bucardo', "SELECT name FROM bucardo.sync WHERE name LIKE 'fst%'");
  assert.deepEqual(sync, [{ name: 'fst_back' }], 'only the way back runs');
  await ok(job, 'cutover.verify --target=c cutover.rollback --writes-stopped bucardo.uninstall');
  for (const [cluster, db] of [
    [a, dbs.a],
    [b, dbs.b],
    [c!, dbs.c],
  ] as const)
    assert.deepEqual(await leftovers(cluster, db), [], `nothing of the job left on ${db}`);

  // Bad input: each refused with one message, nothing created.
  const config = yaml.load(readFileSync(job.file, 'utf8')) as any;
  const bad = (change: (c: any) => void) => {
    const copy = structuredClone(config);
    change(copy);
    const file = job.file.replace(/\.yml$/, '.bad.yml');
    writeFileSync(file, yaml.dump(copy));
    return runTool(['-c', file, '-l', 'bucardo.install'], { timeoutMs: 60_000 });
  };
  const cases: [string, (c: any) => void, RegExp][] = [
    [
      'both keys',
      (x) => (x.databases.secondary = x.databases.secondaries.b),
      /databases\.secondary are both set/,
    ],
    [
      'target is the primary',
      (x) => (x.databases.secondaries.c = { ...x.databases.primary }),
      /is the primary itself/,
    ],
    [
      'two targets alike',
      (x) => (x.databases.secondaries.c = { ...x.databases.secondaries.b }),
      /is the same database as databases\.secondaries\.b/,
    ],
    [
      'a bad target name',
      (x) => (x.databases.secondaries['Primary!'] = x.databases.secondaries.c),
      /is not a usable target name/,
    ],
  ];
  for (const [what, change, message] of cases) {
    const result = await bad(change);
    assert.notEqual(result.code, 0, what);
    assert.match(result.stdout + result.stderr, message, what);
  }
  const metadata = await query(a, 'postgres', "SELECT 1 FROM pg_database WHERE datname = 'bucardo'");
  assert.deepEqual(metadata, [], 'no refused config created the metadata database');
});
