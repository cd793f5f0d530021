// The retry section of a job's config: how long one table's lock wait may last, how many rounds to
// try, and how long to wait between rounds. Kept free of heavy imports: the shell loads it early.
// The settings' shape and what they mean for the rounds live in the core (src/core/rounds.ts):
// cutover.finish follows them too when this plugin is enabled.
import type { ConfigReader } from '../../src/config/reader.js';
import { DEFAULT_RETRY, type RetrySettings } from '../../src/core/rounds.js';

export type { RetrySettings };

export const RETRY_KEYS = ['timeout', 'attempts', 'backoff'] as const;

export function parseRetrySettings(reader: ConfigReader, raw: unknown, path: string): RetrySettings {
  const section = reader.section(raw, path, RETRY_KEYS);
  return {
    timeoutMs: reader.integer(section, 'timeout', path, DEFAULT_RETRY.timeoutMs, 1, 3_600_000),
    attempts: reader.integer(section, 'attempts', path, DEFAULT_RETRY.attempts, 1, 1000),
    backoffMs: reader.integer(section, 'backoff', path, DEFAULT_RETRY.backoffMs, 0, 3_600_000),
  };
}
