// A few connection pairs (one to each side) that verify's work items share: tables are checked in
// parallel, each statement short. Every connection uses the same session settings, so a row's text
// form (dates, floats, bytea) is the same on both servers.
import type { Activity } from '../../../src/core/activity.js';
import { openClient, type Client } from '../../../src/core/db.js';
import type { Job } from '../../../src/core/job.js';
import { findReplicationObjects, type Relation, type ReplicationScope } from '../../../src/core/objects.js';
import { runPool } from '../../../src/core/pool.js';
import type { Sides } from '../../../src/core/compare/ranges.js';
import { readShapes, type TableShape } from '../../../src/core/compare/shape.js';
import { hashMethod, prepareSession, type HashMethod } from '../../../src/core/compare/sql.js';

export async function openSides(job: Job, activity: Activity): Promise<Sides> {
  const applicationName = 'bucardo-console cutover.verify';
  const primary = await openClient(job, { role: 'primary', activity, applicationName });
  let secondary: Client | undefined;
  try {
    secondary = await openClient(job, { role: 'secondary', activity, applicationName });
    await Promise.all([prepareSession(primary), prepareSession(secondary)]);
    return { primary, secondary };
  } catch (error) {
    await Promise.all([primary.end().catch(() => undefined), secondary?.end().catch(() => undefined)]);
    throw error;
  }
}

export async function closeSides(sides: Sides[]): Promise<void> {
  await Promise.all(
    sides.flatMap((s) => [s.primary.end().catch(() => undefined), s.secondary.end().catch(() => undefined)]),
  );
}

/** What a comparison of the switch reads before it compares: its sessions, the hash, the scope, both shapes. */
export interface Comparison {
  /** The connection pairs, at most cutover.jobs (one per table); the first also asks the questions. */
  pool: Sides[];
  method: HashMethod;
  scope: ReplicationScope;
  ourShapes: Map<string, TableShape>;
  theirShapes: Map<string, TableShape>;
}

export interface ComparisonOptions {
  /** Connection pairs opened by the caller: used first, left open. */
  sessions?: Sides[] | undefined;
  /** cutover.jobs: the most connection pairs. */
  jobs: number;
  activity: Activity;
  /** Run on the first pair's primary before anything is read (the pre-check takes its horizon there). */
  first?: (primary: Client) => Promise<void>;
  /** Tables outside the scope compared too (cutover.copy_at_cutover's, in the final check). */
  alsoTables?: { schema: string; name: string }[] | undefined;
}

/**
 * Opens the comparison the pre-check and the final check share: the caller's connection pairs (or one
 * of its own), the hash method both servers have, the tables in scope and their shapes on both sides,
 * then pairs up to cutover.jobs; runs fn and closes the pairs it opened (dedicated sessions: every
 * pair has the comparison's session settings and they run side by side).
 */
export async function withComparison<T>(
  job: Job,
  options: ComparisonOptions,
  fn: (comparison: Comparison) => Promise<T>,
): Promise<T> {
  const given = options.sessions ?? [];
  const pool: Sides[] = [...given];
  try {
    if (!pool.length) pool.push(await openSides(job, options.activity));
    const { primary, secondary } = pool[0]!;
    await options.first?.(primary);
    const method = await hashMethod(primary, secondary);
    const scope = await findReplicationObjects(primary, job.config.bucardo.replicationObjects);
    for (const table of options.alsoTables ?? [])
      if (!scope.tables.some((t) => t.schema === table.schema && t.name === table.name))
        scope.tables.push({ ...table, hasPrimaryKey: false, sizeBytes: 0 } satisfies Relation);
    const [ourShapes, theirShapes] = await Promise.all([
      readShapes(primary, scope.tables),
      readShapes(secondary, scope.tables),
    ]);
    const connections = Math.max(1, Math.min(options.jobs, scope.tables.length));
    while (pool.length < connections) pool.push(await openSides(job, options.activity));
    return await fn({ pool, method, scope, ourShapes, theirShapes });
  } finally {
    await closeSides(pool.slice(given.length));
  }
}

export type Task = (sides: Sides) => Promise<void>;

/**
 * Work shared by the connection pairs: each pair takes the next task when it is free. A task may add
 * tasks (walking a table's key finds its chunks); the pairs keep going until the queue is empty and
 * nothing running can add more. The first task that fails stops them all.
 */
export class TaskQueue {
  private readonly tasks: Task[] = [];
  private running = 0;
  private waiting: (() => void)[] = [];

  push(task: Task, first = false): void {
    if (first) this.tasks.unshift(task);
    else this.tasks.push(task);
    this.wake();
  }

  private wake(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const resume of waiting) resume();
  }

  /** The next task (counted as running until it ends), waiting while running ones may add more. */
  private async next(stopped: () => boolean): Promise<Task | undefined> {
    for (;;) {
      if (stopped()) return undefined;
      const task = this.tasks.shift();
      if (task) {
        this.running += 1;
        return async (sides) => {
          try {
            await task(sides);
          } finally {
            this.running -= 1;
            this.wake();
          }
        };
      }
      if (this.running === 0) return undefined;
      await new Promise<void>((resume) => this.waiting.push(resume));
    }
  }

  async run(pool: Sides[], activity: Activity): Promise<void> {
    await runPool<Sides, Task>({
      workers: pool.length,
      activity,
      withResource: (worker, loop) => loop(pool[worker]!),
      next: (stopped) => this.next(stopped),
      work: (task, sides) => task(sides),
    });
  }
}

/** Runs a fixed list of tasks over the connection pairs. */
export async function runTasks(pool: Sides[], tasks: Task[], activity: Activity): Promise<void> {
  const queue = new TaskQueue();
  for (const task of tasks) queue.push(task);
  await queue.run(pool, activity);
}
