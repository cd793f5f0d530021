// copy_data: parallel — the console's own initial copy of one sync's tables: each table (or key range
// of a large one) streamed from the primary with COPY ... TO STDOUT straight into COPY ... FROM STDIN
// on the secondary, with session_replication_role = replica there, several at once. The sync and its
// delta triggers exist before any of it, so whatever changes during the copy is applied by Bucardo
// afterwards (docs/how-bucardo-behaves.md, "The console's parallel copy"). Each unit commits on its
// own and is recorded as done; an interrupted copy continues with the units not done.
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type { Activity } from '../activity.js';
import { openClient, withClient, withTransaction, type Client } from '../db.js';
import { setLocalLockTimeout, tryInSavepoint } from '../ddl.js';
import { errorMessage, InterruptedError, OperatorError } from '../errors.js';
import type { Job } from '../job.js';
import type { Announcer } from '../plugin.js';
import { runPool } from '../pool.js';
import { quoteIdent, quoteQualified } from '../quote.js';
import { relgroupMembers, withMetadata } from '../bucardo/metadata.js';
import { copyOutStatement, planCopy, planTables, rangePredicate, type CopyUnit } from './plan.js';
import { copyingPid, currentRecord, writeCopyRecord, type CopyRecord } from './state.js';
import { withThousands } from '../numbers.js';

export interface CopyContext {
  job: Job;
  activity: Activity;
  progress(text: string): void;
  log(text: string): void;
  /** Each table, once all its units are done, is announced (tableCopied) while the rest copies on. */
  announce: Pick<Announcer, 'tableCopied'>;
}

export interface CopyResult {
  sync: string;
  /** Already done before this run (nothing to do when every unit was). */
  alreadyDone: boolean;
  tables: number;
  units: number;
  /** Units copied by this run, and those a previous run had finished (not copied again). */
  unitsCopied: string[];
  unitsSkipped: string[];
  rows: number;
  bytes: number;
  seconds: number;
  jobs: number;
}

/**
 * Some tables of a sync rather than its whole relgroup: tables added to a sync that already replicates
 * (schema.add_tables). `record` names the copy's own record, so it never mixes with the sync's.
 */
export interface CopySubset {
  record: string;
  tables: { schema: string; name: string }[];
}

/** A copy whose rows are all on the secondary, and what its finished tables set off, still running. */
export interface CopyRun {
  result: CopyResult;
  /**
   * Resolves, never rejects, once every listener of the tables' announcements has finished (the
   * indexes plugin rebuilding them), with the lines they said. The caller must wait for it before its
   * command ends; it may start other work first (bucardo.start starts the daemon meanwhile).
   */
  afterTables: Promise<string[]>;
}

/** The sync's creation time: what ties a copy record to this sync and not an earlier one of the same name. */
export async function syncCreated(
  job: Job,
  syncName: string,
  activity?: Activity,
): Promise<string | undefined> {
  return withMetadata(
    job,
    async (client) =>
      (
        await client.query<{ cdate: string }>(
          'SELECT cdate::text AS cdate FROM bucardo.sync WHERE name = $1',
          [syncName],
        )
      ).rows[0]?.cdate,
    activity,
  );
}

/** How long a unit waits for its table on the secondary before it copies without COPY FREEZE. */
const FREEZE_LOCK_WAIT_MS = 2000;
/** Smaller tables gain nothing measurable from COPY FREEZE: they are not truncated for it. */
const FREEZE_MIN_BYTES = 1024 * 1024;

/** Counts bytes and rows (text COPY ends every row with a newline; newlines in values are escaped). */
class Meter extends Transform {
  bytes = 0;
  rows = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) this.rows += 1;
    callback(null, chunk);
  }
}

/**
 * One unit in one transaction on the target: its rows are either all there or none. A whole table is
 * emptied with TRUNCATE in that same transaction where it can be, so its rows can be written with COPY
 * FREEZE: already frozen and visible to all, the index builds and the first reads after the copy do
 * not have to set every row's hint bits (writing every page once more), and VACUUM has nothing to
 * freeze later. Not for a table under FREEZE_MIN_BYTES, nor where it cannot be: a foreign key of
 * another table references it, it is not an ordinary table on the secondary, the role may not
 * TRUNCATE it, someone uses it on the secondary, or on the middle hop of a cascade (a TRUNCATE there is
 * recorded for the next hop): then its rows are written plainly. A truncated table stays locked on the
 * secondary until its copy commits.
 */
async function copyUnit(
  source: Client,
  target: Client,
  unit: CopyUnit,
  options: { deleteFirst: boolean; mayTruncate: boolean },
  meter: Meter,
): Promise<void> {
  const table = quoteQualified(unit.schema, unit.name);
  const columns = unit.columns.map(quoteIdent).join(', ');
  const where = rangePredicate(unit);
  await withTransaction(target, async () => {
    // Bucardo writes the same way: no user or foreign-key triggers fire for the copied rows, so tables
    // can arrive in any order and at once.
    await target.query('SET LOCAL session_replication_role = replica');
    const frozen =
      !unit.range &&
      unit.bytes >= FREEZE_MIN_BYTES &&
      options.mayTruncate &&
      (await truncateInTransaction(target, table));
    // A range a previous run may have half copied (or copied and not recorded) is cleared first.
    if (!frozen && options.deleteFirst) await target.query(`DELETE FROM ${table}${where}`);
    const ingest = target.query(
      copyFrom(`COPY ${table} (${columns}) FROM STDIN${frozen ? ' WITH (FREEZE)' : ''}`),
    );
    await pipeline(source.query(copyTo(copyOutStatement(unit))), meter, ingest);
  });
}

/**
 * One whole table replaced on the target in one transaction: TRUNCATE ONLY, then its rows streamed
 * from the source with COPY (cutover.copy_at_cutover: tables without a primary key, copied while
 * writes are stopped). Either the target holds the source's rows or, after any failure, what it held
 * before. The TRUNCATE's lock wait is bounded by lockTimeoutMs; no trigger fires (replica mode).
 */
export async function replaceTable(
  source: Client,
  target: Client,
  table: { schema: string; name: string; columns: string[] },
  lockTimeoutMs: number,
): Promise<{ rows: number; bytes: number }> {
  const qualified = quoteQualified(table.schema, table.name);
  const columns = table.columns.map(quoteIdent).join(', ');
  const meter = new Meter();
  await withTransaction(target, async () => {
    await target.query('SET LOCAL session_replication_role = replica');
    await setLocalLockTimeout(target, lockTimeoutMs);
    await target.query(`TRUNCATE ONLY ${qualified}`);
    const ingest = target.query(copyFrom(`COPY ${qualified} (${columns}) FROM STDIN`));
    await pipeline(source.query(copyTo(`COPY ${qualified} (${columns}) TO STDOUT`)), meter, ingest);
  });
  return { rows: meter.rows, bytes: meter.bytes };
}

/**
 * TRUNCATE ONLY inside the open transaction, for an ordinary table; false (and nothing done) where it
 * cannot be: not an ordinary table on the secondary (partitioned, foreign, a view), referenced by
 * another table's foreign key (feature not supported, class 0A), no TRUNCATE privilege (42501), or
 * someone is using the table on the secondary (its exclusive lock not had within FREEZE_LOCK_WAIT_MS:
 * the rows are then written plainly rather than keeping every later reader of the table waiting).
 */
async function truncateInTransaction(target: Client, table: string): Promise<boolean> {
  const { rows } = await target.query<{ relkind: string }>(
    'SELECT relkind FROM pg_class WHERE oid = $1::regclass',
    [table],
  );
  if (rows[0]?.relkind !== 'r') return false;
  return tryInSavepoint(target, `TRUNCATE ONLY ${table}`, {
    timeoutMs: FREEZE_LOCK_WAIT_MS,
    mayRefuse: (error) => {
      const code = (error as { code?: string }).code ?? '';
      return code.startsWith('0A') || code === '42501';
    },
  });
}

/**
 * Empties the target tables once, at the start of a fresh copy; tables already empty are left alone
 * (no lock taken, no TRUNCATE recorded anywhere). One TRUNCATE of the rest (foreign keys between them
 * allow that); DELETE instead when a table outside the sync references one of them, and always on the
 * middle hop of a cascade: a TRUNCATE there would be recorded by the B→C sync's ALWAYS truncate
 * trigger, and replaying it on C fails on tables that foreign keys reference (Bucardo truncates them
 * one at a time). No foreign-key or user trigger fires in replica mode.
 */
async function emptyTargets(target: Client, tables: string[], cascadeMiddle: boolean): Promise<string> {
  const quoted = tables.map((t) => {
    const dot = t.indexOf('.');
    return quoteQualified(t.slice(0, dot), t.slice(dot + 1));
  });
  const filled: string[] = [];
  for (const table of quoted)
    if ((await target.query(`SELECT 1 FROM ${table} LIMIT 1`)).rows.length) filled.push(table);
  if (filled.length === 0) return `the ${tables.length} secondary table(s) are empty`;
  return withTransaction(target, async () => {
    await target.query('SET LOCAL session_replication_role = replica');
    if (!cascadeMiddle) {
      try {
        await target.query('SAVEPOINT truncate');
        await target.query(`TRUNCATE ${filled.join(', ')}`);
        return `emptied ${filled.length} secondary table(s) with TRUNCATE`;
      } catch (error) {
        if ((error as { code?: string }).code !== '0A000') throw error;
        await target.query('ROLLBACK TO SAVEPOINT truncate');
      }
    }
    for (const table of filled) await target.query(`DELETE FROM ${table}`);
    return `emptied ${filled.length} secondary table(s) with DELETE`;
  });
}

function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/**
 * Copies the tables of one sync from the primary to the secondary. Safe to run again: a finished copy
 * is not repeated, an interrupted one continues with the units not done. The caller makes sure the
 * daemon is not applying this sync meanwhile.
 */
export async function copySync(
  ctx: CopyContext,
  syncName: string,
  relgroup: string,
  subset?: CopySubset,
): Promise<CopyRun> {
  const { job, activity } = ctx;
  // A subset (tables added to a running sync) keeps a record of its own: the sync's is finished.
  const recordName = subset?.record ?? syncName;
  const began = Date.now();
  const created = await syncCreated(job, syncName, activity);
  if (!created) {
    throw new OperatorError(
      `Sync ${syncName} does not exist, so there is nothing to copy yet: the copy must start after the sync's triggers record changes. Run bucardo.add_triggers first.`,
    );
  }
  let record = currentRecord(job, recordName, created);
  const other = copyingPid(record);
  if (other !== undefined && other !== process.pid) {
    throw new OperatorError(
      `Another process (pid ${other}) is copying the tables of sync ${syncName} now. Wait for it with bucardo.wait_for_copy; two copies into the same tables would collide.`,
    );
  }
  const jobs = job.config.bucardo.copyJobs;
  if (record?.finishedAt) {
    const result: CopyResult = {
      sync: syncName,
      alreadyDone: true,
      tables: planTables(record.plan).size,
      units: record.plan.length,
      unitsCopied: [],
      unitsSkipped: record.done,
      rows: record.rowsDone,
      bytes: record.bytesDone,
      seconds: 0,
      jobs,
    };
    return { result, afterTables: Promise.resolve([]) };
  }
  if (!record) {
    ctx.progress('planning the copy: table sizes and key ranges on the primary');
    const members = subset
      ? subset.tables
      : (await withMetadata(job, (client) => relgroupMembers(client, relgroup), activity)).filter(
          (m) => m.reltype === 'table',
        );
    const tables = members.map(({ schema, name }) => ({ schema, name }));
    const plan = await withClient(job, { role: 'primary', activity }, (client) =>
      planCopy(client, tables, job.config.bucardo.copySplitRows),
    );
    record = {
      sync: recordName,
      syncCreated: created,
      plan,
      emptied: false,
      done: [],
      rowsDone: 0,
      bytesDone: 0,
    };
  }
  const state: CopyRecord = record;
  state.pid = process.pid;
  state.startedAt ??= new Date().toISOString();
  writeCopyRecord(job, state);

  const resumed = state.emptied;
  const tables = planTables(state.plan);
  if (!state.emptied) {
    ctx.progress(`emptying ${tables.size} secondary table(s)`);
    const how = await withClient(job, { role: 'secondary', activity }, (client) =>
      emptyTargets(client, [...tables.keys()], job.config.databases.secondary.cascade),
    );
    ctx.log(how);
    state.emptied = true;
    writeCopyRecord(job, state);
  }

  const finishing = tableAnnouncements(ctx, state);
  // Tables a previous run finished are announced at once: a listener does only what is still missing.
  for (const unit of state.plan) finishing.unitDone(unit);

  const skipped = [...state.done];
  const todo = state.plan.filter((unit) => !state.done.includes(unit.id));
  const copied: string[] = [];
  const inFlight = new Set<Meter>();
  const rowsTotal = state.plan.reduce((sum, u) => sum + u.rows, 0);
  const bytesTotal = state.plan.reduce((sum, u) => sum + u.bytes, 0);
  const rowsBefore = state.rowsDone;
  const bytesBefore = state.bytesDone;
  const report = () => {
    const live = [...inFlight].reduce((sum, m) => ({ rows: sum.rows + m.rows, bytes: sum.bytes + m.bytes }), {
      rows: 0,
      bytes: 0,
    });
    const rows = state.rowsDone + live.rows;
    const bytes = state.bytesDone + live.bytes;
    const tablesDone = [...tables.values()].filter((ids) =>
      ids.every((id) => state.done.includes(id)),
    ).length;
    const seconds = (Date.now() - began) / 1000;
    const rate = (rows - rowsBefore) / Math.max(seconds, 0.001);
    const left = rate > 0 && rowsTotal > rows ? Math.round((rowsTotal - rows) / rate) : undefined;
    ctx.progress(
      `copying: tables ${tablesDone}/${tables.size} (ranges ${state.done.length}/${state.plan.length}), ` +
        `${withThousands(rows)} of ~${withThousands(rowsTotal)} rows, ${formatBytes(bytes)} streamed` +
        ` (~${formatBytes(bytesTotal)} on disk), ${inFlight.size} at once${left !== undefined ? `, ~${left} s left` : ''}`,
    );
  };
  const timer = setInterval(report, 1000);
  let copyEnded = Date.now();
  let queue = [...todo];
  let copiedAll = false;
  try {
    await runPool<{ source: Client; target: Client }, CopyUnit>({
      workers: Math.min(jobs, Math.max(1, todo.length)),
      activity,
      withResource: async (_worker, loop) => {
        const source = await openClient(job, {
          role: 'primary',
          activity,
          applicationName: 'bucardo-console copy',
        });
        try {
          const target = await openClient(job, {
            role: 'secondary',
            activity,
            applicationName: 'bucardo-console copy',
          });
          try {
            await loop({ source, target });
          } finally {
            await target.end().catch(() => undefined);
          }
        } finally {
          await source.end().catch(() => undefined);
        }
      },
      next: () => {
        const [unit, ...rest] = queue;
        queue = rest;
        return unit;
      },
      work: async (unit, { source, target }) => {
        const meter = new Meter();
        inFlight.add(meter);
        try {
          await copyUnit(
            source,
            target,
            unit,
            { deleteFirst: resumed, mayTruncate: !job.config.databases.secondary.cascade },
            meter,
          );
        } finally {
          inFlight.delete(meter);
        }
        state.done.push(unit.id);
        state.rowsDone += meter.rows;
        state.bytesDone += meter.bytes;
        copied.push(unit.id);
        writeCopyRecord(job, state);
        finishing.unitDone(unit);
      },
    });
    copiedAll = true;
  } catch (error) {
    if (activity.interrupted || error instanceof InterruptedError)
      ctx.log(
        `Copy interrupted: ${state.done.length} of ${state.plan.length} table(s)/range(s) are done and recorded; ` +
          'run bucardo.copy (or bucardo.start) again to continue with the rest (a half-copied range is cleared and copied again).',
      );
    throw error;
  } finally {
    clearInterval(timer);
    delete state.pid;
    if (state.done.length === state.plan.length) state.finishedAt = new Date().toISOString();
    writeCopyRecord(job, state);
    copyEnded = Date.now();
    // After a failure or Ctrl-C nothing set off by the copy is left running behind it.
    if (!copiedAll) await finishing.settled();
  }
  const result: CopyResult = {
    sync: syncName,
    alreadyDone: false,
    tables: tables.size,
    units: state.plan.length,
    unitsCopied: copied,
    unitsSkipped: skipped,
    rows: state.rowsDone - rowsBefore,
    bytes: state.bytesDone - bytesBefore,
    seconds: (copyEnded - began) / 1000,
    jobs,
  };
  return { result, afterTables: finishing.settled().then(() => finishing.lines) };
}

/**
 * Announces each table of the plan once all its units are done, without waiting: the listeners (the
 * indexes plugin rebuilding that table's dropped indexes) run while the other tables copy. A
 * listener's failure is reported, never thrown: the rows are copied and recorded either way, and
 * what the listener did not do stays for its own command (indexes.recreate).
 */
function tableAnnouncements(ctx: CopyContext, state: CopyRecord) {
  const units = new Map<string, CopyUnit[]>();
  for (const unit of state.plan) {
    const key = JSON.stringify([unit.schema, unit.name]);
    units.set(key, [...(units.get(key) ?? []), unit]);
  }
  const announced = new Set<string>();
  const running = new Set<Promise<void>>();
  const lines: string[] = [];
  const say = (line: string) => {
    lines.push(line);
    ctx.log(line);
  };
  return {
    lines,
    unitDone(unit: CopyUnit): void {
      const key = JSON.stringify([unit.schema, unit.name]);
      if (announced.has(key) || !units.get(key)!.every((u) => state.done.includes(u.id))) return;
      if (ctx.activity.interrupted) return;
      announced.add(key);
      const listening: Promise<void> = ctx.announce
        .tableCopied({ schema: unit.schema, name: unit.name })
        .then(
          (said) => said.forEach(say),
          (error: unknown) =>
            say(`after copying ${quoteQualified(unit.schema, unit.name)}: ${errorMessage(error)}`),
        )
        .finally(() => running.delete(listening));
      running.add(listening);
    },
    async settled(): Promise<void> {
      while (running.size) {
        ctx.progress(
          `rows copied; waiting for what ${running.size} finished table(s) set off (index rebuilds)`,
        );
        await Promise.allSettled([...running]);
      }
    },
  };
}
