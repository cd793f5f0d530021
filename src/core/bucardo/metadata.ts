// Reads Bucardo's own metadata database for a job: what is recorded, the sync's state, its runs.
// Each reader takes a job (a session of its own, closed after) or a command's shared sessions
// (`ctx.db`, src/core/context.ts), which a command asking several questions should pass.
import type { Client } from '../db.js';
import { UnreachableServerError } from '../errors.js';
import type { Activity } from '../activity.js';
import { DatabaseContext, withSession } from '../context.js';
import { metadataDbName, type Job } from '../job.js';

export async function metadataDatabaseExists(
  source: Job | DatabaseContext,
  activity?: Activity,
): Promise<boolean> {
  const job = source instanceof DatabaseContext ? source.job : source;
  if (source instanceof DatabaseContext) {
    // Nearly every command asks this and then reads the metadata database: opening the command's
    // metadata session answers it without a session of its own (a backend start costs ~25 ms of CPU,
    // docs/performance.md). Only a server that answered (no such database, no such role yet, no
    // password for it yet) is asked again below; one that cannot be reached fails here, once.
    try {
      await source.metadata();
      return true;
    } catch (error) {
      if (error instanceof UnreachableServerError) throw error;
    }
  }
  const name = metadataDbName(job);
  // Asked in the server's fallback database as the install user: the metadata database may not exist.
  const server = {
    role: 'bucardo',
    login: 'install_user',
    database: job.config.databases.bucardo.fallbackDb,
  } as const;
  return withSession(
    source,
    server,
    async (client) => {
      const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      return (rowCount ?? 0) > 0;
    },
    activity,
  );
}

/**
 * Runs fn against the metadata database as the Bucardo role: on the command's shared session when
 * given `ctx.db` (fn must then run single statements only, see context.ts), else on its own session.
 */
export async function withMetadata<T>(
  source: Job | DatabaseContext,
  fn: (client: Client) => Promise<T>,
  activity?: Activity,
): Promise<T> {
  return withSession(source, { role: 'bucardo' }, fn, activity);
}

export interface RecordedDatabase {
  name: string;
  dbname: string;
  dbhost: string;
  dbport: string;
  dbuser: string;
  dbconn: string;
  makedelta: string;
}

export async function recordedDatabases(client: Client): Promise<RecordedDatabase[]> {
  const { rows } = await client.query<RecordedDatabase>(
    'SELECT name, dbname, dbhost, dbport::text, dbuser, dbconn, makedelta FROM bucardo.db ORDER BY name',
  );
  return rows;
}

export interface RecordedRelation {
  schema: string;
  name: string;
  reltype: string;
}

export async function relgroupMembers(client: Client, relgroup: string): Promise<RecordedRelation[]> {
  const { rows } = await client.query<RecordedRelation>(
    `SELECT g.schemaname AS schema, g.tablename AS name, g.reltype
       FROM bucardo.herdmap h JOIN bucardo.goat g ON g.id = h.goat
      WHERE h.herd = $1 ORDER BY 1, 2`,
    [relgroup],
  );
  return rows;
}

export interface SyncRow {
  name: string;
  onetimecopy: number;
  autokick: boolean;
  status: string;
  relgroup: string;
}

export async function syncRow(client: Client, syncName: string): Promise<SyncRow | undefined> {
  const { rows } = await client.query<SyncRow>(
    'SELECT name, onetimecopy, autokick, status, herd AS relgroup FROM bucardo.sync WHERE name = $1',
    [syncName],
  );
  return rows[0];
}

/** Syncs recorded in the metadata database other than the given one(s) (a job's own). */
export async function otherSyncs(client: Client, syncName: string | string[]): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    'SELECT name FROM bucardo.sync WHERE NOT name = ANY($1) ORDER BY name',
    [Array.isArray(syncName) ? syncName : [syncName]],
  );
  return rows.map((row) => row.name);
}

export interface SyncRun {
  started: Date | null;
  ended: Date | null;
  lastgood: boolean;
  lastbad: boolean;
  lastempty: boolean;
  status: string | null;
  inserts: number;
  deletes: number;
  details: string | null;
}

/** The newest runs of a sync (in progress first), from bucardo.syncrun. */
export async function recentRuns(client: Client, syncName: string, limit = 5): Promise<SyncRun[]> {
  const { rows } = await client.query<SyncRun>(
    `SELECT started, ended, lastgood, lastbad, lastempty, status, inserts::int, deletes::int, details
       FROM bucardo.syncrun WHERE sync = $1
      ORDER BY ended IS NULL DESC, started DESC NULLS LAST LIMIT $2`,
    [syncName, limit],
  );
  return rows;
}

/** The newest good or failed run of the sync (or of any of the given syncs: a job's, bucardo.syncs). */
export async function lastRun(
  client: Client,
  syncName: string | string[],
  kind: 'lastgood' | 'lastbad',
): Promise<SyncRun | undefined> {
  const { rows } = await client.query<SyncRun>(
    `SELECT started, ended, lastgood, lastbad, lastempty, status, inserts::int, deletes::int, details
       FROM bucardo.syncrun WHERE sync = ANY($1) AND ${kind} ORDER BY ended DESC NULLS LAST LIMIT 1`,
    [Array.isArray(syncName) ? syncName : [syncName]],
  );
  return rows[0];
}

/** The pid dir Bucardo's daemon uses (bucardo_config's piddir, recorded at install and at each start). */
export async function recordedPidDir(client: Client): Promise<string | undefined> {
  const { rows } = await client.query<{ setting: string }>(
    "SELECT setting FROM bucardo.bucardo_config WHERE name = 'piddir' AND type IS NULL",
  );
  return rows[0]?.setting;
}

export async function configSettings(
  client: Client,
): Promise<{ name: string; setting: string; about: string | null }[]> {
  const { rows } = await client.query<{ name: string; setting: string; about: string | null }>(
    'SELECT name, setting, about FROM bucardo.bucardo_config WHERE type IS NULL ORDER BY name',
  );
  return rows;
}
