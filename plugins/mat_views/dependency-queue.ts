// Hands out work in dependency order to any number of parallel workers: an item is ready once every
// item it depends on has finished; an item whose dependency failed is skipped, never started.

export class DependencyQueue<K> {
  private readonly pending: Set<K>;
  private readonly running = new Set<K>();
  private readonly finished = new Set<K>();
  private readonly failed = new Set<K>();
  private waiters: (() => void)[] = [];
  /** Items that were never started, with the reason. */
  readonly skipped = new Map<K, string>();

  constructor(
    keys: K[],
    private readonly dependsOn: (key: K) => K[],
    private readonly describe: (key: K) => string = String,
  ) {
    this.pending = new Set(keys);
  }

  /** The next ready item, waiting while others run; undefined once nothing more can start. */
  async next(): Promise<K | undefined> {
    for (;;) {
      this.skipBlocked();
      const ready = [...this.pending].find((key) =>
        this.dependencies(key).every((dep) => this.finished.has(dep)),
      );
      if (ready !== undefined) {
        this.pending.delete(ready);
        this.running.add(ready);
        return ready;
      }
      if (this.running.size === 0) {
        // Nothing runs and nothing is ready: whatever is left waits on itself.
        for (const key of this.pending) this.skipped.set(key, 'its dependencies form a cycle');
        this.pending.clear();
        return undefined;
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  finish(key: K, ok: boolean): void {
    this.running.delete(key);
    (ok ? this.finished : this.failed).add(key);
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  private dependencies(key: K): K[] {
    return this.dependsOn(key).filter(
      (dep) =>
        dep !== key &&
        (this.pending.has(dep) ||
          this.running.has(dep) ||
          this.finished.has(dep) ||
          this.failed.has(dep) ||
          this.skipped.has(dep)),
    );
  }

  private skipBlocked(): void {
    let changed = true;
    while (changed) {
      changed = false;
      for (const key of this.pending) {
        const blocker = this.dependencies(key).find((dep) => this.failed.has(dep) || this.skipped.has(dep));
        if (blocker !== undefined) {
          this.pending.delete(key);
          this.skipped.set(
            key,
            `it reads ${this.describe(blocker)}, which ${this.failed.has(blocker) ? 'failed' : 'was skipped'}`,
          );
          changed = true;
        }
      }
    }
  }
}
