// The mat_views section of a job's config. The original tool's `mat_views: {}` loads unchanged;
// replication_objects, when present, replaces the bucardo section's filters for this plugin.
import { availableParallelism } from 'node:os';
import { readPluginScope } from '../../src/config/load.js';
import type { ConfigReader } from '../../src/config/reader.js';
import type { JobConfig, ReplicationObjects } from '../../src/config/types.js';

export interface MatViewSettings {
  /** Independent views refreshed at the same time. */
  jobs: number;
  replicationObjects: ReplicationObjects;
}

export function parseMatViewSettings(
  reader: ConfigReader,
  value: unknown,
  path: string,
  config: JobConfig,
): MatViewSettings {
  const raw = reader.section(value, path, ['jobs', 'replication_objects']);
  return {
    jobs: reader.integer(raw, 'jobs', path, availableParallelism(), 1, 64),
    replicationObjects: readPluginScope(reader, raw, path, config),
  };
}

export function matViewSettings(config: JobConfig): MatViewSettings {
  return (
    (config.pluginSettings['mat_views'] as MatViewSettings | undefined) ?? {
      jobs: availableParallelism(),
      replicationObjects: config.bucardo.replicationObjects,
    }
  );
}
