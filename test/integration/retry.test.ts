// The retry plugin against real clusters and the real Bucardo: a session holding a lock on one table
// (an open UPDATE) must never make production wait longer than retry.timeout, every other table must
// get (or lose) its triggers, the held one is reported with the blocking pid and finished by a later
// round or a rerun, and no role or database setting ever changes, also when the run is interrupted.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { after, afterEach, before, test, type TestContext } from 'node:test';
import pg from 'pg';
import type { ClusterInfo } from '../../src/sandbox/cluster.js';
import { patchValidateSync, PATCH_MARKER } from '../../plugins/retry/validate-sync.js';
import {
  clusters,
  dropDatabase,
  FIXTURE_PLUGINS,
  freshDatabase,
  query,
  ROOT,
  runTool,
  stopProcessesIn,
  waitFor,
  writeJobConfig,
  type ToolResult,
} from '../support/harness.js';

const PRIMARY = 'retry_a';
const SECONDARY = 'retry_b';
const JOB = 'retry_job';
const TIMEOUT_MS = 500;
/** How much longer than retry.timeout an application statement may wait (the issue's goal: 0.5 s). */
const MARGIN_MS = 500;
const RETRY = { timeout: TIMEOUT_MS, attempts: 4, backoff: 300 };

const SCHEMA = `
CREATE SCHEMA sales;
CREATE TABLE public."CamelCase" ("Id" int PRIMARY KEY, val text);
CREATE TABLE public."order items" (id int PRIMARY KEY, val text);
CREATE TABLE public.t1 (id int PRIMARY KEY, val text);
CREATE TABLE public.t2 (id int PRIMARY KEY, val text);
CREATE TABLE public.t3 (id int PRIMARY KEY, val text);
CREATE TABLE public.t4 (id int PRIMARY KEY, val text);
CREATE TABLE sales.orders (id int PRIMARY KEY, val text);
CREATE TABLE sales.returns (id int PRIMARY KEY, val text);
CREATE SEQUENCE public.counter;
`;
const TABLES = [
  'public.CamelCase',
  'public.order items',
  'public.t1',
  'public.t2',
  'public.t3',
  'public.t4',
  'sales.orders',
  'sales.returns',
];
const DATA = TABLES.map(
  (t) => `INSERT INTO ${sql(t)} SELECT g, 'v' || g FROM generate_series(1, 20) g;`,
).join('\n');
const ALL_TRIGGERS = ['bucardo_delta', `bucardo_kick_${JOB}`, `bucardo_note_trunc_${JOB}`];

let a: ClusterInfo;
let b: ClusterInfo;
let job: ReturnType<typeof writeJobConfig>;

function sql(table: string): string {
  const [schema, name] = [table.slice(0, table.indexOf('.')), table.slice(table.indexOf('.') + 1)];
  return `"${schema}"."${name}"`;
}

before(async () => {
  ({ a, b } = await clusters());
  await dropDatabase(a, 'bucardo');
  await freshDatabase(a, PRIMARY, `${SCHEMA}${DATA}`);
  await freshDatabase(b, SECONDARY, SCHEMA);
  job = writeJobConfig({
    name: JOB,
    plugins: ['bucardo', 'retry'],
    primary: { cluster: a, dbname: PRIMARY },
    secondary: { cluster: b, dbname: SECONDARY },
    extra: { retry: RETRY },
  });
  const setup = await runTool(['-c', job.file, '-l', 'bucardo.install retry.install']);
  assert.equal(setup.code, 0, setup.stdout + setup.stderr);
  assert.match(
    setup.stdout,
    /Check: bucardo\.validate_sync\(text,integer\) in bucardo is the per-table variant Pass\./,
  );
  assert.match(
    setup.stdout,
    /Check: Bucardo's original is saved, and the installed function is exactly it plus the patch .* Pass\./,
  );
});

const runningWorkloads = new Set<Workload>();
const runningTools = new Set<ChildProcess>();

async function releaseBlockers(): Promise<void> {
  for (const blocker of [...openBlockers]) await blocker.release().catch(() => undefined);
}

/** What a failed test may leave running: locks, workload loops, an interrupted tool (Ctrl-C, never a kill). */
async function cleanUpAfterTest(): Promise<void> {
  for (const load of [...runningWorkloads]) await load.stop().catch(() => undefined);
  for (const child of [...runningTools]) {
    if (child.exitCode === null) {
      child.kill('SIGINT');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  }
  runningTools.clear();
  await releaseBlockers();
}

afterEach(cleanUpAfterTest);

after(async () => {
  await cleanUpAfterTest();
  if (job) stopProcessesIn(job.pidDir);
  await dropDatabase(a, 'bucardo').catch(() => undefined);
  await dropDatabase(a, PRIMARY).catch(() => undefined);
  await dropDatabase(b, SECONDARY).catch(() => undefined);
});

// ---------------------------------------------------------------------------------------------
// Helpers: a lock holder, an application workload that measures its own waits, the database state.

const openBlockers = new Set<Blocker>();

/** A transaction with an open UPDATE on one row: holds ROW EXCLUSIVE on the table until released. */
class Blocker {
  private constructor(
    private readonly client: pg.Client,
    readonly pid: number,
  ) {}

  static async hold(table: string): Promise<Blocker> {
    const client = new pg.Client({
      host: a.host,
      port: a.port,
      user: 'postgres',
      database: PRIMARY,
      application_name: 'retry-test-blocker',
    });
    await client.connect();
    const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    await client.query('BEGIN');
    await client.query(`UPDATE ${sql(table)} SET val = 'held' WHERE id = 1`);
    const blocker = new Blocker(client, pid);
    openBlockers.add(blocker);
    return blocker;
  }

  async release(): Promise<void> {
    if (!openBlockers.delete(this)) return;
    await this.client.query('COMMIT').catch(() => undefined);
    await this.client.end();
  }
}

/** Application statements on other rows of some tables, every 20 ms, recording the longest wait per table. */
class Workload {
  private running = true;
  private readonly loops: Promise<void>[] = [];
  readonly longest = new Map<string, number>();
  readonly statements = new Map<string, number>();
  readonly errors: string[] = [];

  constructor(tables: string[]) {
    for (const table of tables) this.loops.push(this.loop(table));
    runningWorkloads.add(this);
  }

  private async loop(table: string): Promise<void> {
    const client = new pg.Client({
      host: a.host,
      port: a.port,
      user: 'postgres',
      database: PRIMARY,
      application_name: 'retry-test-app',
    });
    await client.connect();
    try {
      for (let i = 0; this.running; i++) {
        const started = performance.now();
        try {
          await client.query(`UPDATE ${sql(table)} SET val = $1 WHERE id = 2`, [`app ${i}`]);
        } catch (error) {
          this.errors.push(`${table}: ${(error as Error).message}`);
        }
        const waited = performance.now() - started;
        this.longest.set(table, Math.max(this.longest.get(table) ?? 0, waited));
        this.statements.set(table, (this.statements.get(table) ?? 0) + 1);
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      await client.end();
    }
  }

  async stop(): Promise<Map<string, number>> {
    this.running = false;
    runningWorkloads.delete(this);
    await Promise.all(this.loops);
    assert.deepEqual(this.errors, [], 'application statements never failed');
    for (const [table, count] of this.statements)
      assert.ok(count > 5, `the workload really ran on ${table} (${count} statements)`);
    return this.longest;
  }
}

/** Job triggers per table ("schema.table" → sorted names with their tgenabled). */
async function jobTriggers(): Promise<Map<string, string[]>> {
  const rows = await query<{ t: string; trigger: string; enabled: string }>(
    a,
    PRIMARY,
    `SELECT n.nspname || '.' || c.relname AS t, tg.tgname AS trigger, tg.tgenabled AS enabled
       FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE NOT tg.tgisinternal AND n.nspname <> 'bucardo' ORDER BY 1, 2`,
  );
  const byTable = new Map<string, string[]>();
  for (const row of rows)
    byTable.set(row.t, [...(byTable.get(row.t) ?? []), `${row.trigger}:${row.enabled}`]);
  return byTable;
}

const withAll = (mode = 'O') => ALL_TRIGGERS.map((name) => `${name}:${mode}`);

async function syncRecorded(): Promise<boolean> {
  return (await query(a, 'bucardo', 'SELECT 1 FROM bucardo.sync WHERE name = $1', [JOB])).length > 0;
}

/** Every role and database setting on both clusters, plus the primary's dbconn in Bucardo's metadata. */
async function settingsSnapshot(): Promise<string> {
  const settings = async (cluster: ClusterInfo) =>
    query(
      cluster,
      'postgres',
      `SELECT coalesce(d.datname, '*') AS db, coalesce(r.rolname, '*') AS role, s.setconfig
       FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole ORDER BY 1, 2`,
    );
  const dbconn = await query(a, 'bucardo', 'SELECT name, dbconn FROM bucardo.db ORDER BY name');
  return JSON.stringify({ a: await settings(a), b: await settings(b), dbconn });
}

function jsonOutcome(result: ToolResult): {
  ok: boolean;
  message: string;
  data: {
    rounds: number;
    waiting: { table: string; blockers: { pid: number }[] }[];
    tables: number;
    alreadyDone: number;
  };
  checks: { name: string; pass: boolean }[];
} {
  const line = result.stdout.split('\n').find((l) => l.startsWith('{"command"'));
  assert.ok(line, `a JSON outcome in:\n${result.stdout}\n${result.stderr}`);
  return JSON.parse(line);
}

/** Starts the tool like runTool, but hands back the process so the test can press Ctrl-C. */
function startTool(args: string[]): { child: ChildProcess; done: Promise<ToolResult> } {
  const child = spawn(process.execPath, [path.join(ROOT, 'wrapper.js'), ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1', BUCARDO_CONSOLE_PLUGIN_PATH: FIXTURE_PLUGINS },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  child.stdin!.end();
  runningTools.add(child);
  child.once('exit', () => runningTools.delete(child));
  const done = new Promise<ToolResult>((resolve) =>
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr })),
  );
  return { child, done };
}

/** A backend of the given application waiting on a lock on the primary: our DDL in the lock queue. */
async function waitingDdl(application: string): Promise<boolean> {
  const rows = await query(
    a,
    'postgres',
    "SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND application_name = $2 AND wait_event_type = 'Lock'",
    [PRIMARY, application],
  );
  return rows.length > 0;
}

function assertBounded(longest: Map<string, number>, held: string, t: TestContext): void {
  t.diagnostic(
    `longest application statement wait: ${[...longest].map(([table, ms]) => `${table} ${ms.toFixed(0)} ms`).join(', ')} (retry.timeout ${TIMEOUT_MS} ms)`,
  );
  const waited = longest.get(held)!;
  assert.ok(
    waited <= TIMEOUT_MS + MARGIN_MS,
    `an application statement on the held table ${held} waited ${waited.toFixed(0)} ms; the bound is ${TIMEOUT_MS} + ${MARGIN_MS} ms`,
  );
  // The workload really queued behind the tool's DDL, so the bound above is what limited it.
  assert.ok(
    waited >= TIMEOUT_MS / 2,
    `the workload on ${held} queued behind the DDL (longest wait ${waited.toFixed(0)} ms)`,
  );
  for (const [table, ms] of longest)
    assert.ok(
      ms <= TIMEOUT_MS + MARGIN_MS,
      `an application statement on ${table} waited ${ms.toFixed(0)} ms`,
    );
}

// ---------------------------------------------------------------------------------------------

test("the per-table variant is derived from Bucardo's own function and is idempotent", async () => {
  const [{ installed }] = await query<{ installed: string }>(
    a,
    'bucardo',
    "SELECT pg_get_functiondef('bucardo.validate_sync(text,integer)'::regprocedure) AS installed",
  );
  const [{ original }] = await query<{ original: string }>(
    a,
    'bucardo',
    'SELECT original_definition AS original FROM bucardo_console_retry.saved_function',
  );
  assert.ok(installed.includes(PATCH_MARKER) && !original.includes(PATCH_MARKER));
  assert.equal(
    patchValidateSync(original),
    installed,
    'the installed function is exactly the saved original plus the patch',
  );
  assert.equal(patchValidateSync(installed), installed, 'patching twice changes nothing');
  assert.throws(
    () => patchValidateSync(original.replace('} ## end each TABLE', '}')),
    /does not look like Bucardo 5\.6's .*Nothing was changed/,
  );
  const again = await runTool(['-c', job.file, '-l', 'retry.install']);
  assert.equal(again.code, 0, again.stdout);
  assert.match(again.stdout, /already the per-table variant/);
});

test('add_triggers with one table held by an open UPDATE: the others get their triggers, the held one is reported with the blocking pid, a rerun after release completes it', async (t) => {
  const settingsBefore = await settingsSnapshot();
  const blocker = await Blocker.hold('public.t3');
  const load = new Workload(['public.t3', 'public.t1', 'sales.returns']);
  const run = await runTool(['-c', job.file, '-l', 'retry.add_triggers --json']);
  const longest = await load.stop();
  const outcome = jsonOutcome(run);
  assert.equal(run.code, 1, run.stdout);
  assert.equal(outcome.ok, false);
  assert.equal(outcome.data.rounds, RETRY.attempts);
  assert.deepEqual(
    outcome.data.waiting.map((w) => w.table),
    ['public.t3'],
  );
  assert.ok(
    outcome.data.waiting[0]!.blockers.some((holder) => holder.pid === blocker.pid),
    `the blocking pid ${blocker.pid} is reported: ${JSON.stringify(outcome.data.waiting)}`,
  );
  const triggers = await jobTriggers();
  for (const table of TABLES.filter((t) => t !== 'public.t3'))
    assert.deepEqual(triggers.get(table), withAll(), `${table} has its triggers`);
  assert.equal(triggers.get('public.t3'), undefined, 'the held table has none');
  assert.equal(await syncRecorded(), true, 'the triggers belong to a recorded sync');
  assertBounded(longest, 'public.t3', t);

  // The operator's view of the same situation: the table, the holder's pid and what it runs.
  const human = await runTool(['-c', job.file, '-l', 'retry.add_triggers']);
  assert.equal(human.code, 1);
  assert.match(
    human.stdout,
    new RegExp(
      `public\\.t3: could not be locked within retry\\.timeout \\(${TIMEOUT_MS} ms\\)[^\\n]*\\n\\s+lock held by pid ${blocker.pid} \\(user postgres, application retry-test-blocker, \\d+ s\\): UPDATE "public"\\."t3"`,
    ),
  );
  // Every round but the last names the waiting table and its blocker as soon as the round ends.
  const roundEnd = new RegExp(
    `After round 1 of ${RETRY.attempts}: 7/8 tables ready, 1 still waiting on locks:\\n\\s+public\\.t3: could not be locked within retry\\.timeout \\(${TIMEOUT_MS} ms\\)\\n\\s+lock held by pid ${blocker.pid} \\(user postgres, application retry-test-blocker, \\d+ s\\): UPDATE "public"\\."t3"`,
  );
  const roundEndAt = human.stdout.search(roundEnd);
  assert.ok(roundEndAt >= 0, `round 1's end names the table and pid ${blocker.pid}:\n${human.stdout}`);
  assert.ok(roundEndAt < human.stdout.indexOf('Still waiting on locks (1):'), 'before the final report');
  for (let round = 2; round < RETRY.attempts; round++)
    assert.match(
      human.stdout,
      new RegExp(`After round ${round} of ${RETRY.attempts}: 7/8 tables ready, 1 still waiting`),
    );
  assert.doesNotMatch(
    human.stdout,
    new RegExp(`After round ${RETRY.attempts} of`),
    'the last round is reported once, by the final list',
  );

  await blocker.release();
  const rerun = await runTool(['-c', job.file, '-l', 'retry.add_triggers']);
  assert.equal(rerun.code, 0, rerun.stdout + rerun.stderr);
  assert.match(rerun.stdout, /1 table\(s\) got their triggers in 1 round\(s\), 7 already had them/);
  assert.match(
    rerun.stdout,
    /Check: every table in scope carries exactly the expected bucardo triggers \(8 tables\) Pass\./,
  );
  assert.deepEqual((await jobTriggers()).get('public.t3'), withAll());

  const idle = await runTool(['-c', job.file, '-l', 'retry.add_triggers']);
  assert.equal(idle.code, 0);
  assert.match(idle.stdout, /Nothing to do: all 8 tables already carry this job's triggers\./);
  assert.equal(await settingsSnapshot(), settingsBefore, 'role and database settings are unchanged');
});

test('drop_triggers with one table held: the others lose their triggers, the held one keeps them inside the still recorded sync; a rerun after release finishes and removes the sync', async (t) => {
  const settingsBefore = await settingsSnapshot();
  const blocker = await Blocker.hold('public.t4');
  const load = new Workload(['public.t4', 'public.t2']);
  const run = await runTool(['-c', job.file, '-l', 'retry.drop_triggers --json']);
  const longest = await load.stop();
  const outcome = jsonOutcome(run);
  assert.equal(run.code, 1, run.stdout);
  assert.deepEqual(
    outcome.data.waiting.map((w) => w.table),
    ['public.t4'],
  );
  assert.ok(outcome.data.waiting[0]!.blockers.some((holder) => holder.pid === blocker.pid));
  const triggers = await jobTriggers();
  assert.deepEqual([...triggers.keys()], ['public.t4'], 'only the held table keeps triggers');
  assert.deepEqual(triggers.get('public.t4'), withAll());
  assert.equal(
    await syncRecorded(),
    true,
    'the sync stays recorded while a table still carries its triggers',
  );
  assertBounded(longest, 'public.t4', t);

  await blocker.release();
  const rerun = await runTool(['-c', job.file, '-l', 'retry.drop_triggers']);
  assert.equal(rerun.code, 0, rerun.stdout + rerun.stderr);
  assert.match(rerun.stdout, /Check: no bucardo trigger of this job left Pass\./);
  assert.match(rerun.stdout, /Check: sync retry_job no longer recorded in Bucardo Pass\./);
  assert.equal((await jobTriggers()).size, 0);
  assert.equal(await syncRecorded(), false);
  assert.equal(await settingsSnapshot(), settingsBefore, 'role and database settings are unchanged');
});

test('add_triggers with the lock released during the run: a later round completes the held table', async (t) => {
  const blocker = await Blocker.hold('sales.orders');
  const load = new Workload(['sales.orders']);
  const running = runTool(['-c', job.file, '-l', 'retry.add_triggers --json']);
  // Release once the first round has passed the held table and done every other one.
  await waitFor(
    async () => {
      const triggers = await jobTriggers();
      return (
        TABLES.filter((t) => t !== 'sales.orders').every((t) => triggers.get(t)?.length === 3) &&
        !triggers.has('sales.orders')
      );
    },
    // Seconds alone; far longer while other test lanes share the cores.
    90_000,
    'the first round to finish every table but the held one',
  );
  await blocker.release();
  const run = await running;
  const longest = await load.stop();
  const outcome = jsonOutcome(run);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.ok(outcome.data.rounds >= 2, `a later round did it (rounds: ${outcome.data.rounds})`);
  assert.deepEqual(outcome.data.waiting, []);
  assert.ok(
    outcome.checks.every((c) => c.pass),
    JSON.stringify(outcome.checks),
  );
  const triggers = await jobTriggers();
  for (const table of TABLES) assert.deepEqual(triggers.get(table), withAll(), `${table} has its triggers`);
  t.diagnostic(
    `rounds: ${outcome.data.rounds}; longest application statement wait on sales.orders: ${longest.get('sales.orders')!.toFixed(0)} ms`,
  );
  for (const [table, ms] of longest)
    assert.ok(
      ms <= TIMEOUT_MS + MARGIN_MS,
      `an application statement on ${table} waited ${ms.toFixed(0)} ms`,
    );
});

test('Ctrl-C during drop_triggers and add_triggers: settings unchanged, no trigger outside the recorded sync, nothing left waiting, a rerun finishes', async () => {
  // A long retry.timeout: an interrupt must not have to wait for it.
  const patient = writeJobConfig({
    name: JOB,
    plugins: ['bucardo', 'retry'],
    primary: { cluster: a, dbname: PRIMARY },
    secondary: { cluster: b, dbname: SECONDARY },
    extra: { retry: { ...RETRY, timeout: 30_000 } },
  });
  const settingsBefore = await settingsSnapshot();

  // Drop, interrupted while its DROP TRIGGER waits in t2's lock queue (after dropping the tables before it).
  const dropBlocker = await Blocker.hold('public.t2');
  const drop = startTool(['-c', patient.file, '-l', 'retry.drop_triggers']);
  await waitFor(
    () => waitingDdl('bucardo-console'),
    90_000,
    'retry.drop_triggers to wait for the held table',
  );
  let pressed = Date.now();
  drop.child.kill('SIGINT');
  const dropped = await drop.done;
  assert.ok(
    Date.now() - pressed < 5_000,
    `Ctrl-C is honoured without waiting for the lock timeout (${Date.now() - pressed} ms)`,
  );
  assert.notEqual(dropped.code, 0);
  assert.match(dropped.stdout + dropped.stderr, /retry\.drop_triggers was interrupted/);
  assert.equal(await waitingDdl('bucardo-console'), false, 'no DDL of ours is left in a lock queue');
  assert.equal(await syncRecorded(), true, 'the sync is kept while tables still carry triggers');
  let triggers = await jobTriggers();
  assert.deepEqual(
    ['public.CamelCase', 'public.order items', 'public.t1'].map((t) => triggers.get(t)),
    [undefined, undefined, undefined],
    'the tables before the held one lost their triggers',
  );
  assert.deepEqual(triggers.get('public.t2'), withAll(), 'the held table keeps its triggers');
  assert.equal(await settingsSnapshot(), settingsBefore, 'settings unchanged after an interrupted drop');
  await dropBlocker.release();

  // Add, interrupted while validate_sync's own connection waits in t1's lock queue.
  const addBlocker = await Blocker.hold('public.t1');
  const add = startTool(['-c', patient.file, '-l', 'retry.add_triggers']);
  const inner = `bucardo_console retry ${JOB}`;
  await waitFor(() => waitingDdl(inner), 30_000, 'validate_sync to wait for the held table');
  pressed = Date.now();
  add.child.kill('SIGINT');
  const added = await add.done;
  assert.ok(
    Date.now() - pressed < 5_000,
    `Ctrl-C is honoured without waiting for the lock timeout (${Date.now() - pressed} ms)`,
  );
  assert.notEqual(added.code, 0);
  assert.match(added.stdout + added.stderr, /retry\.add_triggers was interrupted/);
  assert.match(added.stdout, /cancelled the running statement on validate_sync's connection to the primary/);
  await waitFor(
    async () => !(await waitingDdl(inner)),
    5_000,
    "validate_sync's connection to leave the lock queue",
  );
  assert.equal(await syncRecorded(), true);
  const members = new Set(
    (
      await query<{ t: string }>(
        a,
        'bucardo',
        `SELECT g.schemaname || '.' || g.tablename AS t FROM bucardo.herdmap h JOIN bucardo.goat g ON g.id = h.goat JOIN bucardo.sync s ON s.herd = h.herd WHERE s.name = $1`,
        [JOB],
      )
    ).map((r) => r.t),
  );
  triggers = await jobTriggers();
  for (const table of triggers.keys())
    assert.ok(members.has(table), `${table} carries triggers and belongs to the recorded sync`);
  assert.deepEqual(
    triggers.get('public.CamelCase'),
    withAll(),
    'tables finished before the interrupt keep their triggers',
  );
  assert.equal(triggers.get('public.t1'), undefined, 'the held table got nothing');
  assert.equal(await settingsSnapshot(), settingsBefore, 'settings unchanged after an interrupted add');

  await addBlocker.release();
  const rerun = await runTool(['-c', job.file, '-l', 'retry.add_triggers']);
  assert.equal(rerun.code, 0, rerun.stdout + rerun.stderr);
  triggers = await jobTriggers();
  for (const table of TABLES)
    assert.deepEqual(triggers.get(table), withAll(), `${table} has its triggers after the rerun`);
  assert.equal(await settingsSnapshot(), settingsBefore);
});

test('asynchronous kicking on a cascade middle hop: kick triggers go table by table, the others fire ALWAYS', async () => {
  const cascade = writeJobConfig({
    name: JOB,
    plugins: ['bucardo', 'retry'],
    primary: { cluster: a, dbname: PRIMARY, cascade: true },
    secondary: { cluster: b, dbname: SECONDARY },
    asynchronousKicking: true,
    extra: { retry: RETRY },
  });
  const run = await runTool(['-c', cascade.file, '-l', 'retry.add_triggers']);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /kick triggers to be removed \(asynchronous kicking\), table by table/);
  const triggers = await jobTriggers();
  for (const table of TABLES)
    assert.deepEqual(
      triggers.get(table),
      [`bucardo_delta:A`, `bucardo_note_trunc_${JOB}:A`],
      `${table}: no kick trigger, the others ALWAYS`,
    );
  assert.equal(
    (
      await query<{ autokick: boolean }>(a, 'bucardo', 'SELECT autokick FROM bucardo.sync WHERE name = $1', [
        JOB,
      ])
    )[0]?.autokick,
    false,
  );
});

/** Pauses of 1, 2, 4, 8 and 16 s between rounds: time enough for the test to release its lock on a loaded machine. */
const PATIENT_RETRY = { timeout: TIMEOUT_MS, attempts: 6, backoff: 1000 };

test('cutover.finish with the retry plugin drops the triggers in its rounds: a table read-locked through the first round loses them in a later one (and a changed pid_dir is adopted at start, refused while a daemon runs from the old one)', async () => {
  const cutover = writeJobConfig({
    name: JOB,
    plugins: ['bucardo', 'retry', 'cutover'],
    primary: { cluster: a, dbname: PRIMARY },
    secondary: { cluster: b, dbname: SECONDARY },
    extra: { retry: PATIENT_RETRY, cutover: { settle_time: 1, max_lag: 5 } },
  });
  try {
    // This config has its own pid_dir. While a daemon runs from the one recorded at install, starting is refused.
    const first = await runTool(['-c', job.file, '-l', 'bucardo.start']);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    const running = Number(/started the daemon \(pid (\d+)\)/.exec(first.stdout)?.[1]);
    const refused = await runTool(['-c', cutover.file, '-l', 'bucardo.start']);
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    assert.match(
      refused.stdout + refused.stderr,
      new RegExp(
        `Bucardo processes \\(pid [\\d, ]*\\b${running}\\b[\\d, ]*\\) still run on the metadata database bucardo from pid dir ${job.pidDir}, but this config's bucardo\\.pid_dir is ${cutover.pidDir}\\. A second daemon would run the same syncs twice, so none was started\\.`,
      ),
    );
    assert.equal((await runTool(['-c', job.file, '-l', 'bucardo.stop'])).code, 0);
    const setup = await runTool([
      '-c',
      cutover.file,
      '-l',
      'retry.add_triggers bucardo.start bucardo.wait_for_copy',
    ]);
    assert.equal(setup.code, 0, setup.stdout + setup.stderr);
    assert.match(
      setup.stdout,
      new RegExp(
        `- bucardo\\.pid_dir changed since the last install or start \\(${job.pidDir} → ${cutover.pidDir}\\): recorded the new one in Bucardo's settings`,
      ),
    );
    // Earlier tests' workloads left change records from before the copy; a write kicks the sync so they are applied.
    await query(a, PRIMARY, 'UPDATE public.t1 SET val = val WHERE id = 3');
    await waitFor(
      async () => (await runTool(['-c', cutover.file, '-l', 'cutover.verify cutover.check'])).code === 0,
      60_000,
      'the secondary to verify identical and cutover.check to pass',
    );
    // A long report holds ACCESS SHARE on t3: DROP TRIGGER (ACCESS EXCLUSIVE) must wait for it, and give up after
    // retry.timeout.
    const reader = new pg.Client({
      host: a.host,
      port: a.port,
      user: 'postgres',
      database: PRIMARY,
      application_name: 'retry-test-report',
    });
    await reader.connect();
    let released = false;
    try {
      await reader.query('BEGIN');
      await reader.query('SELECT count(*) FROM public.t3');
      let ended: ToolResult | undefined;
      const running = runTool(['-c', cutover.file, '-l', 'cutover.finish --writes-stopped']).then(
        (result) => (ended = result),
      );
      await waitFor(
        async () => {
          if (ended)
            assert.fail(
              `cutover.finish ended before its first round was over:\n${ended.stdout}\n${ended.stderr}`,
            );
          const left = await jobTriggers();
          return left.size === 1 && left.has('public.t3');
        },
        120_000,
        "the first round to drop every table's triggers but the read-locked one",
      );
      await reader.query('COMMIT');
      released = true;
      const run = await running;
      assert.equal(run.code, 0, run.stdout + run.stderr);
      const rounds = Number(
        /- dropped this job's triggers on 8 of 8 table\(s\) in (\d+) round\(s\) \(the retry plugin's rounds: each lock wait at most retry\.timeout\)/.exec(
          run.stdout,
        )?.[1],
      );
      assert.ok(
        rounds >= 2 && rounds <= PATIENT_RETRY.attempts,
        `a later round dropped t3's triggers (rounds: ${rounds}):\n${run.stdout}`,
      );
      assert.match(run.stdout, /Cutover finished: replication is stopped, its triggers are gone/);
      assert.match(run.stdout, /Check: no trigger of this job left on the primary Pass\./);
      assert.equal((await jobTriggers()).size, 0);
      assert.equal(await syncRecorded(), false);
    } finally {
      if (!released) await reader.query('ROLLBACK').catch(() => undefined);
      await reader.end();
    }
  } finally {
    stopProcessesIn(cutover.pidDir);
  }
});

test("uninstall puts Bucardo's own validate_sync back exactly; add_triggers then asks for retry.install", async () => {
  const run = await runTool(['-c', job.file, '-l', 'retry.uninstall retry.uninstall']);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.match(
    run.stdout,
    /Check: bucardo\.validate_sync\(text,integer\)'s code is identical to Bucardo's packaged one \(\/usr\/share\/bucardo\/bucardo\.schema\) Pass\./,
  );
  assert.match(run.stdout, /Check: no saved copy left \(schema bucardo_console_retry\) Pass\./);
  const refused = await runTool(['-c', job.file, '-l', 'retry.add_triggers']);
  assert.equal(refused.code, 1);
  assert.match(
    refused.stdout + refused.stderr,
    /retry\.install has not been run for the metadata database bucardo/,
  );
});

test('the retry section is checked like the rest of the config: every problem with its key', async () => {
  const bad = writeJobConfig({
    name: JOB,
    plugins: ['bucardo', 'retry'],
    primary: { cluster: a, dbname: PRIMARY },
    secondary: { cluster: b, dbname: SECONDARY },
    extra: { retry: { timeout: -5, atempts: 3, backoff: 'soon' } },
  });
  const run = await runTool(['-c', bad.file, '-l', 'retry.add_triggers']);
  assert.notEqual(run.code, 0);
  const output = run.stdout + run.stderr;
  assert.match(output, /retry\.timeout: expected an integer between 1 and 3600000, got -5/);
  assert.match(output, /retry\.atempts: unknown key \(did you mean 'attempts'\?\)/);
  assert.match(output, /retry\.backoff: expected an integer, got 'soon'/);
});
