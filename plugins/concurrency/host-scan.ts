// Every Bucardo metadata database on the job's metadata server, read from the databases themselves:
// which syncs and relgroups each holds, its pid dir and the databases its tables come from. This sees
// jobs of other users and of configs this user never registered, and where a job already lives.
import type { Activity } from '../../src/core/activity.js';
import { recordedPidDir } from '../../src/core/bucardo/metadata.js';
import { type Client, withClient } from '../../src/core/db.js';
import { errorMessage } from '../../src/core/errors.js';
import type { Job } from '../../src/core/job.js';

export interface RecordedSource {
  name: string;
  dbname: string;
  host: string;
  port: number;
}

export interface BucardoInstance {
  database: string;
  piddir?: string;
  syncs: string[];
  relgroups: string[];
  /** Databases that tables of its relgroups come from (Bucardo's goat.db). */
  sources: RecordedSource[];
}

export interface HostScan {
  /** Every database name on the server. */
  databases: string[];
  instances: BucardoInstance[];
  unreadable: { database: string; error: string }[];
}

export async function scanMetadataServer(job: Job, activity?: Activity): Promise<HostScan> {
  const bucardo = job.config.databases.bucardo;
  const databases = await withClient(
    job,
    { role: 'bucardo', login: 'install_user', database: bucardo.fallbackDb, activity },
    async (client) => {
      const { rows } = await client.query<{ datname: string }>(
        'SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1',
      );
      return rows.map((row) => row.datname);
    },
  );
  const scan: HostScan = { databases, instances: [], unreadable: [] };
  for (const database of databases) {
    activity?.throwIfInterrupted();
    try {
      const instance = await withClient(
        job,
        { role: 'bucardo', login: 'install_user', database, activity },
        readInstance,
      );
      if (instance) scan.instances.push({ ...instance, database });
    } catch (error) {
      scan.unreadable.push({ database, error: errorMessage(error) });
    }
  }
  return scan;
}

async function readInstance(client: Client): Promise<Omit<BucardoInstance, 'database'> | undefined> {
  // A primary has a bucardo schema too (delta tables); only a metadata database has bucardo_config.
  const {
    rows: [probe],
  } = await client.query<{ metadata: boolean }>(
    "SELECT to_regclass('bucardo.bucardo_config') IS NOT NULL AND to_regclass('bucardo.sync') IS NOT NULL AND to_regclass('bucardo.herd') IS NOT NULL AND to_regclass('bucardo.goat') IS NOT NULL AS metadata",
  );
  if (!probe?.metadata) return undefined;
  const piddir = await recordedPidDir(client);
  const syncs = await client.query<{ name: string }>('SELECT name FROM bucardo.sync ORDER BY 1');
  const relgroups = await client.query<{ name: string }>('SELECT name FROM bucardo.herd ORDER BY 1');
  // dbport is text in Bucardo's schema and may be empty (libpq's default port then).
  const sources = await client.query<{ name: string; dbname: string; host: string; port: string }>(
    `SELECT DISTINCT d.name, coalesce(d.dbname, '') AS dbname, coalesce(d.dbhost, '') AS host, coalesce(d.dbport, '') AS port
       FROM bucardo.goat g JOIN bucardo.db d ON d.name = g.db ORDER BY 1`,
  );
  return {
    ...(piddir !== undefined ? { piddir } : {}),
    syncs: syncs.rows.map((r) => r.name),
    relgroups: relgroups.rows.map((r) => r.name),
    sources: sources.rows.map((r) => ({
      name: r.name,
      dbname: r.dbname,
      host: r.host,
      port: /^\d+$/.test(r.port) ? Number(r.port) : 5432,
    })),
  };
}

export async function databaseExists(job: Job, database: string, activity?: Activity): Promise<boolean> {
  const bucardo = job.config.databases.bucardo;
  return withClient(
    job,
    { role: 'bucardo', login: 'install_user', database: bucardo.fallbackDb, activity },
    async (client) => {
      const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
      return (rowCount ?? 0) > 0;
    },
  );
}
