// The replication scope on real clusters: the filter lists combine with AND, so tables the operator
// never named get no trigger; bucardo.scope and bucardo.install say what is in and why the rest is out;
// copy_data: always never empties secondary tables that hold rows without a yes.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ClusterInfo } from '../../src/sandbox/cluster.js';
import {
  clusters,
  dropDatabase,
  forgetJob,
  freshDatabase,
  query,
  runTool,
  writeJobConfig,
} from '../support/harness.js';
import { KEYS, PtySession } from '../support/pty.js';

const PRIMARY = 'scope_a';
const SECONDARY = 'scope_b';
const SCHEMA = `
CREATE SCHEMA sales;
CREATE SCHEMA s2;
CREATE TABLE sales.orders (id int PRIMARY KEY, val text);
CREATE TABLE sales.items (id int PRIMARY KEY, val text);
CREATE TABLE sales.events (id int, day date, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE sales.events_2025 PARTITION OF sales.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE public.orders (id int PRIMARY KEY, val text);
CREATE TABLE s2.t9 (id int PRIMARY KEY, val text);
CREATE SEQUENCE sales.counter;
`;
const DATA = `
INSERT INTO sales.orders SELECT g, 'v' FROM generate_series(1, 50) g;
INSERT INTO public.orders SELECT g, 'v' FROM generate_series(1, 50) g;
ANALYZE sales.orders;
`;
/** The issue's case: namespace_include [sales] and table_include [orders]; plus a partitioned table and a typo. */
const FILTERS = { namespace_include: ['sales'], table_include: ['orders', 'events', 'ordres'] };

const PROMPT = /Enter the command you wish to run here, or type "exit": $/;

let a: ClusterInfo;
let b: ClusterInfo;

before(async () => {
  ({ a, b } = await clusters());
  await dropDatabase(a, 'bucardo');
});

after(async () => {
  await dropDatabase(a, 'bucardo').catch(() => undefined);
  await dropDatabase(a, PRIMARY).catch(() => undefined);
  await dropDatabase(b, SECONDARY).catch(() => undefined);
});

/** Tables of the primary carrying a trigger (Bucardo's own schema aside), as "schema.table". */
async function triggeredTables(): Promise<string[]> {
  const rows = await query<{ t: string }>(
    a,
    PRIMARY,
    `SELECT DISTINCT n.nspname || '.' || c.relname AS t
       FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE NOT tg.tgisinternal AND n.nspname <> 'bucardo' ORDER BY 1`,
  );
  return rows.map((row) => row.t);
}

async function bucardoSchemaOnPrimary(): Promise<boolean> {
  return (await query(a, PRIMARY, "SELECT 1 FROM pg_namespace WHERE nspname = 'bucardo'")).length > 0;
}

async function syncs(): Promise<string[]> {
  return (await query<{ name: string }>(a, 'bucardo', 'SELECT name FROM bucardo.sync ORDER BY 1')).map(
    (row) => row.name,
  );
}

function job(name: string, copyData: 'always' | 'empty', plugins = ['bucardo']) {
  return writeJobConfig({
    name,
    plugins,
    primary: { cluster: a, dbname: PRIMARY },
    secondary: { cluster: b, dbname: SECONDARY },
    copyData,
    replicationObjects: FILTERS,
  });
}

test('bucardo.scope shows what is in, why the rest is out and the entry that matches nothing, changing nothing', async () => {
  await freshDatabase(a, PRIMARY, `${SCHEMA}${DATA}`);
  await freshDatabase(b, SECONDARY, SCHEMA);
  const scope = job('scope_show', 'empty');
  const run = await runTool(['-c', scope.file, '-l', 'bucardo.scope']);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  const out = run.stdout;
  assert.match(
    out,
    /Scope on the primary \(namespace_include \[sales\] AND table_include \[orders, events, ordres\]\):/,
  );
  assert.match(
    out,
    /In scope: 2 table\(s\) \(1 of them leaf partitions\), 0 sequence\(s\), 0 materialized view\(s\)/,
  );
  assert.match(out, /table\s+sales\.orders\s+[\d.]+ kB\s+~50 rows/);
  assert.match(out, /partition\s+sales\.events_2025 .*\(partition of sales\.events\)/);
  assert.match(out, /public\.orders: schema public not in namespace_include/);
  assert.match(out, /s2\.t9: schema s2 not in namespace_include/);
  assert.match(out, /sales\.items: not in table_include/);
  assert.match(out, /sales\.counter: not in table_include/);
  assert.match(
    out,
    /table_include 'ordres': matches no table, sequence or materialized view on the primary \(did you mean 'orders'\?\)/,
  );
  assert.match(
    out,
    /2 table\(s\) and 0 sequence\(s\) in scope, 4 relation\(s\) left out; 1 filter entry to check \(above\)\. Nothing was changed\./,
  );
  assert.deepEqual(await triggeredTables(), []);
  assert.equal(await bucardoSchemaOnPrimary(), false);
});

test('install shows the scope first; add_triggers puts triggers only on the tables both lists select', async (t) => {
  await freshDatabase(a, PRIMARY, `${SCHEMA}${DATA}`);
  await freshDatabase(b, SECONDARY, SCHEMA);
  const scoped = job('scope_and', 'empty');
  t.after(() => forgetJob(scoped, a));
  const run = await runTool(['-c', scoped.file, '-l', 'bucardo.install bucardo.add_triggers']);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.ok(
    run.stdout.indexOf('Scope on the primary') < run.stdout.indexOf('Preflight:'),
    `the scope comes first:\n${run.stdout}`,
  );
  assert.match(run.stdout, /Check: every table in scope recorded \(2\) Pass\./);
  assert.deepEqual(
    await triggeredTables(),
    ['sales.events_2025', 'sales.orders'],
    'public.orders, s2.t9 and sales.items have no trigger',
  );
  const recorded = await query<{ t: string }>(
    a,
    'bucardo',
    "SELECT schemaname || '.' || tablename AS t FROM bucardo.goat ORDER BY 1",
  );
  assert.deepEqual(
    recorded.map((row) => row.t),
    ['sales.events_2025', 'sales.orders'],
  );
  const gone = await runTool(['-c', scoped.file, '-l', 'bucardo.uninstall']);
  assert.equal(gone.code, 0, gone.stdout + gone.stderr);
});

test('copy_data always with rows on the secondary: a list refuses without --yes, the shell asks (default no), nothing is created; --yes proceeds', async (t) => {
  await freshDatabase(a, PRIMARY, `${SCHEMA}${DATA}`);
  await freshDatabase(
    b,
    SECONDARY,
    `${SCHEMA} INSERT INTO sales.orders SELECT g, 'keep' FROM generate_series(1, 3) g;`,
  );
  const always = job('scope_copy', 'always', ['bucardo', 'retry']);
  t.after(() => forgetJob(always, a));
  const installed = await runTool(['-c', always.file, '-l', 'bucardo.install retry.install']);
  assert.equal(installed.code, 0, installed.stdout + installed.stderr);

  for (const command of ['bucardo.add_triggers', 'retry.add_triggers']) {
    const refused = await runTool(['-c', always.file, '-l', command]);
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    const said = refused.stdout + refused.stderr;
    assert.match(
      said,
      /copy_data is always, so Bucardo's initial copy empties 1 secondary table\(s\) that hold rows before copying the primary's into them: sales\.orders \(3 rows\)/,
    );
    assert.match(
      said,
      new RegExp(`Nothing was created\\. If those rows may go, run ${command.replace('.', '\\.')} --yes`),
    );
    assert.deepEqual(await syncs(), [], `${command}: no sync`);
    assert.deepEqual(await triggeredTables(), [], `${command}: no trigger`);
    assert.equal(await bucardoSchemaOnPrimary(), false, `${command}: no bucardo schema on the primary`);
  }

  // The shell asks, and its default is no.
  const shell = new PtySession(['-c', always.file]);
  try {
    let at = await shell.waitFor(PROMPT, 30_000);
    shell.send(`bucardo.add_triggers${KEYS.enter}`);
    at = await shell.waitFor(
      /sales\.orders \(3 rows\)\.\n(.*\n)*.*Empty these 1 secondary table\(s\) and copy the primary's rows into them\?/,
      60_000,
      at,
    );
    shell.send(KEYS.enter);
    at = await shell.waitFor(/Not confirmed\. Nothing was created\./, 30_000, at);
    await shell.waitFor(PROMPT, 10_000, at);
    shell.send(`exit${KEYS.enter}`);
    assert.equal(await shell.exited, 0);
  } finally {
    shell.kill();
  }
  assert.deepEqual(await syncs(), [], 'declined at the prompt: no sync');
  assert.deepEqual(await triggeredTables(), [], 'declined at the prompt: no trigger');

  const confirmed = await runTool(['-c', always.file, '-l', 'bucardo.add_triggers --yes']);
  assert.equal(confirmed.code, 0, confirmed.stdout + confirmed.stderr);
  assert.match(confirmed.stdout, /sales\.orders \(3 rows\); confirmed with --yes/);
  assert.deepEqual(await syncs(), ['scope_copy']);
  assert.deepEqual(await triggeredTables(), ['sales.events_2025', 'sales.orders']);
  assert.equal(
    (await query(b, SECONDARY, 'SELECT 1 FROM sales.orders')).length,
    3,
    'nothing is copied before the daemon starts',
  );
  const gone = await runTool(['-c', always.file, '-l', 'retry.uninstall bucardo.uninstall']);
  assert.equal(gone.code, 0, gone.stdout + gone.stderr);
});
