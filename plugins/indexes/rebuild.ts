// Runs index rebuilds on the secondary over a pool of connections, largest first, so the longest
// build starts at once and the small ones fill the gaps. Each connection gets its own
// maintenance_work_mem: PostgreSQL sorts in memory up to that size and spills to disk beyond it.
import type { Activity } from '../../src/core/activity.js';
import { withClient, withTransaction, type Client } from '../../src/core/db.js';
import type { Job } from '../../src/core/job.js';
import { attempt, runPool } from '../../src/core/pool.js';
import { INDEX_BUILD_APPLICATION } from '../../src/core/watchdog.js';
import type { RebuildStep } from './statements.js';

export interface RebuildTask {
  schema: string;
  index: string;
  table: string;
  sizeBytes: number;
  steps: RebuildStep[];
}

export interface RebuildResult {
  schema: string;
  index: string;
  table: string;
  sizeBytes: number;
  seconds: number;
  error?: string;
}

/** "schema.index" for messages. */
export function indexName(item: { schema: string; index: string }): string {
  return `${item.schema}.${item.index}`;
}

export interface RebuildProgress {
  done: number;
  total: number;
  building: string[];
  elapsedSeconds: number;
}

async function runStep(client: Client, step: RebuildStep): Promise<void> {
  await withTransaction(client, async () => {
    for (const statement of step) await client.query(statement);
  });
}

export interface RebuildSessionOptions {
  maintenanceWorkMemKb: number;
  activity: Activity;
  applicationName: string;
}

/** A session on the secondary set up for index builds, as the schema's owner; closed when fn ends. */
export function withRebuildSession<T>(
  job: Job,
  options: RebuildSessionOptions,
  fn: (client: Client) => Promise<T>,
): Promise<T> {
  return withClient(
    job,
    {
      role: 'secondary',
      login: 'schema_owner',
      activity: options.activity,
      applicationName: options.applicationName,
    },
    async (client) => {
      await client.query(`SET maintenance_work_mem = '${Math.floor(options.maintenanceWorkMemKb)}kB'`);
      // An index build takes as long as it takes; a role's statement_timeout must not cut it short.
      await client.query('SET statement_timeout = 0');
      return fn(client);
    },
  );
}

/** One index: its steps, timed; a failure is kept in the result, not thrown. */
export async function rebuildOne(client: Client, task: RebuildTask): Promise<RebuildResult> {
  const { seconds, error } = await attempt(async () => {
    for (const step of task.steps) await runStep(client, step);
  });
  return {
    schema: task.schema,
    index: task.index,
    table: task.table,
    sizeBytes: task.sizeBytes,
    seconds,
    ...(error ? { error } : {}),
  };
}

export async function rebuildInParallel(
  job: Job,
  tasks: RebuildTask[],
  options: {
    jobs: number;
    maintenanceWorkMemKb: number;
    activity: Activity;
    onProgress(progress: RebuildProgress): void;
    onFinished(result: RebuildResult): void;
  },
): Promise<RebuildResult[]> {
  const queue = [...tasks].sort((a, b) => b.sizeBytes - a.sizeBytes);
  const results: RebuildResult[] = [];
  const building = new Set<string>();
  const began = Date.now();
  const report = () =>
    options.onProgress({
      done: results.length,
      total: tasks.length,
      building: [...building],
      elapsedSeconds: (Date.now() - began) / 1000,
    });
  const ticker = setInterval(report, 1000);
  try {
    await runPool<Client, RebuildTask>({
      workers: Math.min(options.jobs, tasks.length),
      activity: options.activity,
      withResource: (_, loop) =>
        withRebuildSession(
          job,
          {
            maintenanceWorkMemKb: options.maintenanceWorkMemKb,
            activity: options.activity,
            applicationName: `${INDEX_BUILD_APPLICATION}.recreate`,
          },
          loop,
        ),
      next: () => queue.shift(),
      work: async (task, client) => {
        building.add(indexName(task));
        report();
        const result = await rebuildOne(client, task);
        building.delete(indexName(task));
        if (options.activity.interrupted) return;
        results.push(result);
        options.onFinished(result);
        report();
      },
    });
  } finally {
    clearInterval(ticker);
  }
  return results;
}
