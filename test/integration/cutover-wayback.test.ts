// The way back on real clusters with the real daemon: cutover.finish --way-back creates the reverse
// sync B→A before the confirmation and leaves it running after the switch; rows written on B arrive
// on A; verify then compares A against B; cutover.rollback returns to A with nothing lost (rows
// written on B just before it are on A, verify identical, A's sequences past B's) and leaves no
// trigger on B; in a second job, cutover.release removes the way back and its triggers from B.
// The first job also carries the schema plugin on the way back (schema.apply with B as the source
// while the application writes to B) and a keyless table copied at the switch both ways
// (cutover.copy_at_cutover); the second is first refused a partitioned table in copy_at_cutover.
// The pause's timed steps are printed (never asserted: timings are noisy here).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
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
  type ToolResult,
} from '../support/harness.js';

const SCHEMA = `
CREATE TABLE public.accounts (id int PRIMARY KEY, owner text, balance numeric(12,2) NOT NULL);
CREATE TABLE public.notes (account int, line int, body text, PRIMARY KEY (account, line));
CREATE SEQUENCE public.ledger_no;`;
const DATA = `
INSERT INTO public.accounts SELECT g, 'owner ' || g, g FROM generate_series(1, 300) g;
INSERT INTO public.notes SELECT g, l, 'note ' || g || '/' || l FROM generate_series(1, 100) g, generate_series(1, 2) l;
SELECT setval('public.ledger_no', 40);`;
const TABLES = ['public.accounts', 'public.notes'];
const CUTOVER = { settle_time: 3, chunk_rows: 1000, max_lag: 10 };

interface Pair {
  a: ClusterInfo;
  b: ClusterInfo;
  dbA: string;
  dbB: string;
  job: { file: string; dir: string; pidDir: string };
}
const started: Pair[] = [];

function tool(pair: Pair, list: string): Promise<ToolResult> {
  return runTool(['-c', pair.job.file, '-l', list], { timeoutMs: 150_000 });
}

function outcome(result: ToolResult): {
  ok: boolean;
  message?: string;
  error?: string;
  data?: any;
  checks?: any[];
} {
  const line = result.stdout.split('\n').find((l) => l.startsWith('{"command"'));
  assert.ok(line, `no JSON outcome in:\n${result.stdout}\n${result.stderr}`);
  return JSON.parse(line);
}

async function identical(pair: Pair, what: string): Promise<void> {
  for (const table of TABLES)
    await waitFor(
      async () =>
        JSON.stringify(await tableRows(pair.a, pair.dbA, table)) ===
        JSON.stringify(await tableRows(pair.b, pair.dbB, table)),
      30_000,
      `${table} to be identical (${what})`,
    );
}

/** Bucardo's triggers on a database's tables (outside its own schema). */
async function bucardoTriggers(cluster: ClusterInfo, db: string): Promise<string[]> {
  const rows = await query<{ t: string }>(
    cluster,
    db,
    `SELECT c.relname || ':' || t.tgname AS t FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE NOT t.tgisinternal AND n.nspname <> 'bucardo' AND t.tgname LIKE 'bucardo%' ORDER BY 1`,
  );
  return rows.map((r) => r.t);
}

async function syncs(pair: Pair): Promise<string[]> {
  return (await query<{ name: string }>(pair.a, 'bucardo', 'SELECT name FROM bucardo.sync ORDER BY 1')).map(
    (r) => r.name,
  );
}

/** A keyless lookup table, excluded from replication and copied whole at the switch. */
const KEYLESS = {
  schema: 'CREATE TABLE public.audit_log (at int, what text);',
  data: "INSERT INTO public.audit_log SELECT g, 'event ' || g FROM generate_series(1, 20) g;",
};

async function setUp(name: string, withKeyless = false): Promise<Pair> {
  const { a, b } = await clusters();
  const pair: Pair = {
    a,
    b,
    dbA: `${name}_a`,
    dbB: `${name}_b`,
    job: writeJobConfig({
      name,
      plugins: ['bucardo', 'cutover', 'schema'],
      primary: { cluster: a, dbname: `${name}_a` },
      secondary: { cluster: b, dbname: `${name}_b` },
      ...(withKeyless ? { replicationObjects: { table_exclude: ['public.audit_log'] } } : {}),
      extra: {
        cutover: {
          ...CUTOVER,
          ...(withKeyless ? { copy_at_cutover: ['public.audit_log'] } : {}),
        },
      },
    }),
  };
  started.push(pair);
  const keyless = withKeyless ? KEYLESS : { schema: '', data: '' };
  await freshDatabase(a, pair.dbA, `${SCHEMA}${keyless.schema}${DATA}${keyless.data}`);
  await freshDatabase(b, pair.dbB, `${SCHEMA}${keyless.schema}`);
  const setup = await tool(pair, 'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy');
  assert.equal(setup.code, 0, setup.stdout + setup.stderr);
  await identical(pair, 'after the initial copy');
  return pair;
}

/** finish --way-back, with the checks every test needs: the reverse sync runs, nothing of A's sync is left. */
async function finishWithWayBack(pair: Pair, name: string): Promise<void> {
  const verify = await tool(pair, 'cutover.verify');
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  const finish = await tool(pair, 'cutover.finish --writes-stopped --way-back --json');
  assert.equal(finish.code, 0, finish.stdout + finish.stderr);
  const data = outcome(finish).data;
  const steps: string = data.steps.join('\n');
  assert.match(steps, new RegExp(`created sync ${name}_back \\(source the secondary, target the primary`));
  // The reverse sync is created before the confirmation: not part of the pause.
  assert.ok(
    steps.indexOf(`created sync ${name}_back`) < steps.indexOf('writes to the primary stopped'),
    steps,
  );
  assert.match(steps, /writes may go to the secondary/);
  assert.match(steps, new RegExp(`started the daemon \\(pid \\d+\\): sync ${name}_back carries`));
  console.log(
    `write pause with the way back: ${data.pause.seconds} s (${data.pause.steps.map((s: any) => `${s.step} ${s.seconds} s`).join(', ')})`,
  );
  assert.deepEqual(await syncs(pair), [`${name}_back`]);
  assert.deepEqual(await bucardoTriggers(pair.a, pair.dbA), [], "no Bucardo trigger left on A's tables");
  assert.deepEqual(await bucardoTriggers(pair.b, pair.dbB), [
    `accounts:bucardo_delta`,
    `accounts:bucardo_kick_${name}_back`,
    `accounts:bucardo_note_trunc_${name}_back`,
    `notes:bucardo_delta`,
    `notes:bucardo_kick_${name}_back`,
    `notes:bucardo_note_trunc_${name}_back`,
  ]);
  const [mode] = await query<{ modes: string }>(
    pair.b,
    pair.dbB,
    "SELECT string_agg(DISTINCT tgenabled::text, ',') AS modes FROM pg_trigger WHERE tgname LIKE 'bucardo%'",
  );
  assert.equal(mode!.modes, 'O', "the way back's triggers on B are ordinary (not ALWAYS)");
}

/** Writes as the application would make them on B once it points there. */
async function writeOnB(pair: Pair, id: number): Promise<void> {
  await query(
    pair.b,
    pair.dbB,
    `INSERT INTO public.accounts VALUES (${id}, 'written on b', ${id});
     UPDATE public.accounts SET balance = balance + 1000 WHERE id = ${id - 9000};
     DELETE FROM public.notes WHERE account = ${id - 9000};
     SELECT nextval('public.ledger_no') FROM generate_series(1, 25);`,
  );
}

after(async () => {
  for (const pair of started) {
    await tool(pair, 'bucardo.stop').catch(() => undefined);
    await forgetJob(pair.job, pair.a);
    await dropDatabase(pair.a, pair.dbA).catch(() => undefined);
    await dropDatabase(pair.b, pair.dbB).catch(() => undefined);
  }
});

test('finish --way-back carries B’s writes to A; rollback returns to A with nothing lost and no trigger on B', async () => {
  const pair = await setUp('wbr', true);
  await finishWithWayBack(pair, 'wbr');
  // The keyless table was copied A→B in the pause; the application changes it on B during the way back.
  assert.deepEqual(
    await tableRows(pair.b, pair.dbB, 'public.audit_log'),
    await tableRows(pair.a, pair.dbA, 'public.audit_log'),
  );
  await query(
    pair.b,
    pair.dbB,
    "UPDATE public.audit_log SET what = 'changed on b' WHERE at = 5; INSERT INTO public.audit_log VALUES (99, 'only on b')",
  );

  // The application now writes to B: the way back carries it to A.
  await writeOnB(pair, 9010);
  await identical(pair, 'writes on B reach A');
  const [carried] = await query<{ owner: string }>(
    pair.a,
    pair.dbA,
    'SELECT owner FROM public.accounts WHERE id = 9010',
  );
  assert.equal(carried?.owner, 'written on b');

  // A schema change while the way back runs and the application writes to B: B is the source now, so
  // what widens runs on A first and what narrows on B first; the way back's sync is reloaded, and a
  // new table joins it.
  let writing = true;
  let written = 0;
  const writer = (async () => {
    for (let id = 20_000; writing; id++) {
      await query(
        pair.b,
        pair.dbB,
        `INSERT INTO public.accounts (id, owner, balance) VALUES (${id}, 'busy', 1)`,
      );
      written++;
      await sleep(50);
    }
  })();
  const sql =
    'ALTER TABLE public.accounts ADD COLUMN region text; ALTER TABLE public.notes DROP COLUMN body; CREATE TABLE public.regions (code text PRIMARY KEY, name text)';
  // Without --yes a list stops at the plan, which says that it works on the way back.
  const plan = await tool(pair, `schema.apply --sql "${sql}"`);
  assert.equal(plan.code, 1, plan.stdout + plan.stderr);
  assert.match(
    plan.stdout,
    /On the way back: the application writes to the secondary \(B\) and sync wbr_back/,
  );
  assert.match(plan.stdout, /1\. A \(the primary, the way back's target\).*\n.*2\. B \(the secondary/);
  const change = await tool(pair, `schema.apply --sql "${sql}" --yes --json`);
  writing = false;
  await writer;
  assert.equal(change.code, 0, change.stdout + change.stderr);
  const applied = outcome(change);
  assert.equal(applied.data.wayBack, 'wbr_back');
  for (const c of applied.checks ?? []) assert.ok(c.pass, `${c.name}: ${c.detail ?? ''}`);
  const order = (applied.data.steps as string[]).map((line) =>
    line.startsWith('A (the primary') ? 'A' : line.startsWith('B (the secondary') ? 'B' : line,
  );
  const sides = order.filter((line) => line === 'A' || line === 'B');
  assert.deepEqual(sides, ['A', 'B', 'A'], applied.data.steps.join('\n'));
  assert.match(applied.data.steps.join('\n'), /reloaded the daemon/);
  assert.match(applied.data.steps.join('\n'), /recorded public\.regions in relgroup wbr_back/);
  assert.doesNotMatch(applied.data.steps.join('\n'), /sequence/, 'the way back carries no sequence');
  console.log(`rows written on B while schema.apply ran: ${written}`);
  // Rows written on B after the change reach A with the new column; so do the new table's.
  await query(
    pair.b,
    pair.dbB,
    "INSERT INTO public.accounts (id, owner, balance, region) VALUES (9100, 'after the change', 1, 'eu'); INSERT INTO public.regions VALUES ('eu', 'Europe')",
  );
  await waitFor(
    async () =>
      (
        await query<{ region: string }>(
          pair.a,
          pair.dbA,
          'SELECT region FROM public.accounts WHERE id = 9100',
        )
      )[0]?.region === 'eu',
    30_000,
    'the row written on B after the change to reach A with its new column',
  );
  await waitFor(
    async () =>
      (
        await query<{ name: string }>(pair.a, pair.dbA, "SELECT name FROM public.regions WHERE code = 'eu'")
      )[0]?.name === 'Europe',
    30_000,
    "the new table's row written on B to reach A",
  );
  await identical(pair, 'after the schema change on the way back');
  const diff = await tool(pair, 'schema.diff --json');
  assert.equal(diff.code, 0, diff.stdout + diff.stderr);
  assert.match(outcome(diff).message!, /On the way back \(sync wbr_back\)/);

  // Verify compares in the way back's direction and records it for rollback (the
  // new column and table included).
  const verify = await tool(pair, 'cutover.verify --json');
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  const report = outcome(verify).data;
  assert.ok(report.passed, report.verdict);
  assert.ok(
    report.notes.some((n: string) => /the way back runs/.test(n)),
    report.notes.join('; '),
  );
  const check = await tool(pair, 'cutover.check');
  assert.match(check.stdout, /Ready for rollback over the way back/, check.stdout + check.stderr);

  // The last writes on B, just before the operator stops them: the rollback drains them to A.
  await writeOnB(pair, 9020);
  const refused = await tool(pair, 'cutover.rollback');
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /-l "cutover\.rollback --writes-stopped"\. Nothing was changed\./);
  const rollback = await tool(pair, 'cutover.rollback --writes-stopped --json');
  assert.equal(rollback.code, 0, rollback.stdout + rollback.stderr);
  const data = outcome(rollback).data;
  const steps: string = data.steps.join('\n');
  assert.match(steps, /writes to the secondary \(B\) stopped/);
  assert.match(steps, /replication caught up: nothing pending/);
  assert.match(steps, /final check: /);
  assert.match(steps, /removed sync wbr_back from Bucardo/);
  assert.match(steps, /writes may go to the primary \(A\)/);
  console.log(
    `rollback pause: ${data.pause.seconds} s (${data.pause.steps.map((s: any) => `${s.step} ${s.seconds} s`).join(', ')})`,
  );
  for (const c of outcome(rollback).checks ?? []) assert.ok(c.pass, `${c.name}: ${c.detail ?? ''}`);
  // The keyless table copied back B→A in the rollback's pause: A has what the application wrote on B.
  assert.match(steps, /copied whole to the primary \(A\): "public"\."audit_log" \(21 row\(s\)\)/);
  assert.deepEqual(
    await tableRows(pair.a, pair.dbA, 'public.audit_log'),
    await tableRows(pair.b, pair.dbB, 'public.audit_log'),
  );
  const [changed] = await query<{ what: string }>(
    pair.a,
    pair.dbA,
    'SELECT what FROM public.audit_log WHERE at = 5',
  );
  assert.equal(changed?.what, 'changed on b');

  // Nothing lost: every row written on B is on A, both sides identical, A's sequence past B's.
  for (const table of TABLES)
    assert.deepEqual(
      await tableRows(pair.a, pair.dbA, table),
      await tableRows(pair.b, pair.dbB, table),
      table,
    );
  const [last] = await query<{ owner: string }>(
    pair.a,
    pair.dbA,
    'SELECT owner FROM public.accounts WHERE id = 9020',
  );
  assert.equal(last?.owner, 'written on b');
  const [seqA] = await query<{ v: string }>(
    pair.a,
    pair.dbA,
    'SELECT last_value::text AS v FROM public.ledger_no',
  );
  const [seqB] = await query<{ v: string }>(
    pair.b,
    pair.dbB,
    'SELECT last_value::text AS v FROM public.ledger_no',
  );
  assert.ok(Number(seqA!.v) > Number(seqB!.v), `A's sequence ${seqA!.v} past B's ${seqB!.v}`);
  assert.deepEqual(await bucardoTriggers(pair.b, pair.dbB), [], 'no Bucardo trigger left on B');
  assert.deepEqual(await syncs(pair), []);

  // Twice is safe; release afterwards finds nothing of the way back.
  const again = await tool(pair, 'cutover.rollback --writes-stopped --json');
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.match(outcome(again).message!, /The rollback of wbr already finished/);
  const release = await tool(pair, 'cutover.release --json');
  assert.equal(release.code, 0, release.stdout + release.stderr);
});

test('release removes the way back: no reverse sync, no trigger on B; twice is safe', async () => {
  const pair = await setUp('wbx');
  // A partitioned table in copy_at_cutover is refused before anything is set up (the way back included).
  await query(
    pair.a,
    pair.dbA,
    'CREATE TABLE public.events (at int, what text) PARTITION BY RANGE (at); CREATE TABLE public.events_1 PARTITION OF public.events FOR VALUES FROM (0) TO (1000);',
  );
  const partitioned = writeJobConfig({
    name: 'wbx',
    plugins: ['bucardo', 'cutover'],
    primary: { cluster: pair.a, dbname: pair.dbA },
    secondary: { cluster: pair.b, dbname: pair.dbB },
    extra: { cutover: { ...CUTOVER, copy_at_cutover: ['public.events'] } },
  });
  const refused = await runTool(
    ['-c', partitioned.file, '-l', 'cutover.finish --writes-stopped --way-back'],
    {
      timeoutMs: 150_000,
    },
  );
  assert.equal(refused.code, 1, refused.stdout + refused.stderr);
  assert.match(
    refused.stderr,
    /cutover\.copy_at_cutover names 1 table\(s\) that cannot be copied at the switch: "public"\."events" is a partitioned table: name its partitions in cutover\.copy_at_cutover instead \(each is copied whole\)\..*Nothing was changed\./,
  );
  assert.deepEqual(await syncs(pair), ['wbx'], 'no way back created, the sync untouched');
  assert.deepEqual(await bucardoTriggers(pair.b, pair.dbB), [], 'no trigger created on B');
  assert.equal(
    (await query(pair.a, 'bucardo', "SELECT 1 FROM bucardo.herd WHERE name = 'wbx_back'")).length,
    0,
    'no relgroup of the way back',
  );
  await query(pair.a, pair.dbA, 'DROP TABLE public.events');
  await finishWithWayBack(pair, 'wbx');
  await writeOnB(pair, 9030);
  await identical(pair, 'writes on B reach A');
  // bucardo.status knows only the job's own sync; the cutover plugin adds the way back's state and lag.
  const status = outcome(await tool(pair, 'bucardo.status --json')) as { hooks?: string[] };
  assert.ok(
    status.hooks?.some((l) =>
      /cutover: way back \(sync wbx_back, .*\): running; 0 change\(s\) pending/.test(l),
    ),
    JSON.stringify(status),
  );

  const uninstall = await tool(pair, 'bucardo.uninstall');
  assert.notEqual(uninstall.code, 0);
  assert.match(uninstall.stderr, /The way back of wbx \(sync wbx_back\) still exists/, uninstall.stderr);

  const release = await tool(pair, 'cutover.release --json');
  assert.equal(release.code, 0, release.stdout + release.stderr);
  const result = outcome(release);
  assert.ok(result.data.wayBackRemoved, result.message);
  assert.match(
    result.data.steps.join('\n'),
    /dropped the way back's triggers on 2 of 2 secondary table\(s\)/,
  );
  for (const c of result.checks ?? []) assert.ok(c.pass, `${c.name}: ${c.detail ?? ''}`);
  assert.deepEqual(await bucardoTriggers(pair.b, pair.dbB), [], 'no Bucardo trigger left on B');
  assert.deepEqual(await syncs(pair), []);
  // B's writes after the release stay on B: nothing carries them any more.
  await query(pair.b, pair.dbB, "INSERT INTO public.accounts VALUES (9040, 'after release', 1)");

  const twice = await tool(pair, 'cutover.release --json');
  assert.equal(twice.code, 0, twice.stdout + twice.stderr);
  assert.match(outcome(twice).message!, /Nothing to release/);
  const rollback = await tool(pair, 'cutover.rollback --writes-stopped');
  assert.equal(rollback.code, 1);
  assert.match(rollback.stderr, /There is no way back for wbx/);
});
