// A job's records in Bucardo's metadata database. Every record a job makes carries its name (names.ts:
// syncs and relgroups <name>[_N], the dbgroup <name>, databases <name>_primary and <name>_secondary,
// the way back's <name>_back), so jobs sharing a metadata database never share one by accident. A job
// installed before the names carried the job's keeps what it has: its databases primary_db and
// secondary_db, and the dbgroup `bucardo add sync ... dbs=` gave its sync, which may be any dbgroup
// with the same databases (docs/how-bucardo-behaves.md §19). This module reads the records and
//  - adopts the names the job's recorded syncs and relgroups use (adoptRecordedNames), so a job
//    installed with the old names keeps working;
//  - creates the job's dbgroup explicitly (ensureDbgroup), so `add sync` never picks another one.
import { runBucardo } from '../bucardo.js';
import type { Activity } from '../activity.js';
import { DatabaseContext } from '../context.js';
import type { Client } from '../db.js';
import { OperatorError } from '../errors.js';
import type { Job } from '../job.js';
import { metadataDatabaseExists, withMetadata } from './metadata.js';
import { databaseRecordNames, LEGACY_DATABASE_NAMES } from './names.js';
import { reverseSyncName } from './reverse.js';
import { jobSyncs, syncNames } from './syncs.js';

export interface DatabaseRecord {
  name: string;
  host: string;
  port: string;
  dbname: string;
}

export interface DbgroupRecord {
  name: string;
  members: { db: string; role: string }[];
}

export interface SyncRecord {
  name: string;
  relgroup: string | null;
  dbgroup: string | null;
}

export interface RelgroupRecord {
  name: string;
  /** The database records its tables and sequences are recorded on (Bucardo allows one). */
  databases: string[];
}

/** Every database, dbgroup, sync and relgroup recorded in a metadata database. */
export interface MetadataRecords {
  databases: DatabaseRecord[];
  dbgroups: DbgroupRecord[];
  syncs: SyncRecord[];
  relgroups: RelgroupRecord[];
}

export async function readRecords(client: Client): Promise<MetadataRecords> {
  const databases = await client.query<DatabaseRecord>(
    `SELECT name, coalesce(dbhost, '') AS host, coalesce(dbport, '')::text AS port, coalesce(dbname, '') AS dbname
       FROM bucardo.db ORDER BY name`,
  );
  const dbgroups = await client.query<DbgroupRecord>(
    `SELECT g.name, coalesce(json_agg(json_build_object('db', m.db, 'role', m.role) ORDER BY m.db)
                              FILTER (WHERE m.db IS NOT NULL), '[]') AS members
       FROM bucardo.dbgroup g LEFT JOIN bucardo.dbmap m ON m.dbgroup = g.name GROUP BY g.name ORDER BY 1`,
  );
  const syncs = await client.query<SyncRecord>(
    'SELECT name, herd AS relgroup, dbs AS dbgroup FROM bucardo.sync ORDER BY name',
  );
  const relgroups = await client.query<RelgroupRecord>(
    `SELECT h.name, coalesce(array_agg(DISTINCT g.db) FILTER (WHERE g.db IS NOT NULL), '{}') AS databases
       FROM bucardo.herd h LEFT JOIN bucardo.herdmap m ON m.herd = h.name
       LEFT JOIN bucardo.goat g ON g.id = m.goat GROUP BY h.name ORDER BY 1`,
  );
  return {
    databases: databases.rows,
    dbgroups: dbgroups.rows,
    syncs: syncs.rows,
    relgroups: relgroups.rows,
  };
}

/** The names a job's records carry, as found in the metadata database (undefined: not recorded). */
export interface RecordedNames {
  databases?: { primary: string; secondary: string };
  dbgroup?: string;
  wayBackDbgroup?: string;
}

/**
 * Which names this job's records carry: the dbgroup of its recorded syncs and the databases in it
 * (source: the primary, target: the secondary); before any sync, the database its relgroups' tables
 * are recorded on, when that is the old primary_db; and the dbgroup of its recorded way back.
 */
export function recordedNames(records: MetadataRecords, job: Job): RecordedNames {
  const names: RecordedNames = {};
  const own = syncNames(job);
  const sync = records.syncs.find((s) => own.includes(s.name) && s.dbgroup);
  if (sync) {
    names.dbgroup = sync.dbgroup!;
    const members = records.dbgroups.find((g) => g.name === sync.dbgroup)?.members ?? [];
    const source = members.filter((m) => m.role === 'source');
    const target = members.filter((m) => m.role === 'target');
    if (source.length === 1 && target.length === 1)
      names.databases = { primary: source[0]!.db, secondary: target[0]!.db };
  } else {
    const relgroups = new Set(jobSyncs(job).map((s) => s.relgroup));
    const onDatabases = new Set(
      records.relgroups.filter((r) => relgroups.has(r.name)).flatMap((r) => r.databases),
    );
    if (onDatabases.size === 1 && onDatabases.has(LEGACY_DATABASE_NAMES.primary))
      names.databases = { ...LEGACY_DATABASE_NAMES };
  }
  const wayBack = records.syncs.find((s) => s.name === reverseSyncName(job) && s.dbgroup);
  if (wayBack) names.wayBackDbgroup = wayBack.dbgroup!;
  return names;
}

/** Sets the job's record names to what the records say, or to the names after the job. */
export function applyRecordedNames(job: Job, names: RecordedNames): void {
  job.bucardoDbName = names.databases ?? databaseRecordNames(job.name);
  job.dbgroupName = names.dbgroup ?? job.name;
  if (names.wayBackDbgroup) job.recordedWayBackDbgroup = names.wayBackDbgroup;
  else delete job.recordedWayBackDbgroup;
}

/**
 * Reads every record of the metadata database and sets the job's record names from them; undefined
 * when there is no metadata database (the names are then the job's own). For commands that change
 * records: a failure to read stops them.
 */
export async function readJobRecords(
  source: Job | DatabaseContext,
  activity?: Activity,
): Promise<MetadataRecords | undefined> {
  const job = source instanceof DatabaseContext ? source.job : source;
  if (!(await metadataDatabaseExists(source, activity))) {
    applyRecordedNames(job, {});
    return undefined;
  }
  const records = await withMetadata(source, readRecords, activity);
  applyRecordedNames(job, recordedNames(records, job));
  return records;
}

/**
 * readJobRecords for commands that only read what the job's names point at (its backlog, its hold,
 * its kicker): run first by every one of them. When the metadata database cannot be read the names
 * stay as they were, and the command meets the same problem itself where it matters.
 */
export async function adoptRecordedNames(source: Job | DatabaseContext, activity?: Activity): Promise<void> {
  await readJobRecords(source, activity).catch(() => undefined);
}

/**
 * Creates the job's dbgroup with its two databases (source, target) unless it is there, before any
 * sync is added: `bucardo add sync ... dbs=` would reuse any dbgroup with the same databases and roles
 * and name it after the sync only otherwise (docs/how-bucardo-behaves.md §19), so a job's sync might
 * replicate to a dbgroup made for another job. Returns what it did, if anything. The way back gets
 * its own (reverseJob).
 */
export async function ensureDbgroup(job: Job, activity?: Activity): Promise<string | undefined> {
  const name = job.dbgroupName;
  const wanted = [
    { db: job.bucardoDbName.primary, role: 'source' },
    { db: job.bucardoDbName.secondary, role: 'target' },
  ];
  const members = await withMetadata(
    job,
    async (client) => {
      const { rows } = await client.query<{ db: string | null; role: string | null }>(
        'SELECT m.db, m.role FROM bucardo.dbgroup g LEFT JOIN bucardo.dbmap m ON m.dbgroup = g.name WHERE g.name = $1',
        [name],
      );
      return rows.length ? rows.filter((r) => r.db !== null) : undefined;
    },
    activity,
  );
  const missing = wanted.filter((w) => !members?.some((m) => m.db === w.db && m.role === w.role));
  const unexpected = (members ?? []).filter((m) => !wanted.some((w) => w.db === m.db && w.role === m.role));
  if (unexpected.length)
    throw new OperatorError(
      `The dbgroup ${name} in the metadata database ${job.metadataDb} holds ${unexpected.map((m) => `${m.db} as ${m.role}`).join(', ')}, but ${job.name} needs it to hold exactly ${wanted.map((w) => `${w.db} as ${w.role}`).join(' and ')}: a sync on it would replicate between other databases. Nothing was created. If it is a leftover no sync uses, remove it (bucardo remove dbgroup ${name}) and run the command again.`,
    );
  if (missing.length === 0) return undefined;
  await runBucardo(job, ['add', 'dbgroup', name, ...missing.map((m) => `${m.db}:${m.role}`)], {
    ...(activity ? { activity } : {}),
  });
  return members
    ? `completed dbgroup ${name} with ${missing.map((m) => m.db).join(', ')}`
    : `created dbgroup ${name} (${wanted.map((w) => `${w.db} as ${w.role}`).join(', ')})`;
}
