// Rounds over the tables whose lock-bounded DDL has not happened yet: each round tries every table
// left once (each lock wait bounded), pauses, and tries again, so that one busy table waits for its
// lock to be free without ever queueing behind it. The policy says how many rounds, how long each
// lock wait, and the pauses; the caller supplies what one round does.
import { sleep, type Activity } from './activity.js';
import type { Job } from './job.js';

export interface RoundsPolicy {
  /** Upper bound (ms) of each table's lock wait. */
  timeoutMs: number;
  /** Rounds, the first one included. */
  attempts: number;
  /** The pause (ms) before round n (n ≥ 2). */
  pauseBeforeRound(round: number): number;
}

/** The retry plugin's section as the config reader parsed it (retry.timeout, attempts, backoff). */
export interface RetrySettings {
  /** Upper bound (ms) on each table's lock wait; also the longest an application query waits behind us. */
  timeoutMs: number;
  /** Rounds over the tables still waiting, the first one included. */
  attempts: number;
  /** Pause (ms) before the second round; it doubles for every further round, up to MAX_BACKOFF_MS. */
  backoffMs: number;
}

export const DEFAULT_RETRY: RetrySettings = { timeoutMs: 10_000, attempts: 5, backoffMs: 5_000 };
const MAX_BACKOFF_MS = 60_000;

/** The pause before a round (2, 3, ...): backoff, doubled each round, capped at a minute (or backoff when larger). */
export function backoffBeforeRound(settings: RetrySettings, round: number): number {
  if (round <= 1) return 0;
  const doubled = settings.backoffMs * 2 ** (round - 2);
  return Math.min(doubled, Math.max(MAX_BACKOFF_MS, settings.backoffMs));
}

/** The rounds an operator tuned in the job's retry section (its defaults when the section is absent). */
export function retryPolicy(job: Job): RoundsPolicy & { settings: RetrySettings } {
  const settings = (job.config.pluginSettings['retry'] as RetrySettings | undefined) ?? DEFAULT_RETRY;
  return {
    settings,
    timeoutMs: settings.timeoutMs,
    attempts: settings.attempts,
    pauseBeforeRound: (round) => backoffBeforeRound(settings, round),
  };
}

/** Whether the job uses the retry plugin: then every lock-bounded round follows retry's settings. */
export function retryEnabled(job: Job): boolean {
  return job.config.plugins.includes('retry');
}

/** Rounds of lock-bounded DDL without the retry plugin: each lock wait at most bucardo.lock_timeout. */
export const FIXED_ROUNDS = 3;

/**
 * The rounds of lock-bounded DDL a command runs on the job's tables (dropping triggers at the cutover,
 * switching change tables to the commit fence). With the retry plugin the operator tuned
 * retry.timeout/attempts/backoff for these servers' locks: the same rounds then; else FIXED_ROUNDS
 * 2 s apart under bucardo.lock_timeout. `setting` names the bound for messages.
 */
export function lockRounds(job: Job): { policy: RoundsPolicy; setting: string; retry: boolean } {
  if (retryEnabled(job)) return { policy: retryPolicy(job), setting: 'retry.timeout', retry: true };
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
