// mat_views.refresh: Bucardo replicates tables, not materialized views, so the secondary's views are
// empty (or stale) until refreshed. Views are refreshed after the views they read, independent ones
// at the same time.
import { withClient, type Client } from '../../src/core/db.js';
import { OperatorError } from '../../src/core/errors.js';
import { findReplicationObjects } from '../../src/core/objects.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { attempt, runPool } from '../../src/core/pool.js';
import { quoteQualified } from '../../src/core/quote.js';
import { copyState } from '../../src/core/copy/progress.js';
import { viewGraph, type MatView, type ViewGraph } from './dependencies.js';
import { DependencyQueue } from './dependency-queue.js';
import { matViewSettings } from './settings.js';

export interface RefreshedView {
  view: string;
  /** Seconds after the first refresh started. */
  startedAt: number;
  seconds: number;
  /** The views in scope it read, refreshed before it. */
  after: string[];
  error?: string;
}

export interface RefreshData {
  inScope: number;
  refreshed: RefreshedView[];
  failed: RefreshedView[];
  skipped: { view: string; reason: string }[];
  jobs: number;
  seconds: number;
}

function nameOf(view: Pick<MatView, 'schema' | 'name'>): string {
  return `${view.schema}.${view.name}`;
}

interface Scope {
  graph: ViewGraph;
  inScope: MatView[];
}

/** Read on the command's shared session to the secondary: the refresh and its check ask the same. */
async function scopeOnSecondary(ctx: Pick<CommandContext, 'job' | 'db'>): Promise<Scope> {
  const settings = matViewSettings(ctx.job.config);
  const client = await ctx.db.secondary();
  const scope = await findReplicationObjects(client, settings.replicationObjects);
  const graph = await viewGraph(client);
  const wanted = new Set(scope.materializedViews.map(nameOf));
  return {
    graph,
    inScope: [...graph.views.values()]
      .filter((view) => wanted.has(nameOf(view)))
      .sort((a, b) => nameOf(a).localeCompare(nameOf(b))),
  };
}

/** Refreshing before the copy has filled the base tables would build the views from partial data. */
async function confirmCopyDone(ctx: CommandContext): Promise<void> {
  const copy = await copyState(ctx.db).catch(() => ({ state: 'unknown' as const }));
  if (copy.state !== 'pending' && copy.state !== 'running') return;
  const question = `The initial copy of ${ctx.job.name} is ${copy.state}: views refreshed now would be built from partial data. Refresh anyway?`;
  if (await ctx.prompt.confirm(question, false)) return;
  throw new OperatorError(
    `The initial copy of ${ctx.job.name} is ${copy.state}, so the secondary's tables are not complete yet and refreshed views would be wrong. Nothing was refreshed. ${copy.state === 'pending' ? 'Start replication with bucardo.start, wait' : 'Wait'} with bucardo.wait_for_copy, then run mat_views.refresh.`,
  );
}

export async function refreshViews(ctx: CommandContext): Promise<CommandOutcome<RefreshData>> {
  const { job, activity } = ctx;
  const settings = matViewSettings(job.config);
  await confirmCopyDone(ctx);
  ctx.progress('finding materialized views and what they read on the secondary');
  const { graph, inScope } = await scopeOnSecondary(ctx);
  const data: RefreshData = {
    inScope: inScope.length,
    refreshed: [],
    failed: [],
    skipped: [],
    jobs: settings.jobs,
    seconds: 0,
  };
  if (inScope.length === 0)
    return { data, message: 'No materialized view in scope on the secondary: nothing to refresh.' };

  const inScopeOids = new Set(inScope.map((view) => view.oid));
  const unpopulatedOutside = inScope.flatMap((view) =>
    [...graph.readsFrom.get(view.oid)!]
      .filter((oid) => !inScopeOids.has(oid) && !graph.views.get(oid)!.populated)
      .map((oid) => `${nameOf(view)} reads ${nameOf(graph.views.get(oid)!)}`),
  );
  if (unpopulatedOutside.length) {
    throw new OperatorError(
      `Some views in scope read materialized views that are out of scope and not populated on the secondary (${unpopulatedOutside.join('; ')}), so their refresh would fail. Nothing was refreshed. Add those views to the scope (mat_views.replication_objects), or refresh them first.`,
    );
  }

  const dependsOn = (oid: number) => [...graph.readsFrom.get(oid)!].filter((dep) => inScopeOids.has(dep));
  const queue = new DependencyQueue(
    inScope.map((view) => view.oid),
    dependsOn,
    (oid) => nameOf(graph.views.get(oid)!),
  );
  const running = new Set<string>();
  const began = Date.now();
  const report = () =>
    ctx.progress(
      `${data.refreshed.length + data.failed.length}/${inScope.length} refreshed, ${Math.round((Date.now() - began) / 1000)} s; refreshing ${[...running].join(', ') || '-'}`,
    );
  const ticker = setInterval(report, 1000);
  const refresh = async (oid: number, client: Client) => {
    const view = graph.views.get(oid)!;
    running.add(nameOf(view));
    report();
    const { started, seconds, error } = await attempt(async () => {
      await client.query(`REFRESH MATERIALIZED VIEW ${quoteQualified(view.schema, view.name)}`);
    });
    running.delete(nameOf(view));
    const result: RefreshedView = {
      view: nameOf(view),
      startedAt: (started - began) / 1000,
      seconds,
      after: dependsOn(oid).map((dep) => nameOf(graph.views.get(dep)!)),
      ...(error ? { error } : {}),
    };
    (error ? data.failed : data.refreshed).push(result);
    ctx.log(
      error
        ? `  FAILED ${result.view}: ${error}`
        : `  refreshed ${result.view} in ${result.seconds.toFixed(1)} s${result.after.length ? ` (after ${result.after.join(', ')})` : ''}`,
    );
    queue.finish(oid, !error);
    report();
  };
  try {
    await runPool<Client, number>({
      workers: Math.min(settings.jobs, inScope.length),
      activity,
      // A session per worker, not ctx.db: the refreshes run side by side, each holding its session
      // for a whole REFRESH.
      withResource: (_, loop) =>
        withClient(
          job,
          {
            role: 'secondary',
            login: 'schema_owner',
            activity,
            applicationName: 'bucardo-console mat_views.refresh',
          },
          loop,
        ),
      next: () => queue.next(),
      work: refresh,
    });
  } finally {
    clearInterval(ticker);
  }
  data.seconds = (Date.now() - began) / 1000;
  data.skipped = [...queue.skipped].map(([oid, reason]) => ({ view: nameOf(graph.views.get(oid)!), reason }));
  if (data.failed.length || data.skipped.length) {
    return {
      ok: false,
      data,
      message: `Refreshed ${data.refreshed.length} of ${inScope.length} materialized view(s); ${data.failed.length} failed and ${data.skipped.length} skipped (listed above). Fix the cause and run mat_views.refresh again.`,
    };
  }
  return {
    data,
    message: `Refreshed ${data.refreshed.length} materialized view(s) in dependency order in ${data.seconds.toFixed(1)} s.`,
  };
}

/** Every materialized view in scope is populated on the secondary. */
export async function validateRefresh(ctx: CommandContext): Promise<Check[]> {
  const { inScope } = await scopeOnSecondary(ctx);
  const empty = inScope.filter((view) => !view.populated).map(nameOf);
  return [
    {
      name: `every materialized view in scope is populated on the secondary (${inScope.length} in scope)`,
      pass: empty.length === 0,
      ...(empty.length ? { detail: `not populated: ${empty.slice(0, 5).join(', ')}` } : {}),
    },
  ];
}
