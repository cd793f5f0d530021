// The schema plugin against real clusters and the real Bucardo daemon, with the application writing
// throughout: schema.diff names every kind of difference and is quiet when there is none; add_tables
// brings tables created while replication runs into the job with their rows (no change lost, the
// application's lock waits bounded); schema.apply changes both sides in the safe order, refuses what
// Bucardo cannot follow, and completes after a kill. The same with bucardo.syncs: 2.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import yaml from 'js-yaml';
import pg from 'pg';
import { readPidFile } from '../../src/core/process.js';
import { freePort, type ClusterInfo } from '../../src/sandbox/cluster.js';
import {
  clusters,
  dropDatabase,
  forgetJob,
  freshDatabase,
  query,
  ROOT,
  runTool,
  runningTools,
  tableDigest,
  tableRows,
  waitFor,
  writeJobConfig,
  type ToolResult,
  type WrittenJob,
} from '../support/harness.js';

const PRIMARY = 'schema_a';
const SECONDARY = 'schema_b';
const LOCK_TIMEOUT_MS = 1000;
/** How much longer than the lock timeout an application statement may wait (as retry.test). */
const MARGIN_MS = 700;
/**
 * A change under a write load meets writers already under way (the load runs this long before it),
 * and writes made after it must arrive too (the load goes on this long after it). Short: under the
 * load Bucardo syncs back to back, so every second of it costs CPU, and a writer runs some twenty
 * statements a second (each must run more than ten times, assertBounded).
 */
const LOAD_LEAD_MS = 400;
const LOAD_TAIL_MS = 600;

const SCHEMA = `
CREATE TABLE public.accounts (id int PRIMARY KEY, balance int NOT NULL DEFAULT 0, note text);
CREATE TABLE public.events (id bigint PRIMARY KEY, account int NOT NULL, amount int NOT NULL);
CREATE INDEX events_account ON public.events (account);
CREATE TABLE public.measures (id int NOT NULL, day date NOT NULL, v int, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE public.measures_2026_01 PARTITION OF public.measures FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE SEQUENCE public.ticket;
`;
const DATA = `
INSERT INTO public.accounts SELECT g, g, 'n' || g FROM generate_series(1, 300) g;
INSERT INTO public.events SELECT g, 1 + g % 300, g FROM generate_series(1, 1000) g;
INSERT INTO public.measures SELECT g, date '2026-01-01' + (g % 31), g FROM generate_series(1, 500) g;
`;

let a: ClusterInfo;
let b: ClusterInfo;
let job: WrittenJob;

type Outcome = { ok: boolean; message: string; data?: any };

function outcome(result: ToolResult): Outcome {
  return outcomes(result, 1)[0]!;
}

/** The JSON outcomes of a list's commands, in order: `count` of them, asserted. */
function outcomes(result: ToolResult, count: number): Outcome[] {
  const lines = result.stdout.split('\n').filter((l) => l.startsWith('{"command"'));
  assert.ok(
    lines.length >= count,
    `${count} JSON outcome(s) expected in:\n${result.stdout}\n${result.stderr}`,
  );
  return lines.map((line) => JSON.parse(line));
}

/** The command's own lines, for an assertion's message: why it failed. */
const printed = (result: ToolResult) => `${result.stdout}\n${result.stderr}`;

/**
 * Holds the job's Bucardo daemon (the MCP, a process this file started) still for 3 s from the first
 * reload request it is sent, as when it reconnects to the sync's databases after a worker died
 * (docs/how-bucardo-behaves.md §25): the reload must wait for it, not give up. `end` resumes it if
 * it is still held and says whether it was.
 */
async function deafDaemonDuringReload(): Promise<{ end: () => Promise<boolean> }> {
  const mcp = readPidFile(path.join(job.pidDir, 'bucardo.mcp.pid'));
  assert.ok(mcp, 'the daemon runs');
  const listener = new pg.Client({ host: a.host, port: a.port, user: 'postgres', database: 'bucardo' });
  await listener.connect();
  let held = false;
  let resumed: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  const resume = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    try {
      process.kill(mcp, 'SIGCONT');
    } catch {
      // Gone already: nothing to resume.
    }
  };
  listener.on('notification', () => {
    if (held) return;
    held = true;
    process.kill(mcp, 'SIGSTOP');
    resumed = new Promise((r) => (timer = setTimeout(() => r(resume()), 3000)));
  });
  // The executable pings first (bucardo_mcp_ping); a reload sent over SQL asks at once.
  await listener.query('LISTEN bucardo_mcp_ping');
  await listener.query('LISTEN bucardo_reload_config');
  return {
    end: async () => {
      if (timer) resume();
      await resumed;
      await listener.end();
      return held;
    },
  };
}

const tool = (list: string, env?: Record<string, string>) =>
  runTool(['-c', job.file, '-l', list], { timeoutMs: 200_000, ...(env ? { env } : {}) });

before(async () => {
  ({ a, b } = await clusters());
  await dropDatabase(a, 'bucardo');
  await freshDatabase(a, PRIMARY, SCHEMA + DATA);
  await freshDatabase(b, SECONDARY, SCHEMA);
  job = writeJobConfig({
    name: 'schema_job',
    plugins: ['bucardo', 'schema', 'cutover'],
    primary: { cluster: a, dbname: PRIMARY },
    secondary: { cluster: b, dbname: SECONDARY },
    copyData: 'parallel',
    bucardoSettings: { lock_timeout: LOCK_TIMEOUT_MS },
    extra: { cutover: { settle_time: 3, chunk_rows: 1000, max_lag: 30 } },
  });
  const setup = await tool('bucardo.install bucardo.add_triggers bucardo.start');
  assert.equal(setup.code, 0, setup.stdout + setup.stderr);
});

let jobForgotten = false;
/**
 * The file's job is forgotten (its processes stopped by pid, its metadata database dropped) once the
 * tests that use it are done: the tests after them run jobs of their own, and its daemon and kicker
 * idle beside them would cost CPU for nothing.
 */
async function forgetFileJob(): Promise<void> {
  if (!job || jobForgotten) return;
  jobForgotten = true;
  await forgetJob(job, a);
}

after(async () => {
  await forgetFileJob();
  await dropDatabase(a, PRIMARY).catch(() => undefined);
  await dropDatabase(b, SECONDARY).catch(() => undefined);
});

/** Application writers on the primary, each statement's wait measured (as retry.test's Workload). */
class Load {
  private running = true;
  private readonly loops: Promise<void>[];
  readonly longest = new Map<string, number>();
  readonly counts = new Map<string, number>();
  readonly errors: string[] = [];

  /** Each writer runs its statement with an increasing number; errors the test expects are passed over. */
  constructor(
    cluster: ClusterInfo,
    database: string,
    writers: { name: string; sql: (i: number) => string; tolerate?: RegExp }[],
  ) {
    this.loops = writers.map((writer, index) => this.loop(cluster, database, writer, index));
  }

  private async loop(
    cluster: ClusterInfo,
    database: string,
    writer: { name: string; sql: (i: number) => string; tolerate?: RegExp },
    index: number,
  ): Promise<void> {
    const client = new pg.Client({
      host: cluster.host,
      port: cluster.port,
      user: 'postgres',
      database,
      application_name: 'schema-test-app',
    });
    await client.connect();
    try {
      for (let i = 1; this.running; i++) {
        const started = performance.now();
        try {
          await client.query(writer.sql(index * 1_000_000 + i));
          this.counts.set(writer.name, (this.counts.get(writer.name) ?? 0) + 1);
        } catch (error) {
          const text = (error as Error).message;
          if (!writer.tolerate?.test(text)) this.errors.push(`${writer.name}: ${text}`);
        }
        const waited = performance.now() - started;
        this.longest.set(writer.name, Math.max(this.longest.get(writer.name) ?? 0, waited));
        // Paced, not as fast as the machine allows: the CPU a test costs must not grow with the CPU it
        // finds free (CONTRIBUTING.md, the suite's time); a few clients still overlap every step.
        await new Promise((r) => setTimeout(r, 30));
      }
    } finally {
      await client.end();
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    assert.deepEqual(this.errors, [], 'application statements never failed');
  }
}

/** A database on one of the lane's clusters: a side of a comparison. */
type Side = readonly [ClusterInfo, string];

/**
 * Each table identical on both sides, waited for (Bucardo applies within seconds). The wait polls
 * `tableDigest` (count and sum of row hashes, computed on the server), not every row: a poll that
 * fetched and sorted whole tables five times a second cost seconds of CPU per wait. Once the digests
 * agree the rows are compared one by one; a failure names the rows lost and extra, and `explain` may
 * add what the test knows about them.
 */
async function waitSame(
  tables: string[],
  what: string,
  sides: { source: Side; target: Side } = { source: [a, PRIMARY], target: [b, SECONDARY] },
  explain?: (table: string, lost: string[]) => Promise<string[]>,
): Promise<void> {
  const { source, target } = sides;
  // A table not there yet (created by a change still on its way) differs, like one with other rows.
  const digest = (side: Side, table: string) =>
    tableDigest(...side, table).catch(() => `missing on ${side[1]}`);
  const differing = async (): Promise<string[]> => {
    const lines: string[] = [];
    for (const table of tables) {
      const [x, y] = await Promise.all([
        tableRows(...source, table).catch(() => ['source failed']),
        tableRows(...target, table).catch(() => ['target failed']),
      ]);
      const [onSource, onTarget] = [new Set(x), new Set(y)];
      const lost = x.filter((r) => !onTarget.has(r));
      const extra = y.filter((r) => !onSource.has(r));
      if (lost.length || extra.length)
        lines.push(
          `${table}: source ${x.length}, target ${y.length}, lost ${lost.length} ${lost.slice(0, 3).join(' ')}, extra ${extra.length} ${extra.slice(0, 3).join(' ')}`,
          ...(explain && lost.length ? await explain(table, lost) : []),
        );
    }
    return lines;
  };
  await waitFor(
    async () => {
      for (const table of tables) {
        const [x, y] = await Promise.all([digest(source, table), digest(target, table)]);
        if (x !== y) return false;
      }
      return true;
    },
    90_000,
    what,
  ).catch(async (error: Error) => {
    throw new Error([error.message, ...(await differing())].join('\n'));
  });
  const left = await differing();
  assert.deepEqual(left, [], `${what}: the digests agree, the rows do not`);
}

function assertBounded(load: Load, t: TestContext): void {
  t.diagnostic(
    `longest application statement: ${[...load.longest].map(([n, ms]) => `${n} ${ms.toFixed(0)} ms`).join(', ')} (lock timeout ${LOCK_TIMEOUT_MS} ms)`,
  );
  for (const [name, ms] of load.longest)
    assert.ok(ms <= LOCK_TIMEOUT_MS + MARGIN_MS, `${name} waited ${ms.toFixed(0)} ms`);
  for (const [name, count] of load.counts) assert.ok(count > 10, `the load ran on ${name} (${count})`);
}

test('schema.diff: nothing on identical sides, then every kind of difference with its fix', async () => {
  // An unlogged table is left behind by the migration: listed apart, not a difference; bucardo.scope
  // and cutover.check list it too, the check failing only once it holds a row nobody chose to leave.
  await query(a, PRIMARY, 'CREATE UNLOGGED TABLE public.scratch (id int PRIMARY KEY)');
  let lists: ToolResult;
  let losing: ToolResult;
  try {
    lists = await tool('schema.diff --json bucardo.scope --json cutover.check --json');
    await query(a, PRIMARY, 'INSERT INTO public.scratch VALUES (1)');
    losing = await tool('cutover.check --json');
  } finally {
    await query(a, PRIMARY, 'DROP TABLE public.scratch');
  }
  // One list: the diff finds nothing (it would stop the list), then scope and check list the table.
  const [clean, scope, check] = outcomes(lists, 3);
  assert.equal(clean!.ok, true, printed(lists));
  assert.deepEqual(clean!.data.differences, []);
  const scratch = (list: { table: string; reason: string }[]) =>
    list.map((t) => [t.table, /unlogged/.test(t.reason)]);
  assert.deepEqual(scratch(clean!.data.notCarried), [['public.scratch', true]], printed(lists));
  assert.deepEqual(scratch(scope!.data.notCarried), [['public.scratch', true]], printed(lists));
  const item = (result: { data?: { items: { item: string }[] } }) =>
    result.data?.items.find((i) => i.item === 'no rows left behind') as
      { pass: boolean; warning?: boolean; detail: string } | undefined;
  assert.deepEqual(
    [item(check)?.pass, item(check)?.warning],
    [true, true],
    `an empty unlogged table is a warning: ${printed(lists)}`,
  );
  assert.match(item(check)!.detail, /public\.scratch \(~.* rows, ~.*\): unlogged/);
  assert.equal(item(outcome(losing))?.pass, false, printed(losing));
  assert.match(item(outcome(losing))!.detail, /public\.scratch \(has rows; unlogged\)/);

  await query(b, SECONDARY, 'ALTER TABLE public.accounts ADD COLUMN only_b int');
  await query(b, SECONDARY, 'DROP INDEX public.events_account');
  await query(b, SECONDARY, 'ALTER TABLE public.events ALTER COLUMN amount DROP NOT NULL');
  await query(
    a,
    PRIMARY,
    "CREATE TABLE public.measures_2026_02 PARTITION OF public.measures FOR VALUES FROM ('2026-02-01') TO ('2026-03-01')",
  );
  for (const [cluster, db] of [
    [a, PRIMARY],
    [b, SECONDARY],
  ] as const)
    await query(cluster, db, 'CREATE TABLE public.later (id int PRIMARY KEY, v text)');
  try {
    await assertDifferences();
  } finally {
    // Put the secondary back (Bucardo refuses a sync whose target has a column the source lacks); the
    // new partition and table stay for add_tables.
    await query(b, SECONDARY, 'ALTER TABLE public.accounts DROP COLUMN IF EXISTS only_b');
    await query(b, SECONDARY, 'CREATE INDEX IF NOT EXISTS events_account ON public.events (account)');
    await query(b, SECONDARY, 'ALTER TABLE public.events ALTER COLUMN amount SET NOT NULL');
  }
});

async function assertDifferences(): Promise<void> {
  const found = await tool('schema.diff --json');
  assert.equal(found.code, 1, found.stdout + found.stderr);
  const differences: { kind: string; object: string; fix: string }[] = outcome(found).data.differences;
  const summary = differences.map((d) => `${d.kind} ${d.object}`).sort();
  assert.deepEqual(summary, [
    'column public.accounts.only_b',
    'column public.events.amount',
    'index public.events',
    'not replicated public.later',
    'partition public.measures_2026_02',
  ]);
  const fix = (kind: string) => differences.find((d) => d.kind === kind)!.fix;
  assert.match(
    fix('index'),
    /on the secondary: CREATE INDEX events_account ON public\.events USING btree \(account\)/,
  );
  assert.match(
    fix('partition'),
    /PARTITION OF public\.measures FOR VALUES FROM \('2026-02-01'\) TO \('2026-03-01'\)/,
  );
  assert.equal(fix('not replicated'), 'schema.add_tables');
  const text = await tool('schema.diff');
  assert.equal(text.code, 1);
  assert.match(
    text.stdout,
    /column public\.accounts\.only_b: column only_b exists only on the secondary\. Fix: on the secondary: ALTER TABLE public\.accounts DROP COLUMN only_b/,
  );
}

test('schema.add_tables: a new table and a new partition under a write load join the job with their rows; nothing lost', async (t) => {
  await query(
    b,
    SECONDARY,
    "CREATE TABLE public.measures_2026_02 PARTITION OF public.measures FOR VALUES FROM ('2026-02-01') TO ('2026-03-01')",
  );
  await query(a, PRIMARY, "INSERT INTO public.later SELECT g, 'v' || g FROM generate_series(1, 2000) g");
  // A sequence created on both sides since install: add_tables records it too.
  await query(a, PRIMARY, 'CREATE SEQUENCE public.later_seq');
  await query(b, SECONDARY, 'CREATE SEQUENCE public.later_seq');
  // Drift is visible before: bucardo.status has a state of its own, cutover.check fails on it.
  // Alone on the command line (not in a list), status exits with its state's code.
  const drifting = await runTool(['-c', job.file, 'bucardo.status', '--json'], { timeoutMs: 120_000 });
  assert.equal(drifting.code, 4, drifting.stdout);
  assert.equal(outcome(drifting).data.state, 'drift');
  assert.deepEqual(
    outcome(drifting)
      .data.drift.map((d: { table: string }) => d.table)
      .sort(),
    ['public.later', 'public.measures_2026_02'],
  );
  const check = await tool('cutover.check --json');
  assert.equal(check.code, 1, check.stdout);
  const item = outcome(check).data.items.find((i: { item: string }) => i.item === 'no schema drift');
  assert.equal(item.pass, false);
  assert.match(item.fix, /schema\.add_tables/);
  // Rows on the secondary that the copy must replace.
  await query(b, SECONDARY, "INSERT INTO public.later VALUES (1, 'stale'), (99999, 'gone')");
  const load = new Load(a, PRIMARY, [
    { name: 'later', sql: (i) => `INSERT INTO public.later VALUES (${10_000 + i}, 'app')` },
    { name: 'later-update', sql: (i) => `UPDATE public.later SET v = 'u${i}' WHERE id = ${1 + (i % 2000)}` },
    {
      name: 'measures',
      sql: (i) => `INSERT INTO public.measures VALUES (${10_000 + i}, date '2026-02-01' + ${i % 28}, ${i})`,
    },
    {
      name: 'accounts',
      sql: (i) => `UPDATE public.accounts SET balance = balance + 1 WHERE id = ${1 + (i % 300)}`,
    },
  ]);
  let added: ToolResult;
  try {
    await new Promise((r) => setTimeout(r, LOAD_LEAD_MS));
    added = await tool('schema.add_tables --json');
    await new Promise((r) => setTimeout(r, LOAD_TAIL_MS));
  } finally {
    await load.stop();
  }
  assert.equal(added.code, 0, added.stdout + added.stderr);
  assert.deepEqual(outcome(added).data.added.sort(), ['public.later', 'public.measures_2026_02']);
  assert.deepEqual(outcome(added).data.sequences, ['public.later_seq'], printed(added));
  assertBounded(load, t);
  await waitSame(
    ['public.later', 'public.measures', 'public.accounts'],
    'the new tables and the rest to be identical on both sides',
  );
  // Settled, and a second run has nothing to do: one list (it stops at the first failure).
  const after = await tool('schema.diff --json bucardo.status --json schema.add_tables --json');
  assert.equal(after.code, 0, printed(after));
  const [, status, again] = outcomes(after, 3);
  const settled = status!.data;
  assert.notEqual(settled.state, 'drift', settled.verdict);
  assert.deepEqual(settled.drift, []);
  assert.deepEqual(again!.data.added, [], 'a second run has nothing to do');
  // Later writes arrive too: the tables replicate like the rest.
  await query(a, PRIMARY, "SELECT setval('public.later_seq', 42)");
  await query(a, PRIMARY, "UPDATE public.later SET v = 'later write' WHERE id = 5");
  await waitSame(['public.later'], 'a later write to the added table');
  await waitFor(
    async () =>
      (await query<{ v: string }>(b, SECONDARY, 'SELECT last_value::text AS v FROM public.later_seq'))[0]!
        .v === '42',
    60_000,
    "the added sequence's value on the secondary",
  );
});

/** Every column of the public tables on a side: what a refused change must leave as it was. */
async function columns(cluster: ClusterInfo, database: string): Promise<string> {
  const rows = await query<{ c: string }>(
    cluster,
    database,
    `SELECT table_name || '.' || column_name || ' ' || data_type AS c FROM information_schema.columns
      WHERE table_schema = 'public' ORDER BY 1`,
  );
  return rows.map((row) => row.c).join('\n');
}

function sqlFile(name: string, text: string): string {
  const file = path.join(job.dir, name);
  writeFileSync(file, text);
  return file;
}

test('schema.apply: a column with a default added to a busy table and a new table with rows; verify identical', async (t) => {
  const file = sqlFile(
    'add.sql',
    `-- the deploy of the week
ALTER TABLE public.accounts ADD COLUMN tier int NOT NULL DEFAULT 1;
CREATE TABLE public.fresh (id int PRIMARY KEY, label text);
INSERT INTO public.fresh SELECT g, 'f' || g FROM generate_series(1, 500) g;
`,
  );
  const before = [await columns(a, PRIMARY), await columns(b, SECONDARY)];
  const unasked = await tool(`schema.apply --file=${file}`);
  assert.equal(unasked.code, 1, unasked.stdout);
  assert.match(unasked.stderr + unasked.stdout, /A list cannot ask/);
  assert.match(
    unasked.stdout,
    /1\. secondary, one transaction .*: statements 1, 2\n\s+2\. primary, one transaction \(every statement\): statements 1, 2, 3/,
  );
  assert.deepEqual(
    [await columns(a, PRIMARY), await columns(b, SECONDARY)],
    before,
    'nothing changed unasked',
  );

  const load = new Load(a, PRIMARY, [
    {
      name: 'balance',
      sql: (i) => `UPDATE public.accounts SET balance = balance + 1 WHERE id = ${1 + (i % 300)}`,
    },
    {
      name: 'tier',
      sql: (i) => `UPDATE public.accounts SET tier = ${2 + (i % 5)} WHERE id = ${1 + ((i * 7) % 300)}`,
      tolerate: /column "tier" .*does not exist/,
    },
    {
      name: 'fresh',
      sql: (i) => `INSERT INTO public.fresh VALUES (${1000 + i}, 'app')`,
      tolerate: /relation "public.fresh" does not exist/,
    },
    { name: 'events', sql: (i) => `INSERT INTO public.events VALUES (${100_000 + i}, 1, ${i})` },
  ]);
  let applied: ToolResult;
  try {
    await new Promise((r) => setTimeout(r, LOAD_LEAD_MS));
    applied = await tool(`schema.apply --file=${file} --yes --json`);
    await new Promise((r) => setTimeout(r, LOAD_TAIL_MS));
  } finally {
    await load.stop();
  }
  assert.equal(applied.code, 0, applied.stdout + applied.stderr);
  assert.deepEqual(
    outcome(applied).data.done,
    ['secondary-first', 'primary', 'reload', 'add-tables'],
    printed(applied),
  );
  assertBounded(load, t);
  await waitSame(['public.accounts', 'public.fresh', 'public.events'], 'the new column and table to arrive');
  const tiers = await query<{ n: string }>(
    b,
    SECONDARY,
    'SELECT count(*)::text AS n FROM public.accounts WHERE tier > 1',
  );
  assert.ok(Number(tiers[0]!.n) > 0, 'rows written after the change arrived with their new column');
  const fresh = await query<{ n: string }>(
    b,
    SECONDARY,
    "SELECT count(*)::text AS n FROM public.fresh WHERE label = 'app'",
  );
  assert.ok(Number(fresh[0]!.n) > 0, "the new table's later writes arrived");
  // Verified identical, and the same file again is a no-op: one list (it stops at the first failure).
  const verifyAgain = await tool(`cutover.verify --json schema.apply --file=${file} --yes --json`);
  assert.equal(verifyAgain.code, 0, printed(verifyAgain));
  assert.equal(outcomes(verifyAgain, 2)[1]!.data.alreadyApplied, true, printed(verifyAgain));
});

test('schema.apply: a dropped column and a dropped table leave the sync healthy and verify identical', async () => {
  const file = sqlFile(
    'drop.sql',
    'ALTER TABLE public.accounts DROP COLUMN note;\nDROP TABLE public.fresh;\n',
  );
  const load = new Load(a, PRIMARY, [
    {
      name: 'balance',
      sql: (i) => `UPDATE public.accounts SET balance = balance + 1 WHERE id = ${1 + (i % 300)}`,
    },
    { name: 'events', sql: (i) => `INSERT INTO public.events VALUES (${200_000 + i}, 2, ${i})` },
  ]);
  // The daemon does not answer for 3 s once the first reload is asked of it (as while it reconnects
  // after a worker died, how-bucardo-behaves.md §25): the reload waits for it.
  const deaf = await deafDaemonDuringReload();
  let applied: ToolResult;
  try {
    applied = await tool(`schema.apply --file=${file} --yes --json`);
    await new Promise((r) => setTimeout(r, LOAD_TAIL_MS));
  } finally {
    const held = await deaf.end();
    await load.stop();
    assert.ok(held, 'the daemon was held still during a reload');
  }
  assert.equal(applied.code, 0, printed(applied));
  assert.deepEqual(
    outcome(applied).data.done,
    ['unsync', 'primary', 'secondary-after', 'reload'],
    printed(applied),
  );
  for (const [cluster, db] of [
    [a, PRIMARY],
    [b, SECONDARY],
  ] as const) {
    assert.deepEqual(await query(cluster, db, "SELECT to_regclass('public.fresh') AS t"), [{ t: null }]);
    assert.doesNotMatch(await columns(cluster, db), /accounts\.note/);
  }
  await query(a, PRIMARY, 'UPDATE public.accounts SET balance = -1 WHERE id = 7');
  await waitSame(['public.accounts', 'public.events'], 'writes after the drops');
  const verify = await tool('cutover.verify --json');
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
});

test('schema.apply refuses a rename, a syntax error and volatile defaults on tables with rows, changing nothing', async () => {
  const before = [await columns(a, PRIMARY), await columns(b, SECONDARY)];
  const rename = await tool(
    `schema.apply --file=${sqlFile('rename.sql', 'ALTER TABLE public.accounts ADD COLUMN ok1 int;\nALTER TABLE public.accounts RENAME COLUMN balance TO amount;')} --yes`,
  );
  assert.equal(rename.code, 1, rename.stdout);
  assert.match(
    rename.stderr + rename.stdout,
    /refuses .*statement 2 .*add the new column .*Nothing was changed on either side/s,
  );
  const typo = await tool(
    `schema.apply --file=${sqlFile('typo.sql', 'ALTER TABLE public.accounts ADD COLUMN ok2 int;\nALTER TABLE public.accounts ADDD COLUMN x int;')} --yes`,
  );
  assert.equal(typo.code, 1, typo.stdout);
  assert.match(typo.stderr + typo.stdout, /Statement 2 fails on the secondary \(rehearsed .*syntax error/s);
  const type = await tool(
    `schema.apply --file=${sqlFile('type.sql', 'ALTER TABLE public.accounts ALTER COLUMN balance TYPE text;')} --yes`,
  );
  assert.equal(type.code, 1, type.stdout);
  assert.match(type.stderr + type.stdout, /whose text form differs/);
  // Inline (--sql): defaults each side would compute on its own for the rows a table has, judged by
  // the primary's pg_proc; an immutable one passes, and so does now() on a table without rows.
  const volatile = await tool(
    `schema.apply --sql "ALTER TABLE public.accounts ADD COLUMN made timestamptz NOT NULL DEFAULT now(); ALTER TABLE public.events ADD COLUMN tag uuid DEFAULT gen_random_uuid(), ADD COLUMN fixed int DEFAULT abs(-2)" --yes`,
  );
  assert.equal(volatile.code, 1, printed(volatile));
  assert.match(
    printed(volatile),
    /refuses --sql "ALTER TABLE public\.accounts .*statement 1 .*made .*public\.accounts, which has rows, .*now\(\) is stable.*SET DEFAULT now\(\).*statement 2 .*tag .*gen_random_uuid\(\) is volatile.*Nothing was changed on either side/s,
  );
  for (const [cluster, db] of [
    [a, PRIMARY],
    [b, SECONDARY],
  ] as const)
    await query(cluster, db, 'CREATE TABLE public.blank (id int PRIMARY KEY)');
  try {
    const empty = await tool(
      `schema.apply --sql "ALTER TABLE public.blank ADD COLUMN at timestamptz DEFAULT now(); ALTER TABLE public.accounts ADD COLUMN two int DEFAULT abs(-2)"`,
    );
    assert.equal(empty.code, 1, printed(empty));
    assert.match(printed(empty), /A list cannot ask/);
  } finally {
    for (const [cluster, db] of [
      [a, PRIMARY],
      [b, SECONDARY],
    ] as const)
      await query(cluster, db, 'DROP TABLE public.blank');
  }
  const both = await tool(`schema.apply --file=${sqlFile('both.sql', 'SELECT 1;')} --sql "SELECT 1"`);
  assert.equal(both.code, 2, printed(both));
  assert.match(printed(both), /--file and --sql cannot be given together/);
  assert.deepEqual([await columns(a, PRIMARY), await columns(b, SECONDARY)], before);
});

test('schema.apply killed between the secondary and the primary: a rerun completes it, nothing runs twice', async () => {
  // A new sequence too: the rerun's last step records it in the job (its check, schema.diff, would
  // name a sequence in scope that no relgroup holds).
  // Inline: the same journal and rerun as a file's.
  const change =
    'schema.apply --sql "ALTER TABLE public.accounts ADD COLUMN flag boolean DEFAULT false; CREATE SEQUENCE public.flag_seq" --yes';
  // An open transaction on the primary's table keeps the primary's step waiting in its rounds.
  const holder = new pg.Client({ host: a.host, port: a.port, user: 'postgres', database: PRIMARY });
  await holder.connect();
  await holder.query('BEGIN');
  await holder.query('UPDATE public.accounts SET balance = balance WHERE id = 1');
  const child = spawn(process.execPath, [path.join(ROOT, 'wrapper.js'), '-c', job.file, '-l', change], {
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  runningTools.add(child);
  // What the killed run printed, for the messages below.
  let killedOutput = '';
  child.stdout.on('data', (chunk: Buffer) => (killedOutput += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (killedOutput += chunk.toString()));
  let exitedAlone = false;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    const stateDir = path.join(job.dir, 'state');
    await waitFor(
      async () => {
        const journal = readdirSync(stateDir).find(
          (f) =>
            /^schema\.apply\..*\.json$/.test(f) &&
            readFileSync(path.join(stateDir, f), 'utf8').includes('ADD COLUMN flag'),
        );
        if (!journal) return false;
        const steps = JSON.parse(readFileSync(path.join(stateDir, journal), 'utf8')).steps;
        return steps['secondary-first']?.state === 'done';
      },
      60_000,
      "the secondary's step to be journaled done",
    ).catch((error: Error) => {
      throw new Error(`${error.message}; the run printed:\n${killedOutput}`);
    });
    // A run whose primary step gave up on the lock already ended by itself: the same state to rerun.
    exitedAlone = child.exitCode !== null;
    child.kill('SIGKILL');
    await exited;
  } finally {
    runningTools.delete(child);
    await holder.query('COMMIT');
    await holder.end();
  }
  const killed = `the run${exitedAlone ? ' (it had ended by itself)' : ''} printed:\n${killedOutput}`;
  assert.match(
    await columns(b, SECONDARY),
    /accounts\.flag boolean/,
    `the secondary has the column; ${killed}`,
  );
  assert.doesNotMatch(await columns(a, PRIMARY), /accounts\.flag/, `the primary does not yet; ${killed}`);
  const rerun = await tool(`${change} --json`);
  assert.equal(rerun.code, 0, printed(rerun));
  assert.deepEqual(
    outcome(rerun).data.skipped,
    ['secondary-first'],
    `the secondary step is not run twice:\n${printed(rerun)}`,
  );
  assert.deepEqual(outcome(rerun).data.done, ['primary', 'reload', 'add-tables'], printed(rerun));
  assert.match(await columns(a, PRIMARY), /accounts\.flag boolean/);
  await query(a, PRIMARY, 'UPDATE public.accounts SET flag = true WHERE id = 3');
  await waitSame(['public.accounts'], 'a write to the new column after the rerun');
});

test('bucardo.syncs: 2 — diff, add_tables (a new table tied by a foreign key joins the sync of its parent) and apply', async (t) => {
  await forgetFileJob();
  const S2 = `
CREATE TABLE public.t1 (id int PRIMARY KEY, v int NOT NULL);
CREATE TABLE public.t2 (id int PRIMARY KEY, v int NOT NULL, pad text);
CREATE TABLE public.t3 (id int PRIMARY KEY, v int NOT NULL);
CREATE TABLE public.m (id int NOT NULL, day date NOT NULL, v int, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE public.m_01 PARTITION OF public.m FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
`;
  const S2DATA = `
INSERT INTO public.t1 SELECT g, g FROM generate_series(1, 300) g;
INSERT INTO public.t2 SELECT g, g, repeat('x', 400) FROM generate_series(1, 3000) g;
INSERT INTO public.t3 SELECT g, g FROM generate_series(1, 300) g;
INSERT INTO public.m SELECT g, date '2026-01-01' + g % 31, g FROM generate_series(1, 300) g;
ANALYZE;
`;
  await freshDatabase(a, 'schema_s2a', S2 + S2DATA);
  await freshDatabase(b, 'schema_s2b', S2);
  const metricsPort = await freePort();
  const driftGauge = async () => {
    const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, {
      signal: AbortSignal.timeout(15_000),
    });
    const found = /^bucardo_console_schema_drift_tables\{job="schema_s2"\} (\d+)$/m.exec(
      await response.text(),
    );
    return found ? Number(found[1]) : undefined;
  };
  const s2 = writeJobConfig({
    name: 'schema_s2',
    plugins: ['bucardo', 'schema', 'cutover'],
    primary: { cluster: a, dbname: 'schema_s2a' },
    secondary: { cluster: b, dbname: 'schema_s2b' },
    metadata: b,
    copyData: 'parallel',
    // Rows written through a partitioned table fire no statement trigger on the leaf, so Bucardo's
    // per-commit kick triggers never kick for them (how-bucardo-behaves.md §24): the kicker does.
    asynchronousKicking: true,
    // One look a second, busy or not: under the test's write loads the kicker would otherwise start
    // both syncs four times a second (CPU that grows with every second of load); rows still arrive
    // within a second or two.
    kickInterval: 1,
    bucardoSettings: { syncs: 2, lock_timeout: LOCK_TIMEOUT_MS, kick_interval_busy: 1 },
    extra: {
      cutover: { settle_time: 3, chunk_rows: 1000 },
      schema: { auto_add_partitions: true, create_missing_partitions: true },
      metrics: { listen: `127.0.0.1:${metricsPort}` },
    },
  });
  const run = (list: string) => runTool(['-c', s2.file, '-l', list], { timeoutMs: 200_000 });
  t.after(async () => {
    await forgetJob(s2, b);
    await dropDatabase(a, 'schema_s2a').catch(() => undefined);
    await dropDatabase(b, 'schema_s2b').catch(() => undefined);
  });
  const setup = await run('bucardo.install bucardo.add_triggers bucardo.start');
  assert.equal(setup.code, 0, setup.stdout + setup.stderr);
  const relgroups = async () =>
    new Map(
      (
        await query<{ t: string; herd: string }>(
          b,
          'bucardo',
          `SELECT g.schemaname || '.' || g.tablename AS t, h.herd FROM bucardo.herdmap h
             JOIN bucardo.goat g ON g.id = h.goat WHERE g.reltype = 'table' AND h.herd LIKE 'schema_s2%'`,
        )
      ).map((row) => [row.t, row.herd]),
    );
  const before = await relgroups();
  assert.equal(new Set(before.values()).size, 2, 'the tables are spread over two syncs');
  for (const [cluster, db] of [
    [a, 'schema_s2a'],
    [b, 'schema_s2b'],
  ] as const) {
    await query(
      cluster,
      db,
      'CREATE TABLE public.n1 (id int PRIMARY KEY, t3 int REFERENCES public.t3 (id), v text)',
    );
    await query(cluster, db, 'CREATE TABLE public.n2 (id int PRIMARY KEY, v text)');
  }
  await query(a, 'schema_s2a', "INSERT INTO public.n1 SELECT g, g, 'n' FROM generate_series(1, 300) g");
  await query(a, 'schema_s2a', "INSERT INTO public.n2 SELECT g, 'n' FROM generate_series(1, 500) g");
  const drift = await run('schema.diff --json');
  assert.equal(drift.code, 1, drift.stdout);
  assert.deepEqual(
    outcome(drift)
      .data.differences.map((d: { kind: string; object: string }) => `${d.kind} ${d.object}`)
      .sort(),
    ['not replicated public.n1', 'not replicated public.n2'],
  );
  const load = new Load(a, 'schema_s2a', [
    { name: 'n1', sql: (i) => `UPDATE public.n1 SET v = 'u${i}' WHERE id = ${1 + (i % 300)}` },
    { name: 'n2', sql: (i) => `INSERT INTO public.n2 VALUES (${1000 + i}, 'app')` },
    { name: 't1', sql: (i) => `UPDATE public.t1 SET v = ${i} WHERE id = ${1 + (i % 300)}` },
  ]);
  let added: ToolResult;
  try {
    added = await run('schema.add_tables --json');
    await new Promise((r) => setTimeout(r, LOAD_TAIL_MS));
  } finally {
    await load.stop();
  }
  assert.equal(added.code, 0, added.stdout + added.stderr);
  assertBounded(load, t);
  const after = await relgroups();
  assert.equal(
    after.get('public.n1'),
    after.get('public.t3'),
    'n1 joined the sync of t3, which it references',
  );
  assert.ok(after.get('public.n2'), 'n2 is in one of the syncs');
  for (const [table, herd] of before) assert.equal(after.get(table), herd, `${table} stayed in its sync`);
  // A lost row of m's new partition: what Bucardo's change records say of it (a loss seen once).
  const explainLostPartitionRows = async (table: string, lost: string[]): Promise<string[]> => {
    if (table !== 'public.m') return [];
    const ids = lost.map((r) => (JSON.parse(r) as { id: number }).id);
    return [
      `lost ids ${Math.min(...ids)}..${Math.max(...ids)}`,
      JSON.stringify(
        await query(
          a,
          'schema_s2a',
          `SELECT min(d.id) AS lo, max(d.id) AS hi, count(*) AS n, min(d.txntime)::text AS t0, max(d.txntime)::text AS t1,
                  count(t.txntime) AS tracked, (SELECT count(*) FROM bucardo.delta_public_m_02) AS all_delta,
                  (SELECT string_agg(target, ',') FROM bucardo.bucardo_delta_targets
                    WHERE tablename = 'public.m_02'::regclass) AS targets
             FROM bucardo.delta_public_m_02 d LEFT JOIN bucardo.track_public_m_02 t ON t.txntime = d.txntime
            WHERE d.id = ANY($1)`,
          [ids],
        ).catch((e: Error) => e.message),
      ),
    ];
  };
  const same = (tables: string[]) =>
    waitSame(
      tables,
      `${tables.join(', ')} identical on both sides`,
      { source: [a, 'schema_s2a'], target: [b, 'schema_s2b'] },
      explainLostPartitionRows,
    );
  await same(['public.n1', 'public.n2', 'public.t1']);
  const file = path.join(s2.dir, 's2.sql');
  writeFileSync(
    file,
    'ALTER TABLE public.t1 ADD COLUMN w int DEFAULT 7;\nALTER TABLE public.n2 ADD COLUMN w int;\n',
  );
  const applied = await run(`schema.apply --file=${file} --yes`);
  assert.equal(applied.code, 0, applied.stdout + applied.stderr);
  await query(
    a,
    'schema_s2a',
    'UPDATE public.t1 SET w = 8 WHERE id < 10; UPDATE public.n2 SET w = 1 WHERE id < 10',
  );
  await same(['public.t1', 'public.n2', 'public.n1', 'public.t2', 'public.t3']);
  const verify = await run('cutover.verify --json');
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);

  // schema.auto_add_partitions: a partition created on the primary alone is created on the secondary
  // and added by the kicker. An open transaction on it holds the kicker's trigger installation back
  // (its lock waits are bounded) while diff and status show the drift.
  await query(
    a,
    'schema_s2a',
    "CREATE TABLE public.m_02 PARTITION OF public.m FOR VALUES FROM ('2026-02-01') TO ('2026-03-01'); INSERT INTO public.m SELECT g, date '2026-02-01' + g % 28, g FROM generate_series(1, 200) g",
  );
  const holder = new pg.Client({ host: a.host, port: a.port, user: 'postgres', database: 'schema_s2a' });
  await holder.connect();
  const partitionLoad = new Load(a, 'schema_s2a', [
    {
      name: 'm_02',
      sql: (i) => `INSERT INTO public.m VALUES (${1000 + i}, date '2026-02-01' + ${i % 28}, ${i})`,
    },
  ]);
  try {
    await holder.query('BEGIN');
    await holder.query("UPDATE public.m SET v = v WHERE id = 1 AND day >= '2026-02-01'");
    // One list: status first, since diff finding the drift fails the list there.
    const shown = await run('bucardo.status --json schema.diff --json');
    const [status, diff] = outcomes(shown, 2);
    const lines = [diff!, status!];
    assert.ok(
      lines[0].data.differences.some(
        (d: { kind: string; object: string }) =>
          d.object === 'public.m_02' && /partition|not replicated/.test(d.kind),
      ),
      JSON.stringify(lines[0].data.differences),
    );
    assert.equal(lines[1].data.state, 'drift', lines[1].data.verdict);
    assert.ok(lines[1].data.drift.some((d: { table: string }) => d.table === 'public.m_02'));
    // The kicker's metrics endpoint exports the drift too.
    const drifting = await driftGauge();
    assert.ok(drifting !== undefined && drifting >= 1, `schema_drift_tables while m_02 waits: ${drifting}`);
  } catch (error) {
    // Its writers would loop on after the test failed, and the file would never end.
    await partitionLoad.stop().catch(() => undefined);
    throw error;
  } finally {
    await holder.query('COMMIT');
    await holder.end();
  }
  const kickerLog = () => readFileSync(path.join(s2.logDir, 'kicker.schema_s2.log'), 'utf8');
  try {
    await waitFor(
      async () => /schema\.auto_add_partitions: added public\.m_02/.test(kickerLog()),
      120_000,
      'the kicker to add the new partition (schema.auto_add_partitions)',
    );
    await new Promise((r) => setTimeout(r, LOAD_TAIL_MS));
  } finally {
    await partitionLoad.stop();
  }
  assertBounded(partitionLoad, t);
  await same(['public.m']);
  const clean = await run('bucardo.status --json schema.diff --json');
  assert.equal(clean.code, 0, printed(clean));
  const settled = outcomes(clean, 2)[0]!.data;
  assert.notEqual(settled.state, 'drift', settled.verdict);
  assert.equal(await driftGauge(), 0, 'schema_drift_tables once the partition replicates');
  assert.match(kickerLog(), /schema\.create_missing_partitions: created public\.m_02 on the secondary/);
});

test('fan-out (databases.secondaries): apply changes every target, new tables are copied to each, diff per target', async () => {
  await forgetFileJob();
  const T = 'CREATE TABLE public.t (id int PRIMARY KEY, v int NOT NULL);';
  await freshDatabase(
    a,
    'schema_fa',
    `${T} INSERT INTO public.t SELECT g, g FROM generate_series(1, 200) g;`,
  );
  await freshDatabase(b, 'schema_fb', T);
  await freshDatabase(b, 'schema_fc', T);
  const fan = writeJobConfig({
    name: 'schema_fan',
    plugins: ['bucardo', 'schema'],
    metadata: b,
    primary: { cluster: a, dbname: 'schema_fa' },
    secondary: { cluster: b, dbname: 'schema_fb' },
    copyData: 'parallel',
    bucardoSettings: { lock_timeout: LOCK_TIMEOUT_MS },
  });
  const config = yaml.load(readFileSync(fan.file, 'utf8')) as { databases: Record<string, unknown> };
  const target = (dbname: string) => ({
    host: b.host,
    port: b.port,
    dbname,
    database_owner: 'postgres',
    schema_owner: 'postgres',
  });
  delete config.databases['secondary'];
  config.databases['secondaries'] = { b: target('schema_fb'), c: target('schema_fc') };
  writeFileSync(fan.file, yaml.dump(config));
  const run = (list: string) => runTool(['-c', fan.file, '-l', list], { timeoutMs: 200_000 });
  const targets = [
    ['b', 'schema_fb'],
    ['c', 'schema_fc'],
  ] as const;
  try {
    const setup = await run('bucardo.install bucardo.add_triggers bucardo.start');
    assert.equal(setup.code, 0, printed(setup));
    const file = path.join(fan.dir, 'fan.sql');
    writeFileSync(
      file,
      `ALTER TABLE public.t ADD COLUMN w int DEFAULT 5;
CREATE TABLE public.nt (id int PRIMARY KEY, v text);
INSERT INTO public.nt SELECT g, 'n' || g FROM generate_series(1, 100) g;
`,
    );
    const applied = await run(`schema.apply --file=${file} --yes`);
    assert.equal(applied.code, 0, printed(applied));
    const journal = readdirSync(path.join(fan.dir, 'state')).find((f) =>
      /^schema\.apply\..*\.json$/.test(f),
    )!;
    const steps = Object.keys(JSON.parse(readFileSync(path.join(fan.dir, 'state', journal), 'utf8')).steps);
    for (const name of ['secondary-first:b', 'secondary-first:c', 'primary', 'reload', 'add-tables'])
      assert.ok(steps.includes(name), `${name} journaled: ${steps.join(', ')}\n${printed(applied)}`);
    await query(
      a,
      'schema_fa',
      "UPDATE public.t SET w = 9 WHERE id < 5; INSERT INTO public.nt VALUES (1000, 'later')",
    );
    for (const [name, db] of targets)
      await waitSame(
        ['public.t', 'public.nt'],
        `target ${name} to hold the new column's and the new table's rows`,
        { source: [a, 'schema_fa'], target: [b, db] },
      );

    // add_tables on a fan-out job: a lock held through every round names its holder; the rerun
    // continues the batch and copies the rows to each target.
    for (const [cluster, db] of [[a, 'schema_fa'], ...targets.map(([, d]) => [b, d] as const)] as const)
      await query(cluster, db, 'CREATE TABLE public.nt2 (id int PRIMARY KEY, v text)');
    await query(a, 'schema_fa', "INSERT INTO public.nt2 SELECT g, 'm' || g FROM generate_series(1, 50) g");
    const holder = new pg.Client({
      host: a.host,
      port: a.port,
      user: 'postgres',
      database: 'schema_fa',
      application_name: 'schema-test-holder',
    });
    await holder.connect();
    let held: ToolResult;
    try {
      await holder.query('BEGIN');
      await holder.query('UPDATE public.nt2 SET v = v WHERE id = 1');
      held = await run('schema.add_tables --json');
    } finally {
      await holder.query('COMMIT');
      await holder.end();
    }
    assert.equal(held.code, 1, printed(held));
    const waiting: { table: string; blockers: { application: string }[] }[] = outcome(held).data.waiting;
    assert.ok(
      waiting.some(
        (w) => w.table === 'public.nt2' && w.blockers.some((x) => x.application === 'schema-test-holder'),
      ),
      `the holder is named:\n${printed(held)}`,
    );
    const added = await run('schema.add_tables --json');
    assert.equal(added.code, 0, printed(added));
    assert.deepEqual(outcome(added).data.added, ['public.nt2'], printed(added));
    assert.equal(outcome(added).data.resumed, true, printed(added));
    for (const [, db] of targets)
      assert.deepEqual(
        await tableRows(b, db, 'public.nt2'),
        await tableRows(a, 'schema_fa', 'public.nt2'),
        `public.nt2 copied to ${db}`,
      );

    // diff compares each target with the primary; --target names one.
    await query(b, 'schema_fc', 'ALTER TABLE public.t ADD COLUMN only_c int');
    // One list: --target=b first (it finds nothing), then every target (c differs: the list fails there).
    const diffed = await run('schema.diff --target=b --json schema.diff --json');
    assert.equal(diffed.code, 1, printed(diffed));
    const [onlyB, ...perTarget] = outcomes(diffed, 3) as (Outcome & { target?: string })[];
    assert.deepEqual([onlyB!.ok, onlyB!.data.differences], [true, []], printed(diffed));
    assert.deepEqual(
      perTarget.map((o) => [
        o.target,
        o.data.differences.map((d: { kind: string; object: string }) => `${d.kind} ${d.object}`),
      ]),
      [
        ['b', []],
        ['c', ['column public.t.only_c']],
      ],
      printed(diffed),
    );
    await query(b, 'schema_fc', 'ALTER TABLE public.t DROP COLUMN only_c');
  } finally {
    await forgetJob(fan, b);
    for (const [cluster, db] of [
      [a, 'schema_fa'],
      [b, 'schema_fb'],
      [b, 'schema_fc'],
    ] as const)
      await dropDatabase(cluster, db).catch(() => undefined);
  }
});
