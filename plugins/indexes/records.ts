// The record of dropped index definitions, kept in the metadata database (schema manage_indexes, as
// the original tool named it) so that indexes.recreate can rebuild exactly what indexes.drop removed,
// from any machine and after any crash. Rows are keyed by job, so jobs can share a metadata database.
import { DatabaseContext, withSession } from '../../src/core/context.js';
import { withTransaction, type Client } from '../../src/core/db.js';
import type { Activity } from '../../src/core/activity.js';
import { OperatorError } from '../../src/core/errors.js';
import { targetKey, type Job } from '../../src/core/job.js';
import type { SecondaryIndex } from './catalog.js';

export const RECORD_SCHEMA = 'manage_indexes';
export const RECORD_TABLE = `${RECORD_SCHEMA}.dropped_index`;

const CREATE_RECORDS = `
CREATE SCHEMA IF NOT EXISTS ${RECORD_SCHEMA};
CREATE TABLE IF NOT EXISTS ${RECORD_TABLE} (
  job                   text NOT NULL,
  schema_name           text NOT NULL,
  table_name            text NOT NULL,
  index_name            text NOT NULL,
  index_definition      text NOT NULL,
  -- set when the index backs a unique ('u') or exclusion ('x') constraint, which is dropped and re-added
  constraint_type       "char",
  constraint_definition text,
  is_deferrable         boolean NOT NULL DEFAULT false,
  is_initially_deferred boolean NOT NULL DEFAULT false,
  tablespace            text,
  comment               text,
  constraint_comment    text,
  clustered             boolean NOT NULL DEFAULT false,
  -- the index's size on the primary: what the secondary would maintain during the copy, and the build order
  size_bytes            bigint NOT NULL DEFAULT 0,
  recorded_at           timestamptz NOT NULL DEFAULT now(),
  dropped_at            timestamptz,
  recreated_at          timestamptz,
  PRIMARY KEY (job, schema_name, index_name)
);
COMMENT ON TABLE ${RECORD_TABLE} IS 'Index definitions dropped on the secondary by bucardo-console indexes.drop, rebuilt by indexes.recreate';`;

/** A recorded secondary index: its shape as found (catalog.ts), and when it was dropped/rebuilt. */
export interface DroppedIndex extends Omit<SecondaryIndex, 'keepReason'> {
  droppedAt: Date | null;
  recreatedAt: Date | null;
}

/**
 * Runs fn in the metadata database: on the command's shared session when given `ctx.db` (single
 * statements), else on a session of its own (a transaction, a lock timeout).
 */
export function withRecords<T>(
  source: Job | DatabaseContext,
  activity: Activity | undefined,
  fn: (client: Client) => Promise<T>,
): Promise<T> {
  return withSession(source, { role: 'bucardo' }, fn, activity);
}

export async function installRecords(job: Job, activity: Activity): Promise<boolean> {
  return withRecords(job, activity, async (client) => {
    const existed = await recordsInstalled(client);
    await withTransaction(client, () => client.query(CREATE_RECORDS));
    return !existed;
  });
}

export async function recordsInstalled(client: Client): Promise<boolean> {
  const { rows } = await client.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [
    RECORD_TABLE,
  ]);
  return rows[0]!.present;
}

export async function requireRecords(client: Client, job: Job): Promise<void> {
  if (!(await recordsInstalled(client))) {
    throw new OperatorError(
      `The table that records dropped index definitions (${RECORD_TABLE} in the metadata database ${job.metadataDb}) does not exist. Run indexes.install first (after bucardo.install, which creates the metadata database).`,
    );
  }
}

/**
 * Saves the definitions of indexes about to be dropped, in one transaction. A definition recorded by an
 * earlier run is replaced by what the secondary has now and marked not yet dropped again.
 */
export async function recordDefinitions(client: Client, job: Job, indexes: SecondaryIndex[]): Promise<void> {
  await withTransaction(client, async () => {
    for (const index of indexes) {
      await client.query(
        `INSERT INTO ${RECORD_TABLE} (job, schema_name, table_name, index_name, index_definition, constraint_type, constraint_definition,
                                      is_deferrable, is_initially_deferred, tablespace, comment, constraint_comment, clustered, size_bytes)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (job, schema_name, index_name) DO UPDATE SET
           table_name = excluded.table_name, index_definition = excluded.index_definition, constraint_type = excluded.constraint_type,
           constraint_definition = excluded.constraint_definition, is_deferrable = excluded.is_deferrable,
           is_initially_deferred = excluded.is_initially_deferred, tablespace = excluded.tablespace, comment = excluded.comment,
           constraint_comment = excluded.constraint_comment, clustered = excluded.clustered, size_bytes = excluded.size_bytes, recorded_at = now(), dropped_at = NULL, recreated_at = NULL`,
        [
          targetKey(job),
          index.schema,
          index.table,
          index.index,
          index.indexDefinition,
          index.constraintType,
          index.constraintDefinition,
          index.deferrable,
          index.initiallyDeferred,
          index.tablespace,
          index.comment,
          index.constraintComment,
          index.clustered,
          index.sizeBytes,
        ],
      );
    }
  });
}

/** How many of these indexes are recorded with exactly the definition found, per table ("schema.table"). */
export async function recordedCountsByTable(
  client: Client,
  job: Job,
  indexes: SecondaryIndex[],
): Promise<Map<string, number>> {
  const { rows } = await client.query<{ schema_name: string; table_name: string; recorded: number }>(
    `SELECT r.schema_name, r.table_name, count(*)::int AS recorded
       FROM ${RECORD_TABLE} r
       JOIN unnest($2::text[], $3::text[], $4::text[]) AS found(schema_name, index_name, index_definition)
         ON found.schema_name = r.schema_name AND found.index_name = r.index_name AND found.index_definition = r.index_definition
      WHERE r.job = $1
      GROUP BY 1, 2`,
    [
      targetKey(job),
      indexes.map((i) => i.schema),
      indexes.map((i) => i.index),
      indexes.map((i) => i.indexDefinition),
    ],
  );
  return new Map(rows.map((row) => [`${row.schema_name}.${row.table_name}`, row.recorded]));
}

export async function markDropped(
  client: Client,
  job: Job,
  indexes: { schema: string; index: string }[],
): Promise<void> {
  if (indexes.length === 0) return;
  await client.query(
    `UPDATE ${RECORD_TABLE} SET dropped_at = now()
      WHERE job = $1 AND (schema_name, index_name) IN (SELECT * FROM unnest($2::text[], $3::text[]))`,
    [targetKey(job), indexes.map((i) => i.schema), indexes.map((i) => i.index)],
  );
}

export async function markRecreated(
  client: Client,
  job: Job,
  indexes: { schema: string; index: string }[],
): Promise<void> {
  if (indexes.length === 0) return;
  await client.query(
    `UPDATE ${RECORD_TABLE} SET recreated_at = now()
      WHERE job = $1 AND recreated_at IS NULL AND (schema_name, index_name) IN (SELECT * FROM unnest($2::text[], $3::text[]))`,
    [targetKey(job), indexes.map((i) => i.schema), indexes.map((i) => i.index)],
  );
}

interface RecordRow {
  schema_name: string;
  table_name: string;
  index_name: string;
  index_definition: string;
  constraint_type: 'u' | 'x' | null;
  constraint_definition: string | null;
  is_deferrable: boolean;
  is_initially_deferred: boolean;
  tablespace: string | null;
  comment: string | null;
  constraint_comment: string | null;
  clustered: boolean;
  size_bytes: string;
  dropped_at: Date | null;
  recreated_at: Date | null;
}

/** Every definition recorded for this job, largest first. */
export async function recordedIndexes(client: Client, job: Job): Promise<DroppedIndex[]> {
  const { rows } = await client.query<RecordRow>(
    `SELECT schema_name, table_name, index_name, index_definition, constraint_type, constraint_definition, is_deferrable,
            is_initially_deferred, tablespace, comment, constraint_comment, clustered, size_bytes, dropped_at, recreated_at
       FROM ${RECORD_TABLE} WHERE job = $1 ORDER BY size_bytes DESC, schema_name, index_name`,
    [targetKey(job)],
  );
  return rows.map((row) => ({
    schema: row.schema_name,
    table: row.table_name,
    index: row.index_name,
    indexDefinition: row.index_definition,
    constraintType: row.constraint_type,
    constraintDefinition: row.constraint_definition,
    deferrable: row.is_deferrable,
    initiallyDeferred: row.is_initially_deferred,
    tablespace: row.tablespace,
    comment: row.comment,
    constraintComment: row.constraint_comment,
    clustered: row.clustered,
    sizeBytes: Number(row.size_bytes),
    droppedAt: row.dropped_at,
    recreatedAt: row.recreated_at,
  }));
}
