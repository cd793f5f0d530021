// Telling rows still on their way through replication from real differences. Bucardo records every
// changed key in a delta table on the primary and marks a change applied in a track table only
// after the secondary committed it (targets commit first). So a differing row whose key has an
// unapplied change is in flight; a row that still differs on a re-read, with the key's change
// record unchanged before and after and nothing pending, really differs.
import { sleep } from '../activity.js';
import { trackTarget } from '../bucardo/names.js';
import type { Client } from '../db.js';
import type { Job } from '../job.js';
import { bucardoSchemaExists, jobSyncsOnSource } from '../pending.js';
import { quoteQualified } from '../quote.js';
import { diffRows, keyId, rowHashes, type KeyDiff, type Sides } from './ranges.js';
import type { TableSql } from './sql.js';

export interface ChangeLog {
  delta: string;
  track: string;
  target: string;
}

/** The job's delta and track tables for a table, when Bucardo's schema is on the primary. */
export async function findChangeLog(
  client: Client,
  sql: TableSql,
  job: Pick<Job, 'dbgroupName'>,
): Promise<ChangeLog | undefined> {
  const target = trackTarget(job.dbgroupName);
  if (!(await bucardoSchemaExists(client))) return undefined;
  const { rows } = await client.query<{ delta: string; track: string }>(
    // deltaname/trackname are stored quote_ident-ed; resolving them to pg_class names lets quoteQualified do the
    // quoting.
    `SELECT d.relname AS delta, t.relname AS track
       FROM bucardo.bucardo_delta_names dn
       JOIN pg_class d ON d.oid = to_regclass('bucardo.' || dn.deltaname)
       JOIN pg_class t ON t.oid = to_regclass('bucardo.' || dn.trackname)
      WHERE dn.sync IN ${jobSyncsOnSource('$1')} AND to_regclass(dn.tablename) = to_regclass($2)`,
    [target, sql.table],
  );
  const row = rows[0];
  return row
    ? {
        delta: quoteQualified('bucardo', row.delta),
        track: quoteQualified('bucardo', row.track),
        target,
      }
    : undefined;
}

interface KeyChanges {
  changes: number;
  last: string;
  pending: boolean;
}

async function changesOf(
  client: Client,
  sql: TableSql,
  log: ChangeLog,
  keys: string[][],
): Promise<Map<string, KeyChanges>> {
  if (keys.length === 0) return new Map();
  const width = sql.shape.key.length;
  const { rows } = await client.query<{ key: string[]; changes: number; last: string; pending: boolean }>(
    `SELECT ${sql.keyTextArray()} AS key, count(*)::int AS changes, max(d.txntime)::text AS last,
            bool_or(NOT EXISTS (SELECT 1 FROM ${log.track} t WHERE t.txntime = d.txntime AND t.target = $${width + 1})) AS pending
       FROM ${log.delta} d
      WHERE ${sql.keyTuple()} IN (SELECT ${sql.castKeys('w')} FROM ${sql.unnestKeys('w')})
      GROUP BY 1`,
    [...Array.from({ length: width }, (_, i) => keys.map((key) => key[i]!)), log.target],
  );
  return new Map(
    rows.map((row) => [keyId(row.key), { changes: row.changes, last: row.last, pending: row.pending }]),
  );
}

function unchanged(before: KeyChanges | undefined, after: KeyChanges | undefined): boolean {
  if (!before || !after) return before === after;
  return before.changes === after.changes && before.last === after.last;
}

export async function reread(sides: Sides, sql: TableSql, diffs: KeyDiff[]): Promise<KeyDiff[]> {
  if (diffs.length === 0) return [];
  const statement = sql.rowHashesFor(diffs.map((d) => d.key));
  const [primary, secondary] = await Promise.all([
    rowHashes(sides.primary, statement),
    rowHashes(sides.secondary, statement),
  ]);
  return diffRows(primary, secondary);
}

export interface Classified {
  mismatched: KeyDiff[];
  inFlight: KeyDiff[];
}

export async function classify(
  sides: Sides,
  sql: TableSql,
  log: ChangeLog | undefined,
  diffs: KeyDiff[],
  options: { rounds: number; pauseMs: number; signal?: AbortSignal },
): Promise<Classified> {
  const mismatched: KeyDiff[] = [];
  let unresolved = diffs;
  for (let round = 1; round <= options.rounds && unresolved.length > 0; round++) {
    if (round > 1) await sleep(options.pauseMs, options.signal);
    const before = log
      ? await changesOf(
          sides.primary,
          sql,
          log,
          unresolved.map((d) => d.key),
        )
      : new Map<string, KeyChanges>();
    const stillPending = unresolved.filter((d) => before.get(keyId(d.key))?.pending);
    const settled = unresolved.filter((d) => !before.get(keyId(d.key))?.pending);
    const differing = await reread(sides, sql, settled);
    const after = log
      ? await changesOf(
          sides.primary,
          sql,
          log,
          differing.map((d) => d.key),
        )
      : new Map<string, KeyChanges>();
    const unsettled: KeyDiff[] = [];
    for (const diff of differing) {
      const id = keyId(diff.key);
      if (unchanged(before.get(id), after.get(id)) && !after.get(id)?.pending) mismatched.push(diff);
      else unsettled.push(diff);
    }
    unresolved = [...stillPending, ...unsettled];
  }
  return { mismatched, inFlight: unresolved };
}
