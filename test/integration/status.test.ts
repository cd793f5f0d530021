// bucardo.status as scripts and monitoring use it: one state out of a fixed set, its exit code, and
// the facts behind it in JSON. Each state is produced for real: an unreachable primary, a stopped
// daemon with changes waiting, a worker held up by a lock (lagging, then stalled), a copy under way.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import yaml from 'js-yaml';
import pg from 'pg';
import type { CopyProgress } from '../../src/core/copy/progress.js';
import type { ClusterInfo } from '../../src/sandbox/cluster.js';
import {
  clusters,
  dropDatabase,
  forgetJob,
  freshDatabase,
  query,
  runTool,
  waitFor,
  writeJobConfig,
  type WrittenJob,
} from '../support/harness.js';
import { jobBetween, type JobBetween } from '../support/fixture.js';

let a: ClusterInfo;
let b: ClusterInfo;
before(async () => {
  ({ a, b } = await clusters());
});
after(async () => {
  for (const [cluster, db] of [
    [a, 'stc_a'],
    [b, 'stc_b'],
  ] as const)
    await dropDatabase(cluster, db).catch(() => undefined);
});

interface StatusJson {
  ok: boolean;
  data: {
    schemaVersion: number;
    checkedAt: string;
    state: string;
    exitCode: number;
    verdict: string;
    pendingTotal: number;
    unreachable: string[];
    copy: CopyProgress;
  };
}

/** `node wrapper.js -c FILE status --json`: the JSON and the process exit code. */
async function status(job: WrittenJob): Promise<{ code: number; json: StatusJson; stdout: string }> {
  const result = await runTool(['-c', job.file, 'status', '--json']);
  const line = result.stdout
    .trim()
    .split('\n')
    .find((l) => l.startsWith('{'));
  assert.ok(line, `no JSON from status: ${result.stdout}${result.stderr}`);
  return { code: result.code, json: JSON.parse(line) as StatusJson, stdout: result.stdout };
}

test('an unreachable primary is state unknown, exit code 3, and the message names it', async () => {
  const dead = { ...a, port: 1 };
  const job = writeJobConfig({
    name: 'stdead',
    primary: { cluster: dead, dbname: 'nowhere' },
    secondary: { cluster: b, dbname: 'postgres' },
    metadata: b,
  });
  const { code, json } = await status(job);
  assert.equal(code, 3);
  assert.equal(json.data.state, 'unknown');
  assert.equal(json.data.schemaVersion, 1);
  assert.ok(Date.now() - Date.parse(json.data.checkedAt) < 60_000);
  assert.match(json.data.verdict, /^unknown: cannot reach the primary \(/);
  const text = await runTool(['-c', job.file, '-l', 'bucardo.status']);
  assert.equal(text.code, 0, "a list exits 0 when every command ran (the state's code is for status alone)");
  assert.match(text.stdout, /State {9}: unknown \(exit code 3\)/);
  assert.match(text.stdout, /Pending {7}: unknown \(the primary cannot be reached\)/);
});

/**
 * The job of the next two tests, shared (a job's life costs some 15 s of CPU): the first installs it and
 * drives it through every state, the second looks at it through a login that cannot see everything,
 * then uninstalls it. Made installed and replicating when the second runs alone.
 */
let stJob: JobBetween | undefined;
const stJobOptions = {
  name: 'st',
  schema: 'CREATE TABLE public.s (id int PRIMARY KEY, v text);',
  asynchronousKicking: true,
  copyData: 'never',
  bucardoSettings: { watchdog_seconds: 12 },
} as const;

test('caught up 0, stopped 2, lagging 1 and stalled 2 on a running job; the status shortcut at the prompt', async (t) => {
  stJob = await jobBetween(undefined, stJobOptions);
  const { job, ok } = stJob;
  const notInstalled = await status(job);
  assert.equal(notInstalled.code, 2);
  assert.equal(notInstalled.json.data.state, 'stopped');
  assert.equal(notInstalled.json.data.verdict, 'not installed (run bucardo.install)');

  await ok('bucardo.install bucardo.add_triggers bucardo.start');
  await query(a, 'st_a', "INSERT INTO public.s VALUES (1, 'one')");
  await waitFor(
    async () => (await query(b, 'st_b', 'SELECT 1 FROM public.s WHERE id = 1')).length === 1,
    30_000,
    'the first row to replicate',
  );
  const caughtUp = await waitFor(
    async () => {
      const s = await status(job);
      return s.code === 0 ? s : undefined;
    },
    30_000,
    'status exit code 0',
  );
  assert.equal(caughtUp.json.data.state, 'caught up');

  const stop = await runTool(['-c', job.file, '-l', 'bucardo.stop']);
  assert.equal(stop.code, 0, stop.stdout + stop.stderr);
  await query(a, 'st_a', "INSERT INTO public.s VALUES (2, 'two')");
  const stopped = await status(job);
  assert.equal(stopped.code, 2);
  assert.equal(stopped.json.data.state, 'stopped');
  assert.equal(stopped.json.data.pendingTotal, 1);
  const start = await runTool(['-c', job.file, '-l', 'bucardo.start']);
  assert.equal(start.code, 0, start.stdout + start.stderr);
  await waitFor(async () => (await status(job)).code === 0, 30_000, 'caught up again after the start');

  // A lock on the secondary holds the worker: lagging first, stalled once watchdog_seconds pass.
  const blocker = new pg.Client({ host: b.host, port: b.port, user: 'postgres', database: 'st_b' });
  await blocker.connect();
  t.after(() => blocker.end().catch(() => undefined));
  await blocker.query('BEGIN');
  await blocker.query('LOCK TABLE public.s IN ACCESS EXCLUSIVE MODE');
  await query(a, 'st_a', "INSERT INTO public.s VALUES (3, 'three')");
  const lagging = await status(job);
  assert.equal(lagging.code, 1, lagging.json.data.verdict);
  assert.equal(lagging.json.data.state, 'lagging');
  assert.match(lagging.json.data.verdict, /^1 change\(s\) pending, oldest \d+ s$/);
  // The backlog's age can pass watchdog_seconds a moment before the worker's statement does (the worker
  // starts after the kick): the state is stalled either way; wait for the statement to be named.
  const namesStatement = /^STALLED: Bucardo's worker has been in one statement on the secondary/;
  // By SQL first (each status run costs a tool's start): the worker's statement waiting on the lock for
  // longer than watchdog_seconds, what the watchdog names.
  await waitFor(
    async () =>
      (
        await query(
          b,
          'st_b',
          `SELECT 1 FROM pg_stat_activity WHERE datname = 'st_b' AND wait_event_type = 'Lock'
              AND now() - query_start > interval '12 s'`,
        )
      ).length > 0,
    40_000,
    "the worker's statement to wait longer than watchdog_seconds",
  );
  const stalled = await waitFor(
    async () => {
      const s = await status(job);
      return s.json.data.state === 'stalled' && namesStatement.test(s.json.data.verdict) ? s : undefined;
    },
    40_000,
    "the stalled state naming the worker's statement",
  );
  assert.equal(stalled.code, 2);
  await blocker.query('COMMIT');
  await waitFor(async () => (await status(job)).code === 0, 40_000, 'caught up once the lock is gone');

  // The shortcut, as typed at the prompt (stdin is not a terminal: one line, then end of input).
  const prompt = await runTool(['-c', job.file], { input: 'status\n' });
  assert.match(prompt.stdout, /State {9}: caught up \(exit code 0\)/);
  assert.match(prompt.stdout, /Daemon {8}: running, pid \d+, up \d+ (s|min)/);
});

test('a watchdog that cannot look makes the state unknown (exit code 3) and says why, never caught up (the same job, then uninstalled)', async (t) => {
  stJob ??= await jobBetween(undefined, {
    ...stJobOptions,
    flow: 'bucardo.install bucardo.add_triggers bucardo.start',
  });
  const { job } = stJob;
  // The role holds privileges in st_b: that database goes first (the fixture would drop it later). The
  // job is forgotten first, also when this test fails before its uninstall: the next test installs
  // another job into the same metadata database.
  t.after(async () => {
    await forgetJob(job, a);
    await dropDatabase(b, 'st_b');
    await query(b, 'postgres', 'DROP ROLE IF EXISTS st_monitor');
  });
  await waitFor(async () => (await status(job)).code === 0, 30_000, 'caught up after the start');

  // A monitoring login on the secondary that may connect but not call pg_blocking_pids (revoked from
  // PUBLIC in that database, as hardened servers do): the watchdog's look for stuck workers fails there.
  await query(b, 'postgres', 'DROP ROLE IF EXISTS st_monitor; CREATE ROLE st_monitor LOGIN');
  await query(b, 'st_b', 'REVOKE EXECUTE ON FUNCTION pg_catalog.pg_blocking_pids(integer) FROM PUBLIC');
  const config = yaml.load(readFileSync(job.file, 'utf8')) as {
    databases: { secondary: Record<string, unknown> };
  };
  config.databases.secondary.database_owner = 'st_monitor';
  const monitorFile = path.join(job.dir, 'st-monitor.yml');
  writeFileSync(monitorFile, yaml.dump(config));
  const blind = await status({ ...job, file: monitorFile });
  assert.equal(blind.code, 3, blind.json.data.verdict);
  assert.equal(blind.json.data.state, 'unknown');
  assert.match(
    blind.json.data.verdict,
    /^unknown: could not check for stuck Bucardo workers \(secondary: permission denied for function pg_blocking_pids\)/,
  );
  const text = await runTool(['-c', monitorFile, '-l', 'bucardo.status']);
  assert.match(text.stdout, /Pending {7}: 0 change\(s\)/, 'the backlog it could read is still shown');
  assert.match(text.stdout, /Unreachable {3}: could not check for stuck Bucardo workers/);
  // The same job through the usual login sees, and is caught up.
  assert.equal((await status(job)).code, 0);
  const uninstall = await runTool(['-c', job.file, '-l', 'bucardo.uninstall']);
  assert.equal(uninstall.code, 0, uninstall.stdout + uninstall.stderr);
});

/** The advisory locks that hold each big table's copy halfway (the copying-status test). */
const GATE = { big_analyzed: 7101, big_fresh: 7102 } as const;

test('during the initial copy: copying, exit code 1, tables and bytes done of all, the table being copied with its estimated rows, analyzed or not', async (t) => {
  // big_fresh is loaded and copied before anything analyzed it (autovacuum off for it): no reltuples.
  const schema = `CREATE TABLE public.big_analyzed (id int PRIMARY KEY, pad text);
    CREATE TABLE public.big_fresh (id int PRIMARY KEY, pad text) WITH (autovacuum_enabled = false);
    CREATE TABLE public.small1 (id int PRIMARY KEY); CREATE TABLE public.small2 (id int PRIMARY KEY);`;
  await freshDatabase(a, 'stc_a', schema);
  // A gated secondary, so that each big table's copy can be watched halfway however slow the machine:
  // an ALWAYS trigger (it fires under Bucardo's session_replication_role = replica too) waits at the
  // table's 50,000th row for an advisory lock the test holds until status has shown that table.
  await freshDatabase(
    b,
    'stc_b',
    `${schema}
    CREATE FUNCTION public.gate() RETURNS trigger LANGUAGE plpgsql AS
      'BEGIN IF NEW.id = 50000 THEN PERFORM pg_advisory_xact_lock_shared(TG_ARGV[0]::bigint); END IF; RETURN NEW; END';
    CREATE TRIGGER gate BEFORE INSERT ON public.big_analyzed FOR EACH ROW EXECUTE FUNCTION public.gate(${GATE.big_analyzed});
    ALTER TABLE public.big_analyzed ENABLE ALWAYS TRIGGER gate;
    CREATE TRIGGER gate BEFORE INSERT ON public.big_fresh FOR EACH ROW EXECUTE FUNCTION public.gate(${GATE.big_fresh});
    ALTER TABLE public.big_fresh ENABLE ALWAYS TRIGGER gate;`,
  );
  const gatekeeper = new pg.Client({ host: b.host, port: b.port, user: 'postgres', database: 'stc_b' });
  await gatekeeper.connect();
  t.after(() => gatekeeper.end().catch(() => undefined));
  await gatekeeper.query('SELECT pg_advisory_lock($1), pg_advisory_lock($2)', [
    GATE.big_analyzed,
    GATE.big_fresh,
  ]);
  await query(
    a,
    'stc_a',
    `INSERT INTO public.big_analyzed SELECT g, repeat('x', 200) FROM generate_series(1, 100000) g;
    INSERT INTO public.big_fresh SELECT g, repeat('x', 200) FROM generate_series(1, 100000) g;
    INSERT INTO public.small1 SELECT generate_series(1, 1000); INSERT INTO public.small2 SELECT generate_series(1, 1000);
    ANALYZE public.big_analyzed, public.small1, public.small2`,
  );
  assert.deepEqual(
    await query(a, 'stc_a', "SELECT reltuples::int AS n FROM pg_class WHERE relname = 'big_fresh'"),
    [{ n: -1 }],
    'big_fresh has never been analyzed',
  );
  const job = writeJobConfig({
    name: 'stc',
    primary: { cluster: a, dbname: 'stc_a' },
    secondary: { cluster: b, dbname: 'stc_b' },
    copyData: 'empty',
  });
  t.after(() => forgetJob(job, a));
  const flow = await runTool(['-c', job.file, '-l', 'bucardo.install bucardo.add_triggers bucardo.start']);
  assert.equal(flow.code, 0, flow.stdout + flow.stderr);
  const seen = new Map<string, Awaited<ReturnType<typeof status>>>();
  await waitFor(
    async () => {
      const s = await status(job);
      const copy = s.json.data.copy;
      if (copy.table?.startsWith('public.big_') && (copy.rows ?? 0) > 0 && !seen.has(copy.table)) {
        seen.set(copy.table, s);
        const gate = GATE[copy.table.slice('public.'.length) as keyof typeof GATE];
        await gatekeeper.query('SELECT pg_advisory_unlock($1)', [gate]);
      }
      return seen.size === 2 || s.json.data.copy.state === 'done';
    },
    90_000,
    'status to show each big table being copied',
  );
  assert.deepEqual([...seen.keys()].sort(), ['public.big_analyzed', 'public.big_fresh']);
  for (const [table, copying] of seen) {
    t.diagnostic(`${table}: ${copying.json.data.copy.rows} of ~${copying.json.data.copy.tableRows} rows`);
    assert.equal(copying.code, 1);
    assert.equal(copying.json.data.state, 'copying');
    const copy = copying.json.data.copy;
    assert.equal(copy.tablesTotal, 4);
    assert.ok(copy.tablesDone! >= 0 && copy.tablesDone! < 4, `tables done ${copy.tablesDone}`);
    assert.ok(copy.bytesTotal! > 40_000_000, `bytes in all ${copy.bytesTotal}`);
    assert.ok(copy.bytesDone! > 0 && copy.bytesDone! < copy.bytesTotal!, `bytes done ${copy.bytesDone}`);
    // Analyzed: the planner's estimate; never analyzed: the heap at the rows per page of a block sample.
    assert.ok(Math.abs(copy.tableRows! - 100_000) < 15_000, `${table}: estimated rows ${copy.tableRows}`);
    assert.ok(copy.tablePercent! >= 0 && copy.tablePercent! <= 100);
    assert.match(copying.stdout, /"elapsedSeconds":\d+/);
  }
  const wait = await runTool(['-c', job.file, '-l', 'bucardo.wait_for_copy']);
  assert.equal(wait.code, 0, wait.stdout + wait.stderr);
  const done = await waitFor(
    async () => {
      const s = await status(job);
      return s.code === 0 ? s : undefined;
    },
    30_000,
    'caught up after the copy',
  );
  assert.equal(done.json.data.copy.state, 'done');
  assert.equal(
    (await query<{ n: number }>(b, 'stc_b', 'SELECT count(*)::int AS n FROM public.big_fresh'))[0]!.n,
    100_000,
  );
});
