// The retry section of a job's config: how long one table's lock wait may last, how many rounds to
// try, and how long to wait between rounds. Kept free of heavy imports: the shell loads it early.
// The plugin registers these rounds on the job when the session loads (configureJob in index.ts), so
// every command's lock-bounded rounds follow them (lockRounds in src/core/rounds.ts), cutover.finish's
// too, without the core reading this section.
import type { ConfigReader } from '../../src/config/reader.js';
import type { JobConfig } from '../../src/config/types.js';
import { doublingRounds, type RoundsPolicy } from '../../src/core/rounds.js';

/** The retry plugin's section as the config reader parsed it (retry.timeout, attempts, backoff). */
export interface RetrySettings {
  /** Upper bound (ms) on each table's lock wait; also the longest an application query waits behind us. */
  timeoutMs: number;
  /** Rounds over the tables still waiting, the first one included. */
  attempts: number;
  /** Pause (ms) before the second round; it doubles for every further round, up to a minute. */
  backoffMs: number;
}

export const DEFAULT_RETRY: RetrySettings = { timeoutMs: 10_000, attempts: 5, backoffMs: 5_000 };

export const RETRY_KEYS = ['timeout', 'attempts', 'backoff'] as const;

export function parseRetrySettings(reader: ConfigReader, raw: unknown, path: string): RetrySettings {
  const section = reader.section(raw, path, RETRY_KEYS);
  return {
    timeoutMs: reader.integer(section, 'timeout', path, DEFAULT_RETRY.timeoutMs, 1, 3_600_000),
    attempts: reader.integer(section, 'attempts', path, DEFAULT_RETRY.attempts, 1, 1000),
    backoffMs: reader.integer(section, 'backoff', path, DEFAULT_RETRY.backoffMs, 0, 3_600_000),
  };
}

/** The job's retry section (its defaults when the section is absent). */
export function retrySettings(config: JobConfig): RetrySettings {
  return (config.pluginSettings['retry'] as RetrySettings | undefined) ?? DEFAULT_RETRY;
}

/** The rounds an operator tuned in the job's retry section. */
export function retryPolicy(config: JobConfig): RoundsPolicy & { settings: RetrySettings } {
  const settings = retrySettings(config);
  return { settings, ...doublingRounds(settings) };
}
