// The SQL that puts a recorded index back. Each step is one transaction: a plain CREATE INDEX (never
// CONCURRENTLY) is transactional, so an interrupted build leaves nothing behind, not an INVALID index.
import { quoteIdent, quoteLiteral, quoteQualified } from '../../src/core/quote.js';
import type { DroppedIndex } from './records.js';

export type RebuildStep = string[];

/** Statements that restore what ALTER/COMMENT added beyond the index itself. */
function finishing(record: DroppedIndex): string[] {
  const table = quoteQualified(record.schema, record.table);
  const statements: string[] = [];
  if (record.comment !== null)
    statements.push(
      `COMMENT ON INDEX ${quoteQualified(record.schema, record.index)} IS ${quoteLiteral(record.comment)}`,
    );
  if (record.constraintType && record.constraintComment !== null) {
    statements.push(
      `COMMENT ON CONSTRAINT ${quoteIdent(record.index)} ON ${table} IS ${quoteLiteral(record.constraintComment)}`,
    );
  }
  if (record.clustered) statements.push(`ALTER TABLE ${table} CLUSTER ON ${quoteIdent(record.index)}`);
  return statements;
}

/** Attaching a built unique index as the constraint it backed; brief, but it takes an exclusive lock. */
export function attachUniqueConstraint(record: DroppedIndex): string {
  const timing = `${record.deferrable ? ' DEFERRABLE' : ''}${record.initiallyDeferred ? ' INITIALLY DEFERRED' : ''}`;
  return `ALTER TABLE ${quoteQualified(record.schema, record.table)} ADD CONSTRAINT ${quoteIdent(record.index)} UNIQUE USING INDEX ${quoteIdent(record.index)}${timing}`;
}

function tablespace(record: DroppedIndex): string {
  // pg_get_indexdef leaves the tablespace out; without this the index would land in the default one.
  return `SET LOCAL default_tablespace = ${record.tablespace ? quoteIdent(record.tablespace) : "''"}`;
}

/**
 * The transactions that rebuild a recorded index from nothing. A unique constraint's index is built
 * first under the SHARE lock a CREATE INDEX takes (other builds on the table run alongside), then
 * attached as the constraint in its own short transaction: upgrading the lock inside the build's
 * transaction could deadlock with a parallel build on the same table.
 */
export function rebuildSteps(record: DroppedIndex): RebuildStep[] {
  if (record.constraintType === 'x') {
    return [
      [
        tablespace(record),
        `ALTER TABLE ${quoteQualified(record.schema, record.table)} ADD CONSTRAINT ${quoteIdent(record.index)} ${record.constraintDefinition}`,
        ...finishing(record),
      ],
    ];
  }
  if (record.constraintType === 'u') {
    return [
      [tablespace(record), record.indexDefinition],
      [attachUniqueConstraint(record), ...finishing(record)],
    ];
  }
  return [[tablespace(record), record.indexDefinition, ...finishing(record)]];
}

/** The constraint half only: for a unique index that was built before an interruption. */
export function attachSteps(record: DroppedIndex): RebuildStep[] {
  return [[attachUniqueConstraint(record), ...finishing(record)]];
}

/** A psql script with every recorded definition: a copy outside the database, for the operator. */
export function rebuildScript(jobName: string, records: DroppedIndex[]): string {
  const lines = [
    `-- Indexes dropped on the secondary by indexes.drop for job ${jobName}, written ${new Date().toISOString()}.`,
    '-- indexes.recreate rebuilds them from the metadata database; this file is a copy for rebuilding by hand (psql -f).',
  ];
  for (const record of records) {
    lines.push('', `-- ${record.schema}.${record.table}: ${record.index}`);
    for (const step of rebuildSteps(record))
      lines.push('BEGIN;', ...step.map((statement) => `${statement};`), 'COMMIT;');
  }
  return `${lines.join('\n')}\n`;
}
