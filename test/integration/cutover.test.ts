// The cutover plugin on real clusters with a real Bucardo daemon: verify finds rows changed, deleted
// and added directly on the secondary and names their keys, tells rows in flight from mismatches;
// check lists what is missing with the fix; finish refuses without the operator's word, stops when its
// final check (only the keys changed since the last verify) finds a row tampered on the secondary,
// notices writes after the confirmation, will not stop replication under an open writing transaction,
// carries a change committed just before the confirmation, survives a locked table, and resumes.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { startCluster, stopCluster, type ClusterInfo } from '../../src/sandbox/cluster.js';
import { describeWriters, openWriters } from '../../plugins/cutover/writes.js';
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
  type ToolResult,
} from '../support/harness.js';

const SCHEMA = `
CREATE SCHEMA shop;
CREATE TABLE shop.customers (id int PRIMARY KEY, name text, joined date, score float8, seen timestamptz);
CREATE INDEX customers_name ON shop.customers (name);
CREATE TABLE shop."Order Lines" (order_id bigint, line int, sku text, qty numeric(10,2), PRIMARY KEY (order_id, line));
CREATE TABLE public.tags (tag text PRIMARY KEY, note text);
CREATE TABLE public.big (id bigint PRIMARY KEY, payload text, raw bytea);
CREATE SEQUENCE public.invoice_no;
CREATE TABLE public.countries (code text, name text);
`;
const DATA = `
INSERT INTO shop.customers SELECT g, 'customer ' || g, DATE '2020-01-01' + g, g / 7.0, TIMESTAMPTZ '2024-01-01 00:00+02' + g * interval '1 hour' FROM generate_series(1, 2000) g;
INSERT INTO shop."Order Lines" SELECT o, l, 'sku-' || (o * l) % 97, (o % 13) + l / 4.0 FROM generate_series(1, 1500) o, generate_series(1, 2) l;
INSERT INTO public.tags SELECT 'tag-' || g, CASE WHEN g % 2 = 0 THEN 'note ' || g END FROM generate_series(1, 1500) g;
INSERT INTO public.big SELECT g, repeat('x', g % 50), decode(md5(g::text), 'hex') FROM generate_series(1, 20000) g;
SELECT setval('public.invoice_no', 500);
INSERT INTO public.countries VALUES ('de', 'Germany'), ('fr', 'France'), ('it', 'Italy');
`;
const VIEW = 'CREATE MATERIALIZED VIEW public.tag_counts AS SELECT count(*) AS n FROM public.tags';
const TABLES = ['shop.customers', 'shop."Order Lines"', 'public.tags', 'public.big'];

const CUTOVER = { chunk_rows: 1000, settle_time: 5, max_lag: 5, sequence_margin: 1000 };

let a: ClusterInfo;
let b: ClusterInfo;
let job: { file: string; dir: string; pidDir: string };

function tool(list: string): Promise<ToolResult> {
  return runTool(['-c', job.file, '-l', list], { timeoutMs: 150_000 });
}

/** The JSON object a `-l "cmd --json"` run printed for its command. */
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

async function caughtUp(): Promise<void> {
  for (const table of TABLES) {
    await waitFor(
      async () =>
        JSON.stringify(await tableRows(a, 'cut_a', table)) ===
        JSON.stringify(await tableRows(b, 'cut_b', table)),
      30_000,
      `${table} to be identical`,
    );
  }
}

function tableReport(data: any, table: string): any {
  const report = data.tables.find((t: any) => t.table === table);
  assert.ok(report, `no report for ${table}`);
  return report;
}

before(async () => {
  ({ a, b } = await clusters());
  await freshDatabase(a, 'cut_a', `${SCHEMA}${DATA}${VIEW}`);
  await freshDatabase(b, 'cut_b', `${SCHEMA}${VIEW} WITH NO DATA`);
  job = writeJobConfig({
    name: 'cut',
    plugins: ['bucardo', 'cutover'],
    primary: { cluster: a, dbname: 'cut_a' },
    secondary: { cluster: b, dbname: 'cut_b' },
    // No safety net: rows tampered on the secondary in keys changed a moment before are what verify and
    // the final check must find here, and the safety net would re-queue them first (safety-net.test).
    bucardoSettings: { recheck_interval: 0 },
    // A lookup table without a primary key: Bucardo cannot replicate it, cutover.finish copies it.
    replicationObjects: { table_exclude: ['public.countries'] },
    // Small chunks so that every table is cut into several ranges (integer, composite and text keys).
    extra: { cutover: { ...CUTOVER, copy_at_cutover: ['public.countries'] } },
  });
  const setup = await tool('bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy');
  assert.equal(setup.code, 0, setup.stdout + setup.stderr);
  await caughtUp();
});

after(async () => {
  await tool('bucardo.stop').catch(() => undefined);
  await forgetJob(job, a);
  await dropDatabase(a, 'cut_a').catch(() => undefined);
  await dropDatabase(b, 'cut_b').catch(() => undefined);
});

test('verify: a caught-up secondary is identical, chunk by chunk; check names the missing index and the unpopulated view with their fixes', async () => {
  await query(b, 'cut_b', 'DROP INDEX shop.customers_name');
  const verified = await tool('cutover.verify --json');
  assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  const data = outcome(verified).data;
  assert.equal(data.clean, true, data.verdict);
  assert.equal(data.method, 'hashtextextended(row text)');
  assert.match(data.verdict, /^Identical: 4 table\(s\), 26,500 row\(s\), 1 sequence\(s\)\.$/);
  assert.deepEqual(
    data.copiedAtCutover,
    [{ table: 'public.countries', rowsPrimary: 3, rowsSecondary: 0, same: false }],
    'the table copied at the switch is compared whole, outside the verdict',
  );
  const bigChunks = tableReport(data, 'public.big').chunks;
  assert.ok(
    bigChunks >= 10 && bigChunks <= 40,
    `an integer key is cut into ranges of about chunk_rows (20,000 rows, ${bigChunks} chunks)`,
  );
  assert.ok(tableReport(data, 'shop.Order Lines').chunks >= 3, 'a composite key is walked in chunks');
  assert.ok(tableReport(data, 'public.tags').chunks >= 2, 'a text key is walked in chunks');
  for (const t of data.tables) assert.equal(t.rowsPrimary, t.rowsSecondary);
  assert.deepEqual(data.sequences, [
    { sequence: 'public.invoice_no', primaryNext: '501', secondaryNext: '501', status: 'match' },
  ]);

  const notReady = await tool('cutover.check');
  assert.equal(notReady.code, 1);
  assert.match(notReady.stdout, /ok {3}replication daemon running: pid \d+/);
  assert.match(notReady.stdout, /ok {3}initial copy done: done/);
  assert.match(notReady.stdout, /ok {3}replication lag under 5 s: nothing pending/);
  assert.match(
    notReady.stdout,
    /FAIL indexes recreated on the secondary: missing: CREATE INDEX ON shop\.customers USING btree \(name\)\n\s+fix: indexes\.recreate/,
  );
  assert.match(
    notReady.stdout,
    /FAIL materialized views populated: not populated: public\.tag_counts\n\s+fix: mat_views\.refresh/,
  );
  assert.match(notReady.stdout, /ok {3}no Bucardo errors since the daemon started/);
  assert.match(notReady.stdout, /ok {3}verify passed recently: \d+ s ago: Identical/);

  await query(
    b,
    'cut_b',
    'CREATE INDEX customers_name_rebuilt ON shop.customers (name); REFRESH MATERIALIZED VIEW public.tag_counts',
  );
  const ready = await tool('cutover.check');
  assert.equal(ready.code, 0, ready.stdout + ready.stderr);
  assert.match(ready.stdout, /Ready for cutover: all 9 checks pass/);

  // The verify put a hold on Bucardo's purge; a postponed cutover lifts it.
  const holds = () =>
    query(
      a,
      'cut_a',
      "SELECT count(*)::int AS n FROM bucardo.bucardo_delta_targets WHERE target = 'cutover hold cut'",
    );
  assert.deepEqual(await holds(), [{ n: 4 }], 'one hold row per replicated table');
  const released = await tool('cutover.release');
  assert.equal(released.code, 0, released.stdout + released.stderr);
  assert.match(released.stdout, /lifted the hold on Bucardo's purge/);
  assert.deepEqual(await holds(), [{ n: 0 }]);
  assert.match((await tool('cutover.release')).stdout, /Nothing to release\./);
});

test('verify names a changed, a deleted and an extra row on the secondary; rows not yet replicated are in flight, not mismatches', async () => {
  await query(
    b,
    'cut_b',
    `
    UPDATE shop.customers SET name = 'tampered' WHERE id = 17;
    DELETE FROM public.big WHERE id = 12345;
    INSERT INTO public.tags VALUES ('only-on-b', NULL);
    UPDATE shop."Order Lines" SET qty = 0 WHERE order_id = 5 AND line = 2;`,
  );
  const failed = await tool('cutover.verify --json');
  assert.equal(failed.code, 1, 'a mismatch fails the command');
  const data = outcome(failed).data;
  assert.equal(data.passed, false);
  assert.match(
    data.verdict,
    /^FAILED: MISMATCH in 4 table\(s\): 1 row\(s\) missing on the secondary, 1 row\(s\) only on the secondary, 2 row\(s\) changed\.$/,
  );
  assert.deepEqual(tableReport(data, 'shop.customers').keys, [
    { key: { id: '17' }, difference: 'changed', inFlight: false },
  ]);
  assert.deepEqual(tableReport(data, 'public.big').keys, [
    { key: { id: '12345' }, difference: 'missing', inFlight: false },
  ]);
  assert.deepEqual(tableReport(data, 'public.tags').keys, [
    { key: { tag: 'only-on-b' }, difference: 'extra', inFlight: false },
  ]);
  assert.deepEqual(tableReport(data, 'shop.Order Lines').keys, [
    { key: { order_id: '5', line: '2' }, difference: 'changed', inFlight: false },
  ]);
  assert.equal(tableReport(data, 'public.big').rowsSecondary, 19_999);

  const text = await tool('cutover.verify settle=0');
  assert.equal(text.code, 1);
  assert.match(text.stdout, /shop\.customers:\n\s+differs: id=17 \(different content\)/);
  assert.match(text.stdout, /public\.big:\n\s+differs: id=12345 \(missing on the secondary\)/);
  assert.match(
    text.stdout,
    /shop\.Order Lines:\n\s+differs: \(order_id, line\)=\(5, 2\) \(different content\)/,
  );
  const check = await tool('cutover.check');
  assert.match(
    check.stdout,
    /FAIL verify passed recently: the last verify \(\d+ s ago\) failed: FAILED: MISMATCH/,
  );

  // Repair the secondary (Bucardo applies nothing there for these rows: they did not change on the primary).
  const [customer] = await query<{ name: string }>(
    a,
    'cut_a',
    'SELECT name FROM shop.customers WHERE id = 17',
  );
  const [big] = await query<{ payload: string; raw: Buffer }>(
    a,
    'cut_a',
    'SELECT payload, raw FROM public.big WHERE id = 12345',
  );
  const [line] = await query<{ qty: string }>(
    a,
    'cut_a',
    'SELECT qty::text FROM shop."Order Lines" WHERE order_id = 5 AND line = 2',
  );
  await query(b, 'cut_b', `UPDATE shop.customers SET name = $1 WHERE id = 17`, [customer!.name]);
  await query(b, 'cut_b', `INSERT INTO public.big VALUES (12345, $1, $2)`, [big!.payload, big!.raw]);
  await query(b, 'cut_b', `DELETE FROM public.tags WHERE tag = 'only-on-b'`);
  await query(b, 'cut_b', `UPDATE shop."Order Lines" SET qty = $1 WHERE order_id = 5 AND line = 2`, [
    line!.qty,
  ]);

  // With replication stopped, changes on the primary wait in Bucardo's delta tables: in flight.
  const stop = await tool('bucardo.stop');
  assert.equal(stop.code, 0, stop.stdout + stop.stderr);
  await query(
    a,
    'cut_a',
    `
    UPDATE shop.customers SET score = score + 1 WHERE id IN (1, 2, 3);
    INSERT INTO public.big VALUES (100001, 'new', NULL);
    DELETE FROM public.tags WHERE tag = 'tag-7';`,
  );
  const flying = await tool('cutover.verify --json');
  assert.equal(flying.code, 0, 'rows in flight do not fail a verify');
  const flyingData = outcome(flying).data;
  assert.equal(flyingData.passed, true);
  assert.equal(flyingData.clean, false);
  assert.match(
    flyingData.verdict,
    /^No differences: .*; but 5 key\(s\) in flight in 3 table\(s\) .*final check compares every such key again/,
  );
  const customers = tableReport(flyingData, 'shop.customers');
  assert.equal(customers.status, 'in flight');
  assert.deepEqual(customers.keys.map((k: any) => k.key.id).sort(), ['1', '2', '3']);
  assert.ok(customers.keys.every((k: any) => k.inFlight && k.difference === 'changed'));
  assert.deepEqual(tableReport(flyingData, 'public.big').keys, [
    { key: { id: '100001' }, difference: 'missing', inFlight: true },
  ]);
  assert.deepEqual(tableReport(flyingData, 'public.tags').keys, [
    { key: { tag: 'tag-7' }, difference: 'extra', inFlight: true },
  ]);
  assert.equal(tableReport(flyingData, 'shop.Order Lines').status, 'match');

  const start = await tool('bucardo.start');
  assert.equal(start.code, 0, start.stdout + start.stderr);
  await caughtUp();
  const clean = await tool('cutover.verify --json');
  assert.equal(outcome(clean).data.clean, true, outcome(clean).data.verdict);
});

test('repair: a lost change record, a row deleted and one added on the secondary are found by verify, re-applied by Bucardo, and verify passes', async () => {
  // Replication stopped: the changes wait in Bucardo's delta tables, where one of them gets lost.
  const stop = await tool('bucardo.stop');
  assert.equal(stop.code, 0, stop.stdout + stop.stderr);
  await query(
    a,
    'cut_a',
    `
    INSERT INTO public.big VALUES (200001, 'lost insert', '\\x01');
    UPDATE shop.customers SET name = 'lost update' WHERE id = 42;
    INSERT INTO public.big VALUES (200002, 'arrives', NULL);`,
  );
  await query(
    a,
    'cut_a',
    'DELETE FROM bucardo.delta_public_big WHERE id = 200001; DELETE FROM bucardo.delta_shop_customers WHERE id = 42',
  );
  await query(
    b,
    'cut_b',
    `
    DELETE FROM shop."Order Lines" WHERE order_id = 77 AND line = 1;
    INSERT INTO public.tags VALUES ('added-on-b', 'behind Bucardo''s back');`,
  );

  const refused = await tool('cutover.repair');
  assert.equal(refused.code, 1);
  assert.match(
    refused.stderr,
    /cutover\.repair cannot run: the Bucardo daemon is not running here\. .*start it with bucardo\.start .*Nothing was changed\./s,
  );

  const start = await tool('bucardo.start');
  assert.equal(start.code, 0, start.stdout + start.stderr);
  await waitFor(
    async () => (await query(b, 'cut_b', 'SELECT 1 FROM public.big WHERE id = 200002')).length === 1,
    30_000,
    'the change that was not lost to arrive',
  );

  const found = await tool('cutover.verify --json');
  assert.equal(found.code, 1, found.stdout + found.stderr);
  const foundData = outcome(found).data;
  assert.match(
    foundData.verdict,
    /^FAILED: MISMATCH in 4 table\(s\): 2 row\(s\) missing on the secondary, 1 row\(s\) only on the secondary, 1 row\(s\) changed\.$/,
  );

  const repaired = await tool('cutover.repair --json');
  assert.equal(repaired.code, 0, repaired.stdout + repaired.stderr);
  const result = outcome(repaired);
  assert.match(
    result.data.verdict,
    /^Repaired: Bucardo re-applied 4 key\(s\) in [\d.]+ s and all 4 now match\.$/,
  );
  assert.equal(result.data.basedOn.id, foundData.recordId);
  assert.deepEqual(result.data.tables.map((t: any) => [t.table, t.requeued, t.fixed]).sort(), [
    ['public.big', 1, 1],
    ['public.tags', 1, 1],
    ['shop.Order Lines', 1, 1],
    ['shop.customers', 1, 1],
  ]);
  assert.deepEqual(result.checks, [{ name: 'verify passes', pass: true, detail: result.checks![0]!.detail }]);
  assert.match(result.checks![0]!.detail!, /^Identical: /);
  for (const table of TABLES)
    assert.deepEqual(
      await tableRows(b, 'cut_b', table),
      await tableRows(a, 'cut_a', table),
      `${table} identical after the repair`,
    );
  // Bucardo, not the tool, wrote the rows on the secondary: its sync run counted them.
  const [run] = await query<{ inserts: string; deletes: string }>(
    a,
    'bucardo',
    "SELECT sum(inserts)::text AS inserts, sum(deletes)::text AS deletes FROM bucardo.syncrun WHERE sync = 'cut' AND started > now() - interval '2 minutes'",
  );
  assert.ok(
    Number(run!.inserts) >= 3 && Number(run!.deletes) >= 3,
    `Bucardo re-applied the keys (${JSON.stringify(run)})`,
  );

  const again = await tool('cutover.repair');
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.match(
    again.stdout,
    /Nothing to repair: the last verify \(#\d+, \d+ s ago\) found no differing rows: Identical/,
  );
});

/** The steps a `--json` run of cutover.finish reported, as the lines it prints without --json. */
function stepsText(result: ToolResult): string {
  return outcome(result)
    .data.steps.map((step: string) => `  - ${step}`)
    .join('\n');
}

function triggersOnA(): Promise<{ tgrelid: string }[]> {
  return query<{ tgrelid: string }>(
    a,
    'cut_a',
    "SELECT DISTINCT tgrelid::regclass::text AS tgrelid FROM pg_trigger WHERE tgname LIKE 'bucardo%' AND tgrelid::regclass::text NOT LIKE 'bucardo.%' ORDER BY 1",
  );
}

test("finish: needs the operator's word, its final check catches a row tampered on the secondary in a key changed since the verify, starts over after writes, refuses to stop replication under an open writing transaction, checks only the changed keys, resumes after a locked table", async () => {
  const refused = await tool('cutover.finish');
  assert.equal(refused.code, 1, refused.stdout + refused.stderr);
  assert.match(
    refused.stderr,
    /in list mode, say you did with the argument: -l "cutover\.finish --writes-stopped"\. Nothing was changed\./,
  );
  assert.deepEqual(await query(a, 'bucardo', 'SELECT * FROM cutover.finish_progress'), []);

  // A table with a primary key replicates: naming it in copy_at_cutover is refused before any pause.
  const withKey = writeJobConfig({
    name: 'cut',
    plugins: ['bucardo', 'cutover'],
    primary: { cluster: a, dbname: 'cut_a' },
    secondary: { cluster: b, dbname: 'cut_b' },
    replicationObjects: { table_exclude: ['public.countries'] },
    extra: { cutover: { ...CUTOVER, copy_at_cutover: ['public.countries', 'public.tags'] } },
  });
  const keyed = await runTool(['-c', withKey.file, '-l', 'cutover.finish --writes-stopped'], {
    timeoutMs: 150_000,
  });
  assert.equal(keyed.code, 1, keyed.stdout + keyed.stderr);
  assert.match(
    keyed.stderr,
    /cutover\.copy_at_cutover names 1 table\(s\) that cannot be copied at the switch: "public"\."tags" has a primary key, so Bucardo can replicate it: remove it from cutover\.copy_at_cutover .*Nothing was changed\./,
  );
  assert.deepEqual(await query(a, 'bucardo', 'SELECT * FROM cutover.finish_progress'), []);

  // The table copied at the switch, changed on the primary after the install (never replicated).
  await query(
    a,
    'cut_a',
    "UPDATE public.countries SET name = 'République française' WHERE code = 'fr'; DELETE FROM public.countries WHERE code = 'it'; INSERT INTO public.countries VALUES ('es', 'Spain'), ('es', 'Spain'), (NULL, 'nowhere')",
  );
  await query(b, 'cut_b', "INSERT INTO public.countries VALUES ('xx', 'only on b')");

  // A key changed on the primary after the last verify, replicated, then tampered on the secondary:
  // the final check re-compares exactly such keys (nothing is pending for it, so it is not in flight).
  await query(a, 'cut_a', "UPDATE public.tags SET note = 'changed after the verify' WHERE tag = 'tag-100'");
  await waitFor(
    async () =>
      (await query<{ note: string }>(b, 'cut_b', "SELECT note FROM public.tags WHERE tag = 'tag-100'"))[0]
        ?.note === 'changed after the verify',
    30_000,
    'the change to reach the secondary',
  );
  await query(b, 'cut_b', "UPDATE public.tags SET note = 'edited on b' WHERE tag = 'tag-100'");
  const triggersBefore = await triggersOnA();
  const badVerify = await tool('cutover.finish --writes-stopped --json');
  assert.equal(badVerify.code, 1);
  assert.match(stepsText(badVerify), /- readiness: all 9 checks pass/);
  assert.match(stepsText(badVerify), /- writes to the primary stopped \(confirmed at /);
  assert.match(stepsText(badVerify), /- replication caught up: nothing pending/);
  assert.match(
    stepsText(badVerify),
    /- sequences: 1 of 1 set on the secondary to 1000 increment\(s\) past the primary's \(public\.invoice_no 501 → 1501\)/,
  );
  const badData = outcome(badVerify);
  assert.match(
    badData.message!,
    /^The final check failed: FAILED: public\.tags: tag=tag-100 \(changed\)\. Replication is still running and nothing is switched/,
  );
  assert.ok(
    badData.data.finalCheck.keysCompared < 100,
    `only the changed keys were compared (${badData.data.finalCheck.keysCompared})`,
  );
  assert.ok(!badData.data.pause.steps.some((s: any) => /full/.test(s.step)), 'no full verify in the pause');
  const [progress] = await query<{ confirmed: boolean; verified: boolean }>(
    a,
    'bucardo',
    "SELECT confirmed_at IS NOT NULL AS confirmed, verified_at IS NOT NULL AS verified FROM cutover.finish_progress WHERE job = 'cut'",
  );
  assert.deepEqual(progress, { confirmed: true, verified: false });
  assert.equal(
    outcome(await tool('bucardo.status --json')).data.daemon.running,
    true,
    'replication keeps running',
  );
  assert.deepEqual(await triggersOnA(), triggersBefore, 'the triggers stay');

  // Writes after the confirmation void it: the rerun starts over (and its final check fails the same way).
  await query(a, 'cut_a', "INSERT INTO public.tags VALUES ('written-after-confirmation', NULL)");
  const restarted = await tool('cutover.finish --writes-stopped');
  assert.equal(restarted.code, 1, restarted.stdout + restarted.stderr);
  assert.match(
    restarted.stdout + restarted.stderr,
    /the earlier run's confirmation no longer holds: 1 change\(s\) by transactions started after .* \(public\.tags: 1\)\. Starting over/,
  );
  assert.match(
    restarted.stdout + restarted.stderr,
    /The final check failed: FAILED: public\.tags: tag=tag-100 \(changed\)/,
  );

  await query(b, 'cut_b', "UPDATE public.tags SET note = 'changed after the verify' WHERE tag = 'tag-100'");
  await caughtUp();
  const verified = await tool('cutover.verify');
  assert.equal(verified.code, 0, verified.stdout);

  // A transaction open since before the confirmation that changed a replicated table could commit after
  // replication stops, and its change would be lost: the run refuses before the point of no return.
  const writer = new pg.Client({
    host: a.host,
    port: a.port,
    user: 'postgres',
    database: 'cut_a',
    application_name: 'late-writer',
  });
  await writer.connect();
  try {
    await writer.query('BEGIN');
    await writer.query("UPDATE public.tags SET note = note WHERE tag = 'tag-7'");
    const writerPid = (await writer.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    const open = await tool('cutover.finish --writes-stopped');
    assert.equal(open.code, 1, open.stdout + open.stderr);
    assert.match(
      open.stdout,
      /- final check: Identical: \d+ changed key\(s\) compared row by row in 5 table\(s\) \(1 compared whole\), row counts equal, 1 sequence\(s\) at or past the primary's\./,
    );
    assert.match(
      open.stdout + open.stderr,
      new RegExp(
        `1 transaction\\(s\\) on the primary are open and may change a replicated table: pid ${writerPid} \\(postgres, late-writer, transaction open since [^)]+\\) on public\\.tags\\. .*replication was not stopped`,
      ),
    );
    assert.equal(
      outcome(await tool('bucardo.status --json')).data.daemon.running,
      true,
      'replication still runs',
    );
  } finally {
    await writer.query('ROLLBACK').catch(() => undefined);
    await writer.end();
  }

  // A change committed just before the confirmation: the run starts over, drains it, and its final
  // check compares that key (and only a handful of keys: nothing like the 20,000 rows of public.big).
  // A table locked by a session on the primary keeps its triggers: the run stops after the point of no return.
  await query(a, 'cut_a', "INSERT INTO public.big VALUES (300001, 'just before the confirmation', NULL)");
  const holder = new pg.Client({ host: a.host, port: a.port, user: 'postgres', database: 'cut_a' });
  await holder.connect();
  try {
    await holder.query('BEGIN');
    await holder.query('SELECT count(*) FROM public.tags');
    const locked = await tool('cutover.finish --writes-stopped --json');
    assert.equal(locked.code, 1, locked.stdout + locked.stderr);
    assert.match(
      stepsText(locked),
      /the earlier run's confirmation no longer holds: 1 change\(s\) .*\(public\.big: 1\)\. Starting over/,
    );
    const lockedData = outcome(locked).data;
    const big = lockedData.finalCheck.tables.find((t: any) => t.table === 'public.big');
    assert.ok(
      big.keysCompared >= 1 && big.keysCompared <= 10,
      `the final check compared the changed keys of public.big only (${big.keysCompared})`,
    );
    const [bigRows] = await query<{ n: number }>(a, 'cut_a', 'SELECT count(*)::int AS n FROM public.big');
    assert.ok(bigRows!.n > 20_000);
    assert.deepEqual(
      [big.rowsPrimary, big.rowsSecondary],
      [bigRows!.n, bigRows!.n],
      'exact row counts on both sides',
    );
    assert.ok(
      lockedData.finalCheck.keysCompared < 100,
      `few keys compared in all (${lockedData.finalCheck.keysCompared})`,
    );
    assert.deepEqual(
      lockedData.pause.steps.map((s: any) => s.step),
      [
        'drain',
        'sequences',
        'copy tables',
        'final check',
        'late-write checks',
        'stop replication',
        'stop the daemon',
        'remove triggers',
      ],
    );
    assert.deepEqual(await query(b, 'cut_b', 'SELECT payload FROM public.big WHERE id = 300001'), [
      { payload: 'just before the confirmation' },
    ]);
    assert.match(stepsText(locked), /- copied whole to the secondary: "public"\."countries" \(5 row\(s\)\)/);
    assert.equal(
      lockedData.finalCheck.tables.find((t: any) => t.table === 'public.countries').compared,
      'whole table',
    );
    assert.match(stepsText(locked), /- replication stopped: /);
    assert.match(outcome(locked).message!, /1 table\(s\) still carry this job's triggers/);
    assert.deepEqual(
      (await triggersOnA()).map((r) => r.tgrelid),
      ['tags'],
    );
  } finally {
    await holder.query('COMMIT').catch(() => undefined);
    await holder.end();
  }
  const mcpAfterStop = await tool('bucardo.status --json');
  assert.equal(outcome(mcpAfterStop).data.daemon.running, false, 'replication was stopped');

  // The rerun needs no new confirmation: it continues after the point of no return.
  const resumed = await tool('cutover.finish');
  assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
  assert.match(resumed.stdout, /continuing: replication was stopped at /);
  assert.doesNotMatch(resumed.stdout, /readiness/);
  assert.doesNotMatch(resumed.stdout, /final check/, 'the recorded final check is not repeated');
  assert.match(
    resumed.stdout,
    /- write pause: [\d.]+ s from the confirmation to now \(remove triggers [\d.]+ s, the rest -?[\d.]+ s\)/,
  );
  assert.deepEqual(
    await query(a, 'cut_a', "SELECT * FROM bucardo.bucardo_delta_targets WHERE target LIKE 'cutover hold%'"),
    [],
    "the hold on Bucardo's purge is lifted",
  );
  assert.match(resumed.stdout, /Cutover finished: replication is stopped, its triggers are gone/);
  assert.match(resumed.stdout, /Check: no trigger of this job left on the primary Pass\./);
  assert.match(resumed.stdout, /Check: every sequence on the secondary at or past the primary's Pass\./);
  assert.match(resumed.stdout, /Check: the secondary accepts writes Pass\./);
  assert.deepEqual(
    await query(
      a,
      'cut_a',
      "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'bucardo%' AND tgrelid::regclass::text NOT LIKE 'bucardo.%'",
    ),
    [],
  );
  const [next] = await query<{ n: string }>(b, 'cut_b', "SELECT nextval('public.invoice_no') AS n");
  assert.equal(next!.n, '1501', "the secondary hands out values past the primary's with the margin");
  for (const table of TABLES)
    assert.deepEqual(
      await tableRows(b, 'cut_b', table),
      await tableRows(a, 'cut_a', table),
      `${table} identical after the cutover`,
    );

  const countries = 'SELECT code, name FROM public.countries ORDER BY code NULLS FIRST, name';
  assert.deepEqual(
    await query(b, 'cut_b', countries),
    await query(a, 'cut_a', countries),
    "the table without a primary key holds exactly the primary's rows",
  );
  assert.equal((await query(b, 'cut_b', countries)).length, 5);

  const again = await tool('cutover.finish');
  assert.equal(again.code, 0);
  assert.match(again.stdout, /already finished at /);
});

test('the cutover section is checked like the rest of the config: every problem with its key', async () => {
  const broken = writeJobConfig({
    name: 'cut_config',
    plugins: ['bucardo', 'cutover'],
    primary: { cluster: a, dbname: 'cut_a' },
    secondary: { cluster: b, dbname: 'cut_b' },
    extra: { cutover: { max_lagg: 5, jobs: 0, settle_time: 'soon' } },
  });
  const result = await runTool(['-c', broken.file, '-l', 'cutover.check']);
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /cutover\.max_lagg: unknown key \(did you mean 'max_lag'\?\)/);
  assert.match(result.stderr, /cutover\.jobs: expected an integer between 1 and 64, got 0/);
  assert.match(result.stderr, /cutover\.settle_time: expected a number, got 'soon'/);
});

test("open writers: a session's and a prepared transaction's write locks are found; a reader, an aborted transaction and another database are not", async () => {
  // Its own cluster: prepared transactions need max_prepared_transactions, which the shared clusters leave at 0.
  const cluster = await startCluster('writers', { settings: { max_prepared_transactions: 5 } });
  const clients: pg.Client[] = [];
  const connect = async (database: string, application: string): Promise<pg.Client> => {
    const client = new pg.Client({
      host: cluster.host,
      port: cluster.port,
      user: 'postgres',
      database,
      application_name: application,
    });
    await client.connect();
    clients.push(client);
    return client;
  };
  try {
    await query(cluster, 'postgres', 'CREATE DATABASE other');
    for (const db of ['postgres', 'other'])
      await query(
        cluster,
        db,
        'CREATE TABLE public.t (id int PRIMARY KEY); CREATE TABLE public.u (id int PRIMARY KEY)',
      );
    const prepared = await connect('postgres', 'preparer');
    await prepared.query('BEGIN');
    await prepared.query('INSERT INTO public.t VALUES (1)');
    await prepared.query("PREPARE TRANSACTION 'late one'");
    const writer = await connect('postgres', 'writer');
    await writer.query('BEGIN');
    await writer.query('UPDATE public.u SET id = id');
    const reader = await connect('postgres', 'reader');
    await reader.query('BEGIN');
    await reader.query('SELECT count(*) FROM public.t');
    const aborted = await connect('postgres', 'aborted');
    await aborted.query('BEGIN');
    await aborted.query('INSERT INTO public.u VALUES (5)');
    await aborted.query('SELECT 1/0').catch(() => undefined);
    const elsewhere = await connect('other', 'elsewhere');
    await elsewhere.query('BEGIN');
    await elsewhere.query('INSERT INTO public.t VALUES (9)');

    const checker = await connect('postgres', 'checker');
    const found = await openWriters(checker, [
      { schema: 'public', name: 't' },
      { schema: 'public', name: 'u' },
    ]);
    assert.deepEqual(
      found.map((w) => ({ application: w.application, prepared: w.prepared, tables: w.tables })),
      [
        { application: 'writer', prepared: undefined, tables: ['public.u'] },
        { application: '', prepared: 'late one', tables: ['public.t'] },
      ],
    );
    assert.match(
      describeWriters(found),
      /^pid \d+ \(postgres, writer, transaction open since [^)]+\) on public\.u; prepared transaction 'late one' \(postgres, prepared at [^)]+\) on public\.t$/,
    );
    await prepared.query("ROLLBACK PREPARED 'late one'");
    await writer.query('ROLLBACK');
    assert.deepEqual(
      await openWriters(checker, [
        { schema: 'public', name: 't' },
        { schema: 'public', name: 'u' },
      ]),
      [],
    );
  } finally {
    for (const client of clients) await client.end().catch(() => undefined);
    stopCluster(cluster);
  }
});
