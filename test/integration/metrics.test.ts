// The kicker's Prometheus endpoint, scraped over HTTP while replication runs: the values move as
// rows are written and replicated, as the daemon stops and starts, and as a verify is recorded.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { freePort } from '../../src/sandbox/cluster.js';
import { jobBetween } from '../support/fixture.js';
import { query, runTool, waitFor } from '../support/harness.js';

/** One scrape: metric name (with labels) → value. */
async function scrape(port: number): Promise<Map<string, number>> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(15_000) });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /text\/plain/);
  const values = new Map<string, number>();
  for (const line of (await response.text()).split('\n')) {
    const match = /^(bucardo_console_\w+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match)
      values.set(
        `${match[1]}${match[2]?.includes('role=') || match[2]?.includes('table=') ? match[2] : ''}`,
        Number(match[3]),
      );
  }
  return values;
}

test('metrics scraped over HTTP follow replication: pending, daemon up, kicks, copy, last good run, verify', async (t) => {
  const port = await freePort();
  const { a, b, job } = await jobBetween(t, {
    name: 'mt',
    schema: 'CREATE TABLE public.q (id int PRIMARY KEY, v text);',
    primaryData: "INSERT INTO public.q SELECT g, 'seed' FROM generate_series(1, 2000) g",
    plugins: ['bucardo', 'cutover'],
    asynchronousKicking: true,
    extra: { metrics: { listen: `127.0.0.1:${port}`, per_table: true } },
    flow: 'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy',
  });

  const first = await waitFor(
    async () => {
      const m = await scrape(port);
      return m.get('bucardo_console_copy_tables_done') === 1 ? m : undefined;
    },
    30_000,
    'the copy to show as done in the metrics',
  );
  assert.equal(first.get('bucardo_console_daemon_up'), 1);
  assert.equal(first.get('bucardo_console_copy_tables_total'), 1);
  assert.ok(first.get('bucardo_console_copy_bytes_total')! > 0);
  assert.equal(first.get('bucardo_console_database_reachable{job="mt",role="primary"}'), 1);
  assert.equal(first.get('bucardo_console_database_reachable{job="mt",role="secondary"}'), 1);
  assert.ok(first.has('bucardo_console_last_good_run_age_seconds'));
  assert.equal(first.has('bucardo_console_verify_passed'), false, 'no verify recorded yet');
  const kicksBefore = first.get('bucardo_console_kicker_kicks_total') ?? 0;

  await query(a, 'mt_a', "INSERT INTO public.q SELECT g, 'new' FROM generate_series(2001, 2100) g");
  await waitFor(
    async () => (await query(b, 'mt_b', 'SELECT 1 FROM public.q WHERE id = 2100')).length === 1,
    30_000,
    'the rows to replicate',
  );
  const kicked = await waitFor(
    async () => {
      const m = await scrape(port);
      return (m.get('bucardo_console_kicker_kicks_total') ?? 0) > kicksBefore &&
        m.get('bucardo_console_pending_changes') === 0
        ? m
        : undefined;
    },
    30_000,
    'kicks to increase and the backlog to drain',
  );
  assert.ok(kicked.get('bucardo_console_last_good_run_age_seconds')! < 30);

  // The daemon alone stops (Bucardo's stop file; the kicker and its endpoint stay): changes pile up.
  writeFileSync(`${job.pidDir}/fullstopbucardo`, 'metrics test');
  await waitFor(
    async () => (await scrape(port)).get('bucardo_console_daemon_up') === 0,
    40_000,
    'daemon_up to drop to 0',
  );
  await query(a, 'mt_a', "UPDATE public.q SET v = 'changed' WHERE id <= 50");
  const piled = await waitFor(
    async () => {
      const m = await scrape(port);
      return m.get('bucardo_console_pending_changes') === 50 ? m : undefined;
    },
    20_000,
    'pending changes to reach 50',
  );
  assert.equal(piled.get('bucardo_console_pending_table_changes{job="mt",table="public.q"}'), 50);
  await new Promise((r) => setTimeout(r, 2_000));
  assert.ok((await scrape(port)).get('bucardo_console_pending_oldest_seconds')! >= 2);

  const start = await runTool(['-c', job.file, '-l', 'bucardo.start']);
  assert.equal(start.code, 0, start.stdout + start.stderr);
  await waitFor(
    async () => {
      const m = await scrape(port);
      return m.get('bucardo_console_daemon_up') === 1 && m.get('bucardo_console_pending_changes') === 0;
    },
    60_000,
    'the backlog to drain after the start',
  );

  const verify = await runTool(['-c', job.file, '-l', 'cutover.verify']);
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  const verified = await scrape(port);
  assert.equal(verified.get('bucardo_console_verify_passed'), 1);
  assert.ok(verified.get('bucardo_console_verify_age_seconds')! < 60);
  const stop = await runTool(['-c', job.file, '-l', 'bucardo.stop']);
  assert.equal(stop.code, 0, stop.stdout + stop.stderr);
  await assert.rejects(
    fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5_000) }),
    'the endpoint goes with the kicker',
  );
});
