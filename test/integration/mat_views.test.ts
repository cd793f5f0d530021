// The mat_views plugin against real clusters, after a real Bucardo copy: views are refreshed after the
// views they read (directly or through ordinary views), independent ones at the same time, and end up
// with the primary's rows; the plugin's own replication_objects overrides the bucardo section's.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ClusterInfo } from '../../src/sandbox/cluster.js';
import { DependencyQueue } from '../../plugins/mat_views/dependency-queue.js';
import {
  clusters,
  dropDatabase,
  freshDatabase,
  query,
  runTool,
  tableRows,
  writeJobConfig,
  type ToolResult,
} from '../support/harness.js';

const SCHEMA = `
CREATE SCHEMA reports;
CREATE TABLE public.sales (id int PRIMARY KEY, region text, amount int, sold date);
CREATE MATERIALIZED VIEW reports.daily AS SELECT sold, sum(amount) AS total FROM public.sales GROUP BY sold WITH NO DATA;
CREATE MATERIALIZED VIEW reports.by_region AS SELECT region, sum(amount) AS total, count(*) AS n FROM public.sales GROUP BY region WITH NO DATA;
CREATE VIEW reports.daily_recent AS SELECT * FROM reports.daily WHERE sold >= DATE '2025-06-01';
CREATE MATERIALIZED VIEW reports.monthly AS SELECT date_trunc('month', sold) AS month, sum(total) AS total FROM reports.daily GROUP BY 1 WITH NO DATA;
CREATE MATERIALIZED VIEW reports.recent_total AS SELECT sum(total) AS total, count(*) AS days FROM reports.daily_recent WITH NO DATA;
CREATE MATERIALIZED VIEW reports.top AS SELECT m.month, m.total, r.total AS recent FROM reports.monthly m CROSS JOIN reports.recent_total r WITH NO DATA;
CREATE MATERIALIZED VIEW reports."Mixed Case" AS SELECT count(*) AS n FROM public.sales WITH NO DATA;
CREATE MATERIALIZED VIEW reports.slow_a AS SELECT count(*) AS n FROM public.sales, pg_sleep(1) WITH NO DATA;
CREATE MATERIALIZED VIEW reports.slow_b AS SELECT max(amount) AS m FROM public.sales, pg_sleep(1) WITH NO DATA;
CREATE MATERIALIZED VIEW public.outside AS SELECT count(*) AS n FROM public.sales WITH NO DATA;
`;

const IN_SCOPE = [
  'reports.Mixed Case',
  'reports.by_region',
  'reports.daily',
  'reports.monthly',
  'reports.recent_total',
  'reports.slow_a',
  'reports.slow_b',
  'reports.top',
];
/** Each view and the materialized views it must come after. */
const READS: Record<string, string[]> = {
  'reports.monthly': ['reports.daily'],
  'reports.recent_total': ['reports.daily'],
  'reports.top': ['reports.monthly', 'reports.recent_total'],
};

let a: ClusterInfo;
let b: ClusterInfo;
let job: { file: string };

function outcome(
  result: ToolResult,
  command: string,
): { ok: boolean; message?: string; error?: string; data?: any; checks: { name: string; pass: boolean }[] } {
  const line = result.stdout.split('\n').find((l) => l.startsWith('{') && JSON.parse(l).command === command);
  assert.ok(line, `no outcome for ${command}:\n${result.stdout}\n${result.stderr}`);
  return JSON.parse(line);
}

function quoted(name: string): string {
  const [schema, view] = [name.slice(0, name.indexOf('.')), name.slice(name.indexOf('.') + 1)];
  return `"${schema}"."${view.replace(/"/g, '""')}"`;
}

async function populated(cluster: ClusterInfo, database: string): Promise<string[]> {
  const rows = await query<{ name: string }>(
    cluster,
    database,
    `SELECT n.nspname || '.' || c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'm' AND c.relispopulated ORDER BY 1`,
  );
  return rows.map((r) => r.name);
}

before(async () => {
  ({ a, b } = await clusters());
  await dropDatabase(a, 'bucardo');
  await freshDatabase(a, 'mv_a', SCHEMA);
  await query(
    a,
    'mv_a',
    `INSERT INTO public.sales SELECT g, 'region ' || g % 7, g % 100, DATE '2025-01-01' + g % 365 FROM generate_series(1, 20000) g`,
  );
  for (const view of [
    'reports.daily',
    'reports.by_region',
    'reports.monthly',
    'reports.recent_total',
    'reports.top',
    'reports.Mixed Case',
    'reports.slow_a',
    'reports.slow_b',
  ]) {
    await query(a, 'mv_a', `REFRESH MATERIALIZED VIEW ${quoted(view)}`);
  }
  await freshDatabase(b, 'mv_b', SCHEMA);
  job = writeJobConfig({
    name: 'mv_ab',
    plugins: ['bucardo', 'mat_views'],
    primary: { cluster: a, dbname: 'mv_a' },
    secondary: { cluster: b, dbname: 'mv_b' },
    metadata: a,
    extra: { mat_views: { jobs: 3, replication_objects: { namespace_include: ['reports'] } } },
  });
});

after(async () => {
  if (job) await runTool(['-c', job.file, '-l', 'bucardo.stop']).catch(() => undefined);
  if (a) await dropDatabase(a, 'bucardo').catch(() => undefined);
});

test('the dependency queue starts a view only after what it reads, and skips what depends on a failure', async () => {
  const reads: Record<string, string[]> = {
    top: ['monthly', 'recent'],
    monthly: ['daily'],
    recent: ['daily'],
    daily: [],
    other: [],
    loop1: ['loop2'],
    loop2: ['loop1'],
  };
  const queue = new DependencyQueue(Object.keys(reads), (key) => reads[key]!);
  const started: string[] = [];
  const worker = async () => {
    for (let key = await queue.next(); key !== undefined; key = await queue.next()) {
      started.push(key);
      await new Promise((r) => setTimeout(r, 5));
      queue.finish(key, key !== 'recent');
    }
  };
  await Promise.all([worker(), worker(), worker()]);
  assert.deepEqual(new Set(started), new Set(['daily', 'other', 'monthly', 'recent']));
  assert.ok(
    started.indexOf('daily') < started.indexOf('monthly') &&
      started.indexOf('daily') < started.indexOf('recent'),
  );
  assert.match(queue.skipped.get('top')!, /reads recent, which failed/);
  assert.match(queue.skipped.get('loop1')!, /cycle/);
});

test("mat_views.refresh refuses while the copy is pending, then refreshes in dependency order with the primary's rows", async () => {
  const early = await runTool([
    '-c',
    job.file,
    '-l',
    'bucardo.install bucardo.add_triggers mat_views.refresh',
    '--json',
  ]);
  assert.equal(early.code, 1);
  assert.match(
    outcome(early, 'mat_views.refresh').error!,
    /initial copy of mv_ab is pending.*Nothing was refreshed/,
  );
  assert.deepEqual(await populated(b, 'mv_b'), []);

  const result = await runTool([
    '-c',
    job.file,
    '-l',
    'bucardo.start bucardo.wait_for_copy mat_views.refresh',
    '--json',
  ]);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  const refresh = outcome(result, 'mat_views.refresh');
  assert.deepEqual(
    refresh.checks.map((c) => c.pass),
    [true],
  );
  const refreshed: { view: string; after: string[]; startedAt: number; seconds: number }[] =
    refresh.data.refreshed;
  assert.deepEqual(refreshed.map((r) => r.view).sort(), IN_SCOPE);
  // Dependency order: each view starts after everything it reads has finished.
  const finishedAt = new Map(refreshed.map((r) => [r.view, r.startedAt + r.seconds]));
  for (const view of refreshed) {
    assert.deepEqual([...view.after].sort(), READS[view.view] ?? [], view.view);
    for (const dependency of view.after)
      assert.ok(
        finishedAt.get(dependency)! <= view.startedAt + 0.0005,
        `${view.view} started before ${dependency} finished`,
      );
  }
  // Independent views run at the same time: the two one-second views overlap (their intervals, not the
  // total time, which a busy machine stretches).
  const [slowA, slowB] = ['reports.slow_a', 'reports.slow_b'].map((name) =>
    refreshed.find((r) => r.view === name)!,
  );
  assert.ok(
    slowA!.startedAt < slowB!.startedAt + slowB!.seconds &&
      slowB!.startedAt < slowA!.startedAt + slowA!.seconds,
    'slow_a and slow_b ran in parallel',
  );

  // The right rows, and only the views in the plugin's own scope (public.outside is out of it).
  assert.deepEqual(await populated(b, 'mv_b'), IN_SCOPE);
  for (const view of IN_SCOPE)
    assert.deepEqual(
      await tableRows(b, 'mv_b', quoted(view)),
      await tableRows(a, 'mv_a', quoted(view)),
      view,
    );

  // Safe to run twice.
  const again = await runTool(['-c', job.file, '-l', 'mat_views.refresh', '--json']);
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.equal(outcome(again, 'mat_views.refresh').data.refreshed.length, IN_SCOPE.length);
});

test('a view that reads an unpopulated view outside the scope is a clear error before anything is refreshed', async () => {
  await query(b, 'mv_b', 'REFRESH MATERIALIZED VIEW reports.daily WITH NO DATA');
  const narrow = writeJobConfig({
    name: 'mv_ab',
    plugins: ['bucardo', 'mat_views'],
    primary: { cluster: a, dbname: 'mv_a' },
    secondary: { cluster: b, dbname: 'mv_b' },
    metadata: a,
    extra: {
      mat_views: { replication_objects: { namespace_include: ['reports'], table_exclude: ['daily'] } },
    },
  });
  const result = await runTool(['-c', narrow.file, '-l', 'mat_views.refresh', '--json']);
  assert.equal(result.code, 1);
  const error = outcome(result, 'mat_views.refresh').error!;
  assert.match(error, /reports\.monthly reads reports\.daily/);
  assert.match(error, /reports\.recent_total reads reports\.daily/);
  assert.match(error, /Nothing was refreshed/);
  assert.ok(!(await populated(b, 'mv_b')).includes('reports.daily'));
});
