// The pre-check of cutover.finish (and cutover.rollback), before the write pause: it takes a horizon
// of its own the way verify does (capture.ts, takeHorizon; the hold is left as the verify put it, so
// every record since the verify's horizon stays kept), then compares every key changed since the
// base horizon (the last verify's, or an earlier pre-check's), in snapshot pairs like verify's ranges
// (since-horizon.ts): a key with a change record at or after the new horizon is set apart (the final
// check in the pause compares it, since it starts at the new horizon), any other key must be equal,
// and one that differs is a real difference: the switch is refused before anything is paused. So the
// final check in the pause compares only what changed in the last seconds (docs/cutover.md, "The
// pre-check").
//
// Tables it cannot compare key by key (no change capture, no primary key, truncated since the base
// horizon, a schema that differs) are left to the final check, which compares them whole (or reports
// the schema) as before.
import type { Activity } from '../../../src/core/activity.js';
import type { Client } from '../../../src/core/db.js';
import type { Job } from '../../../src/core/job.js';
import { appendAll } from '../../../src/core/arrays.js';
import { diffRows, keyId, rowHashes, type KeyDiff, type Sides } from '../../../src/core/compare/ranges.js';
import { findChangeLog, type ChangeLog } from '../../../src/core/compare/in-flight.js';
import { collationsDiffer, shapeProblems, tableId } from '../../../src/core/compare/shape.js';
import { TableSql } from '../../../src/core/compare/sql.js';
import { takeHorizon, truncatedSince, type ChangeHorizon } from './capture.js';
import { runTasks, withComparison } from './pool.js';
import { describeKey, type RowDifference } from './report.js';
import { inSnapshots } from './since-horizon.js';
import type { CutoverSettings } from '../settings.js';

const BATCH_KEYS = 10_000;
const MAX_LISTED = 20;
/** Keys set apart recorded per table for the final check (it finds them by their records anyway). */
const MAX_SET_APART_RECORDED = 1000;

export interface PreCheckTable {
  table: string;
  /** Keys changed since the base horizon, compared row by row. */
  keysCompared: number;
  /** Of them, keys changed again since the new horizon: the final check in the pause compares them. */
  setApart: number;
  /** Why the table was left to the final check (compared whole there). */
  leftToFinalCheck?: string;
  differing: { key: string; difference: RowDifference }[];
}

export interface PreCheck {
  passed: boolean;
  /** The base horizon the keys were taken from (null: every kept change record). */
  from: string | null;
  /** The pre-check's own horizon: where the final check in the pause starts. */
  horizon: ChangeHorizon;
  keysCompared: number;
  setApart: number;
  tables: PreCheckTable[];
  /** The keys set apart that differed, per table, as {column: value}: the final check compares them by name too. */
  inFlight: Record<string, Record<string, string>[]>;
  seconds: number;
  verdict: string;
}

export interface PreCheckOptions {
  settings: CutoverSettings;
  /** Keys an earlier comparison left in flight, per table: compared too (they changed since the base horizon). */
  inFlight?: Map<string, Record<string, string>[]>;
  /** Connection pairs opened by the caller: used first, left open. */
  sessions?: Sides[];
  activity: Activity;
  progress(text: string): void;
}

async function keysSince(
  primary: Client,
  sql: TableSql,
  log: ChangeLog,
  from: string | null,
): Promise<string[][]> {
  const statement = sql.changedKeys(log.delta, {}, from);
  const { rows } = await primary.query<{ key: string[] }>(statement.text, statement.values);
  return rows.map((row) => row.key);
}

export async function runPreCheck(
  job: Job,
  base: ChangeHorizon,
  options: PreCheckOptions,
): Promise<PreCheck> {
  const started = Date.now();
  const { activity, progress } = options;
  let taken: ChangeHorizon | undefined;
  const opening = {
    sessions: options.sessions,
    jobs: options.settings.jobs,
    activity,
    // Before anything is read: every change the comparison below may not see on both sides has a
    // record at or after this horizon (capture.ts), and the hold keeps it.
    first: async (primary: Client) => {
      taken = await takeHorizon(primary, job, 'the pre-check');
    },
  };
  return withComparison(job, opening, async ({ pool, method, scope, ourShapes, theirShapes }) => {
    const horizon = taken!;
    // A table truncated since the base horizon has changes without per-key records: the final check compares it whole.
    const truncated = await truncatedSince(pool[0]!.primary, job, base.from);

    const tables: PreCheckTable[] = [];
    const inFlight: Record<string, Record<string, string>[]> = {};
    let done = 0;
    await runTasks(
      pool,
      scope.tables.map((relation) => async (sides: Sides) => {
        const id = tableId(relation);
        const result: PreCheckTable = { table: id, keysCompared: 0, setApart: 0, differing: [] };
        tables.push(result);
        const ours = ourShapes.get(id);
        const theirs = theirShapes.get(id);
        if (!ours || shapeProblems(ours, theirs).length) {
          result.leftToFinalCheck = 'schema differs';
          return;
        }
        const sql = new TableSql(ours, method, collationsDiffer(ours, theirs!));
        const log = sql.hasKey ? await findChangeLog(sides.primary, sql, job) : undefined;
        if (!log) {
          result.leftToFinalCheck = sql.hasKey ? 'no change capture' : 'no primary key';
          return;
        }
        if (truncated.has(id)) {
          result.leftToFinalCheck = 'truncated since the horizon';
          return;
        }
        const keys = await keysSince(sides.primary, sql, log, base.from);
        const listed = new Set(keys.map(keyId));
        appendAll(
          keys,
          (options.inFlight?.get(id) ?? [])
            .map((key) => sql.shape.key.map((column) => key[column.name]))
            .filter((key): key is string[] => key.every((value) => value !== undefined))
            .filter((key) => !listed.has(keyId(key))),
        );
        result.keysCompared = keys.length;
        const setApartDiffs: KeyDiff[] = [];
        for (let i = 0; i < keys.length; i += BATCH_KEYS) {
          activity.throwIfInterrupted();
          const statement = sql.rowHashesFor(keys.slice(i, i + BATCH_KEYS));
          // The secondary's snapshot first, then the primary's (since-horizon.ts): every change the
          // secondary holds is visible on the primary with its record.
          const { diffs, recent } = await inSnapshots(sides, async () => {
            const [theirRows, { ourRows, recent }] = await Promise.all([
              rowHashes(sides.secondary, statement),
              (async () => {
                const recent = new Set((await keysSince(sides.primary, sql, log, horizon.from)).map(keyId));
                return { recent, ourRows: await rowHashes(sides.primary, statement) };
              })(),
            ]);
            return { diffs: diffRows(ourRows, theirRows), recent };
          });
          result.setApart += keys.slice(i, i + BATCH_KEYS).filter((key) => recent.has(keyId(key))).length;
          for (const d of diffs) {
            if (recent.has(keyId(d.key))) {
              setApartDiffs.push(d);
              continue;
            }
            const key = Object.fromEntries(sql.shape.key.map((column, n) => [column.name, d.key[n]!]));
            result.differing.push({ key: describeKey(key), difference: d.kind });
          }
        }
        if (setApartDiffs.length)
          inFlight[id] = setApartDiffs
            .slice(0, MAX_SET_APART_RECORDED)
            .map((d) => Object.fromEntries(sql.shape.key.map((column, n) => [column.name, d.key[n]!])));
        progress(`${++done}/${scope.tables.length} tables pre-checked`);
      }),
      activity,
    );
    tables.sort((x, y) => x.table.localeCompare(y.table));
    const failing = tables.filter((t) => t.differing.length > 0);
    const keysCompared = tables.reduce((sum, t) => sum + t.keysCompared, 0);
    const setApart = tables.reduce((sum, t) => sum + t.setApart, 0);
    const left = tables.filter((t) => t.leftToFinalCheck).length;
    const passed = failing.length === 0;
    const leftText = left ? `, ${left} table(s) left to the final check` : '';
    return {
      passed,
      from: base.from,
      horizon,
      keysCompared,
      setApart,
      tables,
      inFlight,
      seconds: Math.round((Date.now() - started) / 100) / 10,
      verdict: passed
        ? `${keysCompared} key(s) changed since ${base.from ?? 'the hold began'} equal in ${tables.length} table(s) (${setApart} changed again since, left to the final check${leftText})`
        : failing.map(describeFailure).join('; '),
    };
  });
}

function describeFailure(t: PreCheckTable): string {
  const keys = t.differing.slice(0, MAX_LISTED).map((d) => `${d.key} (${d.difference})`);
  if (t.differing.length > MAX_LISTED) keys.push(`${t.differing.length - MAX_LISTED} more`);
  return `${t.table}: ${keys.join('; ')}`;
}
