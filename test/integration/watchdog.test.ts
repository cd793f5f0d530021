// Replication that stays healthy: the kicker keeps Bucardo's bookkeeping statistics fresh, and the
// watchdog reports a worker stuck in one statement and, with the remedy on, unsticks it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { INDEX_BUILD_APPLICATION } from '../../src/core/watchdog.js';
import { jobBetween } from '../support/fixture.js';
import { query, runTool, waitFor } from '../support/harness.js';

interface StatusJson {
  data: {
    verdict: string;
    stalls: { kind: string; role: string; pid?: number; cause: string; fix: string }[];
    kicker: { maintenance: number; remedies?: string[] };
  };
}

async function status(file: string): Promise<StatusJson> {
  const result = await runTool(['-c', file, '-l', 'bucardo.status --json']);
  return JSON.parse(result.stdout.trim().split('\n')[0]!) as StatusJson;
}

test('statistics of the delta tables are refreshed as they grow; a stuck worker is reported and, with the remedy on, cancelled', async (t) => {
  const { a, b, job } = await jobBetween(t, {
    name: 'wd',
    schema: 'CREATE TABLE public.m (id int PRIMARY KEY, v text);',
    asynchronousKicking: true,
    bucardoSettings: { watchdog_seconds: 2, stall_remedy: true },
    flow: 'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy',
  });

  // Autovacuum could analyze the delta table first on a long-running cluster: take it out of the race.
  await query(
    a,
    'wd_a',
    'ALTER TABLE bucardo.delta_public_m SET (autovacuum_enabled = false); ALTER TABLE bucardo.track_public_m SET (autovacuum_enabled = false)',
  );
  await query(a, 'wd_a', "INSERT INTO public.m SELECT g, 'x' FROM generate_series(1, 5000) g");
  await waitFor(
    async () => (await query(b, 'wd_b', 'SELECT 1 FROM public.m WHERE id = 5000')).length === 1,
    20_000,
    'the batch to replicate',
  );
  await waitFor(
    async () => (await status(job.file)).data.kicker.maintenance > 0,
    40_000,
    "the kicker to refresh the delta table's statistics",
  );
  const kickerLog = readFileSync(path.join(job.logDir, 'kicker.wd.log'), 'utf8');
  assert.match(kickerLog, /ANALYZE bucardo\.(delta|track)_public_m: \d+ rows changed since the last analyze/);

  // A session named like the console's index builds holds the table as CREATE INDEX does (SHARE): the
  // worker waits for it, and that is a build that will end, not a stall (how-bucardo-behaves.md §18).
  const build = new pg.Client({
    host: b.host,
    port: b.port,
    user: 'postgres',
    database: 'wd_b',
    // The name the after-copy rebuild gives its sessions (plugins/indexes/after-copy.ts).
    application_name: `${INDEX_BUILD_APPLICATION} (after copy)`,
  });
  await build.connect();
  t.after(() => build.end().catch(() => undefined));
  await build.query('BEGIN');
  await build.query('LOCK TABLE public.m IN SHARE MODE');
  await query(a, 'wd_a', "INSERT INTO public.m VALUES (9000, 'waits for a build')");
  await waitFor(
    async () =>
      (
        await query(
          b,
          'wd_b',
          "SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'bucardo KID%' AND wait_event_type = 'Lock' AND now() - query_start > interval '4 seconds'",
        )
      ).length > 0,
    60_000,
    "Bucardo's worker to wait on the build's lock for longer than the watchdog's 2 s",
  );
  const waiting = await status(job.file);
  assert.deepEqual(
    waiting.data.stalls.filter((stall) => stall.kind === 'stuck statement'),
    [],
    'a worker waiting for an index build is not reported stuck',
  );
  await build.query('COMMIT');
  await waitFor(
    async () => (await query(b, 'wd_b', 'SELECT 1 FROM public.m WHERE id = 9000')).length === 1,
    40_000,
    'the row to arrive once the build ends',
  );

  // An open transaction on the secondary holds the table: Bucardo's worker waits on it.
  const blocker = new pg.Client({ host: b.host, port: b.port, user: 'postgres', database: 'wd_b' });
  await blocker.connect();
  t.after(() => blocker.end().catch(() => undefined));
  await blocker.query('BEGIN');
  await blocker.query('LOCK TABLE public.m IN ACCESS EXCLUSIVE MODE');
  await query(a, 'wd_a', "INSERT INTO public.m VALUES (9001, 'held up')");
  const stalled = await waitFor(
    async () => {
      const s = await status(job.file);
      return s.data.stalls.some((stall) => stall.kind === 'stuck statement' && stall.role === 'secondary')
        ? s
        : undefined;
    },
    // Generous: the remedy may cancel the statement before a status sees it, and on a busy machine
    // (other test lanes) the worker respawns slowly and each status run takes seconds.
    90_000,
    'the watchdog to report the stuck worker',
  );
  assert.match(
    stalled.data.verdict,
    /^STALLED: Bucardo's worker has been in one statement on the secondary for \d+ s \(waiting on Lock\/relation\)/,
  );
  assert.match(stalled.data.stalls[0]!.fix, /a lock: see pg_locks/);
  const remedied = await waitFor(
    async () => {
      const s = await status(job.file);
      return s.data.kicker.remedies?.some((r) => /cancelled backend \d+ on the secondary/.test(r))
        ? s
        : undefined;
    },
    30_000,
    'the kicker to apply the remedy',
  );
  assert.match(
    remedied.data.kicker.remedies!.join('\n'),
    /analyzed \d+ bookkeeping table\(s\); cancelled backend \d+ on the secondary/,
  );

  await blocker.query('COMMIT');
  await waitFor(
    async () => (await query(b, 'wd_b', 'SELECT 1 FROM public.m WHERE id = 9001')).length === 1,
    40_000,
    'replication to recover once the lock is gone',
  );
  const healthy = await waitFor(
    async () => {
      const s = await status(job.file);
      return s.data.verdict === 'caught up' ? s : undefined;
    },
    30_000,
    'status to say caught up again',
  );
  assert.equal(healthy.data.stalls.length, 0);
  const uninstall = await runTool(['-c', job.file, '-l', 'bucardo.uninstall']);
  assert.equal(uninstall.code, 0, uninstall.stdout + uninstall.stderr);
});
