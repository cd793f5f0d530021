// How far Bucardo's initial copy of a job is: tables and bytes done of all, the table being copied
// with its rows, elapsed time and an estimate of the time left. Used by bucardo.status,
// bucardo.wait_for_copy and the kicker's metrics.
import { daemonPid, syncLoaded } from '../bucardo/daemon.js';
import { metadataDatabaseExists, recentRuns, syncRow, withMetadata } from '../bucardo/metadata.js';
import { DatabaseContext, withSession } from '../context.js';
import { jobSyncs, syncCount } from '../bucardo/syncs.js';
import { targetViews, type Job } from '../job.js';
import { copyingPid, currentRecord } from './state.js';
import { planTables } from './plan.js';
import { quoteQualified } from '../quote.js';

export type CopyState = 'not requested' | 'pending' | 'running' | 'done' | 'unknown';

export interface CopyProgress {
  state: CopyState;
  /** The table being copied now, rows written so far, and the primary's estimate of its rows. */
  table?: string;
  rows?: number;
  tableRows?: number;
  tablePercent?: number;
  /** Tables and bytes (heap size on the primary) done and in all, in Bucardo's copy order. */
  tablesDone?: number;
  tablesTotal?: number;
  bytesDone?: number;
  bytesTotal?: number;
  elapsedSeconds?: number;
  remainingSeconds?: number;
  /** With bucardo.syncs > 1: syncs whose copy is done, of all (each sync copies its own tables). */
  syncsDone?: number;
  syncsTotal?: number;
}

/** The recorded tables of the sync in the order Bucardo copies them (its herdmap: priority, then id). */
async function copyOrder(
  job: Job | DatabaseContext,
  relgroup: string,
): Promise<{ schema: string; name: string }[]> {
  return withSession(
    job,
    { role: 'bucardo' },
    async (client) =>
      (
        await client.query<{ schema: string; name: string }>(
          `SELECT g.schemaname AS schema, g.tablename AS name FROM bucardo.herdmap h JOIN bucardo.goat g ON g.id = h.goat
      WHERE h.herd = $1 AND g.reltype = 'table' ORDER BY h.priority DESC, h.goat ASC`,
          [relgroup],
        )
      ).rows,
  );
}

/**
 * Heap size of each table on the primary (what the copy has to move) and its rows estimated as the
 * planner does: rows per page at the last ANALYZE times the pages now. A table never analyzed
 * (reltuples -1, or 0 before PostgreSQL 14 and after an ANALYZE of the empty table) has no rows per
 * page: its estimate is left undefined here, never 0.
 */
async function sourceSizes(
  job: Job | DatabaseContext,
  tables: { schema: string; name: string }[],
): Promise<{ bytes: number; rows?: number }[]> {
  return withSession(job, { role: 'primary' }, async (client) =>
    (
      await client.query<{ bytes: string; rows: string | null }>(
        `SELECT coalesce(pg_relation_size(r), 0)::bigint AS bytes,
                CASE WHEN c.reltuples > 0 AND c.relpages > 0
                     THEN round(c.reltuples / c.relpages * pg_relation_size(r) / current_setting('block_size')::int)::bigint
                END AS rows
       FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(s, t, n)
       LEFT JOIN LATERAL (SELECT to_regclass(format('%I.%I', u.s, u.t)) AS r) x ON true
       LEFT JOIN pg_class c ON c.oid = x.r ORDER BY u.n`,
        [tables.map((t) => t.schema), tables.map((t) => t.name)],
      )
    ).rows.map((row) => ({
      bytes: Number(row.bytes),
      ...(row.rows !== null ? { rows: Number(row.rows) } : {}),
    })),
  );
}

/** Which table the initial copy is writing now and how many rows so far (pg_stat_progress_copy on the target). */
export async function copyInProgress(
  job: Job | DatabaseContext,
): Promise<{ schema: string; name: string; rows: number } | undefined> {
  return withSession(job, { role: 'secondary' }, async (client) => {
    const { rows } = await client.query<{ schema: string; name: string; rows: string }>(
      `SELECT n.nspname AS schema, c.relname AS name, p.tuples_processed AS rows
         FROM pg_stat_progress_copy p JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE p.datid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND p.command = 'COPY FROM'
        ORDER BY p.pid LIMIT 1`,
    );
    return rows[0] ? { schema: rows[0].schema, name: rows[0].name, rows: Number(rows[0].rows) } : undefined;
  });
}

/** Pages read to learn a never-analyzed table's rows per page: a few hundred kB at random. */
const SAMPLE_PAGES = 32;

/**
 * The rows of a table that has no statistics: its heap size at the rows per page of a block sample
 * (TABLESAMPLE SYSTEM reads whole pages; the pages holding a sampled row count). Undefined for an
 * empty heap or a sample that found no rows.
 */
async function sampledRows(
  job: Job | DatabaseContext,
  table: { schema: string; name: string },
  bytes: number,
): Promise<number | undefined> {
  if (bytes === 0) return undefined;
  // The percentage only sizes the sample (pages of the default 8 kB); the estimate uses the real size.
  const percent = Math.min(100, (100 * SAMPLE_PAGES * 8192) / bytes);
  const sample = await withSession(
    job,
    { role: 'primary' },
    async (client) =>
      (
        await client.query<{ rows: string; pages: string; block: number }>(
          `SELECT count(*) AS rows, count(DISTINCT (ctid::text::point)[0]) AS pages,
                current_setting('block_size')::int AS block
           FROM ${quoteQualified(table.schema, table.name)} TABLESAMPLE SYSTEM ($1)`,
          [percent],
        )
      ).rows[0]!,
  );
  const rowsPerPage = Number(sample.pages) > 0 ? Number(sample.rows) / Number(sample.pages) : 0;
  return rowsPerPage > 0 ? Math.round((rowsPerPage * bytes) / sample.block) : undefined;
}

/**
 * How far the copy is. Bucardo copies the tables one at a time (COPY ... FROM STDIN: command
 * 'COPY FROM', type 'PIPE' in pg_stat_progress_copy), in one transaction on the target,
 * in its herdmap order (priority, then goat id): every table before the one pg_stat_progress_copy
 * shows is done, every table after it is still to come. Row counts on the target cannot tell (the
 * transaction is not committed until the last table), and the per-table log lines are only
 * written at log_level verbose. Between two tables no COPY runs: `table` is absent then.
 */
export async function copyProgress(
  job: Job | DatabaseContext,
  relgroup: string,
  startedAt?: Date,
  running = true,
): Promise<Omit<CopyProgress, 'state'>> {
  const order = await copyOrder(job, relgroup);
  const sizes = await sourceSizes(job, order);
  const bytesTotal = sizes.reduce((sum, size) => sum + size.bytes, 0);
  const progress: Omit<CopyProgress, 'state'> = { tablesTotal: order.length, bytesTotal };
  if (startedAt) progress.elapsedSeconds = Math.max(0, Math.round((Date.now() - startedAt.getTime()) / 1000));
  const current = running ? await copyInProgress(job) : undefined;
  if (!current) return progress;
  const index = order.findIndex((t) => t.schema === current.schema && t.name === current.name);
  progress.table = `${current.schema}.${current.name}`;
  progress.rows = current.rows;
  if (index < 0) return progress;
  const size = sizes[index]!;
  const tableRows = size.rows ?? (await sampledRows(job, order[index]!, size.bytes).catch(() => undefined));
  // Without an estimate the table counts as not begun: "rows so far", never "of ~0 (0%)".
  const fraction = tableRows ? Math.min(1, current.rows / tableRows) : 0;
  if (tableRows) {
    progress.tableRows = tableRows;
    progress.tablePercent = Math.round(fraction * 100);
  }
  progress.tablesDone = index;
  progress.bytesDone = Math.round(
    sizes.slice(0, index).reduce((sum, s) => sum + s.bytes, 0) + fraction * size.bytes,
  );
  if (progress.elapsedSeconds !== undefined && progress.bytesDone > 0 && progress.elapsedSeconds > 0) {
    const bytesLeft = bytesTotal - progress.bytesDone;
    progress.remainingSeconds = Math.round((progress.elapsedSeconds * bytesLeft) / progress.bytesDone);
  }
  return progress;
}

/**
 * copy_data: parallel: the console's copy record (src/core/copy/state.ts) of this sync says how far it
 * is: done when every unit is committed, running while the process named in it lives, pending
 * otherwise (not begun, or interrupted with some tables done).
 */
async function parallelCopyState(source: Job | DatabaseContext): Promise<CopyProgress> {
  const job = source instanceof DatabaseContext ? source.job : source;
  const syncs = jobSyncs(job);
  const created = await withMetadata(source, async (client) =>
    Promise.all(
      syncs.map(
        async (s) =>
          (
            await client.query<{ cdate: string }>(
              'SELECT cdate::text AS cdate FROM bucardo.sync WHERE name = $1',
              [s.name],
            )
          ).rows[0]?.cdate,
      ),
    ),
  );
  // With several syncs (bucardo.syncs) each has its own record: the copy is as far as all of them.
  // A sync whose copy has not begun has no record yet: it counts as pending, not as done.
  // A fan-out job has one per sync and target: the copy is as far as the least advanced.
  const all = syncs.flatMap((s, i) =>
    targetViews(job).map((view) => (created[i] ? currentRecord(view, s.name, created[i]) : undefined)),
  );
  const records = all.filter((r) => r !== undefined);
  if (records.length === 0) return { state: 'pending' };
  const progress: Omit<CopyProgress, 'state'> = {
    tablesTotal: 0,
    tablesDone: 0,
    bytesTotal: 0,
    bytesDone: 0,
  };
  for (const r of records) {
    const tables = planTables(r.plan);
    const done = new Set(r.done);
    progress.tablesTotal! += tables.size;
    progress.tablesDone! += [...tables.values()].filter((ids) => ids.every((id) => done.has(id))).length;
    progress.bytesTotal! += r.plan.reduce((sum, u) => sum + u.bytes, 0);
    progress.bytesDone! += r.plan.filter((u) => done.has(u.id)).reduce((sum, u) => sum + u.bytes, 0);
  }
  if (all.every((r) => r?.finishedAt)) return { state: 'done', ...progress };
  const record = records.find((r) => !r.finishedAt && copyingPid(r) !== undefined);
  if (!record) return { state: 'pending', ...progress };
  if (record.startedAt) {
    const elapsed = Math.max(0, Math.round((Date.now() - Date.parse(record.startedAt)) / 1000));
    progress.elapsedSeconds = elapsed;
    if (progress.bytesDone! > 0 && elapsed > 0)
      progress.remainingSeconds = Math.round(
        (elapsed * (progress.bytesTotal! - progress.bytesDone!)) / progress.bytesDone!,
      );
  }
  const current = await copyInProgress(source).catch(() => undefined);
  if (current) {
    progress.table = `${current.schema}.${current.name}`;
    progress.rows = current.rows;
  }
  return { state: 'running', ...progress };
}

/**
 * The initial copy's state: with copy_data parallel from the console's copy record, otherwise from
 * Bucardo's metadata (onetimecopy drops to 0 when the copy kid is done). Given a command's `ctx.db`, it
 * asks on the command's shared sessions.
 */
export async function copyState(source: Job | DatabaseContext): Promise<CopyProgress> {
  const job = source instanceof DatabaseContext ? source.job : source;
  if (job.config.bucardo.copyData === 'never') return { state: 'not requested' };
  if (!(await metadataDatabaseExists(source))) return { state: 'unknown' };
  if (job.config.bucardo.copyData === 'parallel') return parallelCopyState(source);
  if (syncCount(job) > 1) return splitCopyState(source);
  const info = await withMetadata(source, async (client) => ({
    sync: await syncRow(client, job.syncName),
    current: (await recentRuns(client, job.syncName, 1)).find((run) => run.ended === null),
  }));
  if (!info.sync) return { state: 'pending' };
  if (Number(info.sync.onetimecopy) === 0) return { state: 'done' };
  if (!daemonPid(job) || !syncLoaded(job)) return { state: 'pending' };
  const progress = await copyProgress(source, info.sync.relgroup, info.current?.started ?? undefined).catch(
    () => ({}),
  );
  return { state: 'running', ...progress };
}

/**
 * With several syncs each copies its own tables, in parallel: done when every sync's copy is; while
 * running, tables and bytes count whole for the syncs done (the one COPY shown is one of those running).
 */
async function splitCopyState(source: Job | DatabaseContext): Promise<CopyProgress> {
  const job = source instanceof DatabaseContext ? source.job : source;
  const syncs = jobSyncs(job);
  const infos = await withMetadata(source, (client) =>
    Promise.all(
      syncs.map(async (s) => ({
        sync: await syncRow(client, s.name),
        current: (await recentRuns(client, s.name, 1)).find((run) => run.ended === null),
      })),
    ),
  );
  if (infos.some((info) => !info.sync)) return { state: 'pending' };
  const done = infos.map((info) => Number(info.sync!.onetimecopy) === 0);
  const counts = { syncsDone: done.filter(Boolean).length, syncsTotal: syncs.length };
  if (done.every(Boolean)) return { state: 'done', ...counts };
  if (!daemonPid(job) || !syncLoaded(job)) return { state: 'pending', ...counts };
  const progress: CopyProgress = {
    state: 'running',
    ...counts,
    tablesDone: 0,
    tablesTotal: 0,
    bytesDone: 0,
    bytesTotal: 0,
  };
  try {
    for (const [i, info] of infos.entries()) {
      const order = await copyOrder(source, info.sync!.relgroup);
      const bytes = (await sourceSizes(source, order)).reduce((sum, size) => sum + size.bytes, 0);
      progress.tablesTotal! += order.length;
      progress.bytesTotal! += bytes;
      if (done[i]) {
        progress.tablesDone! += order.length;
        progress.bytesDone! += bytes;
      }
    }
    const started = infos
      .filter((info, i) => !done[i] && info.current?.started)
      .map((info) => info.current!.started!.getTime());
    if (started.length)
      progress.elapsedSeconds = Math.max(0, Math.round((Date.now() - Math.min(...started)) / 1000));
    const current = await copyInProgress(source);
    if (current) {
      progress.table = `${current.schema}.${current.name}`;
      progress.rows = current.rows;
    }
  } catch {
    // Progress is a nicety: the state stands without it.
  }
  return progress;
}
