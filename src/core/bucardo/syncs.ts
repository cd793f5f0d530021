// A job's Bucardo syncs. Bucardo applies each sync with one worker (KID), so bucardo.syncs: N splits
// the job's tables into N syncs applied in parallel. N = 1 is the one sync named after the job, as
// always; N > 1 are <name>_1 ... <name>_N, each with its own relgroup of the same name, all sharing
// the job's dbgroup (job.dbgroupName; so every delta row's target stays the same whatever N is).
// Which table is in which sync is recorded in the relgroups and read back from there, never recomputed
// for a table already recorded.
import type { Client } from '../db.js';
import type { Job } from '../job.js';
import type { Relation } from '../objects.js';
import { assignTables, type TableLoad } from './balance.js';
import { syncRow, withMetadata, type SyncRow } from './metadata.js';
import type { Activity } from '../activity.js';
import { DatabaseContext } from '../context.js';

export interface JobSync {
  name: string;
  relgroup: string;
  /** 0-based */
  index: number;
}

export function syncCount(job: Job): number {
  return Math.max(1, job.config.bucardo.syncs ?? 1);
}

/** The job's syncs in order; the first also carries the sequences. */
export function jobSyncs(job: Job): JobSync[] {
  const count = syncCount(job);
  if (count === 1) return [{ name: job.syncName, relgroup: job.relgroupName, index: 0 }];
  return Array.from({ length: count }, (_, index) => ({
    name: `${job.syncName}_${index + 1}`,
    relgroup: `${job.relgroupName}_${index + 1}`,
    index,
  }));
}

export function syncNames(job: Job): string[] {
  return jobSyncs(job).map((s) => s.name);
}

/** The job's syncs recorded in Bucardo (all of them once bucardo.add_triggers has run), in order. */
export async function recordedSyncs(client: Client, job: Job): Promise<SyncRow[]> {
  const rows = await Promise.all(syncNames(job).map((name) => syncRow(client, name)));
  return rows.filter((row): row is SyncRow => row !== undefined);
}

/** "schema.table" → the sync whose relgroup records it (tables only). */
export async function recordedTableSyncs(client: Client, job: Job): Promise<Map<string, JobSync>> {
  const syncs = jobSyncs(job);
  const { rows } = await client.query<{ relgroup: string; table: string }>(
    `SELECT h.herd AS relgroup, g.schemaname || '.' || g.tablename AS table
       FROM bucardo.herdmap h JOIN bucardo.goat g ON g.id = h.goat
      WHERE h.herd = ANY($1) AND g.reltype = 'table' ORDER BY h.herd, 2`,
    [syncs.map((s) => s.relgroup)],
  );
  const byRelgroup = new Map(syncs.map((s) => [s.relgroup, s]));
  return new Map(rows.map((row) => [row.table, byRelgroup.get(row.relgroup)!]));
}

/** The job's tables per sync, from the metadata (every sync listed, with no tables when none recorded). */
export async function tablesBySync(
  source: Job | DatabaseContext,
  activity?: Activity,
): Promise<Map<string, string[]>> {
  const job = source instanceof DatabaseContext ? source.job : source;
  const recorded = await withMetadata(source, (client) => recordedTableSyncs(client, job), activity);
  const result = new Map(syncNames(job).map((name) => [name, [] as string[]]));
  for (const [table, sync] of recorded) result.get(sync.name)!.push(table);
  return result;
}

/**
 * Relgroups with members on this job's primary that carry this job's name but are not among its
 * syncs' relgroups: the job was installed with another bucardo.syncs. Their tables would be left out
 * of every sync. (A relgroup <name>_2 on another database is another job's.)
 */
export async function strayRelgroups(client: Client, job: Job): Promise<string[]> {
  const own = jobSyncs(job).map((s) => s.relgroup);
  const { rows } = await client.query<{ name: string }>(
    `SELECT DISTINCT h.herd AS name FROM bucardo.herdmap h JOIN bucardo.goat g ON g.id = h.goat
      WHERE (h.herd = $1 OR h.herd ~ ('^' || $1 || '_[0-9]+$')) AND NOT h.herd = ANY($2) AND g.db = $3
      ORDER BY 1`,
    [job.relgroupName, own, job.bucardoDbName.primary],
  );
  return rows.map((row) => row.name);
}

/** Size and writes of each table on the primary: what the balancing weighs. */
export async function tableLoads(primary: Client, tables: Relation[]): Promise<TableLoad[]> {
  const { rows } = await primary.query<{ table: string; bytes: string; writes: string }>(
    `SELECT t.schema || '.' || t.name AS table, pg_total_relation_size(c.oid)::text AS bytes,
            coalesce(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0)::text AS writes
       FROM unnest($1::text[], $2::text[]) AS t(schema, name)
       JOIN pg_namespace n ON n.nspname = t.schema
       JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.name
       LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  return rows.map((row) => ({ table: row.table, bytes: Number(row.bytes), writes: Number(row.writes) }));
}

/** Pairs of tables in the list tied by a foreign key (either direction), from pg_constraint. */
export async function foreignKeyLinks(primary: Client, tables: Relation[]): Promise<[string, string][]> {
  const { rows } = await primary.query<{ a: string; b: string }>(
    `WITH scope AS (
       SELECT c.oid, t.schema || '.' || t.name AS name
         FROM unnest($1::text[], $2::text[]) AS t(schema, name)
         JOIN pg_namespace n ON n.nspname = t.schema
         JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.name)
     SELECT a.name AS a, b.name AS b FROM pg_constraint k
       JOIN scope a ON a.oid = k.conrelid JOIN scope b ON b.oid = k.confrelid
      WHERE k.contype = 'f' AND k.conrelid <> k.confrelid`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  return rows.map((row) => [row.a, row.b]);
}

export interface SyncPlan {
  /** Tables not yet recorded, by the sync they go to. */
  additions: Map<JobSync, string[]>;
  /** Syncs left without any table (fewer table groups than syncs). */
  empty: JobSync[];
  load: { weight: number; tables: number }[];
}

/**
 * Where the tables in scope not yet recorded go: the recorded ones stay, the others are balanced by
 * size and write rate, tables tied by foreign keys together.
 */
export async function planSyncs(
  job: Job,
  metadata: Client,
  primary: Client,
  tables: Relation[],
): Promise<SyncPlan> {
  const syncs = jobSyncs(job);
  const recordedSyncs = await recordedTableSyncs(metadata, job);
  const recorded = new Map([...recordedSyncs].map(([table, sync]) => [table, sync.index]));
  const loads = await tableLoads(primary, tables);
  const links = await foreignKeyLinks(primary, tables);
  const { syncOf, load } = assignTables(loads, links, syncs.length, recorded);
  const additions = new Map<JobSync, string[]>();
  for (const [table, index] of syncOf) {
    if (recorded.has(table)) continue;
    const sync = syncs[index]!;
    additions.set(sync, [...(additions.get(sync) ?? []), table]);
  }
  return { additions, empty: syncs.filter((s) => load[s.index]!.tables === 0), load };
}
