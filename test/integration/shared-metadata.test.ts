// Two jobs on one metadata database (issue 28), with real clusters and the real daemon. Every record a
// job makes in Bucardo carries its name, so a second job for another database pair never rewrites the
// first one's records, and its sync replicates to its own dbgroup: its verify's hold and horizon work,
// and its final check compares only the changes since the verify. A job installed with the old names
// (primary_db/secondary_db, a dbgroup Bucardo chose) keeps working and is uninstalled cleanly, and a
// config that would change another job's records is refused with nothing changed.
import assert from 'node:assert/strict';
import pg from 'pg';
import { after, before, test } from 'node:test';
import { runBucardo } from '../../src/core/bucardo/run.js';
import type { ClusterInfo } from '../../src/sandbox/cluster.js';
import { Session } from '../../src/shell/session.js';
import {
  clusters,
  dropDatabase,
  forgetJob,
  freshDatabase,
  query,
  runTool,
  sameRowsEventually,
  waitFor,
  writeJobConfig,
  type ToolResult,
  type WrittenJob,
} from '../support/harness.js';

const SCHEMA = `
CREATE TABLE public.orders (id bigint PRIMARY KEY, src text NOT NULL, n int NOT NULL DEFAULT 0);
CREATE TABLE public.lines (order_id bigint NOT NULL, no int NOT NULL, qty int NOT NULL, PRIMARY KEY (order_id, no));
CREATE SEQUENCE public.order_no;`;

/** Each primary holds rows marked with its job, so a row that reached the wrong secondary shows. */
const rowsOf = (src: string, count = 300) => `
INSERT INTO public.orders SELECT g, '${src}', 0 FROM generate_series(1, ${count}) g;
INSERT INTO public.lines SELECT g, 1, g % 7 FROM generate_series(1, ${count}) g;`;

const CUTOVER = { cutover: { settle_time: 3, chunk_rows: 1000, max_lag: 10 } };

let a: ClusterInfo;
let b: ClusterInfo;

before(async () => {
  ({ a, b } = await clusters());
  await dropDatabase(a, 'bucardo');
});

after(async () => {
  await dropDatabase(a, 'bucardo').catch(() => undefined);
});

function tool(job: WrittenJob, list: string): Promise<ToolResult> {
  return runTool(['-c', job.file, '-l', list], { timeoutMs: 200_000 });
}

function outcome(result: ToolResult): { ok: boolean; message?: string; error?: string; data?: any } {
  const line = result.stdout.split('\n').find((l) => l.startsWith('{"command"'));
  assert.ok(line, `no JSON outcome in:\n${result.stdout}\n${result.stderr}`);
  return JSON.parse(line);
}

async function ok(job: WrittenJob, list: string): Promise<ToolResult> {
  const result = await tool(job, list);
  assert.equal(result.code, 0, `${list}:\n${result.stdout}\n${result.stderr}`);
  return result;
}

/** SQL: the column holds the name in `named.n` or starts with it and an underscore. */
const mine = (column: string) =>
  `(${column} = named.n OR left(${column}, length(named.n) + 1) = named.n || '_')`;

/**
 * A job's records in the metadata database (named <name> or <name>_...), each with its row version
 * (xmin): a record rewritten with the same values shows too. Its sync by name, relgroup and dbgroup
 * only (the daemon updates the rest of its row).
 */
async function recordsOf(name: string): Promise<string[]> {
  const rows = await query<{ r: string }>(
    a,
    'bucardo',
    `WITH named(n) AS (SELECT $1::text)
     SELECT 'db ' || row_to_json(d)::text AS r FROM (SELECT xmin::text AS x, * FROM bucardo.db) d, named WHERE ${mine('name')}
     UNION ALL SELECT 'dbgroup ' || row_to_json(g)::text FROM (SELECT xmin::text AS x, name FROM bucardo.dbgroup) g, named WHERE ${mine('name')}
     UNION ALL SELECT 'dbmap ' || row_to_json(m)::text FROM (SELECT xmin::text AS x, db, dbgroup, role FROM bucardo.dbmap) m, named
                WHERE ${mine('dbgroup')} OR ${mine('db')}
     UNION ALL SELECT 'sync ' || row_to_json(s)::text FROM (SELECT name, herd, dbs FROM bucardo.sync) s, named WHERE ${mine('name')}
     UNION ALL SELECT 'relgroup ' || row_to_json(h)::text FROM (SELECT xmin::text AS x, name FROM bucardo.herd) h, named WHERE ${mine('name')}
     UNION ALL SELECT 'herdmap ' || row_to_json(hm)::text FROM (SELECT xmin::text AS x, herd, goat FROM bucardo.herdmap) hm, named
                WHERE ${mine('herd')}
     UNION ALL SELECT 'goat ' || row_to_json(t)::text FROM (SELECT xmin::text AS x, id, db, schemaname, tablename FROM bucardo.goat) t, named
                WHERE ${mine('db')}
     ORDER BY 1`,
    [name],
  ).catch(() => []);
  return rows.map((row) => row.r);
}

async function sameRows(
  source: [ClusterInfo, string],
  target: [ClusterInfo, string],
  what: string,
  timeoutMs = 60_000,
): Promise<void> {
  await sameRowsEventually(
    source,
    target,
    ['public.orders', 'public.lines'],
    timeoutMs,
    `${what}: ${target[1]} to match ${source[1]}`,
  );
}

async function sources(cluster: ClusterInfo, db: string): Promise<string[]> {
  const rows = await query<{ src: string }>(cluster, db, 'SELECT DISTINCT src FROM public.orders ORDER BY 1');
  return rows.map((row) => row.src);
}

/**
 * Clients writing multi-statement transactions to a primary until stopped, as an application would: a
 * transaction that fails (a deadlock with a trigger being created) is rolled back and the next one goes
 * on. Returns the commits.
 */
function writeLoad(cluster: ClusterInfo, db: string, src: string, clients: number, firstId: number) {
  let stopping = false;
  const workers = Array.from({ length: clients }, async (_, worker) => {
    const client = new pg.Client({
      host: cluster.host,
      port: cluster.port,
      user: 'postgres',
      database: db,
      statement_timeout: 30_000,
    });
    await client.connect();
    let commits = 0;
    try {
      for (let i = 0; !stopping; i++) {
        const id = firstId + worker * 100_000 + i;
        try {
          await client.query('BEGIN');
          await client.query('INSERT INTO public.orders VALUES ($1, $2, 0)', [id, src]);
          await client.query('INSERT INTO public.lines VALUES ($1, 1, 1), ($1, 2, 2)', [id]);
          await client.query('UPDATE public.orders SET n = n + 1 WHERE id = $1', [
            1 + ((i * 7 + worker) % 300),
          ]);
          await client.query('DELETE FROM public.lines WHERE order_id = $1 AND no = 2', [id - 1]);
          await client.query('COMMIT');
          commits += 1;
        } catch {
          await client.query('ROLLBACK').catch(() => undefined);
        }
        // Paced (CONTRIBUTING.md): the test needs writes throughout, not as many as the cores allow.
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await client.end().catch(() => undefined);
    }
    return commits;
  });
  return {
    stop: async (): Promise<number> => {
      stopping = true;
      return (await Promise.all(workers)).reduce((sum, n) => sum + n, 0);
    },
  };
}

test('a second job beside a finished one: the first job keeps its records, the second finishes from its verify horizon', async (t) => {
  await freshDatabase(a, 'sm1_a', SCHEMA + rowsOf('one'));
  await freshDatabase(b, 'sm1_b', SCHEMA);
  await freshDatabase(a, 'sm2_a', SCHEMA + rowsOf('two'));
  await freshDatabase(b, 'sm2_b', SCHEMA);
  const common = { plugins: ['bucardo', 'cutover'], metadata: a, extra: CUTOVER };
  const one = writeJobConfig({
    name: 'sm_one',
    ...common,
    primary: { cluster: a, dbname: 'sm1_a' },
    secondary: { cluster: b, dbname: 'sm1_b' },
  });
  const two = writeJobConfig({
    name: 'sm_two',
    ...common,
    primary: { cluster: a, dbname: 'sm2_a' },
    secondary: { cluster: b, dbname: 'sm2_b' },
  });
  t.after(async () => {
    await forgetJob(two, a);
    await forgetJob(one, a);
    for (const [cluster, db] of [
      [a, 'sm1_a'],
      [b, 'sm1_b'],
      [a, 'sm2_a'],
      [b, 'sm2_b'],
    ] as const)
      await dropDatabase(cluster, db).catch(() => undefined);
  });

  await ok(
    one,
    'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy cutover.verify cutover.finish --writes-stopped',
  );
  const first = await recordsOf('sm_one');
  assert.ok(
    first.some((r) => r.startsWith('db ') && r.includes('"name":"sm_one_primary"')),
    first.join('\n'),
  );
  assert.ok(
    first.some((r) => r.startsWith('dbgroup ') && r.includes('"name":"sm_one"')),
    first.join('\n'),
  );

  // Job two is installed beside it: job one is listed, and nothing of it is "updated" (the list's first
  // JSON outcome is the install's).
  const installed = outcome(
    await ok(two, 'bucardo.install --json bucardo.add_triggers bucardo.start bucardo.wait_for_copy'),
  );
  assert.deepEqual(
    installed.data.otherJobs.map((o: { name: string }) => o.name),
    ['sm_one'],
    'bucardo.install lists the job already in the metadata database',
  );
  assert.ok(
    !installed.data.steps.some((s: string) => /updated/.test(s)),
    `nothing of another job is updated: ${installed.data.steps.join('; ')}`,
  );
  const syncs = await query<{ name: string; dbs: string }>(
    a,
    'bucardo',
    'SELECT name, dbs FROM bucardo.sync ORDER BY 1',
  );
  assert.deepEqual(
    syncs,
    [{ name: 'sm_two', dbs: 'sm_two' }],
    "job two's sync replicates to its own dbgroup",
  );

  await query(
    a,
    'sm2_a',
    "UPDATE public.orders SET n = n + 1 WHERE id <= 20; INSERT INTO public.orders VALUES (1001, 'two', 1);",
  );
  await sameRows([a, 'sm2_a'], [b, 'sm2_b'], 'the writes before the verify');
  const verified = outcome(await ok(two, 'cutover.verify --json'));
  assert.ok(
    verified.data.horizon?.from,
    `the verify recorded a horizon: ${JSON.stringify(verified.data.horizon)}`,
  );
  const held = await query<{ target: string }>(
    a,
    'sm2_a',
    "SELECT DISTINCT target FROM bucardo.bucardo_delta_targets WHERE target LIKE 'cutover hold%'",
  );
  assert.deepEqual(held, [{ target: 'cutover hold sm_two' }], "the hold is on job two's own tables");

  // Changes after the verify: the final check compares those keys only, not a full verify.
  await query(
    a,
    'sm2_a',
    'UPDATE public.orders SET n = n + 10 WHERE id BETWEEN 101 AND 105; DELETE FROM public.lines WHERE order_id = 200;',
  );
  const finished = outcome(await ok(two, 'cutover.finish --writes-stopped --json'));
  assert.ok(
    finished.data.finalCheck,
    `a final check of the changes, not a full verify: ${finished.data.steps.join('; ')}`,
  );
  assert.ok(
    !finished.data.steps.some((s: string) => /full strict verify/.test(s)),
    finished.data.steps.join('; '),
  );
  assert.ok(
    finished.data.finalCheck.keysCompared >= 1 && finished.data.finalCheck.keysCompared < 50,
    `only the keys changed since the verify were compared (${finished.data.finalCheck.keysCompared} of 600 rows)`,
  );
  await sameRows([a, 'sm2_a'], [b, 'sm2_b'], 'job two after its cutover', 5000);
  assert.deepEqual(await sources(b, 'sm1_b'), ['one'], "job one's secondary holds only its own rows");
  assert.deepEqual(await sources(b, 'sm2_b'), ['two'], "job two's secondary holds only its own rows");
  assert.deepEqual(await recordsOf('sm_one'), first, "job one's records are untouched");

  // Uninstalling job two keeps the metadata database and every record of job one.
  await ok(two, 'bucardo.uninstall');
  assert.deepEqual(await recordsOf('sm_two'), [], "job two's records are gone");
  assert.deepEqual(await recordsOf('sm_one'), first, "job one's records are still untouched");
  await ok(one, 'bucardo.uninstall');
  assert.deepEqual(await query(a, 'postgres', "SELECT 1 FROM pg_database WHERE datname = 'bucardo'"), []);
});

test('a second job installed and started while the first replicates under load: each secondary gets exactly its own rows', async (t) => {
  await freshDatabase(a, 'sl1_a', SCHEMA + rowsOf('one'));
  await freshDatabase(b, 'sl1_b', SCHEMA);
  await freshDatabase(a, 'sl2_a', SCHEMA + rowsOf('two'));
  await freshDatabase(b, 'sl2_b', SCHEMA);
  // Kicked by the kicker once a second at most: with per-commit kick triggers Bucardo would run each
  // sync back to back for as long as the loads write, and what is asserted is where the rows go.
  const kicking = { asynchronousKicking: true, kickInterval: 1 };
  const one = writeJobConfig({
    name: 'sl_one',
    metadata: a,
    primary: { cluster: a, dbname: 'sl1_a' },
    secondary: { cluster: b, dbname: 'sl1_b' },
    ...kicking,
    bucardoSettings: { kick_interval_busy: 1 },
  });
  // One daemon serves every sync of a metadata database: job two shares job one's pid dir.
  const two = writeJobConfig({
    name: 'sl_two',
    metadata: a,
    primary: { cluster: a, dbname: 'sl2_a' },
    secondary: { cluster: b, dbname: 'sl2_b' },
    ...kicking,
    bucardoSettings: { pid_dir: one.pidDir, kick_interval_busy: 1 },
  });
  const loads: { stop: () => Promise<number> }[] = [];
  t.after(async () => {
    for (const load of loads) await load.stop().catch(() => 0);
    await forgetJob(one, a);
    for (const [cluster, db] of [
      [a, 'sl1_a'],
      [b, 'sl1_b'],
      [a, 'sl2_a'],
      [b, 'sl2_b'],
    ] as const)
      await dropDatabase(cluster, db).catch(() => undefined);
  });

  await ok(one, 'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy');
  const loadOne = writeLoad(a, 'sl1_a', 'one', 3, 1_000_000);
  loads.push(loadOne);
  const first = await recordsOf('sl_one');

  const installed = outcome(await ok(two, 'bucardo.install --json'));
  assert.deepEqual(
    installed.data.otherJobs.map((o: { name: string; syncs: string[] }) => [o.name, o.syncs]),
    [['sl_one', ['sl_one']]],
  );
  await ok(two, 'bucardo.add_triggers');
  // Writes on job two's primary too while its initial copy runs (not during its trigger installation:
  // Bucardo would be chosen as a deadlock victim as often as the application).
  const loadTwo = writeLoad(a, 'sl2_a', 'two', 2, 5_000_000);
  loads.push(loadTwo);
  await ok(two, 'bucardo.start bucardo.wait_for_copy');
  // A second more of writes on both primaries with both syncs running: each second more only adds
  // sync runs that Bucardo runs back to back.
  await new Promise((r) => setTimeout(r, 1000));
  const commits = [await loadOne.stop(), await loadTwo.stop()];
  assert.ok(
    commits.every((n) => n > 10),
    `both primaries took writes throughout (${commits.join(', ')} commits)`,
  );

  await sameRows([a, 'sl1_a'], [b, 'sl1_b'], 'job one under load');
  await sameRows([a, 'sl2_a'], [b, 'sl2_b'], 'job two under load');
  assert.deepEqual(await sources(b, 'sl1_b'), ['one'], "job one's secondary holds none of job two's rows");
  assert.deepEqual(await sources(b, 'sl2_b'), ['two'], "job two's secondary holds none of job one's rows");
  assert.deepEqual(
    await query(a, 'bucardo', 'SELECT name, dbs FROM bucardo.sync ORDER BY 1'),
    [
      { name: 'sl_one', dbs: 'sl_one' },
      { name: 'sl_two', dbs: 'sl_two' },
    ],
    'each sync replicates to its own dbgroup',
  );
  assert.deepEqual(await recordsOf('sl_one'), first, "job one's records are untouched");

  await ok(two, 'bucardo.uninstall');
  await ok(one, 'bucardo.uninstall');
});

// One job beside both: a job with the old names is installed, used and uninstalled without touching it,
// then a config copied from it is refused (a job's install costs some 4 s of CPU: one, not two).
test('a job installed with the old names keeps working for status and is removed by bucardo.uninstall; a config that would change another job’s records is refused, naming that job, and nothing is created', async (t) => {
  await freshDatabase(a, 'lg_a', SCHEMA + rowsOf('old', 100));
  await freshDatabase(b, 'lg_b', SCHEMA);
  await freshDatabase(a, 'nw_a', SCHEMA + rowsOf('new', 10));
  await freshDatabase(b, 'nw_b', SCHEMA);
  await freshDatabase(a, 'sr2_a', SCHEMA + rowsOf('two', 10));
  await freshDatabase(b, 'sr2_b', SCHEMA);
  const legacy = writeJobConfig({
    name: 'sm_legacy',
    metadata: a,
    primary: { cluster: a, dbname: 'lg_a' },
    secondary: { cluster: b, dbname: 'lg_b' },
  });
  const other = writeJobConfig({
    name: 'sm_new',
    metadata: a,
    primary: { cluster: a, dbname: 'nw_a' },
    secondary: { cluster: b, dbname: 'nw_b' },
  });
  // A config copied for another database pair, its replication name left as it was.
  const copied = writeJobConfig({
    name: 'sm_new',
    metadata: a,
    primary: { cluster: a, dbname: 'sr2_a' },
    secondary: { cluster: b, dbname: 'sr2_b' },
  });
  t.after(async () => {
    await forgetJob(legacy, a);
    for (const [cluster, db] of [
      [a, 'lg_a'],
      [b, 'lg_b'],
      [a, 'nw_a'],
      [b, 'nw_b'],
      [a, 'sr2_a'],
      [b, 'sr2_b'],
    ] as const)
      await dropDatabase(cluster, db).catch(() => undefined);
  });
  // Another job installed in the same metadata database (this also creates it).
  await ok(other, 'bucardo.install');
  const others = await recordsOf('sm_new');

  // The legacy job, recorded as the console did before the records carried the job's name. A dbgroup
  // of the same two databases is already there (as another such job would have left it): Bucardo's
  // `add sync ... dbs=` takes it instead of making one named after the sync (how-bucardo-behaves.md §20).
  const [job] = (await Session.load([legacy.file])).jobs;
  const bucardo = (args: string[]) => runBucardo(job!, args);
  for (const [name, cluster, db] of [
    ['primary_db', a, 'lg_a'],
    ['secondary_db', b, 'lg_b'],
  ] as const)
    await bucardo([
      'add',
      'db',
      name,
      `dbname=${db}`,
      `host=${cluster.host}`,
      `port=${cluster.port}`,
      'user=postgres',
    ]);
  await bucardo(['add', 'table', 'public.orders', 'public.lines', 'db=primary_db', 'relgroup=sm_legacy']);
  await bucardo(['add', 'sequence', 'public.order_no', 'db=primary_db', 'relgroup=sm_legacy']);
  await bucardo(['add', 'dbgroup', 'old_pair', 'primary_db:source', 'secondary_db:target']);
  await bucardo([
    'add',
    'sync',
    'sm_legacy',
    'relgroup=sm_legacy',
    'dbs=primary_db:source,secondary_db:target',
    'onetimecopy=2',
    'autokick=1',
  ]);
  assert.deepEqual(
    await query(a, 'bucardo', "SELECT dbs FROM bucardo.sync WHERE name = 'sm_legacy'"),
    [{ dbs: 'old_pair' }],
    'Bucardo reused the existing dbgroup of the same databases',
  );

  await ok(legacy, 'bucardo.start bucardo.wait_for_copy');
  await query(
    a,
    'lg_a',
    "INSERT INTO public.orders VALUES (5000, 'old', 1); UPDATE public.orders SET n = 9 WHERE id = 1;",
  );
  await sameRows([a, 'lg_a'], [b, 'lg_b'], 'the legacy job');
  // Bucardo marks a change applied (track row) just after the secondary committed it: a moment later.
  const status = await waitFor(
    async () => {
      const seen = outcome(await tool(legacy, 'bucardo.status --json'));
      return seen.data.state === 'caught up' && seen;
    },
    30_000,
    'bucardo.status of the legacy job to say caught up',
  );
  assert.equal(status.data.sync.exists, true, JSON.stringify(status.data));
  assert.ok(status.data.sync.lastGood, 'a good run is reported');
  const targets = [...new Set(status.data.pending.map((p: { target: string }) => p.target))];
  assert.deepEqual(targets, ['dbgroup old_pair'], 'the backlog is read for the dbgroup the sync really uses');
  assert.equal(status.data.pendingTotal, 0);

  // Uninstalling removes exactly its records; the other job's stay, and so does the metadata database.
  await ok(legacy, 'bucardo.uninstall');
  const left = await query<{ kind: string; name: string }>(
    a,
    'bucardo',
    `SELECT 'db' AS kind, name FROM bucardo.db UNION ALL SELECT 'dbgroup', name FROM bucardo.dbgroup
     UNION ALL SELECT 'sync', name FROM bucardo.sync UNION ALL SELECT 'relgroup', name FROM bucardo.herd ORDER BY 1, 2`,
  );
  assert.deepEqual(left, [
    { kind: 'db', name: 'sm_new_primary' },
    { kind: 'db', name: 'sm_new_secondary' },
    { kind: 'relgroup', name: 'sm_new' },
  ]);
  assert.deepEqual(await recordsOf('sm_new'), others, "the other job's records are untouched");
  assert.deepEqual(
    await query(a, 'lg_a', "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'bucardo%'"),
    [],
    'no trigger of the legacy job is left on its primary',
  );

  // The other job with its triggers and its sync now (added after the legacy job's daemon is gone, which
  // would have run that sync too): a config copied from it for another database pair is refused by every
  // command that would write records.
  await ok(other, 'bucardo.add_triggers');
  const records = async () =>
    JSON.stringify(
      await query(
        a,
        'bucardo',
        `SELECT (SELECT json_agg(d ORDER BY name) FROM (SELECT xmin::text AS x, * FROM bucardo.db) d) AS db,
                (SELECT json_agg(g ORDER BY name) FROM (SELECT xmin::text AS x, name FROM bucardo.dbgroup) g) AS dbgroup,
                (SELECT json_agg(m ORDER BY db) FROM (SELECT xmin::text AS x, db, dbgroup, role FROM bucardo.dbmap) m) AS dbmap,
                (SELECT json_agg(s ORDER BY name) FROM (SELECT xmin::text AS x, name, herd, dbs FROM bucardo.sync) s) AS sync,
                (SELECT json_agg(h ORDER BY name) FROM (SELECT xmin::text AS x, name FROM bucardo.herd) h) AS relgroup,
                (SELECT json_agg(g ORDER BY id) FROM (SELECT xmin::text AS x, id, db, tablename FROM bucardo.goat) g) AS goat`,
      ),
    );
  const before = await records();

  for (const command of ['bucardo.install', 'bucardo.add_triggers', 'bucardo.uninstall']) {
    const refused = await tool(copied, `${command} --json`);
    assert.equal(refused.code, 1, `${command}:\n${refused.stdout}\n${refused.stderr}`);
    const error = outcome(refused).error ?? '';
    assert.match(
      error,
      new RegExp(
        `^${command.replace('.', '\\.')} would change Bucardo records in the metadata database bucardo that another job uses`,
      ),
    );
    assert.match(
      error,
      /job sm_new \([^)]*\/nw_a → [^)]*\/nw_b\)/,
      `the other job is named by its databases: ${error}`,
    );
    assert.match(
      error,
      /database sm_new_primary \(it points at [^ ]*\/nw_a, not at this config's primary [^ ]*\/sr2_a/,
    );
    assert.match(error, /Nothing was changed\. Another job already uses the replication name sm_new/);
    assert.equal(await records(), before, `${command} changed no record`);
  }
  assert.deepEqual(
    await query(a, 'sr2_a', "SELECT 1 FROM pg_namespace WHERE nspname = 'bucardo'"),
    [],
    'nothing was created on the copied config’s primary',
  );
  const triggers = await query(a, 'nw_a', "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'bucardo%'");
  assert.ok(triggers.length >= 2, "the other job's triggers are still there");
  await ok(other, 'bucardo.uninstall');
});
