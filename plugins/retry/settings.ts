// The retry section of a job's config: how long one table's lock wait may last, how many rounds to
// try, and how long to wait between rounds. Kept free of heavy imports: the shell loads it early.
import type { ConfigReader } from '../../src/config/reader.js';
import type { Job } from '../../src/core/job.js';

export interface RetrySettings {
  /** Upper bound (ms) on each table's lock wait; also the longest an application query waits behind us. */
  timeoutMs: number;
  /** Rounds over the tables still waiting, the first one included. */
  attempts: number;
  /** Pause (ms) before the second round; it doubles for every further round, up to MAX_BACKOFF_MS. */
  backoffMs: number;
}

export const RETRY_KEYS = ['timeout', 'attempts', 'backoff'] as const;
export const DEFAULT_RETRY: RetrySettings = { timeoutMs: 10_000, attempts: 5, backoffMs: 5_000 };
const MAX_BACKOFF_MS = 60_000;

export function parseRetrySettings(reader: ConfigReader, raw: unknown, path: string): RetrySettings {
  const section = reader.section(raw, path, RETRY_KEYS);
  return {
    timeoutMs: reader.integer(section, 'timeout', path, DEFAULT_RETRY.timeoutMs, 1, 3_600_000),
    attempts: reader.integer(section, 'attempts', path, DEFAULT_RETRY.attempts, 1, 1000),
    backoffMs: reader.integer(section, 'backoff', path, DEFAULT_RETRY.backoffMs, 0, 3_600_000),
  };
}

export function retrySettings(job: Job): RetrySettings {
  return (job.config.pluginSettings['retry'] as RetrySettings | undefined) ?? DEFAULT_RETRY;
}

/** The pause before a round (2, 3, ...): backoff, doubled each round, capped at a minute (or backoff when larger). */
export function pauseBeforeRound(settings: RetrySettings, round: number): number {
  if (round <= 1) return 0;
  const doubled = settings.backoffMs * 2 ** (round - 2);
  return Math.min(doubled, Math.max(MAX_BACKOFF_MS, settings.backoffMs));
}
