// The kicker looks for changes every kick_interval while none arrive and every kick_interval_busy while
// they do (docs/kicker.md), on a real job: its state file says which interval it uses, and the rows
// written meanwhile arrive.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { KickerState } from '../../src/core/kicker.js';
import { jobBetween } from '../support/fixture.js';
import { query, runTool, waitFor } from '../support/harness.js';

test('the kicker looks every kick_interval while idle and every kick_interval_busy while changes arrive', async (t) => {
  const { a, b, job, ok } = await jobBetween(t, {
    name: 'ki',
    schema: 'CREATE TABLE public.k (id int PRIMARY KEY);',
    copyData: 'never',
    asynchronousKicking: true,
    kickInterval: 1,
    bucardoSettings: { kick_interval_busy: 0.25, recheck_interval: 0 },
  });
  const flow = await ok('bucardo.install bucardo.add_triggers bucardo.start');
  assert.match(flow.stdout, /looks every 1 s, every 0\.25 s while changes arrive/);
  const interval = (): number | undefined => {
    try {
      return (JSON.parse(readFileSync(path.join(job.pidDir, 'kicker.ki.json'), 'utf8')) as KickerState)
        .intervalSeconds;
    } catch {
      return undefined;
    }
  };
  // The state file is written at most once a second when it changed: bounds of several seconds.
  await waitFor(async () => interval() === 1, 15_000, 'the idle interval, 1 s');

  // A row every 200 ms for 4 s: the kicker looks every 0.25 s while they come.
  let busySeen = false;
  for (let id = 1; id <= 20; id++) {
    await query(a, 'ki_a', 'INSERT INTO public.k VALUES ($1)', [id]);
    busySeen ||= interval() === 0.25;
    await new Promise((r) => setTimeout(r, 200));
  }
  if (!busySeen) await waitFor(async () => interval() === 0.25, 2_000, 'the busy interval, 0.25 s');
  await waitFor(
    async () =>
      (await query<{ n: number }>(b, 'ki_b', 'SELECT count(*)::int AS n FROM public.k'))[0]!.n === 20,
    20_000,
    'the 20 rows to arrive',
  );
  // Back to 1 s once 3 s pass without a change.
  await waitFor(async () => interval() === 1, 10_000, 'the idle interval again');
  const uninstall = await runTool(['-c', job.file, '-l', 'bucardo.uninstall']);
  assert.equal(uninstall.code, 0, uninstall.stdout + uninstall.stderr);
});
