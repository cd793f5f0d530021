// Live progress of a retrying run: "812/1000 tables ready, 3 waiting on locks, round 2".

export class RoundProgress {
  readonly ready = new Set<string>();
  readonly waiting = new Set<string>();
  round = 0;

  constructor(private readonly total: number, private readonly word: 'ready' | 'done', private readonly emit: (text: string) => void) {}

  markReady(key: string): void {
    this.ready.add(key);
    this.waiting.delete(key);
    this.show();
  }

  markWaiting(key: string): void {
    if (!this.ready.has(key)) this.waiting.add(key);
    this.show();
  }

  /** Replaces both sets from a fresh read of the database. */
  reset(ready: string[], waiting: string[]): void {
    this.ready.clear();
    this.waiting.clear();
    ready.forEach((key) => this.ready.add(key));
    waiting.forEach((key) => this.waiting.add(key));
  }

  text(suffix = ''): string {
    return `${this.ready.size}/${this.total} tables ${this.word}, ${this.waiting.size} waiting on locks, round ${this.round}${suffix}`;
  }

  show(suffix = ''): void {
    this.emit(this.text(suffix));
  }
}
