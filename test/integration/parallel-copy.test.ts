// copy_data: parallel, the console's own initial copy: under a concurrent write load the secondary ends
// identical (cutover.verify and an md5 of the ordered rows on both sides); a table split into key
// ranges arrives whole; Ctrl-C mid-copy, then a rerun copies only what was not done; indexes dropped
// before the copy are rebuilt per table while the others copy; a cascade A→B→C with both hops in this mode.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import pg from 'pg';
import type { ClusterInfo } from '../../src/sandbox/cluster.js';
import {
  clusters,
  dropDatabase,
  FIXTURE_PLUGINS,
  forgetJob,
  freshDatabase,
  query,
  ROOT,
  runTool,
  tableDigest,
  waitFor,
  writeJobConfig,
  type WrittenJob,
} from '../support/harness.js';

const SCHEMA = `
CREATE TABLE public.big (id bigint PRIMARY KEY, v text, n int);
CREATE TABLE public.lines (order_id int, line int, qty int, PRIMARY KEY (order_id, line));
CREATE TABLE public.tags (name text PRIMARY KEY, note text);
CREATE TABLE public.child (id int PRIMARY KEY, big_id bigint NOT NULL REFERENCES public.big (id));
CREATE TABLE public.blocked (id int PRIMARY KEY, v text);
`;
const DATA = `
INSERT INTO public.big SELECT g, md5(g::text), g % 100 FROM generate_series(1, 20000) g;
INSERT INTO public.lines SELECT o, l, o + l FROM generate_series(1, 1000) o, generate_series(1, 3) l;
INSERT INTO public.tags SELECT 'tag' || g, 'note ' || g FROM generate_series(1, 500) g;
INSERT INTO public.child SELECT g, g * 3 FROM generate_series(1, 2000) g;
INSERT INTO public.blocked SELECT g, 'b' || g FROM generate_series(1, 300) g;
ANALYZE;
`;
/**
 * Secondary indexes: two on a large table, a unique constraint, a quoted name (indexes.drop drops them
 * before the copy, the copy rebuilds them).
 */
const INDEXES = `
CREATE INDEX big_n ON public.big (n);
CREATE INDEX big_v ON public.big (v);
ALTER TABLE public.tags ADD CONSTRAINT tags_note_key UNIQUE (note);
CREATE INDEX "Blocked V" ON public.blocked (v);
`;

const TABLES = ['public.big', 'public.lines', 'public.tags', 'public.child', 'public.blocked'];

let a: ClusterInfo;
let b: ClusterInfo;

before(async () => {
  ({ a, b } = await clusters());
});
after(async () => {
  for (const [cluster, name] of [
    [a, 'pc_a'],
    [b, 'pc_b'],
    [a, 'pci_a'],
    [b, 'pci_b'],
    [a, 'pcr_a'],
    [b, 'pcr_b'],
    [b, 'pcc_b'],
    [a, 'pcc_a'],
    [a, 'pcc_c'],
  ] as const)
    await dropDatabase(cluster, name).catch(() => undefined);
});

/** Count and md5 of the rows in key order: equal on both sides means the same rows. */
async function fingerprint(cluster: ClusterInfo, db: string, table: string): Promise<string> {
  const [row] = await query<{ n: string; sum: string | null }>(
    cluster,
    db,
    `SELECT count(*) AS n, md5(string_agg(t::text, '|' ORDER BY t::text)) AS sum FROM ${table} t`,
  );
  return `${row!.n}:${row!.sum}`;
}

async function identical(
  source: [ClusterInfo, string],
  target: [ClusterInfo, string],
): Promise<{ same: boolean; differs: string[] }> {
  const differs: string[] = [];
  for (const table of TABLES)
    if ((await fingerprint(...source, table)) !== (await fingerprint(...target, table))) differs.push(table);
  return { same: differs.length === 0, differs };
}

/**
 * Waits until the target holds the source's rows, then proves it with the ordered md5s. The wait polls
 * the cheap digest of test/support (no sort): polling `identical` sorted 26,000 rows on each side five
 * times a second.
 */
async function becomesIdentical(
  source: [ClusterInfo, string],
  target: [ClusterInfo, string],
  what: string,
): Promise<void> {
  await waitFor(
    async () => {
      for (const table of TABLES)
        if ((await tableDigest(...source, table)) !== (await tableDigest(...target, table))) return false;
      return true;
    },
    60_000,
    what,
  );
  assert.deepEqual((await identical(source, target)).differs, [], what);
}

function copyRecord(job: WrittenJob, sync: string): { plan: { id: string }[]; done: string[]; pid?: number } {
  return JSON.parse(readFileSync(path.join(job.dir, 'state', `parallel-copy.${sync}.json`), 'utf8'));
}

/** bucardo.copy in a child process, its output collected; killed (by pid) after the test if still running. */
function copyInBackground(
  t: TestContext,
  job: WrittenJob,
): { child: ChildProcess; output: () => string; exited: Promise<number> } {
  const child = spawn(
    process.execPath,
    [path.join(ROOT, 'wrapper.js'), '-c', job.file, '-l', 'bucardo.copy'],
    {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1', BUCARDO_CONSOLE_PLUGIN_PATH: FIXTURE_PLUGINS },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return { child, output: () => output, exited };
}

/** A write load on the primary: inserts, updates and deletes in small transactions until stopped. */
function writeLoad(cluster: ClusterInfo, db: string): { stop: () => Promise<number> } {
  let running = true;
  let commits = 0;
  const done = (async () => {
    const client = new pg.Client({ host: cluster.host, port: cluster.port, user: 'postgres', database: db });
    await client.connect();
    try {
      let next = 100_000;
      while (running) {
        const id = 1 + Math.floor(Math.random() * 20000);
        await client.query('BEGIN');
        await client.query('INSERT INTO public.big VALUES ($1, $2, 7)', [next, `new ${next}`]);
        await client.query('UPDATE public.big SET v = v || $2, n = n + 1 WHERE id = $1', [id, '+']);
        // Rows child does not reference (child points at multiples of 3 up to 6000).
        await client.query('DELETE FROM public.big WHERE id = $1 AND id > 6000', [id]);
        await client.query('UPDATE public.lines SET qty = qty + 1 WHERE order_id = $1', [1 + (id % 1000)]);
        await client.query('DELETE FROM public.lines WHERE order_id = $1 AND line = 3', [1 + (id % 997)]);
        await client.query(
          'INSERT INTO public.tags VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET note = excluded.note',
          [`tag${id % 700}`, `load ${next}`],
        );
        await client.query('COMMIT');
        next += 1;
        commits += 1;
        // Paced (CONTRIBUTING.md): hundreds of commits before, during and after the copy, not as many
        // as a free core allows (each one Bucardo then replicates).
        await new Promise((r) => setTimeout(r, 10));
      }
    } finally {
      await client.end();
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
      return commits;
    },
  };
}

test('parallel copy under a concurrent write load: the secondary ends identical (verify and md5 of ordered rows)', async (t) => {
  await freshDatabase(a, 'pc_a', SCHEMA + INDEXES + DATA);
  await freshDatabase(b, 'pc_b', SCHEMA + INDEXES);
  const job = writeJobConfig({
    name: 'pcopy',
    plugins: ['bucardo', 'cutover', 'indexes'],
    primary: { cluster: a, dbname: 'pc_a' },
    secondary: { cluster: b, dbname: 'pc_b' },
    copyData: 'parallel',
    bucardoSettings: { copy_jobs: 3, copy_split_rows: 2000 },
    extra: { cutover: { settle_time: 5 }, indexes: { larger_than: '1 kB', jobs: 2 } },
  });
  // forgetJob stops the daemon by its pids: a bucardo.stop run first would only add its CPU.
  t.after(() => forgetJob(job, a));
  const tool = (list: string) => runTool(['-c', job.file, '-l', list]);
  // The status in the same run: a tool run costs half a second of CPU before its work.
  const installed = await tool(
    'bucardo.install indexes.install bucardo.add_triggers indexes.drop bucardo.status --json',
  );
  assert.equal(installed.code, 0, installed.stdout + installed.stderr);
  assert.match(installed.stdout, /"copy":\{"state":"pending"/);
  assert.deepEqual(await secondaryIndexes(b, 'pc_b'), [], 'indexes.drop removed the four indexes');
  const sync = await query<{ onetimecopy: number }>(
    a,
    'bucardo',
    "SELECT onetimecopy FROM bucardo.sync WHERE name = 'pcopy'",
  );
  assert.equal(sync[0]!.onetimecopy, 0, "the sync is created without Bucardo's one-time copy");

  const load = writeLoad(a, 'pc_a');
  // Stopped also when the test fails: a load left running keeps the file (and the servers) busy.
  t.after(() => load.stop());
  // Changes before the copy, during it, and after it.
  await new Promise((r) => setTimeout(r, 1000));
  const started = await tool('bucardo.start');
  // A second of changes after the copy is enough to replicate on top of it: each second more only
  // adds syncs that Bucardo runs back to back.
  await new Promise((r) => setTimeout(r, 1000));
  const commits = await load.stop();
  assert.equal(started.code, 0, started.stdout + started.stderr);
  assert.match(started.stdout, /copied 5 table\(s\) in \d+ unit\(s\), 3 at a time/);
  assert.ok(commits > 20, `the load committed during the copy (${commits} commits)`);
  // The daemon started while the last rebuilds ran; the command ended only after them.
  assert.match(
    started.stdout,
    /indexes: rebuilt 2 index\(es\) of public\.big in [\d.]+ s as soon as its rows were copied/,
  );
  assert.deepEqual(await secondaryIndexes(b, 'pc_b'), ['Blocked V', 'big_n', 'big_v', 'tags_note_key']);
  const record = copyRecord(job, 'pcopy');
  assert.ok(
    record.plan.filter((u) => u.id.startsWith('public.big#')).length >= 5,
    'public.big (20,000 rows) is split into ranges of about 2,000',
  );
  assert.ok(
    record.plan.some((u) => u.id === 'public.lines'),
    'a composite key is copied whole',
  );

  await becomesIdentical([a, 'pc_a'], [b, 'pc_b'], 'the secondary to match the primary after the load');
  // One run for the four checks (the list stops at the first that fails; each prints its own lines).
  const checks = await tool('cutover.verify --json bucardo.status --json bucardo.copy indexes.recreate');
  assert.equal(checks.code, 0, checks.stdout + checks.stderr);
  assert.match(checks.stdout, /Identical: 5 table\(s\)/);
  assert.match(checks.stdout, /"copy":\{"state":"done"/);
  assert.match(checks.stdout, /initial copy already done/);
  assert.match(checks.stdout, /All 4 recorded index\(es\) are present and valid on the secondary/);
});

test('Ctrl-C mid-copy, then a rerun copies only what was not done; ranges arrive whole', async (t) => {
  await freshDatabase(a, 'pc_a', SCHEMA + DATA);
  await freshDatabase(b, 'pc_b', SCHEMA);
  const job = writeJobConfig({
    name: 'pcint',
    primary: { cluster: a, dbname: 'pc_a' },
    secondary: { cluster: b, dbname: 'pc_b' },
    copyData: 'parallel',
    bucardoSettings: { copy_jobs: 2, copy_split_rows: 3000 },
  });
  const locker = new pg.Client({ host: a.host, port: a.port, user: 'postgres', database: 'pc_a' });
  t.after(async () => {
    await locker.end().catch(() => undefined);
    await forgetJob(job, a);
  });
  const installed = await runTool(['-c', job.file, '-l', 'bucardo.install bucardo.add_triggers']);
  assert.equal(installed.code, 0, installed.stdout + installed.stderr);
  // public.blocked cannot be read while this lock is held: its copy waits, the others finish.
  await locker.connect();
  await locker.query('BEGIN');
  await locker.query('LOCK TABLE public.blocked IN ACCESS EXCLUSIVE MODE');

  const { child, output, exited } = copyInBackground(t, job);
  const stateFile = path.join(job.dir, 'state', 'parallel-copy.pcint.json');
  await waitFor(
    async () => {
      if (!existsSync(stateFile)) return false;
      const record = copyRecord(job, 'pcint');
      return record.plan.length > 0 && record.done.length === record.plan.length - 1;
    },
    30_000,
    'every unit but public.blocked to be copied',
  );
  const waiting = await query(
    a,
    'pc_a',
    "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'COPY %blocked% TO STDOUT'",
  );
  assert.equal(waiting.length, 1, 'the copy of public.blocked waits for the lock');
  child.kill('SIGINT');
  const code = await exited;
  assert.notEqual(code, 0, output());
  assert.match(output(), /Copy interrupted: \d+ of \d+ table\(s\)\/range\(s\) are done/);
  const interrupted = copyRecord(job, 'pcint');
  assert.equal(interrupted.pid, undefined, 'no process is recorded as copying');
  assert.ok(!interrupted.done.includes('public.blocked'));
  const bigRanges = interrupted.plan.filter((u) => u.id.startsWith('public.big#')).map((u) => u.id);
  assert.ok(bigRanges.length >= 4, `public.big is split into ranges (${bigRanges.join(', ')})`);
  const afterCancel = await query(
    a,
    'pc_a',
    "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'COPY %blocked%TO STDOUT'",
  );
  assert.equal(afterCancel.length, 0, 'the server-side COPY was cancelled');

  await locker.query('COMMIT');
  // A row the target holds in a unit that is not recorded as done (as after a crash between commit
  // and record): the rerun clears the unit before copying it.
  await query(b, 'pc_b', "INSERT INTO public.blocked VALUES (999999, 'stray')");
  // The status of the interrupted copy, then the rerun: one tool run.
  const rerun = await runTool(['-c', job.file, '-l', 'bucardo.status --json bucardo.copy --json']);
  assert.equal(rerun.code, 0, rerun.stdout + rerun.stderr);
  const [status, copy] = rerun.stdout
    .split('\n')
    .filter((line) => line.startsWith('{"command"'))
    .map((line) => JSON.parse(line) as { command: string; data: unknown });
  assert.equal(status!.command, 'bucardo.status', rerun.stdout);
  assert.match(JSON.stringify(status!.data), /"copy":\{"state":"pending"/);
  assert.equal(copy!.command, 'bucardo.copy', rerun.stdout);
  const data = copy!.data as {
    unitsCopied: string[];
    unitsSkipped: string[];
  };
  assert.deepEqual(data.unitsCopied, ['public.blocked'], 'only the table not done is copied again');
  for (const range of bigRanges) assert.ok(data.unitsSkipped.includes(range), `${range} is not copied again`);
  // The daemon never ran: the secondary holds exactly what the copy wrote.
  const compared = await identical([a, 'pc_a'], [b, 'pc_b']);
  assert.deepEqual(compared.differs, []);
  assert.equal(await fingerprint(b, 'pc_b', 'public.big'), await fingerprint(a, 'pc_a', 'public.big'));
});

async function secondaryIndexes(cluster: ClusterInfo, db: string): Promise<string[]> {
  const rows = await query<{ name: string }>(
    cluster,
    db,
    "SELECT indexname AS name FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT LIKE '%_pkey' ORDER BY 1",
  );
  return rows.map((r) => r.name);
}

test('indexes dropped before a parallel copy are rebuilt table by table while the other tables still copy', async (t) => {
  await freshDatabase(a, 'pci_a', SCHEMA + INDEXES + DATA);
  await freshDatabase(b, 'pci_b', SCHEMA + INDEXES);
  const job = writeJobConfig({
    name: 'pcidx',
    plugins: ['bucardo', 'indexes'],
    primary: { cluster: a, dbname: 'pci_a' },
    secondary: { cluster: b, dbname: 'pci_b' },
    copyData: 'parallel',
    bucardoSettings: { copy_jobs: 2 },
    extra: { indexes: { larger_than: '1 kB', jobs: 2 } },
  });
  const locker = new pg.Client({ host: b.host, port: b.port, user: 'postgres', database: 'pci_b' });
  t.after(async () => {
    await locker.end().catch(() => undefined);
    await forgetJob(job, a);
  });
  const prepared = await runTool([
    '-c',
    job.file,
    '-l',
    'bucardo.install indexes.install bucardo.add_triggers indexes.drop',
  ]);
  assert.equal(prepared.code, 0, prepared.stdout + prepared.stderr);
  assert.deepEqual(await secondaryIndexes(b, 'pci_b'), [], 'indexes.drop removed the four indexes');
  // The copy of public.blocked cannot write while this lock is held (SHARE blocks COPY's ROW EXCLUSIVE,
  // not the reads before it): the other tables finish, and their indexes must be rebuilt meanwhile.
  await locker.connect();
  await locker.query('BEGIN');
  await locker.query('LOCK TABLE public.blocked IN SHARE MODE');

  const { child, output, exited } = copyInBackground(t, job);
  await waitFor(
    async () => (await secondaryIndexes(b, 'pci_b')).length === 3,
    60_000,
    "the indexes of public.big and public.tags to be rebuilt while public.blocked's copy waits",
  );
  assert.deepEqual(await secondaryIndexes(b, 'pci_b'), ['big_n', 'big_v', 'tags_note_key']);
  // Counted in the locking session: another session's read could queue behind the copy's TRUNCATE while
  // it waits for its lock (up to 2 s).
  const {
    rows: [blocked],
  } = await locker.query<{ n: string }>('SELECT count(*) AS n FROM public.blocked');
  assert.equal(blocked!.n, '0', 'public.blocked is still not copied: the rebuilds overlapped the copy');
  assert.ok(!copyRecord(job, 'pcidx').done.includes('public.blocked'));
  assert.equal(child.exitCode, null, 'the copy is still running');

  await locker.query('COMMIT');
  const code = await Promise.race([exited, new Promise<number>((r) => setTimeout(() => r(-1), 60_000))]);
  assert.equal(code, 0, output());
  assert.match(
    output(),
    /indexes: rebuilt 2 index\(es\) of public\.big in [\d.]+ s as soon as its rows were copied/,
  );
  assert.match(output(), /indexes: rebuilt 1 index\(es\) of public\.blocked/);
  // The listeners ran side by side on the command's shared sessions without pg's warning.
  assert.doesNotMatch(output(), /DeprecationWarning|Warning:/);
  assert.deepEqual(await secondaryIndexes(b, 'pci_b'), ['Blocked V', 'big_n', 'big_v', 'tags_note_key']);
  const [constraint] = await query<{ n: string }>(
    b,
    'pci_b',
    "SELECT count(*) AS n FROM pg_constraint WHERE conname = 'tags_note_key' AND contype = 'u'",
  );
  assert.equal(constraint!.n, '1', 'the unique constraint is attached again');
  const compared = await identical([a, 'pci_a'], [b, 'pci_b']);
  assert.deepEqual(compared.differs, []);
  // Every record is marked rebuilt: indexes.recreate finds nothing to do, and says so.
  const recreate = await runTool(['-c', job.file, '-l', 'indexes.recreate']);
  assert.equal(recreate.code, 0, recreate.stdout + recreate.stderr);
  assert.match(recreate.stdout, /All 4 recorded index\(es\) are present and valid on the secondary/);
});

// One job for two concerns of the copy (a job's install costs some 4 s of CPU): rows that must arrive
// byte for byte, and tables that may arrive frozen. A reader holds public.busy on the secondary through
// both runs (the refused one and the one that finishes).
test("rows arrive byte for byte (escapes, NULLs, multi-megabyte values); a secondary's error ends the copy cleanly; whole tables of 1 MB or more arrive frozen (COPY FREEZE) where a TRUNCATE can go first; referenced, busy or small ones plainly", async (t) => {
  const schema = `
CREATE TABLE public.odd (id int PRIMARY KEY, t text, b bytea, j jsonb, "Mixed ""Case""" text);
CREATE TABLE public.huge (id int PRIMARY KEY, blob text);
CREATE TABLE public.solo (id int PRIMARY KEY, v text);
CREATE TABLE public.parent (id int PRIMARY KEY, v text);
CREATE TABLE public.kid (id int PRIMARY KEY, parent_id int REFERENCES public.parent (id), v text);
CREATE TABLE public.small (id int PRIMARY KEY, v text);
CREATE TABLE public.busy (id int PRIMARY KEY, v text);`;
  const data = `
INSERT INTO public.odd SELECT g, CASE WHEN g % 5 = 0 THEN NULL ELSE E'line\\none\\ttab \\\\ back ' || g || ' ünïcødé ✓' END,
  decode(md5(g::text), 'hex'), jsonb_build_object('g', g, 'q', E'"\\n'), CASE WHEN g % 7 = 0 THEN '' END
  FROM generate_series(1, 30000) g;
INSERT INTO public.huge SELECT g, repeat(md5(g::text), 100000) FROM generate_series(1, 3) g;
INSERT INTO public.solo SELECT g, repeat('s', 50) FROM generate_series(1, 20000) g;
INSERT INTO public.parent SELECT g, repeat('p', 50) FROM generate_series(1, 20000) g;
INSERT INTO public.kid SELECT g, g, repeat('k', 50) FROM generate_series(1, 20000) g;
INSERT INTO public.busy SELECT g, repeat('b', 50) FROM generate_series(1, 20000) g;
INSERT INTO public.small SELECT g, repeat('m', 50) FROM generate_series(1, 1000) g;
ANALYZE;`;
  await freshDatabase(a, 'pcr_a', schema + data);
  // A check the primary does not have: the secondary refuses row 777 in the middle of the stream.
  await freshDatabase(
    b,
    'pcr_b',
    schema +
      'ALTER TABLE public.odd ADD CONSTRAINT not_777 CHECK (id <> 777); CREATE EXTENSION pg_visibility;',
  );
  const job = writeJobConfig({
    name: 'pcrelay',
    primary: { cluster: a, dbname: 'pcr_a' },
    secondary: { cluster: b, dbname: 'pcr_b' },
    copyData: 'parallel',
    bucardoSettings: { copy_jobs: 2 },
  });
  // A reader of public.busy on the secondary for the whole copy: its TRUNCATE would have to wait.
  const reader = new pg.Client({ host: b.host, port: b.port, user: 'postgres', database: 'pcr_b' });
  t.after(async () => {
    await reader.end().catch(() => undefined);
    await forgetJob(job, a);
  });
  await reader.connect();
  await reader.query('BEGIN');
  await reader.query('SELECT count(*) FROM public.busy');
  const installed = await runTool(['-c', job.file, '-l', 'bucardo.install bucardo.add_triggers']);
  assert.equal(installed.code, 0, installed.stdout + installed.stderr);
  const refused = await runTool(['-c', job.file, '-l', 'bucardo.copy']);
  assert.notEqual(refused.code, 0, refused.stdout);
  assert.match(refused.stdout + refused.stderr, /not_777/);
  const [left] = await query<{ n: string }>(b, 'pcr_b', 'SELECT count(*) AS n FROM public.odd');
  assert.equal(left!.n, '0', 'the refused unit left no row behind');
  const copying = await query(
    a,
    'pcr_a',
    "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'COPY %odd%' AND pid <> pg_backend_pid()",
  );
  assert.equal(copying.length, 0, 'no COPY is left running on the primary');

  await query(b, 'pcr_b', 'ALTER TABLE public.odd DROP CONSTRAINT not_777');
  const copied = await runTool(['-c', job.file, '-l', 'bucardo.copy --json']);
  await reader.query('COMMIT');
  assert.equal(copied.code, 0, copied.stdout + copied.stderr);
  // Over both runs (the first may have finished some tables before the refusal).
  const record = JSON.parse(
    readFileSync(path.join(job.dir, 'state', 'parallel-copy.pcrelay.json'), 'utf8'),
  ) as {
    rowsDone: number;
    bytesDone: number;
  };
  assert.equal(record.rowsDone, 30003 + 4 * 20000 + 1000, 'rows counted as they streamed');
  assert.ok(record.bytesDone > 9_600_000, `bytes counted as they streamed (${record.bytesDone})`);
  for (const table of ['public.odd', 'public.huge'])
    assert.equal(await fingerprint(b, 'pcr_b', table), await fingerprint(a, 'pcr_a', table), table);

  const frozen = async (table: string) =>
    (
      await query<{ pages: number; frozen: number }>(
        b,
        'pcr_b',
        `SELECT (pg_relation_size($1) / current_setting('block_size')::int)::int AS pages, all_frozen::int AS frozen
           FROM pg_visibility_map_summary($1)`,
        [table],
      )
    )[0]!;
  for (const table of ['public.solo', 'public.kid']) {
    const { pages, frozen: allFrozen } = await frozen(table);
    assert.ok(pages > 0 && allFrozen === pages, `${table}: ${allFrozen} of ${pages} pages frozen`);
  }
  // parent: kid's foreign key refuses its TRUNCATE; busy: the reader holds it past the 2 s wait;
  // small: under 1 MB, not worth a TRUNCATE.
  for (const table of ['public.parent', 'public.busy', 'public.small'])
    assert.equal((await frozen(table)).frozen, 0, `${table} was copied plainly`);
  for (const table of ['public.solo', 'public.parent', 'public.kid', 'public.busy', 'public.small'])
    assert.equal(await fingerprint(b, 'pcr_b', table), await fingerprint(a, 'pcr_a', table), table);
});

test('cascade A→B→C with copy_data parallel and bucardo.syncs 2 on both hops: B→C copies B only after A→B has filled it', async (t) => {
  await freshDatabase(a, 'pcc_a', SCHEMA + DATA);
  await freshDatabase(b, 'pcc_b', SCHEMA);
  await freshDatabase(a, 'pcc_c', SCHEMA);
  const aToB = writeJobConfig({
    name: 'pc_a_to_b',
    primary: { cluster: a, dbname: 'pcc_a' },
    secondary: { cluster: b, dbname: 'pcc_b', cascade: true },
    metadata: a,
    copyData: 'parallel',
    // Both features of the issue at once: the console's copy, and two syncs (two workers) per hop.
    bucardoSettings: { copy_split_rows: 5000, syncs: 2 },
  });
  const bToC = writeJobConfig({
    name: 'pc_b_to_c',
    primary: { cluster: b, dbname: 'pcc_b', cascade: true },
    secondary: { cluster: a, dbname: 'pcc_c' },
    metadata: b,
    copyData: 'parallel',
    bucardoSettings: { copy_split_rows: 5000, syncs: 2 },
  });
  t.after(async () => {
    await forgetJob(bToC, b);
    await forgetJob(aToB, a);
  });
  const both = ['-c1', aToB.file, '-c2', bToC.file];
  const early = await runTool([
    ...both,
    '-l',
    'c1.bucardo.install c1.bucardo.add_triggers c2.bucardo.install c2.bucardo.add_triggers c2.bucardo.start',
  ]);
  assert.equal(early.code, 1, early.stdout + early.stderr);
  assert.match(
    early.stderr,
    /pc_b_to_c replicates pcc_b, which pc_a_to_b is still filling \(its initial copy is pending\)/,
  );
  assert.equal(
    (await query(a, 'pcc_c', 'SELECT 1 FROM public.big LIMIT 1')).length,
    0,
    'nothing copied to C',
  );

  // B→C's status in the same run (its copy is done once c2.bucardo.start returns).
  const started = await runTool([
    ...both,
    '-l',
    'c1.bucardo.start c1.bucardo.wait_for_copy c2.bucardo.start c2.bucardo.status --json',
  ]);
  assert.equal(started.code, 0, started.stdout + started.stderr);
  // Each hop copies its 5 tables, spread over its two syncs (one line per sync).
  const copied = [...started.stdout.matchAll(/^\s*- (pc_\w+?)_\d: copied (\d+) table\(s\)/gm)];
  assert.equal(copied.length, 4, started.stdout);
  for (const hop of ['pc_a_to_b', 'pc_b_to_c'])
    assert.equal(
      copied.filter((m) => m[1] === hop).reduce((sum, m) => sum + Number(m[2]), 0),
      5,
      started.stdout,
    );
  await query(
    a,
    'pcc_a',
    `INSERT INTO public.big VALUES (500000, 'after', 1);
     UPDATE public.big SET v = 'changed' WHERE id <= 50;
     DELETE FROM public.big WHERE id BETWEEN 19000 AND 19010;
     UPDATE public.tags SET note = 'cascaded' WHERE name = 'tag1';`,
  );
  assert.match(started.stdout, /"copy":\{"state":"done"/);
  await becomesIdentical([a, 'pcc_a'], [a, 'pcc_c'], 'C to match A through B');
});
