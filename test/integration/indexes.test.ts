// The indexes plugin against real clusters and a real Bucardo onetimecopy: threshold parsing, what is
// dropped and what stays (primary keys, foreign-key-referenced and partition indexes), an interrupted
// rebuild that leaves no invalid index, a rebuild that waits for the copy, and the cascade gate.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { PluginCatalog } from '../../src/core/plugin.js';
import type { ClusterInfo } from '../../src/sandbox/cluster.js';
import { parseSize } from '../../plugins/indexes/size.js';
import type { IndexSettings } from '../../plugins/indexes/settings.js';
import {
  clusters,
  dropDatabase,
  FIXTURE_PLUGINS,
  freshDatabase,
  query,
  ROOT,
  runTool,
  tableRows,
  tempDir,
  waitFor,
  writeJobConfig,
  type ToolResult,
} from '../support/harness.js';

const SCHEMA = `
CREATE SCHEMA "Sales Data";
CREATE TABLE public.customers (id int PRIMARY KEY, email text NOT NULL, region int, CONSTRAINT customers_email_key UNIQUE (email));
CREATE INDEX customers_region ON public.customers (region);
CREATE TABLE public.orders (
  id bigint PRIMARY KEY, customer_email text REFERENCES public.customers (email), customer_id int, amount numeric(12,2),
  code text, note text, tags int[], during tstzrange,
  CONSTRAINT orders_code_key UNIQUE (code) DEFERRABLE INITIALLY DEFERRED,
  CONSTRAINT orders_no_overlap EXCLUDE USING gist (during WITH &&));
COMMENT ON CONSTRAINT orders_code_key ON public.orders IS 'codes are unique';
CREATE INDEX orders_customer ON public.orders (customer_id);
COMMENT ON INDEX public.orders_customer IS 'lookups by customer';
CREATE INDEX orders_lower_note ON public.orders (lower(note)) WHERE amount > 100;
CREATE INDEX orders_amount_desc ON public.orders (amount DESC NULLS LAST, id) INCLUDE (code) WITH (fillfactor = 70);
CREATE INDEX orders_tags ON public.orders USING gin (tags);
CREATE UNIQUE INDEX orders_id_code ON public.orders (id, code);
CREATE TABLE "Sales Data"."Line Items" ("Order Id" bigint, "Line" int, qty int, PRIMARY KEY ("Order Id", "Line"));
CREATE INDEX "Idx ""Qty""" ON "Sales Data"."Line Items" (qty);
ALTER TABLE "Sales Data"."Line Items" CLUSTER ON "Idx ""Qty""";
CREATE TABLE public.events (id bigint, day date, kind text, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE public.events_2025 PARTITION OF public.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE INDEX events_kind ON public.events (kind);
CREATE TABLE public.small (id int PRIMARY KEY, v int);
CREATE INDEX small_v ON public.small (v);
`;

const DATA = `
INSERT INTO public.customers SELECT g, 'customer' || g || '@example.com', g % 50 FROM generate_series(1, 30000) g;
INSERT INTO public.orders SELECT g, 'customer' || (1 + g % 30000) || '@example.com', 1 + g % 30000, (g % 500) + 0.5, 'code-' || g,
  CASE WHEN g % 3 = 0 THEN 'Note ' || g END, ARRAY[g % 10, g % 7],
  tstzrange('2025-01-01'::timestamptz + g * interval '1 minute', '2025-01-01'::timestamptz + g * interval '1 minute' + interval '30 seconds')
  FROM generate_series(1, 30000) g;
INSERT INTO "Sales Data"."Line Items" SELECT g, l, g * l % 17 FROM generate_series(1, 30000) g, generate_series(1, 2) l;
INSERT INTO public.events SELECT g, DATE '2025-01-01' + g % 300, 'kind ' || g % 5 FROM generate_series(1, 40000) g;
INSERT INTO public.small SELECT g, g FROM generate_series(1, 10) g;
`;

/**
 * Dropped on the secondary with larger_than 1 MB: everything but primary keys, the FK's index, the partition's index
 * and the small table's.
 */
const DROPPABLE = [
  'Sales Data.Idx "Qty"',
  'public.customers_region',
  'public.orders_amount_desc',
  'public.orders_code_key',
  'public.orders_customer',
  'public.orders_id_code',
  'public.orders_lower_note',
  'public.orders_no_overlap',
  'public.orders_tags',
];
/**
 * What stays on the secondary: the FK's unique constraint, the partition's index (and its partitioned parent's), the
 * small table's.
 */
const KEPT = [
  'public.customers_email_key',
  'public.events_2025_kind_idx',
  'public.events_kind',
  'public.small_v',
];
const TABLES = [
  'public.customers',
  'public.orders',
  '"Sales Data"."Line Items"',
  'public.events',
  'public.small',
];

let a: ClusterInfo;
let b: ClusterInfo;
let job: { file: string; dir: string; pidDir: string };
/** The B→C job's config (written by the cascade test, used again once A→B's copy is done). */
let bcFile: string;

function tool(args: string[]): Promise<ToolResult> {
  return runTool(args, { timeoutMs: 120_000 });
}

/** The JSON objects printed by -l ... --json, by command name. */
function outcomes(
  result: ToolResult,
): Map<
  string,
  { ok: boolean; message?: string; error?: string; data?: any; checks: { name: string; pass: boolean }[] }
> {
  const map = new Map();
  for (const line of result.stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const parsed = JSON.parse(line);
    if (parsed.command) map.set(parsed.command, parsed);
  }
  return map;
}

function listMode(file: string, commands: string): Promise<ToolResult> {
  return tool(['-c', file, '-l', commands, '--json']);
}

/** Every index and constraint definition of the user schemas, as comparable lines. */
async function definitions(cluster: ClusterInfo, database: string): Promise<string[]> {
  const rows = await query<{ line: string }>(
    cluster,
    database,
    `
    SELECT format('index %s.%s: %s valid=%s clustered=%s comment=%s', n.nspname, i.relname, pg_get_indexdef(x.indexrelid),
                  x.indisvalid, x.indisclustered, coalesce(obj_description(x.indexrelid, 'pg_class'), '-')) AS line
      FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = i.relnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'bucardo') AND n.nspname NOT LIKE 'pg\\_toast%'
    UNION ALL
    SELECT format('constraint %s %s: %s deferrable=%s deferred=%s comment=%s', con.conrelid::regclass, con.conname, pg_get_constraintdef(con.oid),
                  con.condeferrable, con.condeferred, coalesce(obj_description(con.oid, 'pg_constraint'), '-'))
      FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'bucardo') AND con.contype IN ('p', 'u', 'x', 'f')`,
  );
  return rows.map((r) => r.line).sort();
}

/** Non-primary-key indexes on the secondary, "schema.index". */
async function secondaryIndexNames(): Promise<string[]> {
  const rows = await query<{ name: string }>(
    b,
    'idx_b',
    `
    SELECT n.nspname || '.' || i.relname AS name FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = i.relnamespace
     WHERE NOT x.indisprimary AND n.nspname IN ('public', 'Sales Data') ORDER BY 1`,
  );
  return rows.map((r) => r.name);
}

async function invalidIndexes(): Promise<string[]> {
  const rows = await query<{ name: string }>(
    b,
    'idx_b',
    'SELECT indexrelid::regclass::text AS name FROM pg_index WHERE NOT indisvalid',
  );
  return rows.map((r) => r.name);
}

function startTool(args: string[]): { child: ReturnType<typeof spawn>; done: Promise<ToolResult> } {
  const child = spawn(process.execPath, [path.join(ROOT, 'wrapper.js'), ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1', BUCARDO_CONSOLE_PLUGIN_PATH: FIXTURE_PLUGINS },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  const done = new Promise<ToolResult>((resolve) =>
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr })),
  );
  return { child, done };
}

before(async () => {
  ({ a, b } = await clusters());
  await dropDatabase(a, 'bucardo');
  await freshDatabase(a, 'idx_a', SCHEMA);
  await query(a, 'idx_a', DATA);
  await query(a, 'idx_a', 'ANALYZE');
  await freshDatabase(b, 'idx_b', SCHEMA);
  await freshDatabase(b, 'idx_c', SCHEMA);
  job = writeJobConfig({
    name: 'idx_ab',
    plugins: ['bucardo', 'indexes'],
    primary: { cluster: a, dbname: 'idx_a' },
    secondary: { cluster: b, dbname: 'idx_b', cascade: true },
    metadata: a,
    extra: { indexes: { larger_than: '1 MB', jobs: 2 } },
  });
});

after(async () => {
  if (job) await tool(['-c', job.file, '-l', 'bucardo.stop']).catch(() => undefined);
  if (a) await dropDatabase(a, 'bucardo').catch(() => undefined);
});

test('indexes.larger_than accepts the usual ways of writing a size, and a bad one is a clear config error', async () => {
  const GB = 1024 ** 3;
  for (const [text, bytes] of [
    ['10 GB', 10 * GB],
    ['10GB', 10 * GB],
    ['10 gigabyte', 10 * GB],
    ['10 gigabytes', 10 * GB],
    ['10 gb', 10 * GB],
    ['500 MB', 500 * 1024 ** 2],
    ['0', 0],
    ['1.5 GB', 1.5 * GB],
    ['2TB', 2 * 1024 ** 4],
    ['64 kB', 65536],
    ['8192', 8192],
  ] as const) {
    assert.equal(parseSize(text), bytes, text);
  }
  assert.equal(parseSize(0), 0);
  for (const bad of ['ten GB', '10 GBs', '-1 GB', '10 parsecs', '', 'GB'])
    assert.equal(parseSize(bad), undefined, bad);

  const dir = tempDir('idx-config');
  const catalog = new PluginCatalog([path.join(ROOT, 'dist', 'plugins')]);
  const base = `databases:\n  bucardo: {host: localhost, port: 5432}\n  primary: {dbname: app}\n  secondary: {dbname: app}\nbucardo:\n  replication_name: migrate_db\n  replication_objects: {namespace_include: [sales]}\n`;
  const write = (name: string, text: string) => {
    const file = path.join(dir, name);
    writeFileSync(file, text);
    return file;
  };

  // The original tool's sections load unchanged; the bucardo section's filters apply unless overridden.
  const original = await loadConfig(
    write(
      'original.yml',
      `plugins: [bucardo, indexes, mat_views]\n${base}indexes: {larger_than: 10 GB}\nmat_views: {}\n`,
    ),
    catalog,
  );
  const settings = original.pluginSettings['indexes'] as IndexSettings;
  assert.equal(settings.largerThanBytes, 10 * GB);
  assert.deepEqual(settings.replicationObjects.namespaceInclude, ['sales']);
  assert.ok(settings.jobs >= 1);
  const overridden = await loadConfig(
    write(
      'override.yml',
      `plugins: [bucardo, indexes]\n${base}indexes: {larger_than: 500MB, jobs: 3, maintenance_work_mem: 256 MB, replication_objects: {table_include: [orders]}}\n`,
    ),
    catalog,
  );
  const own = overridden.pluginSettings['indexes'] as IndexSettings;
  assert.deepEqual(
    [own.largerThanBytes, own.jobs, own.maintenanceWorkMemKb],
    [500 * 1024 ** 2, 3, 256 * 1024],
  );
  assert.deepEqual(own.replicationObjects.tableInclude, ['orders']);
  assert.deepEqual(own.replicationObjects.namespaceInclude, []);

  await assert.rejects(
    loadConfig(
      write(
        'bad.yml',
        `plugins: [bucardo, indexes]\n${base}indexes: {larger_than: ten gigs, jobs: 0, colour: red}\n`,
      ),
      catalog,
    ),
    (error) => {
      assert.ok(error instanceof ConfigError);
      const text = error.problems.join('\n');
      assert.match(text, /indexes\.larger_than: expected a size such as "10 GB"/);
      assert.match(text, /got 'ten gigs'/);
      assert.match(text, /indexes\.jobs: expected an integer between 1 and 64/);
      assert.match(text, /indexes\.colour: unknown key/);
      return true;
    },
  );
});

test('on a B→C job, indexes.drop refuses until the A→B copy is done, and says how to check it', async () => {
  const bc = writeJobConfig({
    name: 'idx_bc',
    plugins: ['bucardo', 'indexes'],
    primary: { cluster: b, dbname: 'idx_b', cascade: true },
    secondary: { cluster: b, dbname: 'idx_c' },
    metadata: a,
    extra: { indexes: { larger_than: '1 MB' } },
  });
  const alone = await tool(['-c', bc.file, '-l', 'indexes.drop']);
  assert.equal(alone.code, 1);
  assert.match(
    alone.stdout + alone.stderr,
    /B→C hop of a cascade.*-c1 a_to_b\.yml -c2 b_to_c\.yml.*--upstream-copy-done/s,
  );
  const both = await tool(['-c1', job.file, '-c2', bc.file, '-l', 'c2.indexes.drop']);
  assert.equal(both.code, 1);
  assert.match(both.stdout + both.stderr, /A→B initial copy \(job c1 \(idx_ab\)\) is (unknown|pending)/);
  bcFile = bc.file;
});

test('indexes.drop lists, records and drops every droppable index on large tables; keys, FK and partition indexes stay', async () => {
  // A session holding a lock on one table: that table keeps its index (lock timeout), the others are dropped.
  const blocker = new pg.Client({
    host: b.host,
    port: b.port,
    user: 'postgres',
    database: 'idx_b',
    application_name: 'idx-test blocker',
  });
  await blocker.connect();
  try {
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE "Sales Data"."Line Items" IN ACCESS SHARE MODE');
    const first = await listMode(
      job.file,
      'bucardo.install bucardo.add_triggers indexes.install indexes.drop',
    );
    assert.equal(first.code, 1, first.stdout + first.stderr);
    const partial = outcomes(first).get('indexes.drop')!;
    assert.equal(partial.ok, false);
    assert.deepEqual(
      partial.data.failed.map((f: any) => f.table),
      ['Sales Data.Line Items'],
    );
    assert.match(partial.data.failed[0].error, /lock timeout/);
    assert.deepEqual(
      partial.data.failed[0].blockers.map((x: any) => x.application),
      ['idx-test blocker'],
    );
    assert.equal(partial.data.dropped.length, DROPPABLE.length - 1);
    assert.ok((await secondaryIndexNames()).includes('Sales Data.Idx "Qty"'));
  } finally {
    await blocker.query('ROLLBACK').catch(() => undefined);
    await blocker.end();
  }
  const result = await listMode(job.file, 'indexes.drop');
  assert.equal(result.code, 0, result.stdout + result.stderr);
  const drop = outcomes(result).get('indexes.drop')!;
  assert.equal(drop.ok, true, JSON.stringify(drop));
  assert.deepEqual(
    drop.checks.map((c) => c.pass),
    [true, true],
  );
  assert.deepEqual(
    drop.data.dropped.map((d: any) => `${d.table.split('.')[0]}.${d.index}`),
    ['Sales Data.Idx "Qty"'],
  );
  assert.deepEqual(drop.data.kept.map((k: any) => k.index).sort(), [
    'customers_email_key',
    'events_2025_kind_idx',
  ]);
  assert.match(
    drop.data.kept.find((k: any) => k.index === 'customers_email_key').reason,
    /foreign key .*orders_customer_email_fkey/,
  );
  assert.ok(drop.data.plannedBytes > 0);

  // What is left on the secondary: primary keys, the FK's unique constraint, the partition's index, the small table's
  // index.
  assert.deepEqual(await secondaryIndexNames(), KEPT);
  const primaryKeys = await query(
    b,
    'idx_b',
    `SELECT count(*)::int AS n FROM pg_constraint WHERE contype = 'p' AND connamespace IN ('public'::regnamespace, '"Sales Data"'::regnamespace)`,
  );
  assert.equal(primaryKeys[0]!['n'], 6);

  // The record holds the secondary's exact definitions (which are the primary's).
  const recorded = await query<{ name: string; index_definition: string; constraint_type: string | null }>(
    a,
    'bucardo',
    `SELECT schema_name || '.' || index_name AS name, index_definition, constraint_type FROM manage_indexes.dropped_index WHERE job = 'idx_ab' AND dropped_at IS NOT NULL ORDER BY 1`,
  );
  assert.deepEqual(
    recorded.map((r) => r.name),
    DROPPABLE,
  );
  const onPrimary = await query<{ name: string; def: string }>(
    a,
    'idx_a',
    `SELECT n.nspname || '.' || i.relname AS name, pg_get_indexdef(i.oid) AS def FROM pg_class i JOIN pg_namespace n ON n.oid = i.relnamespace WHERE i.relkind = 'i'`,
  );
  for (const record of recorded)
    assert.equal(record.index_definition, onPrimary.find((p) => p.name === record.name)?.def, record.name);
  assert.deepEqual(
    recorded.filter((r) => r.constraint_type).map((r) => `${r.name}:${r.constraint_type}`),
    ['public.orders_code_key:u', 'public.orders_no_overlap:x'],
  );

  // Safe to run twice: nothing is left to drop.
  const again = outcomes(await listMode(job.file, 'indexes.drop')).get('indexes.drop')!;
  assert.equal(again.ok, true);
  assert.match(again.message!, /Nothing to drop/);
});

test('an interrupted rebuild leaves no invalid index, and a rerun rebuilds only what is missing', async () => {
  // Hold a lock on one table so its rebuild waits, then interrupt the command as an operator would (Ctrl-C).
  const blocker = new pg.Client({ host: b.host, port: b.port, user: 'postgres', database: 'idx_b' });
  await blocker.connect();
  try {
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE "Sales Data"."Line Items" IN ROW EXCLUSIVE MODE');
    const run = startTool(['-c', job.file, '-l', 'indexes.recreate --now']);
    await waitFor(
      async () => {
        const waiting = await query(
          b,
          'idx_b',
          `SELECT 1 FROM pg_stat_activity WHERE application_name = 'bucardo-console indexes.recreate' AND wait_event_type = 'Lock'`,
        );
        return (
          waiting.length > 0 && (await secondaryIndexNames()).length === KEPT.length + DROPPABLE.length - 1
        );
      },
      30_000,
      'the other rebuilds to finish and the Line Items rebuild to wait on the lock',
    );
    run.child.kill('SIGINT');
    const interrupted = await run.done;
    assert.notEqual(interrupted.code, 0);
    assert.match(interrupted.stdout + interrupted.stderr, /interrupted/);
    assert.match(interrupted.stdout + interrupted.stderr, /cancelled the running statement/);
  } finally {
    await blocker.query('ROLLBACK').catch(() => undefined);
    await blocker.end();
  }
  assert.deepEqual(await invalidIndexes(), []);
  assert.ok(!(await secondaryIndexNames()).includes('Sales Data.Idx "Qty"'));

  const rerun = outcomes(await listMode(job.file, 'indexes.recreate --now')).get('indexes.recreate')!;
  assert.equal(rerun.ok, true, JSON.stringify(rerun));
  assert.deepEqual(
    rerun.data.rebuilt.map((r: any) => `${r.schema}.${r.index}`),
    ['Sales Data.Idx "Qty"'],
  );
  assert.equal(rerun.data.alreadyPresent, DROPPABLE.length - 1);
  assert.deepEqual(await invalidIndexes(), []);
  // Round trip on the empty secondary: every definition, comment and flag is back as on the primary.
  assert.deepEqual(await definitions(b, 'idx_b'), await definitions(a, 'idx_a'));
});

test('indexes.recreate waits for a real initial copy, then the secondary matches the primary row for row and index for index', async () => {
  const dropped = outcomes(await listMode(job.file, 'indexes.drop')).get('indexes.drop')!;
  assert.equal(dropped.ok, true, JSON.stringify(dropped));
  assert.equal(
    dropped.data.dropped.length,
    DROPPABLE.length,
    'recreated indexes are dropped again while the copy has not started',
  );

  // Keep the copy from finishing: Bucardo's copy kid needs the small table, locked here.
  const blocker = new pg.Client({ host: b.host, port: b.port, user: 'postgres', database: 'idx_b' });
  await blocker.connect();
  let run: Promise<ToolResult>;
  try {
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE public.small IN ACCESS EXCLUSIVE MODE');
    run = listMode(job.file, 'bucardo.start indexes.recreate');
    await waitFor(
      async () =>
        (
          await query(
            b,
            'idx_b',
            `SELECT 1 FROM pg_stat_activity WHERE datname = 'idx_b' AND wait_event_type = 'Lock'`,
          )
        ).length > 0,
      60_000,
      'the Bucardo copy to wait on the locked table',
    );
    await new Promise((r) => setTimeout(r, 3000));
    const copyFlag = await query<{ onetimecopy: number }>(
      a,
      'bucardo',
      `SELECT onetimecopy FROM bucardo.sync WHERE name = 'idx_ab'`,
    );
    assert.equal(copyFlag[0]!.onetimecopy, 2, 'the copy is still running');
    assert.deepEqual(await secondaryIndexNames(), KEPT, 'nothing is rebuilt during the copy');
  } finally {
    await blocker.query('ROLLBACK').catch(() => undefined);
    await blocker.end();
  }
  const result = await run!;
  const recreate = outcomes(result).get('indexes.recreate')!;
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.equal(recreate.data.copyAtStart, 'running');
  assert.ok(recreate.data.waitedSeconds >= 2, `waited ${recreate.data.waitedSeconds} s`);
  assert.equal(recreate.data.rebuilt.length, DROPPABLE.length);
  assert.deepEqual(
    recreate.checks.map((c) => c.pass),
    [true],
  );
  const copyFlag = await query<{ onetimecopy: number }>(
    a,
    'bucardo',
    `SELECT onetimecopy FROM bucardo.sync WHERE name = 'idx_ab'`,
  );
  assert.equal(copyFlag[0]!.onetimecopy, 0);

  assert.deepEqual(await definitions(b, 'idx_b'), await definitions(a, 'idx_a'));
  assert.deepEqual(await invalidIndexes(), []);
  for (const table of TABLES)
    assert.deepEqual(await tableRows(b, 'idx_b', table), await tableRows(a, 'idx_a', table), table);

  // After the copy, a drop would gain nothing: refused, nothing touched.
  const late = await tool(['-c', job.file, '-l', 'indexes.drop']);
  assert.equal(late.code, 1);
  assert.match(late.stdout + late.stderr, /initial copy of idx_ab has already finished/);
  assert.deepEqual(await definitions(b, 'idx_b'), await definitions(a, 'idx_a'));
});

test("once A→B's copy is done, the B→C job may drop: its dry run finds B's tables large now", async () => {
  const result = await tool(['-c1', job.file, '-c2', bcFile, '-l', 'c2.indexes.drop --dry-run', '--json']);
  const drop = outcomes(result).get('c2.indexes.drop')!;
  assert.equal(drop?.ok, true, result.stdout + result.stderr);
  assert.equal(drop.data.dryRun, true);
  assert.equal(drop.data.planned.length, DROPPABLE.length);
  assert.match(drop.data.notes.join(' '), /A→B job c1 \(idx_ab\): initial copy done/);
  assert.equal(
    (
      await query(b, 'idx_c', `SELECT count(*)::int AS n FROM pg_indexes WHERE indexname = 'orders_customer'`)
    )[0]!['n'],
    1,
    'a dry run drops nothing',
  );
});

test('indexes.uninstall refuses while a recorded index is not rebuilt, then removes the records and the table', async () => {
  const recordCount = async () =>
    (
      await query<{ n: number }>(
        a,
        'bucardo',
        `SELECT count(*)::int AS n FROM manage_indexes.dropped_index WHERE job = 'idx_ab'`,
      )
    )[0]!.n;
  const before = await recordCount();
  assert.ok(before >= DROPPABLE.length);
  // As after an indexes.drop whose rebuild has not run yet: the record is the only copy of the definition.
  await query(
    a,
    'bucardo',
    `UPDATE manage_indexes.dropped_index SET recreated_at = NULL WHERE job = 'idx_ab' AND index_name = 'orders_code_key'`,
  );
  const refused = await listMode(job.file, 'indexes.uninstall');
  assert.equal(refused.code, 1);
  assert.match(
    refused.stdout + refused.stderr,
    /1 index\(es\) recorded by indexes\.drop for idx_ab are not marked rebuilt \(public\.orders_code_key\).*Run indexes\.recreate first/s,
  );
  assert.equal(await recordCount(), before, 'nothing removed');

  // recreate finds the index present and marks it rebuilt; then uninstall removes every record and the
  // table. Something else living in the schema keeps the schema (and the command still succeeds).
  await query(a, 'bucardo', 'CREATE DOMAIN manage_indexes.not_ours AS integer');
  const result = await listMode(job.file, 'indexes.recreate --now indexes.uninstall');
  assert.equal(result.code, 0, result.stdout + result.stderr);
  const removed = outcomes(result).get('indexes.uninstall')!;
  assert.equal(removed.data.removedRecords, before);
  assert.equal(removed.data.droppedTable, true);
  assert.deepEqual(
    removed.checks.map((c) => c.pass),
    [true],
  );
  assert.match(removed.message!, /the schema manage_indexes stays \(.*depend/);
  assert.deepEqual(
    await query(a, 'bucardo', `SELECT to_regclass('manage_indexes.dropped_index') IS NULL AS gone`),
    [{ gone: true }],
  );
  assert.deepEqual(
    await query(
      a,
      'bucardo',
      `SELECT typname FROM pg_type WHERE typnamespace = 'manage_indexes'::regnamespace AND typtype = 'd'`,
    ),
    [{ typname: 'not_ours' }],
  );

  // Safe to run twice.
  const again = outcomes(await listMode(job.file, 'indexes.uninstall')).get('indexes.uninstall')!;
  assert.equal(again.ok, true);
  assert.match(again.message!, /Nothing to remove/);
});
