// Cascading A→B→C with two jobs: every kind of change on A reaches C (with and without asynchronous
// kicking on each hop), B→C refuses to start before A→B's copy is done, uninstalling either hop
// leaves the other replicating with no manual step, and B→C's copy leaves nothing to replay. Two
// cascades, not three: a cascade's setup is two jobs' lives (some 20 s of CPU), so the copy's check
// (issue 31) runs on the first one's tables.
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
  sameRowsEventually,
  waitFor,
  writeJobConfig,
} from '../support/harness.js';

const SCHEMA = `
CREATE TABLE public.items (id int PRIMARY KEY, v text);
CREATE TABLE public."CamelCase" ("Id" int PRIMARY KEY, "Val" text);
CREATE SEQUENCE public.ticket;
`;
const DATA = `
INSERT INTO public.items SELECT g, 'v' || g FROM generate_series(1, 200) g;
INSERT INTO public."CamelCase" SELECT g, 'c' || g FROM generate_series(1, 50) g;
SELECT setval('public.ticket', 100);
`;
// A composite key, as sales.order_items in the demo: Bucardo replays such keys with row-constructor
// IN lists, its slowest path (these 20,000 rows were pending 32 s after the copy; docs/cascade.md).
const LINES_SCHEMA = `
CREATE TABLE public.lines (order_id int, line int, v text, PRIMARY KEY (order_id, line));
`;
const LINES_DATA = `
INSERT INTO public.lines SELECT g / 2, g % 2, 'v' || g FROM generate_series(1, 20000) g;
`;

let a: ClusterInfo;
let b: ClusterInfo;
// A and C live in cluster a, B in cluster b; each hop's metadata database sits with its primary.
const A = () => ({ cluster: a, dbname: 'cas_a' });
const B = () => ({ cluster: b, dbname: 'cas_b' });
const C = () => ({ cluster: a, dbname: 'cas_c' });

before(async () => {
  ({ a, b } = await clusters());
});
after(async () => {
  for (const [cluster, name] of [
    [a, 'cas_a'],
    [b, 'cas_b'],
    [a, 'cas_c'],
  ] as const)
    await dropDatabase(cluster, name).catch(() => undefined);
});

/** Waits for the table's rows on the target to be the source's (a digest polled, then row by row). */
async function sameAs(
  source: { cluster: ClusterInfo; dbname: string },
  target: { cluster: ClusterInfo; dbname: string },
  table: string,
  what: string,
): Promise<void> {
  await sameRowsEventually(
    [source.cluster, source.dbname],
    [target.cluster, target.dbname],
    [table],
    25_000,
    what,
  );
}

async function setUp(
  aToBAsync: boolean,
  bToCAsync: boolean,
  t: { after: (fn: () => Promise<void>) => void },
  tables: { schema: string; data: string } = { schema: SCHEMA, data: DATA },
  plugins: string[] = ['bucardo'],
) {
  await freshDatabase(a, 'cas_a', tables.schema + tables.data);
  await freshDatabase(b, 'cas_b', tables.schema);
  await freshDatabase(a, 'cas_c', tables.schema);
  const aToB = writeJobConfig({
    name: 'a_to_b',
    primary: A(),
    secondary: { ...B(), cascade: true },
    metadata: a,
    asynchronousKicking: aToBAsync,
    plugins,
  });
  const bToC = writeJobConfig({
    name: 'b_to_c',
    primary: { ...B(), cascade: true },
    secondary: C(),
    metadata: b,
    asynchronousKicking: bToCAsync,
    plugins,
  });
  t.after(async () => {
    await forgetJob(bToC, b);
    await forgetJob(aToB, a);
  });
  return { aToB, bToC, both: ['-c1', aToB.file, '-c2', bToC.file] };
}

/** "table.column" of the public tables, one line each. */
async function columns(where: { cluster: ClusterInfo; dbname: string }): Promise<string> {
  const found = await query<{ c: string }>(
    where.cluster,
    where.dbname,
    `SELECT table_name || '.' || column_name AS c FROM information_schema.columns
      WHERE table_schema = 'public' ORDER BY 1`,
  );
  return found.map((row) => row.c).join('\n');
}

/**
 * schema.apply on the A→B job with both hops loaded: a column added (C, then B, then A), a column
 * dropped (A, then B, then C), a new table with rows; both hops' syncs reloaded, so later writes on A
 * reach C with the new column and the new table.
 */
async function assertSchemaApplyAlongTheCascade(both: string[]): Promise<void> {
  const change = `c1.schema.apply --sql 'ALTER TABLE public.items ADD COLUMN tier int DEFAULT 1; ALTER TABLE public."CamelCase" DROP COLUMN "Val"; CREATE TABLE public.extra (id int PRIMARY KEY, w int); INSERT INTO public.extra SELECT g, g FROM generate_series(1, 20) g' --yes`;
  const applied = await runTool([...both, '-l', `${change} --json`], { timeoutMs: 180_000 });
  assert.equal(applied.code, 0, applied.stdout + applied.stderr);
  const outcome = JSON.parse(applied.stdout.split('\n').find((l) => l.startsWith('{"command"'))!);
  assert.deepEqual(
    outcome.data.done,
    ['secondary-first', 'primary', 'secondary-after', 'reload', 'add-tables'],
    applied.stdout,
  );
  const steps: string[] = outcome.data.steps;
  const at = (pattern: RegExp) => steps.findIndex((step) => pattern.test(step));
  const [firstC, firstB] = [at(/^C .* on C \(b_to_c's secondary\)/), at(/^C .* on B:/)];
  const [afterB, afterC] = [at(/^B, then C .* on B:/), at(/^B, then C .* on C /)];
  assert.ok(firstC !== -1 && firstC < firstB, `what widens runs on C, then B:\n${steps.join('\n')}`);
  assert.ok(afterB !== -1 && afterB < afterC, `what narrows runs on B, then C:\n${steps.join('\n')}`);
  assert.ok(at(/^reloaded b_to_c's daemon/) !== -1, `both hops reloaded:\n${steps.join('\n')}`);
  for (const where of [A(), B(), C()]) {
    const found = await columns(where);
    assert.match(found, /^items\.tier$/m, `${where.dbname} has the new column`);
    assert.doesNotMatch(found, /^CamelCase\.Val$/m, `${where.dbname} lost the dropped column`);
    assert.match(found, /^extra\.w$/m, `${where.dbname} has the new table`);
  }
  await query(
    a,
    'cas_a',
    `UPDATE public.items SET tier = 5 WHERE id <= 10; INSERT INTO public."CamelCase" VALUES (8);
     INSERT INTO public.extra VALUES (100, 100);`,
  );
  await sameAs(A(), C(), 'public.items', 'the new column written on A to reach C');
  await sameAs(A(), C(), 'public."CamelCase"', 'a row of the narrowed table to reach C');
  await sameAs(A(), C(), 'public.extra', "the new table's rows and a later insert to reach C");
  const again = await runTool([...both, '-l', `${change} --json`]);
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.match(again.stdout, /"alreadyApplied":true/);
}

async function assertChangesReachC(): Promise<void> {
  await query(
    a,
    'cas_a',
    `
    INSERT INTO public.items VALUES (1001, 'new');
    UPDATE public.items SET v = 'updated' WHERE id <= 20;
    DELETE FROM public.items WHERE id > 190 AND id <= 200;
    UPDATE public."CamelCase" SET "Val" = 'x' WHERE "Id" = 1;`,
  );
  await sameAs(A(), C(), 'public.items', 'INSERT/UPDATE/DELETE on A to reach C');
  await sameAs(A(), C(), 'public."CamelCase"', 'the mixed-case table to reach C');
  await query(a, 'cas_a', `TRUNCATE public."CamelCase"; SELECT setval('public.ticket', 5000);`);
  await waitFor(
    async () => (await query(a, 'cas_c', 'SELECT 1 FROM public."CamelCase"')).length === 0,
    25_000,
    'TRUNCATE on A to empty the table on C',
  );
  await query(
    a,
    'cas_a',
    `INSERT INTO public."CamelCase" VALUES (7, 'after truncate'); INSERT INTO public.items VALUES (1002, 'sequence carrier');`,
  );
  await sameAs(A(), C(), 'public."CamelCase"', 'rows inserted after the TRUNCATE to reach C');
  await waitFor(
    async () =>
      (await query<{ last_value: string }>(a, 'cas_c', 'SELECT last_value FROM public.ticket'))[0]!
        .last_value === '5000',
    25_000,
    'the sequence to reach C',
  );
}

test("A→B with the kicker, B→C with ALWAYS kick triggers: B→C waits for A→B's copy; B→C's copy carries the rows A→B's copy recorded on B, nothing pending, nothing replayed after it (issue 31); all changes reach C; uninstalling B→C leaves A→B working", async (t) => {
  const { both, bToC } = await setUp(true, false, t, {
    schema: SCHEMA + LINES_SCHEMA,
    data: DATA + LINES_DATA,
  });
  const early = await runTool([
    ...both,
    '-l',
    'c1.bucardo.install c1.bucardo.add_triggers c2.bucardo.install c2.bucardo.add_triggers c2.bucardo.start',
  ]);
  assert.equal(early.code, 1, early.stdout + early.stderr);
  assert.match(
    early.stderr,
    /b_to_c replicates cas_b, which a_to_b is still filling \(its initial copy is pending\)\. .*Start a_to_b \(c1\.bucardo\.start\), wait for c1\.bucardo\.wait_for_copy/,
  );
  const modes = await query<{ tgname: string; tgenabled: string }>(
    b,
    'cas_b',
    "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'public.items'::regclass ORDER BY 1",
  );
  assert.deepEqual(
    modes,
    [
      { tgname: 'bucardo_delta', tgenabled: 'A' },
      { tgname: 'bucardo_kick_b_to_c', tgenabled: 'A' },
      { tgname: 'bucardo_note_trunc_b_to_c', tgenabled: 'A' },
    ],
    "B→C's triggers on B fire ALWAYS, so rows applied by A→B travel on",
  );

  const run = await runTool([
    ...both,
    '-l',
    'c1.bucardo.start c1.bucardo.wait_for_copy c2.bucardo.start c2.bucardo.wait_for_copy',
  ]);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  const copied = Date.now();
  // What B→C's copy read from B it has carried to C, so nothing is pending after it: only a change the
  // commit fence left untracked would be, for the next worker, which starts within
  // worker_check_interval (2 s) and a kick. Before the copy tracked them, the 20,000 rows waited about
  // 2 s for the next worker, then 30 s for its replay. The look's time is status's own checkedAt, but
  // the looks are paced by how long a status run takes (seconds on a busy machine, 9 s seen with two
  // other lanes and more beside them): the bound is well under the replay's 32 s, and the proof that
  // nothing was replayed is the count of rows the runs after the copy applied, below.
  const caughtUpAt = await waitFor(
    async () => {
      const status = await runTool(['-c', bToC.file, 'status', '--json']);
      const line = status.stdout.split('\n').find((l) => l.startsWith('{'));
      const json = line
        ? (JSON.parse(line) as { data: { pendingTotal: number; checkedAt: string } })
        : undefined;
      return json?.data.pendingTotal === 0 ? Date.parse(json.data.checkedAt) : undefined;
    },
    30_000,
    'B→C to report nothing pending after its copy',
  );
  t.diagnostic(`B→C had nothing pending ${caughtUpAt - copied} ms after c2.bucardo.wait_for_copy returned`);
  assert.ok(caughtUpAt - copied < 20_000, `nothing pending only ${caughtUpAt - copied} ms after the copy`);
  const replayed = await query<{ rows: number }>(
    b,
    'bucardo',
    `SELECT coalesce(sum(inserts + deletes), 0)::int AS rows FROM bucardo.syncrun
      WHERE sync = 'b_to_c' AND started > (SELECT min(ended) FROM bucardo.syncrun WHERE sync = 'b_to_c')`,
  );
  assert.equal(replayed[0]!.rows, 0, "no run after B→C's copy applies the rows the copy carried");
  await sameAs(A(), C(), 'public.lines', 'the copies to fill C');
  await sameAs(A(), C(), 'public.items', 'the initial copies to fill C');
  await query(a, 'cas_a', "UPDATE public.lines SET v = 'after' WHERE order_id = 7");
  await sameAs(A(), C(), 'public.lines', 'a change after the copies to reach C');
  await assertChangesReachC();

  const removeBToC = await runTool([...both, '-l', 'c2.bucardo.uninstall']);
  assert.equal(removeBToC.code, 0, removeBToC.stdout + removeBToC.stderr);
  assert.equal(
    (await query(b, 'cas_b', "SELECT 1 FROM pg_namespace WHERE nspname = 'bucardo'")).length,
    0,
    "B→C's schema is gone from B",
  );
  await query(a, 'cas_a', "INSERT INTO public.items VALUES (2001, 'after removing B->C')");
  await sameAs(A(), B(), 'public.items', 'A→B to keep replicating after B→C was uninstalled');
  const removeAToB = await runTool([...both, '-l', 'c1.bucardo.uninstall']);
  assert.equal(removeAToB.code, 0, removeAToB.stdout + removeAToB.stderr);
});

test('A→B with kick triggers, B→C with the kicker: all changes and a schema.apply reach C; uninstalling A→B leaves B→C working', async (t) => {
  const { both } = await setUp(false, true, t, undefined, ['bucardo', 'schema']);
  const run = await runTool([
    ...both,
    '-l',
    'c1.bucardo.install c1.bucardo.add_triggers c2.bucardo.install c2.bucardo.add_triggers c1.bucardo.start c1.bucardo.wait_for_copy c2.bucardo.start c2.bucardo.wait_for_copy',
  ]);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  await assertChangesReachC();
  await assertSchemaApplyAlongTheCascade(both);

  const removeAToB = await runTool([...both, '-l', 'c1.bucardo.uninstall']);
  assert.equal(removeAToB.code, 0, removeAToB.stdout + removeAToB.stderr);
  await query(b, 'cas_b', "INSERT INTO public.items VALUES (3001, 'written on B')");
  await sameAs(B(), C(), 'public.items', 'B→C to keep replicating after A→B was uninstalled');
  // The status, then the uninstall: one run (each costs a tool's start), both must pass.
  const removeBToC = await runTool([...both, '-l', 'c2.bucardo.status --json c2.bucardo.uninstall']);
  assert.equal(removeBToC.code, 0, removeBToC.stdout + removeBToC.stderr);
  assert.match(removeBToC.stdout, /^\{"command":"[^"]*bucardo\.status","ok":true/m, removeBToC.stdout);
});
