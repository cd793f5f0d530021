// What a running command has under way: database sessions and child processes. When the operator
// presses Ctrl-C the shell calls interrupt(): statements are cancelled on the server with
// pg_cancel_backend (a client disconnect alone would leave them running), children are stopped.
import { InterruptedError } from './errors.js';

export interface TrackedSession {
  /** e.g. "primary (db a as postgres)" */
  description: string;
  backendPid: number | undefined;
  /** Runs pg_cancel_backend(backendPid) over a separate connection with the same login. */
  cancel(): Promise<boolean>;
  busy(): boolean;
}

export interface TrackedChild {
  description: string;
  pid: number | undefined;
  /** false for processes whose death would leave a mess (a blocked `bucardo add sync`): let them finish. */
  safeToStop: boolean;
  stop(): void;
}

export class Activity {
  private readonly controller = new AbortController();
  private readonly sessions = new Set<TrackedSession>();
  private readonly children = new Set<TrackedChild>();

  get signal(): AbortSignal {
    return this.controller.signal;
  }
  get interrupted(): boolean {
    return this.controller.signal.aborted;
  }

  trackSession(session: TrackedSession): () => void {
    this.sessions.add(session);
    return () => this.sessions.delete(session);
  }

  trackChild(child: TrackedChild): () => void {
    this.children.add(child);
    return () => this.children.delete(child);
  }

  /** Cancels everything in flight and returns one line per thing it did, for the operator. */
  async interrupt(): Promise<string[]> {
    this.controller.abort();
    const report: string[] = [];
    for (const session of this.sessions) {
      if (!session.busy()) continue;
      try {
        const cancelled = await session.cancel();
        report.push(
          cancelled
            ? `cancelled the running statement on ${session.description} (backend ${session.backendPid}); its transaction was rolled back`
            : `the statement on ${session.description} had already finished`,
        );
      } catch (error) {
        report.push(
          `could not cancel backend ${session.backendPid} on ${session.description}: ${(error as Error).message}`,
        );
      }
    }
    for (const child of this.children) {
      if (child.safeToStop) {
        child.stop();
        report.push(`stopped ${child.description} (pid ${child.pid})`);
      } else {
        report.push(
          `left ${child.description} (pid ${child.pid}) to finish: stopping it would leave orphan triggers; its lock wait is bounded by bucardo.lock_timeout`,
        );
      }
    }
    return report;
  }

  throwIfInterrupted(): void {
    if (this.controller.signal.aborted) throw new InterruptedError();
  }
}

/** An Activity for code run outside the shell (tests, benchmarks): nothing ever interrupts it. */
export function detachedActivity(): Activity {
  return new Activity();
}

/** Resolves after ms, or rejects early when the activity is interrupted. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new InterruptedError());
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new InterruptedError());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
