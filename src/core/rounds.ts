// Rounds over the tables whose lock-bounded DDL has not happened yet: each round tries every table
// left once (each lock wait bounded), pauses, and tries again, so that one busy table waits for its
// lock to be free without ever queueing behind it. The policy says how many rounds, how long each
// lock wait, and the pauses; the caller supplies what one round does.
import { sleep, type Activity } from './activity.js';
import type { Job, TunedRounds } from './job.js';

export interface RoundsPolicy {
  /** Upper bound (ms) of each table's lock wait. */
  timeoutMs: number;
  /** Rounds, the first one included. */
  attempts: number;
  /** The pause (ms) before round n (n ≥ 2). */
  pauseBeforeRound(round: number): number;
}

const MAX_BACKOFF_MS = 60_000;

/** The pause before a round (2, 3, ...): backoff, doubled each round, capped at a minute (or backoff when larger). */
export function backoffBeforeRound(backoffMs: number, round: number): number {
  if (round <= 1) return 0;
  const doubled = backoffMs * 2 ** (round - 2);
  return Math.min(doubled, Math.max(MAX_BACKOFF_MS, backoffMs));
}

/** Rounds with a doubling backoff: each lock wait at most timeoutMs, at most `attempts` rounds. */
export function doublingRounds(rounds: Omit<TunedRounds, 'setting'>): RoundsPolicy {
  return {
    timeoutMs: rounds.timeoutMs,
    attempts: rounds.attempts,
    pauseBeforeRound: (round) => backoffBeforeRound(rounds.backoffMs, round),
  };
}

/** Rounds of lock-bounded DDL when no plugin tuned them: each lock wait at most bucardo.lock_timeout. */
export const FIXED_ROUNDS = 3;

/**
 * The rounds of lock-bounded DDL a command runs on the job's tables (dropping triggers at the cutover,
 * switching change tables to the commit fence). When a plugin tuned them for these servers' locks
 * (job.tunedRounds: the retry plugin), those; else FIXED_ROUNDS 2 s apart under bucardo.lock_timeout.
 * `setting` names the bound for messages; `retry` says whether the rounds were tuned.
 */
export function lockRounds(job: Job): { policy: RoundsPolicy; setting: string; retry: boolean } {
  if (job.tunedRounds)
    return { policy: doublingRounds(job.tunedRounds), setting: job.tunedRounds.setting, retry: true };
  return {
    policy: {
      timeoutMs: job.config.bucardo.lockTimeoutMs,
      attempts: FIXED_ROUNDS,
      pauseBeforeRound: (round) => (round > 1 ? 2000 : 0),
    },
    setting: 'bucardo.lock_timeout',
    retry: false,
  };
}

export interface RoundSteps {
  /** Whether anything is left to do (checked before every round). */
  pending(): boolean;
  /** Before the pause that precedes round n (only when there is a pause). */
  pausing?(round: number, pauseMs: number): void;
  round(round: number): Promise<void>;
}

/** Runs rounds while something is pending, at most policy.attempts; returns how many ran. */
export async function runRounds(
  policy: RoundsPolicy,
  activity: Activity,
  steps: RoundSteps,
): Promise<number> {
  let round = 0;
  while (steps.pending() && round < policy.attempts) {
    round += 1;
    const pause = policy.pauseBeforeRound(round);
    if (pause > 0) {
      steps.pausing?.(round, pause);
      await sleep(pause, activity.signal);
    }
    activity.throwIfInterrupted();
    await steps.round(round);
  }
  return round;
}

/** Live progress of rounds: "812/1000 tables ready, 3 waiting on locks, round 2". */
export class RoundProgress {
  readonly ready = new Set<string>();
  readonly waiting = new Set<string>();
  round = 0;

  constructor(
    private readonly total: number,
    private readonly word: 'ready' | 'done',
    private readonly emit: (text: string) => void,
  ) {}

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
    const counts = `${this.ready.size}/${this.total} tables ${this.word}, ${this.waiting.size} waiting on locks`;
    return `${counts}, round ${this.round}${suffix}`;
  }

  show(suffix = ''): void {
    this.emit(this.text(suffix));
  }
}
