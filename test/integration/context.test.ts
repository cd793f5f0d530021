// The per-command database context (src/core/context.ts): a command's small queries share one session
// per database through its run and its checks, and the runner closes every session when the command
// ends: after success, after a failure, and after Ctrl-C. Commands run in this process through the
// runner, so db.ts's session counter sees them; the servers' pg_stat_activity is the independent check.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { sessionsOpenedAndClosed } from '../../src/core/db.js';
import type { ClusterInfo } from '../../src/sandbox/cluster.js';
import { listModePrompter } from '../../src/shell/prompter.js';
import { runCommand, type RunReport } from '../../src/shell/runner.js';
import { Session } from '../../src/shell/session.js';
import { clusters, dropDatabase, freshDatabase, query, runTool, writeJobConfig } from '../support/harness.js';

const SCHEMA = `
CREATE SCHEMA reports;
CREATE SCHEMA broken;
CREATE TABLE public.sales (id int PRIMARY KEY, amount int);
CREATE MATERIALIZED VIEW reports.total AS SELECT sum(amount) AS total FROM public.sales WITH NO DATA;
CREATE MATERIALIZED VIEW reports.slow_a AS SELECT count(*) AS n FROM public.sales, pg_sleep(1) WITH NO DATA;
CREATE MATERIALIZED VIEW reports.slow_b AS SELECT max(amount) AS m FROM public.sales, pg_sleep(1) WITH NO DATA;
CREATE MATERIALIZED VIEW broken.ratio AS SELECT 1 / (count(*) - count(*)) AS r FROM public.sales WITH NO DATA;
`;

let a: ClusterInfo;
let b: ClusterInfo;
let job: { file: string };
let brokenJob: { file: string };

before(async () => {
  ({ a, b } = await clusters());
  await dropDatabase(a, 'bucardo');
  await freshDatabase(a, 'ctx_a', SCHEMA);
  await freshDatabase(b, 'ctx_b', SCHEMA);
  await query(b, 'ctx_b', 'INSERT INTO public.sales SELECT g, g FROM generate_series(1, 100) g');
  const common = {
    plugins: ['bucardo', 'mat_views', 'indexes'],
    primary: { cluster: a, dbname: 'ctx_a' },
    secondary: { cluster: b, dbname: 'ctx_b' },
    metadata: a,
    copyData: 'never' as const,
  };
  job = writeJobConfig({
    name: 'ctx_ab',
    ...common,
    extra: { mat_views: { jobs: 2, replication_objects: { namespace_include: ['reports'] } } },
  });
  brokenJob = writeJobConfig({
    name: 'ctx_broken',
    ...common,
    extra: { mat_views: { jobs: 2, replication_objects: { namespace_include: ['broken'] } } },
  });
  const installed = await runTool(['-c', job.file, '-l', 'bucardo.install indexes.install']);
  assert.equal(installed.code, 0, installed.stdout + installed.stderr);
});

after(async () => {
  if (a) await dropDatabase(a, 'bucardo').catch(() => undefined);
});

/** Sessions the tool has open on a server (the test's own sessions have no application_name). */
async function toolSessions(cluster: ClusterInfo): Promise<number> {
  const rows = await query<{ n: string }>(
    cluster,
    'postgres',
    "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE 'bucardo-console%' AND pid <> pg_backend_pid()",
  );
  return Number(rows[0]!.n);
}

/** Runs one command through the runner in this process; returns its report and the sessions it opened. */
async function run(
  file: string,
  command: string,
  whileRunning?: () => Promise<void>,
): Promise<{ report: RunReport; opened: number; open: number }> {
  const session = await Session.load([file]);
  const resolved = session.resolve(command);
  if ('error' in resolved) throw new Error(resolved.error);
  const before = sessionsOpenedAndClosed();
  const running = runCommand(session, resolved, ['--json'], {
    interactive: false,
    json: true,
    prompt: listModePrompter(true),
  });
  await whileRunning?.();
  const report = await running;
  const now = sessionsOpenedAndClosed();
  return { report, opened: now.opened - before.opened, open: now.opened - now.closed };
}

test('a command reuses one session per database through its run and its checks, and closes them all', async () => {
  // indexes.recreate with nothing recorded: the run and the check each read the records.
  const recreate = await run(job.file, 'indexes.recreate');
  assert.equal(recreate.report.ok, true, recreate.report.error);
  assert.ok(recreate.report.checks.length > 0, 'the check ran');
  assert.equal(recreate.opened, 1, 'one metadata session for the run and the check (it was one per step)');
  assert.equal(recreate.open, 0, 'every session closed when the command ended');

  // mat_views.refresh: the scope (run and check) on one shared session, the refreshes on two of their own.
  const refresh = await run(job.file, 'mat_views.refresh');
  assert.equal(refresh.report.ok, true, refresh.report.error);
  assert.equal(
    refresh.opened,
    3,
    'one shared secondary session + two refresh workers (the check reuses the first)',
  );
  assert.equal(refresh.open, 0);
  assert.equal(await toolSessions(a), 0, 'no session of the tool left on the primary/metadata server');
  assert.equal(await toolSessions(b), 0, 'no session of the tool left on the secondary');

  // bucardo.status: metadata server, metadata database, primary and secondary, each opened once.
  const status = await run(job.file, 'bucardo.status');
  assert.ok(status.report.outcome, status.report.error);
  assert.ok(status.opened <= 4, `at most one session per database, got ${status.opened}`);
  assert.equal(status.open, 0);
});

test('the sessions are closed after a failed command and after Ctrl-C', async () => {
  const failed = await run(brokenJob.file, 'mat_views.refresh');
  assert.equal(failed.report.ok, false, 'a view that divides by zero fails the refresh');
  assert.equal(failed.open, 0, 'every session closed after the failure');
  assert.equal(await toolSessions(b), 0);

  // Ctrl-C while the slow views refresh: the runner's SIGINT handler, without the test file's own.
  const saved = process.rawListeners('SIGINT');
  process.removeAllListeners('SIGINT');
  try {
    const interrupted = await run(job.file, 'mat_views.refresh', async () => {
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && (await toolSessions(b)) < 2)
        await new Promise((r) => setTimeout(r, 50));
      process.emit('SIGINT');
    });
    assert.equal(interrupted.report.interrupted, true, 'the command was interrupted');
    assert.equal(interrupted.open, 0, 'every session closed after Ctrl-C');
  } finally {
    for (const listener of saved) process.on('SIGINT', listener as () => void);
  }
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && (await toolSessions(b)) > 0) await new Promise((r) => setTimeout(r, 100));
  assert.equal(await toolSessions(b), 0, 'nothing of the tool left on the secondary after Ctrl-C');
});
