// A few workers sharing a queue of tasks: each takes the next task when it is free, so long tasks
// run side by side and short ones fill the gaps. Each worker holds what it needs for its whole life
// (a connection, a connection pair), opened and closed by the caller's withResource.
import { errorMessage, InterruptedError } from './errors.js';
import type { Activity } from './activity.js';

export interface PoolOptions<R, T> {
  /** How many workers run at once (at least one). */
  workers: number;
  activity: Activity;
  /** Runs one worker's loop with what it needs: opens it, calls loop, always closes it. */
  withResource(worker: number, loop: (resource: R) => Promise<void>): Promise<void>;
  /** The next task, or undefined when none is left; it may wait for one (dependencies, tasks that add tasks). */
  next(stopped: () => boolean): Promise<T | undefined> | T | undefined;
  /** One task. A task that must not stop the others records its own failure instead of throwing. */
  work(task: T, resource: R): Promise<void>;
}

/**
 * Runs the workers until no task is left. A task that throws, a worker that cannot open its
 * resource, or an interrupt (Ctrl-C) stops every worker after its current task; then the interrupt
 * (as InterruptedError) or the first error is thrown, once no worker runs any more.
 */
export async function runPool<R, T>(options: PoolOptions<R, T>): Promise<void> {
  let failure: { error: unknown } | undefined;
  const stopped = () => failure !== undefined || options.activity.interrupted;
  const worker = (index: number) =>
    options.withResource(index, async (resource) => {
      while (!stopped()) {
        const task = await options.next(stopped);
        if (task === undefined) return;
        try {
          await options.work(task, resource);
        } catch (error) {
          failure ??= { error };
        }
      }
    });
  // allSettled: a worker that cannot connect must not leave the others running unwatched.
  const workers = Array.from({ length: Math.max(1, options.workers) }, (_, index) => worker(index));
  const outcomes = await Promise.allSettled(workers);
  if (options.activity.interrupted) throw new InterruptedError();
  if (failure) throw failure.error;
  const broken = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
  if (broken) throw broken.reason;
}

export interface Attempt {
  /** Date.now() when it began */ started: number;
  seconds: number;
  error?: string;
}

/** Runs one task, timed, its error kept as a message: for tasks whose failure must not stop the others. */
export async function attempt(task: () => Promise<void>): Promise<Attempt> {
  const started = Date.now();
  let error: string | undefined;
  try {
    await task();
  } catch (failure) {
    error = errorMessage(failure);
  }
  return { started, seconds: (Date.now() - started) / 1000, ...(error !== undefined ? { error } : {}) };
}

/**
 * At most `size` tasks at once across callers that start work independently (tables finishing at
 * different moments, each with its own tasks); the others wait their turn, first come first served.
 */
export class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(size: number) {
    this.free = Math.max(1, size);
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free -= 1;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await task();
    } finally {
      // The slot passes straight to the next waiter, or is freed.
      const next = this.waiting.shift();
      if (next) next();
      else this.free += 1;
    }
  }
}
