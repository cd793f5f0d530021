// The indexes section of a job's config. The original tool's `indexes: {larger_than: 10 GB}` loads
// unchanged; replication_objects, when present, replaces the bucardo section's filters for this plugin.
import { availableParallelism } from 'node:os';
import { readPluginScope } from '../../src/config/load.js';
import { describe, type ConfigReader, type Raw } from '../../src/config/reader.js';
import type { JobConfig, ReplicationObjects } from '../../src/config/types.js';
import { formatSize, parseSize, SIZE_EXAMPLES } from './size.js';

export interface IndexSettings {
  /** Indexes are dropped on tables whose size on the primary exceeds this many bytes. */
  largerThanBytes: number;
  /** Parallel index builds during indexes.recreate. */
  jobs: number;
  /** maintenance_work_mem for each build, in kB (what PostgreSQL's SET takes). */
  maintenanceWorkMemKb: number;
  replicationObjects: ReplicationObjects;
}

const KEYS = ['larger_than', 'jobs', 'maintenance_work_mem', 'replication_objects'];
export const DEFAULT_LARGER_THAN = '10 GB';
export const DEFAULT_MAINTENANCE_WORK_MEM = '1 GB';
/** PostgreSQL's own bounds for maintenance_work_mem: 1 MB to 2 TB (in kB). */
const MIN_WORK_MEM_KB = 1024;
const MAX_WORK_MEM_KB = 2 ** 31 - 1;

function size(reader: ConfigReader, raw: Raw, key: string, path: string, fallback: string): number {
  const value = raw[key] ?? fallback;
  const bytes = parseSize(value);
  if (bytes === undefined) {
    reader.problem(
      `${path}.${key}`,
      `expected a size such as ${SIZE_EXAMPLES} (units: bytes, kB, MB, GB, TB, or the words kilobytes ... terabytes), got ${describe(value)}`,
    );
    return parseSize(fallback)!;
  }
  return bytes;
}

export function parseIndexSettings(
  reader: ConfigReader,
  value: unknown,
  path: string,
  config: JobConfig,
): IndexSettings {
  const raw = reader.section(value, path, KEYS);
  const largerThanBytes = size(reader, raw, 'larger_than', path, DEFAULT_LARGER_THAN);
  const memoryBytes = size(reader, raw, 'maintenance_work_mem', path, DEFAULT_MAINTENANCE_WORK_MEM);
  let maintenanceWorkMemKb = Math.floor(memoryBytes / 1024);
  if (maintenanceWorkMemKb < MIN_WORK_MEM_KB || maintenanceWorkMemKb > MAX_WORK_MEM_KB) {
    reader.problem(
      `${path}.maintenance_work_mem`,
      `must be between 1 MB and 2 TB (PostgreSQL's limits), got ${formatSize(memoryBytes)}`,
    );
    maintenanceWorkMemKb = parseSize(DEFAULT_MAINTENANCE_WORK_MEM)! / 1024;
  }
  return {
    largerThanBytes,
    jobs: reader.integer(raw, 'jobs', path, availableParallelism(), 1, 64),
    maintenanceWorkMemKb,
    replicationObjects: readPluginScope(reader, raw, path, config),
  };
}

/** The settings of a job; parseSettings always ran for an enabled plugin, this covers a missing section. */
export function indexSettings(config: JobConfig): IndexSettings {
  return (
    (config.pluginSettings['indexes'] as IndexSettings | undefined) ?? {
      largerThanBytes: parseSize(DEFAULT_LARGER_THAN)!,
      jobs: availableParallelism(),
      maintenanceWorkMemKb: parseSize(DEFAULT_MAINTENANCE_WORK_MEM)! / 1024,
      replicationObjects: config.bucardo.replicationObjects,
    }
  );
}
