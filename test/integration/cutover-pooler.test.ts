// The cutover the application does not notice (issue 30), on real clusters, the real daemon and a real
// PgBouncer (started on a free port in a temp dir, stopped by its pid). Sixteen clients write through
// the pooler all along, each transaction an UPDATE and an INSERT whose id it remembers once committed.
// Bad pooler settings are refused before anything is paused. Failures before the switch (the
// secondary refusing connections in the pause, the switch command exiting 1 or hanging past
// switch_timeout) call the switch off: the pooler resumes on A, the fence is lifted, no client
// transaction fails, replication goes on. Then a cutover.finish --way-back killed (SIGKILL) while the
// pooler is paused is run again: it continues and switches with no failed transaction, every
// committed one on B and none written on A by the application afterwards (its role is fenced there),
// and cutover.rollback switches back the same way. Timings are printed, asserted only loosely
// (bench/cutover-pooler measures them).
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { sleep } from '../../src/core/activity.js';
import { freePort, type ClusterInfo } from '../../src/sandbox/cluster.js';
import { startPooler, stopPooler, type PoolerInfo } from '../../src/sandbox/pgbouncer.js';
import {
  clusters,
  dropDatabase,
  forgetJob,
  freshDatabase,
  processesHolding,
  query,
  runTool,
  tempDir,
  waitFor,
  writeJobConfig,
  type ToolResult,
  type WrittenJob,
} from '../support/harness.js';

const ACCOUNTS = 20_000;
/**
 * Clients through the pooler, each a transaction every 40 ms or so: enough to have transactions queued
 * at every PAUSE and in flight at every switch. The bench runs the issue's 16 (bench/cutover-pooler).
 */
const CLIENTS = 8;
const ADMIN_PASSWORD = 'pooler-admin-secret';
const APP_PASSWORD = 'pooler-app-secret';
/** The application's role (through the pooler) and a role with a session of its own on A: both fenced. */
const APP = 'pool_app';
const FENCED = 'pool_fenced';

const SCHEMA = `
CREATE TABLE public.acct (id int PRIMARY KEY, bal bigint NOT NULL);
CREATE TABLE public.log (id bigserial PRIMARY KEY, client int NOT NULL, at timestamptz NOT NULL);
INSERT INTO public.acct SELECT g, 0 FROM generate_series(1, ${ACCOUNTS}) g;`;

let a: ClusterInfo;
let b: ClusterInfo;
let pooler: PoolerInfo | undefined;
let job: WrittenJob;
let badJob: WrittenJob;
let dir: string;
const env = { POOL_ADMIN_PW: ADMIN_PASSWORD };

function tool(file: string, list: string, extraEnv: Record<string, string> = {}): Promise<ToolResult> {
  return runTool(['-c', file, '-l', list], { timeoutMs: 240_000, env: { ...env, ...extraEnv } });
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

function cutoverSection(overrides: Record<string, unknown> = {}, pgbouncer: Record<string, unknown> = {}) {
  return {
    cutover: {
      chunk_rows: 5000,
      max_lag: 30,
      settle_time: 3,
      fence: [APP, FENCED],
      fence_grace: 3,
      switch_command: [path.join(dir, 'switch.sh')],
      // Long enough for the switch script's echo on a busy machine; the hung one waits it out whole.
      switch_timeout: 6,
      pgbouncer: {
        host: pooler!.host,
        port: pooler!.port,
        user: 'padmin',
        password_env: 'POOL_ADMIN_PW',
        databases: ['pool'],
        config_file: pooler!.configFile,
        pause_timeout: 20,
        ...pgbouncer,
      },
      ...overrides,
    },
  };
}

async function admin<T extends pg.QueryResultRow>(text: string): Promise<T[]> {
  const client = new pg.Client({
    host: pooler!.host,
    port: pooler!.port,
    user: 'padmin',
    password: ADMIN_PASSWORD,
    database: 'pgbouncer',
  });
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}

async function poolerPaused(): Promise<boolean> {
  const rows = await admin<{ name: string; paused: number }>('SHOW DATABASES');
  return rows.some((row) => row.name === 'pool' && Number(row.paused) === 1);
}

/** The application: CLIENTS sessions through the pooler, each committing an UPDATE and an INSERT in a loop. */
class AppLoad {
  readonly committed: number[] = [];
  readonly failures: string[] = [];
  private stopped = false;
  private done: Promise<void>[] = [];
  /** The slowest transaction (ms), from BEGIN to COMMIT's answer. */
  slowestMs = 0;

  start(): void {
    for (let client = 1; client <= CLIENTS; client++) this.done.push(this.run(client));
  }

  private async run(client: number): Promise<void> {
    const session = new pg.Client({
      host: pooler!.host,
      port: pooler!.port,
      user: APP,
      password: APP_PASSWORD,
      database: 'pool',
      // A stall is expected at the switch; a hang is not.
      query_timeout: 60_000,
    });
    session.on('error', () => undefined);
    await session.connect();
    try {
      while (!this.stopped) {
        const started = Date.now();
        try {
          await session.query('BEGIN');
          await session.query('UPDATE public.acct SET bal = bal + 1 WHERE id = $1', [
            1 + Math.floor(Math.random() * ACCOUNTS),
          ]);
          const { rows } = await session.query<{ id: string }>(
            'INSERT INTO public.log (client, at) VALUES ($1, clock_timestamp()) RETURNING id',
            [client],
          );
          await session.query('COMMIT');
          this.committed.push(Number(rows[0]!.id));
        } catch (error) {
          this.failures.push(`client ${client}: ${(error as Error).message}`);
          await session.query('ROLLBACK').catch(() => undefined);
        }
        this.slowestMs = Math.max(this.slowestMs, Date.now() - started);
        await sleep(40);
      }
    } finally {
      await session.end().catch(() => undefined);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.race([Promise.all(this.done), sleep(70_000)]);
  }
}

let load: AppLoad | undefined;

async function logIds(cluster: ClusterInfo, db: string): Promise<Set<number>> {
  const rows = await query<{ id: string }>(cluster, db, 'SELECT id FROM public.log');
  return new Set(rows.map((row) => Number(row.id)));
}

/** How many of the committed ids the cluster's log lacks: one query, nothing but a count sent back. */
async function missingFrom(cluster: ClusterInfo, db: string, ids: number[]): Promise<number> {
  const [row] = await query<{ n: number }>(
    cluster,
    db,
    'SELECT count(*)::int AS n FROM unnest($1::bigint[]) AS c(id) WHERE NOT EXISTS (SELECT FROM public.log l WHERE l.id = c.id)',
    [ids],
  );
  return row!.n;
}

async function logCount(cluster: ClusterInfo, db: string): Promise<number> {
  return (await query<{ n: number }>(cluster, db, 'SELECT count(*)::int AS n FROM public.log'))[0]!.n;
}

/** Replication carries on: what A holds now reaches B. */
async function replicationCarriesOn(what: string): Promise<void> {
  const onA = await logCount(a, 'pool_a');
  await waitFor(async () => (await logCount(b, 'pool_b')) >= onA, 60_000, `B to catch up with A (${what})`);
}

function switchCalls(): string[] {
  try {
    return readFileSync(path.join(dir, 'switch.calls'), 'utf8').trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

before(async () => {
  ({ a, b } = await clusters());
  dir = tempDir('pooler');
  for (const cluster of [a, b])
    await query(
      cluster,
      'postgres',
      `DO $$ BEGIN
         IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${APP}') THEN CREATE ROLE ${APP} LOGIN SUPERUSER; END IF;
         IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${FENCED}') THEN CREATE ROLE ${FENCED} LOGIN SUPERUSER; END IF;
       END $$`,
    );
  await freshDatabase(a, 'pool_a', SCHEMA);
  await freshDatabase(b, 'pool_b', SCHEMA);
  pooler = await startPooler({
    databases: { pool: { host: a.host, port: a.port, dbname: 'pool_a' } },
    users: { padmin: ADMIN_PASSWORD, [APP]: APP_PASSWORD },
    adminUser: 'padmin',
  });
  // The operator's switch step: records its environment, exits with the code in switch.exit (hangs
  // at a switch while switch.hang exists).
  writeFileSync(path.join(dir, 'switch.exit'), '0');
  writeFileSync(
    path.join(dir, 'switch.sh'),
    `#!/bin/sh\necho "switching to $BUCARDO_CONSOLE_NEW_PRIMARY_DBNAME"\necho "$BUCARDO_CONSOLE_SWITCH $BUCARDO_CONSOLE_NEW_PRIMARY_HOST:$BUCARDO_CONSOLE_NEW_PRIMARY_PORT/$BUCARDO_CONSOLE_NEW_PRIMARY_DBNAME$POOL_ADMIN_PW" >> ${path.join(dir, 'switch.calls')}\nif [ "$BUCARDO_CONSOLE_SWITCH" = finish ] && [ -f ${path.join(dir, 'switch.hang')} ]; then sleep 120; fi\nexit $(cat ${path.join(dir, 'switch.exit')})\n`,
  );
  chmodSync(path.join(dir, 'switch.sh'), 0o755);
  const options = {
    name: 'pool',
    plugins: ['bucardo', 'cutover'],
    primary: { cluster: a, dbname: 'pool_a' },
    secondary: { cluster: b, dbname: 'pool_b' },
    copyData: 'never' as const,
    asynchronousKicking: true,
    // The kicker looks every 0.5 s under the load, not 0.2: each look that finds changes costs a sync
    // run, which scans the change records the verify holds; the drain in the pause kicks by itself.
    kickInterval: 1,
    // No safety net: rows changed on B behind Bucardo's back are what the pre-check and the final check
    // must find here, and the safety net would re-queue them first (safety-net.test).
    bucardoSettings: { recheck_interval: 0, kick_interval_busy: 0.5 },
  };
  job = writeJobConfig({ ...options, extra: cutoverSection() });
  badJob = writeJobConfig({ ...options, extra: cutoverSection({}, { port: await freePort() }) });
  const setup = await tool(job.file, 'bucardo.install bucardo.add_triggers bucardo.start');
  assert.equal(setup.code, 0, setup.stdout + setup.stderr);
});

after(async () => {
  await load?.stop().catch(() => undefined);
  if (pooler) await stopPooler(pooler);
  // forgetJob stops the daemon and the kicker by their pids: a bucardo.stop run first would only add its CPU.
  await forgetJob(job, a);
  await dropDatabase(a, 'pool_a').catch(() => undefined);
  await dropDatabase(b, 'pool_b').catch(() => undefined);
  for (const cluster of [a, b])
    await query(cluster, 'postgres', `DROP ROLE IF EXISTS ${APP}; DROP ROLE IF EXISTS ${FENCED}`).catch(
      () => undefined,
    );
});

test('a pooler that is unreachable, a wrong admin password, a config_file not writable: refused before anything is paused', async () => {
  const unreachable = await tool(badJob.file, 'cutover.finish');
  assert.equal(unreachable.code, 1, unreachable.stdout + unreachable.stderr);
  assert.match(
    unreachable.stderr,
    /Cannot reach the PgBouncer admin console \(database "pgbouncer" on 127\.0\.0\.1:\d+ as padmin\): connection refused\. .*Check cutover\.pgbouncer\.host and cutover\.pgbouncer\.port.*Nothing was paused\./,
  );

  const wrong = await tool(job.file, 'cutover.finish', { POOL_ADMIN_PW: 'not-the-password' });
  assert.equal(wrong.code, 1, wrong.stdout + wrong.stderr);
  assert.match(
    wrong.stderr,
    /Password authentication failed for the PgBouncer admin console .*cutover\.pgbouncer\.password_env .*Nothing was paused\./,
  );
  assert.doesNotMatch(wrong.stderr + wrong.stdout, /not-the-password/);

  chmodSync(pooler!.configFile, 0o444);
  try {
    const readOnly = await tool(job.file, 'cutover.finish');
    assert.equal(readOnly.code, 1, readOnly.stdout + readOnly.stderr);
    assert.match(
      readOnly.stderr,
      /cutover\.pgbouncer\.config_file .*pgbouncer\.ini cannot be rewritten at the switch: its mode is 0444 .*chmod u\+w.*Nothing was paused\./,
    );
  } finally {
    chmodSync(pooler!.configFile, 0o644);
  }
  assert.equal(await poolerPaused(), false, 'the pooler was never paused');
  assert.deepEqual(switchCalls(), [], 'the switch command never ran');
});

test('failures before the switch resume the pooler on A: no transaction fails, nothing is lost, replication goes on', async () => {
  load = new AppLoad();
  load.start();
  await waitFor(async () => (await logCount(b, 'pool_b')) > 200, 60_000, 'the load to reach B');
  const verified = await tool(job.file, 'cutover.verify --json');
  assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  const originalConfig = readFileSync(pooler!.configFile, 'utf8');

  // 1. The secondary refuses connections once the pooler has paused: a session of a fenced role in a
  //    transaction holds the pause for fence_grace (3 s), time enough to shut B's door.
  const fencedSession = new pg.Client({ host: a.host, port: a.port, user: FENCED, database: 'pool_a' });
  fencedSession.on('error', () => undefined);
  await fencedSession.connect();
  await fencedSession.query('BEGIN; SELECT 1');
  const finishing = tool(job.file, 'cutover.finish --json');
  await waitFor(poolerPaused, 60_000, 'the pooler to pause');
  await query(b, 'postgres', 'ALTER DATABASE pool_b ALLOW_CONNECTIONS false');
  let refused: ToolResult;
  try {
    refused = await finishing;
  } finally {
    await query(b, 'postgres', 'ALTER DATABASE pool_b ALLOW_CONNECTIONS true');
  }
  assert.equal(refused.code, 1, refused.stdout + refused.stderr);
  const refusedText = refused.stdout + refused.stderr;
  assert.match(refusedText, /pool_b.*(not currently accepting connections|does not allow connections)/);
  assert.match(
    refusedText,
    /Called the switch off: lifted the fence on pool_a .*; the pooler resumed pool on the primary \(pool_a on 127\.0\.0\.1:\d+\) after [\d.]+ s: the application saw a stall, no error, and replication runs as before\./,
  );
  await assert.rejects(
    fencedSession.query('SELECT 1'),
    'the fenced session in a transaction was ended after the grace',
  );
  await fencedSession.end().catch(() => undefined);
  assert.equal(await poolerPaused(), false);
  assert.deepEqual(switchCalls(), [], 'the switch command did not run: the failure came before the switch');
  const [readOnly] = await query<{ ro: string }>(
    a,
    'pool_a',
    `SELECT setconfig::text AS ro FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = '${APP}'`,
  );
  assert.equal(readOnly, undefined, `the fence on ${APP} was lifted`);
  const committedBefore = load.committed.length;
  await waitFor(async () => load!.committed.length > committedBefore + 50, 30_000, 'the load to go on on A');
  await replicationCarriesOn('after the secondary refused connections');

  // 2. The switch command exits 1: called off, the command run again pointing at A, the file as it was.
  writeFileSync(path.join(dir, 'switch.exit'), '1');
  const failed = await tool(job.file, 'cutover.finish --json');
  assert.equal(failed.code, 1, failed.stdout + failed.stderr);
  const failedText = failed.stdout + failed.stderr;
  assert.match(
    failedText,
    /cutover\.switch_command .*switch\.sh exited with 1 after [\d.]+ s; its last output: switching to pool_b\. Nothing was switched\./,
  );
  assert.match(
    failedText,
    /cutover\.switch_command ran again with the old primary as the new one \(exit 1\)|exited with 1: undo its switch by hand/,
  );
  assert.match(failedText, /the pooler resumed pool on the primary/);
  assert.deepEqual(
    switchCalls().map((line) => line.replace(/:\d+\//, ':PORT/')),
    ['finish 127.0.0.1:PORT/pool_b', 'call-off 127.0.0.1:PORT/pool_a'],
  );
  assert.equal(readFileSync(pooler!.configFile, 'utf8'), originalConfig, "the pooler's file as it was");
  const audit = readFileSync(path.join(job.logDir, 'console.pool.jsonl'), 'utf8').trim().split('\n');
  const entry = JSON.parse(audit.at(-1)!);
  assert.ok(
    !audit.join('\n').includes(ADMIN_PASSWORD),
    "the pooler's admin password is not in the audit log",
  );
  assert.ok(
    entry.details?.some((line: string) => /switch\.sh → exit 1 .*output: switching to pool_b/.test(line)),
    `the switch command's output is in the audit log: ${JSON.stringify(entry)}`,
  );
  assert.equal(await poolerPaused(), false);
  const committedAfter = load.committed.length;
  await waitFor(async () => load!.committed.length > committedAfter + 50, 30_000, 'the load to go on on A');
  await replicationCarriesOn('after the switch command failed');
  assert.deepEqual(load.failures, [], 'no client transaction failed');
  writeFileSync(path.join(dir, 'switch.exit'), '0');
  writeFileSync(path.join(dir, 'switch.calls'), '');

  // 3. The switch command hangs: stopped at cutover.switch_timeout (6 s), then called off like exit 1.
  writeFileSync(path.join(dir, 'switch.hang'), '');
  let hung: ToolResult;
  try {
    hung = await tool(job.file, 'cutover.finish --json');
  } finally {
    rmSync(path.join(dir, 'switch.hang'), { force: true });
  }
  assert.equal(hung.code, 1, hung.stdout + hung.stderr);
  const hungText = hung.stdout + hung.stderr;
  assert.match(
    hungText,
    /cutover\.switch_command .*switch\.sh exited with 124 after [\d.]+ s; its last output: switching to pool_b\s+\(stopped after 6 s: cutover\.switch_timeout\)\. Nothing was switched\./,
  );
  assert.match(hungText, /the pooler resumed pool on the primary/);
  assert.deepEqual(
    switchCalls().map((line) => line.replace(/:\d+\//, ':PORT/')),
    ['finish 127.0.0.1:PORT/pool_b', 'call-off 127.0.0.1:PORT/pool_a'],
  );
  assert.equal(readFileSync(pooler!.configFile, 'utf8'), originalConfig, "the pooler's file as it was");
  assert.equal(await poolerPaused(), false);
  const committedAfterHang = load.committed.length;
  await waitFor(
    async () => load!.committed.length > committedAfterHang + 50,
    30_000,
    'the load to go on on A',
  );
  await replicationCarriesOn('after the switch command hung');
  assert.deepEqual(load.failures, [], 'no client transaction failed');
  writeFileSync(path.join(dir, 'switch.calls'), '');
});

test("the pre-check: a difference since the verify refuses before the PAUSE; a change of a transaction open during the pre-check's horizon is compared in the pause", async () => {
  if (!load) {
    // Run on its own (BUCARDO_CONSOLE_TEST_NAME): the application's load starts here.
    load = new AppLoad();
    load.start();
    await waitFor(async () => (await logCount(b, 'pool_b')) > 200, 60_000, 'the load to reach B');
  }
  const verified = await tool(job.file, 'cutover.verify --json');
  assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  const bal = async (cluster: ClusterInfo, db: string, id: number) =>
    (await query<{ bal: number }>(cluster, db, `SELECT bal::int AS bal FROM public.acct WHERE id = ${id}`))[0]
      ?.bal;

  // 1. A key changed on A after the verify (outside the load's accounts), replicated, then changed on B
  //    behind Bucardo's back: the pre-check compares it and refuses, before anything is paused.
  const changed = ACCOUNTS + 1;
  await query(a, 'pool_a', `INSERT INTO public.acct VALUES (${changed}, 7)`);
  await waitFor(async () => (await bal(b, 'pool_b', changed)) === 7, 30_000, 'the insert to reach B');
  await query(b, 'pool_b', `UPDATE public.acct SET bal = -7 WHERE id = ${changed}`);
  const refused = await tool(job.file, 'cutover.finish --json');
  assert.equal(refused.code, 1, refused.stdout + refused.stderr);
  const refusedOutcome = outcome(refused);
  assert.match(
    refusedOutcome.message ?? refusedOutcome.error ?? '',
    new RegExp(
      `^The pre-check before the write stop found rows that differ on the secondary in keys changed since the last verify: public\\.acct: id=${changed} \\(changed\\)\\. Nothing was paused: replication runs and nothing is switched\\. .*cutover\\.repair`,
    ),
  );
  assert.ok(
    !refusedOutcome.data.timeline.some((t: any) => t.step === 'stop writes'),
    'the refusal came before the write stop',
  );
  assert.equal(await poolerPaused(), false, 'the pooler was never paused');
  assert.deepEqual(switchCalls(), [], 'the switch command never ran');
  await query(b, 'pool_b', `UPDATE public.acct SET bal = 7 WHERE id = ${changed}`);

  // 2. A transaction open on A while the pre-check takes its horizon, committed after it: its change
  //    record is stamped with its start, before the pre-check began. Replicated, then changed on B
  //    behind Bucardo's back, it must still be among the keys the final check compares in the pause:
  //    the pre-check's horizon is no later than the start of the oldest transaction open then.
  const late = ACCOUNTS + 2;
  const opener = new pg.Client({ host: a.host, port: a.port, user: 'postgres', database: 'pool_a' });
  opener.on('error', () => undefined);
  await opener.connect();
  // A transaction through the pooler: the PAUSE waits for it (pause_timeout, 20 s), time to act.
  const held = new pg.Client({
    host: pooler!.host,
    port: pooler!.port,
    user: APP,
    password: APP_PASSWORD,
    database: 'pool',
  });
  held.on('error', () => undefined);
  let finished: ToolResult;
  try {
    await opener.query('BEGIN');
    await opener.query(`INSERT INTO public.acct VALUES (${late}, 5)`);
    await held.connect();
    await held.query('BEGIN; SELECT 1');
    const finishing = tool(job.file, 'cutover.finish --json');
    // The PAUSE comes once the pre-check's rounds are done; it waits for the held transaction.
    await waitFor(poolerPaused, 90_000, 'the pooler to begin its PAUSE after the pre-check');
    await opener.query('COMMIT');
    await waitFor(async () => (await bal(b, 'pool_b', late)) === 5, 15_000, 'the late insert to reach B');
    await query(b, 'pool_b', `UPDATE public.acct SET bal = -5 WHERE id = ${late}`);
    await held.query('COMMIT');
    finished = await finishing;
  } finally {
    await opener.end().catch(() => undefined);
    await held.end().catch(() => undefined);
  }
  assert.equal(finished.code, 1, finished.stdout + finished.stderr);
  const result = outcome(finished);
  assert.match(
    result.message ?? result.error ?? '',
    new RegExp(`The final check failed: FAILED: public\\.acct: id=${late} \\(changed\\)`),
  );
  assert.match(
    result.message ?? result.error ?? '',
    /Called the switch off: .*the pooler resumed pool on the primary/,
  );
  const preCheck = result.data.preCheck;
  assert.ok(preCheck?.length >= 1, 'the pre-check ran');
  const horizon = preCheck.at(-1).horizon;
  assert.equal(result.data.finalCheck.since, 'pre-check');
  assert.equal(
    result.data.finalCheck.from,
    horizon.from,
    "the final check started at the pre-check's horizon",
  );
  assert.equal(await poolerPaused(), false);
  assert.deepEqual(load.failures, [], 'no client transaction failed');
  await query(b, 'pool_b', `UPDATE public.acct SET bal = 5 WHERE id = ${late}`);
  await replicationCarriesOn('after the final check failed');
  writeFileSync(path.join(dir, 'switch.calls'), '');
});

test('cutover.finish --way-back through the pooler: no failed transaction, every committed one on B, none written on A after', async () => {
  assert.ok(load, 'the load runs');
  const verified = await tool(job.file, 'cutover.verify --json');
  assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  // A run killed (SIGKILL) while the pooler holds the application's transactions: nothing of it can
  // RESUME then. A fenced session in a transaction holds the pause for fence_grace (3 s), time to kill.
  const fencedSession = new pg.Client({ host: a.host, port: a.port, user: FENCED, database: 'pool_a' });
  fencedSession.on('error', () => undefined);
  await fencedSession.connect();
  await fencedSession.query('BEGIN; SELECT 1');
  const marker = `pooler-test-killed-finish-${process.pid}`;
  const killedRun = tool(job.file, 'cutover.finish --way-back --json', { KILLED_RUN: marker });
  await waitFor(poolerPaused, 60_000, 'the pooler to pause');
  const [victim] = processesHolding([marker], marker).filter((p) => p.cmdline.includes('wrapper.js'));
  assert.ok(victim, 'the running cutover.finish was found');
  process.kill(victim.pid, 'SIGKILL');
  const killed = await killedRun;
  assert.notEqual(killed.code, 0, 'the run was killed');
  assert.equal(await poolerPaused(), true, 'the application waits in the pooler until the rerun');
  await fencedSession.end().catch(() => undefined);
  // The rerun continues: the same PAUSE (already in place), the fence, and on to RESUME on B.
  const finished = await tool(job.file, 'cutover.finish --way-back --json');
  assert.equal(finished.code, 0, finished.stdout + finished.stderr);
  const result = outcome(finished);
  const steps: string = result.data.steps.join('\n');
  assert.match(steps, /the pooler paused pool: running transactions finished/);
  assert.match(steps, /fenced pool_app, pool_fenced on pool_a/);
  assert.match(steps, /cutover\.switch_command .*switch\.sh ran/);
  assert.match(steps, /the pooler points pool at pool_b on 127\.0\.0\.1:\d+ \(entries rewritten/);
  assert.match(
    steps,
    /the pooler resumed pool on pool_b .*the application waited at most [\d.]+ s \(PAUSE to RESUME\)/,
  );
  assert.ok(
    steps.indexOf('the pooler resumed') < steps.indexOf("dropped this job's triggers"),
    'the triggers go after the pooler resumed',
  );
  assert.equal(await poolerPaused(), false, 'the rerun resumed the pooler');
  for (const check of result.checks ?? []) assert.ok(check.pass, `${check.name}: ${check.detail ?? ''}`);
  // The rerun's final check starts at the horizon of the last pre-check (this run's, or the killed one's).
  assert.equal(result.data.finalCheck.since, 'pre-check');
  const pause = result.data.writeStop.poolerPauseSeconds;
  console.log(
    `pooler pause ${pause} s; tool pause steps: ${result.data.pause.steps.map((s: any) => `${s.step} ${s.seconds} s`).join(', ')}`,
  );
  assert.ok(pause < 60, `the pooler paused ${pause} s`);
  assert.deepEqual(
    switchCalls().map((line) => line.replace(/:\d+\//, ':PORT/')),
    ['finish 127.0.0.1:PORT/pool_b'],
  );
  assert.match(
    readFileSync(pooler!.configFile, 'utf8'),
    new RegExp(`^pool = host=127\\.0\\.0\\.1 port=${b.port} dbname=pool_b$`, 'm'),
  );

  // The application now writes to B: its new rows reach A only through the way back, with B's ids.
  const afterSwitch = load.committed.length;
  await waitFor(async () => load!.committed.length > afterSwitch + 100, 30_000, 'the load to go on on B');
  // The application's role is fenced on A: a forgotten writer fails there, with a clear error.
  const forgotten = new pg.Client({ host: a.host, port: a.port, user: APP, database: 'pool_a' });
  await forgotten.connect();
  try {
    await assert.rejects(
      forgotten.query('INSERT INTO public.log (client, at) VALUES (0, now())'),
      /cannot execute INSERT in a read-only transaction/,
    );
  } finally {
    await forgotten.end();
  }
  assert.deepEqual(load.failures, [], 'no client transaction failed across the switch');
  const committed = [...load.committed];
  await waitFor(
    async () => (await missingFrom(b, 'pool_b', committed)) === 0,
    30_000,
    'every committed transaction on B',
  );
  // The way back carries B's rows to A: every transaction committed so far, on A before the switch or
  // on B after it, reaches A. (A's and B's counts are never equal at one instant while the application
  // writes: a wait for that only ever ran out its time.)
  await waitFor(
    async () => (await missingFrom(a, 'pool_a', committed)) === 0,
    60_000,
    'the way back to carry every committed transaction to A',
  );
  // Nothing but the way back writes to A now: A's rows are B's, none of its own.
  const onA = await logIds(a, 'pool_a');
  const onB = await logIds(b, 'pool_b');
  const onlyOnA = [...onA].filter((id) => !onB.has(id));
  assert.deepEqual(onlyOnA, [], 'no row on A that B does not hold');
});

test('cutover.rollback through the pooler: back on A with no failed transaction, the fence on A lifted', async () => {
  assert.ok(load, 'the load runs');
  const verified = await tool(job.file, 'cutover.verify --json');
  assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  const rolledBack = await tool(job.file, 'cutover.rollback --json');
  assert.equal(rolledBack.code, 0, rolledBack.stdout + rolledBack.stderr);
  const result = outcome(rolledBack);
  const steps: string = result.data.steps.join('\n');
  assert.match(steps, /the pooler paused pool/);
  assert.match(steps, /the pooler resumed pool on pool_a/);
  assert.match(steps, /lifted the fence on pool_a .*pool_app, pool_fenced may write there again/);
  for (const check of result.checks ?? []) assert.ok(check.pass, `${check.name}: ${check.detail ?? ''}`);
  // The pre-check compared the keys changed since the verify while the application wrote; the final
  // check in the pause only those changed since the pre-check's own horizon.
  const preCheck = result.data.preCheck;
  assert.ok(preCheck?.length >= 1 && preCheck[0].passed, 'the pre-check ran and passed');
  const lastRound = preCheck.at(-1);
  assert.equal(result.data.finalCheck.since, 'pre-check');
  assert.equal(result.data.finalCheck.from, lastRound.horizon.from);
  assert.ok(
    result.data.finalCheck.from > preCheck[0].from,
    `the final check's horizon ${result.data.finalCheck.from} is after the verify's ${preCheck[0].from}`,
  );
  console.log(
    `rollback: pre-check ${preCheck.map((r: any) => `${r.keysCompared} keys in ${r.seconds} s`).join(', then ')}; final check ${result.data.finalCheck.keysCompared} keys`,
  );
  assert.ok(
    !result.data.pause.steps.some((s: any) => s.step === 'pre-check'),
    'the pre-check is not part of the pause',
  );
  console.log(
    `rollback: pooler pause ${result.data.writeStop.poolerPauseSeconds} s; tool pause steps: ${result.data.pause.steps.map((s: any) => `${s.step} ${s.seconds} s`).join(', ')}`,
  );
  const afterRollback = load.committed.length;
  await waitFor(async () => load!.committed.length > afterRollback + 100, 30_000, 'the load to go on on A');
  await load.stop();
  assert.deepEqual(load.failures, [], 'no client transaction failed');
  console.log(`${load.committed.length} transactions committed; the slowest took ${load.slowestMs} ms`);
  const onA = await logIds(a, 'pool_a');
  const missing = load.committed.filter((id) => !onA.has(id));
  assert.deepEqual(missing, [], 'every committed transaction is on A');
  assert.match(
    readFileSync(pooler!.configFile, 'utf8'),
    new RegExp(`^pool = host=127\\.0\\.0\\.1 port=${a.port} dbname=pool_a$`, 'm'),
  );
  load = undefined;
});
