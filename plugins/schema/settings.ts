// The schema section of a job's config. Kept free of heavy imports: the shell loads it early. The
// kicker reads the same values from the job it is given (src/kicker/partitions.ts).
import type { ConfigReader } from '../../src/config/reader.js';
// From job.ts, not add-tables.ts: every tool run loads this file, and add-tables pulls in the copy engine.
import { DEFAULT_PARTITION_POLICY, type PartitionPolicy } from '../../src/core/job.js';

export type SchemaSettings = PartitionPolicy;

export const SCHEMA_KEYS = ['auto_add_partitions', 'create_missing_partitions'] as const;

export function parseSchemaSettings(reader: ConfigReader, raw: unknown, path: string): SchemaSettings {
  const section = reader.section(raw, path, SCHEMA_KEYS);
  return {
    autoAddPartitions: reader.boolean(
      section,
      'auto_add_partitions',
      path,
      DEFAULT_PARTITION_POLICY.autoAddPartitions,
    ),
    createMissingPartitions: reader.boolean(
      section,
      'create_missing_partitions',
      path,
      DEFAULT_PARTITION_POLICY.createMissingPartitions,
    ),
  };
}
