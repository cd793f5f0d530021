// The whole A→B lifecycle on the real Bucardo daemon, driven as an operator would (list mode),
// with assertions on rows that arrived, triggers present and processes running.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { isProcessAlive, readPidFile } from '../../src/core/process.js';
import type { ClusterInfo } from '../../src/sandbox/cluster.js';
import {
  clusters,
  dropDatabase,
  forgetJob,
  freshDatabase,
  query,
  runTool,
  tableRows,
  waitFor,
  writeJobConfig,
} from '../support/harness.js';

const SCHEMA = `
CREATE SCHEMA sales;
CREATE TABLE public."CamelCase" ("Id" int PRIMARY KEY, "SomeVal" text);
CREATE TABLE public."order items" (id int PRIMARY KEY, qty int);
CREATE TABLE public.t1 (id serial PRIMARY KEY, val text);
CREATE TABLE sales.orders (id bigint PRIMARY KEY, amount numeric(10,2));
CREATE TABLE sales.events (id bigint, day date, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE sales.events_2025 PARTITION OF sales.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE sales.events_2026 PARTITION OF sales.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE public.excluded_log (id int PRIMARY KEY, msg text);
CREATE TABLE public.nopk (x int);
CREATE SEQUENCE public.counter;
`;
const DATA = `
INSERT INTO public."CamelCase" SELECT g, 'v' || g FROM generate_series(1, 100) g;
INSERT INTO public."order items" SELECT g, g * 2 FROM generate_series(1, 100) g;
INSERT INTO public.t1 (val) SELECT 'row ' || g FROM generate_series(1, 200) g;
INSERT INTO sales.orders SELECT g, g + 0.5 FROM generate_series(1, 300) g;
INSERT INTO sales.events SELECT g, DATE '2025-11-01' + g FROM generate_series(1, 120) g;
INSERT INTO public.excluded_log SELECT g, 'm' FROM generate_series(1, 10) g;
SELECT setval('public.counter', 42);
`;
const REPLICATED = [
  'public."CamelCase"',
  'public."order items"',
  'public.t1',
  'sales.orders',
  'sales.events',
];
const EXCLUDE = { table_exclude: ['excluded_log', 'nopk'] };

let a: ClusterInfo;
let b: ClusterInfo;

before(async () => {
  ({ a, b } = await clusters());
});

after(async () => {
  for (const name of ['e2e_a', 'e2e_pre_a', 'copy_a']) await dropDatabase(a, name).catch(() => undefined);
  for (const name of ['e2e_b', 'e2e_pre_b', 'copy_b']) await dropDatabase(b, name).catch(() => undefined);
  await dropDatabase(a, 'bucardo').catch(() => undefined);
});

async function assertSame(table: string): Promise<void> {
  await waitFor(
    async () =>
      JSON.stringify(await tableRows(a, 'e2e_a', table)) ===
      JSON.stringify(await tableRows(b, 'e2e_b', table)),
    20_000,
    `${table} to be identical on both sides`,
  );
}

async function metadataExists(): Promise<boolean> {
  return (await query(a, 'postgres', "SELECT 1 FROM pg_database WHERE datname = 'bucardo'")).length > 0;
}

test('preflight lists a table without a primary key and a table missing on the secondary, and changes nothing', async () => {
  await freshDatabase(a, 'e2e_pre_a', `${SCHEMA} CREATE TABLE public.only_on_a (id int PRIMARY KEY);`);
  await freshDatabase(b, 'e2e_pre_b', SCHEMA);
  const job = writeJobConfig({
    name: 'e2e_pre',
    primary: { cluster: a, dbname: 'e2e_pre_a' },
    secondary: { cluster: b, dbname: 'e2e_pre_b' },
  });
  const result = await runTool(['-c', job.file, '-l', 'bucardo.install']);
  assert.equal(result.code, 1);
  assert.match(
    result.stdout,
    /FAIL every table has a primary key: without a primary key: public\.nopk\n\s+fix: Bucardo identifies rows by primary key: add one .* or exclude these tables/,
  );
  assert.match(
    result.stdout,
    /FAIL every table exists on the secondary: missing on the secondary: public\.only_on_a/,
  );
  assert.match(result.stdout, /nothing was changed/);
  assert.equal(await metadataExists(), false, 'no metadata database was created');
  assert.equal(
    (await query(a, 'e2e_pre_a', "SELECT 1 FROM pg_namespace WHERE nspname = 'bucardo'")).length,
    0,
    'no bucardo schema on the primary',
  );
});

test('A→B: install, add_triggers, start, wait_for_copy, status in one list; changes replicate; every command twice; uninstall leaves nothing', async (t) => {
  await freshDatabase(a, 'e2e_a', `${SCHEMA}${DATA}`);
  await freshDatabase(b, 'e2e_b', SCHEMA);
  const job = writeJobConfig({
    name: 'e2e',
    primary: { cluster: a, dbname: 'e2e_a' },
    secondary: { cluster: b, dbname: 'e2e_b' },
    copyData: 'empty',
    replicationObjects: EXCLUDE,
  });
  t.after(() => forgetJob(job, a));

  const flow = await runTool([
    '-c',
    job.file,
    '-l',
    'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy bucardo.status',
  ]);
  assert.equal(flow.code, 0, flow.stdout + flow.stderr);
  assert.match(
    flow.stdout,
    /Check: every table in scope recorded \(6\) Pass\./,
    'five tables and the leaf partitions, no parent',
  );
  assert.match(flow.stdout, /Check: pid file names a live Bucardo process Pass\./);
  for (const table of REPLICATED) await assertSame(table);
  // bucardo.worker_sleep (default 0.05) replaces Bucardo's 0.2/0.2/0.5 s loop sleeps before the daemon
  // starts, bucardo.purge_interval (default 10) its VAC's 120 s between purges of change records, and
  // bucardo.worker_check_interval (default 2) the 10 s after which a controller restarts a gone worker.
  const sleeps = await query<{ name: string; setting: string }>(
    a,
    'bucardo',
    "SELECT name, setting FROM bucardo.bucardo_config WHERE name IN ('mcp_loop_sleep', 'ctl_sleep', 'kid_sleep', 'vac_sleep', 'vac_run', 'ctl_checkonkids_time') ORDER BY name",
  );
  assert.deepEqual(sleeps, [
    { name: 'ctl_checkonkids_time', setting: '2' },
    { name: 'ctl_sleep', setting: '0.05' },
    { name: 'kid_sleep', setting: '0.05' },
    { name: 'mcp_loop_sleep', setting: '0.05' },
    { name: 'vac_run', setting: '10' },
    { name: 'vac_sleep', setting: '10' },
  ]);
  const [sequence] = await query<{ last_value: string }>(b, 'e2e_b', 'SELECT last_value FROM public.counter');
  assert.equal(sequence!.last_value, '42', 'the sequence was copied');

  // Excluded tables get no trigger and no rows.
  const excludedTriggers = await query(
    a,
    'e2e_a',
    "SELECT tgname FROM pg_trigger WHERE tgrelid IN ('public.excluded_log'::regclass, 'public.nopk'::regclass)",
  );
  assert.deepEqual(excludedTriggers, []);
  assert.equal((await query(b, 'e2e_b', 'SELECT 1 FROM public.excluded_log')).length, 0);
  const triggers = await query<{ tgname: string }>(
    a,
    'e2e_a',
    `SELECT tgname FROM pg_trigger WHERE tgrelid = 'public."CamelCase"'::regclass ORDER BY 1`,
  );
  assert.deepEqual(
    triggers.map((t) => t.tgname),
    ['bucardo_delta', 'bucardo_kick_e2e', 'bucardo_note_trunc_e2e'],
  );

  // INSERT / UPDATE / DELETE arrive, including the mixed-case table, the quoted name and a partition.
  await query(
    a,
    'e2e_a',
    `
    INSERT INTO public."CamelCase" VALUES (1001, 'new');
    UPDATE public."CamelCase" SET "SomeVal" = 'changed' WHERE "Id" <= 10;
    DELETE FROM public."order items" WHERE id > 90;
    INSERT INTO sales.events VALUES (999, DATE '2026-03-01');
    UPDATE sales.orders SET amount = 0 WHERE id % 7 = 0;
    DELETE FROM public.t1 WHERE id < 20;`,
  );
  for (const table of REPLICATED) await assertSame(table);

  // Stopped daemon: changes accumulate and status reports them as pending, with their age.
  const stop = await runTool(['-c', job.file, '-l', 'bucardo.stop']);
  assert.equal(stop.code, 0, stop.stdout + stop.stderr);
  assert.equal(existsSync(path.join(job.pidDir, 'bucardo.mcp.pid')), false);
  await query(a, 'e2e_a', "INSERT INTO public.t1 (val) SELECT 'while stopped' FROM generate_series(1, 5)");
  const stopped = await runTool(['-c', job.file, '-l', 'bucardo.status --json']);
  const stoppedStatus = JSON.parse(stopped.stdout.trim().split('\n')[0]!) as {
    data: { pendingTotal: number; verdict: string; daemon: { running: boolean } };
  };
  assert.equal(stoppedStatus.data.daemon.running, false);
  assert.ok(stoppedStatus.data.pendingTotal >= 5, `pending ${stoppedStatus.data.pendingTotal}`);
  assert.match(stoppedStatus.data.verdict, /^daemon stopped: \d+ change\(s\) pending, oldest \d+ s$/);

  const start = await runTool(['-c', job.file, '-l', 'bucardo.start']);
  assert.equal(start.code, 0, start.stdout + start.stderr);
  await assertSame('public.t1');
  const caughtUp = await waitFor(
    async () => {
      const status = await runTool(['-c', job.file, '-l', 'bucardo.status --json']);
      const parsed = JSON.parse(status.stdout.trim().split('\n')[0]!) as { data: { verdict: string } };
      return parsed.data.verdict === 'caught up' ? parsed : undefined;
    },
    20_000,
    'status to say caught up',
  );
  assert.equal(caughtUp.data.verdict, 'caught up');

  // Every command a second time does no harm.
  const again = await runTool([
    '-c',
    job.file,
    '-l',
    'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy bucardo.reload bucardo.change_config log_level=verbose bucardo.status',
  ]);
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.match(again.stdout, /already exists/);
  await query(a, 'e2e_a', "INSERT INTO public.t1 (val) VALUES ('after the second round')");
  await assertSame('public.t1');

  // The loop sleeps and purge interval belong to the job's config: change_config would be overwritten at the next
  // start.
  const sleepChange = await runTool(['-c', job.file, '-l', 'bucardo.change_config kid_sleep=1']);
  assert.equal(sleepChange.code, 1);
  assert.match(
    sleepChange.stderr,
    /kid_sleep is set by bucardo\.start from bucardo\.worker_sleep .* Set bucardo\.worker_sleep in the job's config instead/,
  );
  assert.deepEqual(
    await query(a, 'bucardo', "SELECT setting FROM bucardo.bucardo_config WHERE name = 'kid_sleep'"),
    [{ setting: '0.05' }],
  );

  const refused = await runTool(['-c', job.file, '-l', 'bucardo.drop_triggers']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /is running: dropping its triggers now would silently stop capturing changes/);

  const restart = await runTool(['-c', job.file, '-l', 'bucardo.restart']);
  assert.equal(restart.code, 0, restart.stdout + restart.stderr);
  const mcp = readPidFile(path.join(job.pidDir, 'bucardo.mcp.pid'));
  assert.ok(mcp && isProcessAlive(mcp));

  for (let round = 0; round < 2; round++) {
    const uninstall = await runTool(['-c', job.file, '-l', 'bucardo.uninstall']);
    assert.equal(uninstall.code, 0, uninstall.stdout + uninstall.stderr);
  }
  assert.equal(await metadataExists(), false);
  assert.equal((await query(a, 'e2e_a', "SELECT 1 FROM pg_namespace WHERE nspname = 'bucardo'")).length, 0);
  assert.deepEqual(await query(a, 'e2e_a', "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'bucardo%'"), []);
  assert.equal(existsSync(path.join(job.pidDir, 'bucardo.mcp.pid')), false);
  assert.ok(!isProcessAlive(mcp!), 'the daemon has exited');
});

test('copy_data never / always / empty, with the asynchronous kicker', async (t) => {
  const copySchema =
    'CREATE TABLE public.full_src (id int PRIMARY KEY, v text); CREATE TABLE public.target_has_rows (id int PRIMARY KEY, v text);';
  for (const mode of ['never', 'always', 'empty'] as const) {
    await freshDatabase(
      a,
      'copy_a',
      `${copySchema} INSERT INTO public.full_src SELECT g, 'a' FROM generate_series(1, 50) g; INSERT INTO public.target_has_rows SELECT g, 'a' FROM generate_series(1, 20) g;`,
    );
    await freshDatabase(
      b,
      'copy_b',
      `${copySchema} INSERT INTO public.target_has_rows VALUES (500, 'only on b');`,
    );
    const job = writeJobConfig({
      name: `copy_${mode}`,
      primary: { cluster: a, dbname: 'copy_a' },
      secondary: { cluster: b, dbname: 'copy_b' },
      copyData: mode,
      asynchronousKicking: true,
    });
    t.after(() => forgetJob(job, a));
    // always empties target_has_rows on the secondary: a list needs --yes for that (docs/scope.md).
    const yes = mode === 'always' ? ' --yes' : '';
    const flow = await runTool([
      '-c',
      job.file,
      '-l',
      `bucardo.install bucardo.add_triggers${yes} bucardo.start bucardo.wait_for_copy`,
    ]);
    assert.equal(flow.code, 0, `${mode}: ${flow.stdout}${flow.stderr}`);
    if (mode === 'always')
      assert.match(flow.stdout, /public\.target_has_rows \(1 rows\); confirmed with --yes/);
    assert.match(flow.stdout, /Check: exactly one live kicker for this job Pass\./);
    const kickTriggers = await query(
      a,
      'copy_a',
      "SELECT 1 FROM pg_trigger WHERE tgname LIKE 'bucardo_kick%'",
    );
    assert.equal(kickTriggers.length, 0, 'asynchronous kicking: no per-commit kick triggers');

    const count = async (table: string) =>
      Number((await query<{ n: string }>(b, 'copy_b', `SELECT count(*) AS n FROM public.${table}`))[0]!.n);
    if (mode === 'never') {
      assert.equal(await count('full_src'), 0, 'never: nothing copied');
      assert.equal(await count('target_has_rows'), 1);
    } else if (mode === 'always') {
      assert.equal(await count('full_src'), 50);
      assert.deepEqual(
        (await query<{ id: number }>(b, 'copy_b', 'SELECT id FROM public.target_has_rows ORDER BY id')).map(
          (r) => r.id,
        ),
        Array.from({ length: 20 }, (_, i) => i + 1),
        "always: the target was replaced by the primary's rows",
      );
    } else {
      assert.equal(await count('full_src'), 50, 'empty: the empty table was copied');
      assert.deepEqual(
        (await query<{ id: number }>(b, 'copy_b', 'SELECT id FROM public.target_has_rows')).map((r) => r.id),
        [500],
        'empty: the non-empty target was not copied',
      );
    }
    // New changes arrive through the kicker in every mode.
    await query(a, 'copy_a', "INSERT INTO public.full_src VALUES (1000, 'new')");
    await waitFor(
      async () => (await query(b, 'copy_b', 'SELECT 1 FROM public.full_src WHERE id = 1000')).length === 1,
      15_000,
      `${mode}: the new row to arrive`,
    );
    const uninstall = await runTool(['-c', job.file, '-l', 'bucardo.uninstall']);
    assert.equal(uninstall.code, 0, uninstall.stdout + uninstall.stderr);
    assert.match(uninstall.stdout, /Check: no kicker running Pass\.|Check: daemon not running Pass\./);
  }
});

test('commands before install fail with the next step named, and the list stops there', async () => {
  await dropDatabase(a, 'bucardo');
  await freshDatabase(a, 'e2e_pre_a', SCHEMA);
  const job = writeJobConfig({
    name: 'e2e_early',
    primary: { cluster: a, dbname: 'e2e_pre_a' },
    secondary: { cluster: b, dbname: 'e2e_pre_b' },
  });
  const result = await runTool(['-c', job.file, '-l', 'bucardo.start bucardo.status']);
  assert.equal(result.code, 1);
  assert.match(
    result.stderr,
    /Bucardo is not installed for e2e_early: the metadata database bucardo does not exist\. Run bucardo\.install/,
  );
  assert.match(result.stdout, /not run: bucardo\.status/);
});
