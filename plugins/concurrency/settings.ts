// The concurrency section of a job's config: `concurrency: {bucardo_dbname: NAME}`. Loaded with the
// plugin's index, so it stays light (no pg, no execa).
import type { ConfigReader } from '../../src/config/reader.js';
import type { JobConfig } from '../../src/config/types.js';
import { type Job, jobTitle } from '../../src/core/job.js';
import { markerFile, readMarker } from './records.js';

export interface ConcurrencySettings {
  /** The job's own metadata database, instead of Bucardo's hard-coded 'bucardo'. */
  bucardoDbname: string;
}

export const DEFAULT_METADATA_DB = 'bucardo';
const MAX_IDENTIFIER = 63;
/** Databases every cluster has: dropping one with bucardo.uninstall would be a disaster. */
const RESERVED = ['postgres', 'template0', 'template1'];

export function parseConcurrencySettings(
  reader: ConfigReader,
  raw: unknown,
  where: string,
  config: JobConfig,
): ConcurrencySettings {
  const section = reader.section(raw, where, ['bucardo_dbname']);
  const enabled = config.plugins.includes('concurrency');
  const name = reader.string(section, 'bucardo_dbname', where);
  if (enabled && name === undefined) {
    reader.problem(
      `${where}.bucardo_dbname`,
      `is required with the concurrency plugin: name this job's own metadata database, for example bucardo_${config.bucardo.replicationName || 'job'}`,
    );
  }
  if (name !== undefined) checkName(reader, `${where}.bucardo_dbname`, name, config);
  if (!enabled) reportPreparedButDisabled(reader, config);
  return { bucardoDbname: name ?? '' };
}

function checkName(reader: ConfigReader, key: string, name: string, config: JobConfig): void {
  // Bucardo's schema file creates the database with an unquoted name, which PostgreSQL folds to
  // lower case; Bucardo then connects with the name as written. Only lower-case names survive both.
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) {
    reader.problem(
      key,
      `'${name}' must be lower case letters, digits and underscores, starting with a letter or underscore (Bucardo's schema file creates the database with an unquoted name, which PostgreSQL folds to lower case)`,
    );
    return;
  }
  if (name.length > MAX_IDENTIFIER)
    reader.problem(
      key,
      `'${name}' is ${name.length} characters; PostgreSQL database names have at most ${MAX_IDENTIFIER}`,
    );
  if (name === DEFAULT_METADATA_DB) {
    reader.problem(
      key,
      `'${DEFAULT_METADATA_DB}' is Bucardo's default name, shared by every job on the host that runs without this plugin; choose a name of this job's own, for example bucardo_${config.bucardo.replicationName || 'job'}`,
    );
  }
  const { bucardo, primary, secondary } = config.databases;
  if (RESERVED.includes(name) || name === bucardo.fallbackDb) {
    reader.problem(
      key,
      `'${name}' is ${name === bucardo.fallbackDb ? 'databases.bucardo.fallback_db' : 'a database every PostgreSQL cluster has'}; bucardo.uninstall drops the metadata database, so it needs a name of its own`,
    );
  }
  for (const db of [primary, secondary]) {
    if (db && db.dbname === name && sameServer(db, bucardo)) {
      reader.problem(
        key,
        `'${name}' is the ${db.role} database itself (${db.host}:${db.port}); bucardo.uninstall drops the metadata database, so it needs a name of its own`,
      );
    }
  }
}

/**
 * With the plugin taken out of `plugins`, every bucardo command would silently use the default
 * 'bucardo' database while this job's metadata lives in the prepared one; refuse to load instead.
 */
function reportPreparedButDisabled(reader: ConfigReader, config: JobConfig): void {
  const problem = preparedButDisabled(config.bucardo.stateDir);
  if (problem) reader.problem('plugins', problem);
}

/** The refusal for a prepared job whose config no longer enables the plugin (also without its section). */
export function preparedButDisabled(stateDir: string): string | undefined {
  const marker = readMarker(stateDir);
  if (!marker) return undefined;
  return `this job was prepared by concurrency.install for the metadata database '${marker.metadataDb}' (${markerFile(stateDir)}), but 'concurrency' is not in plugins, so every bucardo command would use the default database '${DEFAULT_METADATA_DB}' instead. Add concurrency to plugins; to return the job to the default name, run bucardo.uninstall and then concurrency.uninstall with the plugin enabled.`;
}

/** Local addresses all reach this machine: 127.0.0.1:5432 and localhost:5432 are the same server. */
export function serverKey(db: { host: string; port: number }): string {
  const host = db.host.toLowerCase();
  const local =
    host === '' || host === 'localhost' || host === '127.0.0.1' || host === '::1' || host.startsWith('/');
  return `${local ? 'local' : host}:${db.port}`;
}

export function sameServer(a: { host: string; port: number }, b: { host: string; port: number }): boolean {
  return serverKey(a) === serverKey(b);
}

// How the job's metadata database name reaches every bucardo command, the daemon and the kicker:
// job.metadataDb, a plain value set when the session loads (configureJob) and set again by
// concurrency.install and concurrency.uninstall, which change the marker it depends on. So that
// - after concurrency.install (even earlier in the same session) it is the prepared name;
// - before it, or after concurrency.uninstall, job.metadataDbRefusal makes every session to the
//   metadata database and every bucardo command refuse with the next step (metadataDbName in
//   src/core/job.ts), and nothing can fall back to Bucardo's default database 'bucardo' by mistake;
// - a name changed in the config after install refuses instead of losing the installed database.
// The bucardo plugin needs no knowledge of this plugin for any of that.
export function resolveMetadataDb(job: Job, configuredName: string): void {
  job.metadataDb = configuredName;
  const refusal = preparationProblem(job, configuredName);
  if (refusal) job.metadataDbRefusal = refusal;
  else delete job.metadataDbRefusal;
}

/** After concurrency.install or uninstall changed the marker: the job's name and refusal again. */
export function resolveMetadataDbAgain(job: Job): void {
  resolveMetadataDb(job, (job.config.pluginSettings['concurrency'] as ConcurrencySettings).bucardoDbname);
}

/** Why the job may not use its metadata database yet, from its preparation marker; undefined when it may. */
function preparationProblem(job: Job, configuredName: string): string | undefined {
  const marker = readMarker(job.paths.stateDir);
  const title = jobTitle(job);
  if (!marker) {
    return `${title} uses the concurrency plugin (metadata database '${configuredName}') but has not been prepared: run concurrency.install before bucardo.install. Until then no bucardo command runs, so nothing lands in Bucardo's default database '${DEFAULT_METADATA_DB}' by mistake.`;
  }
  if (marker.metadataDb !== configuredName) {
    return `${title} was prepared by concurrency.install for the metadata database '${marker.metadataDb}' (${markerFile(job.paths.stateDir)}), but concurrency.bucardo_dbname now says '${configuredName}'. Put '${marker.metadataDb}' back to reach this job's metadata (to move the job: bucardo.uninstall and concurrency.uninstall with the old name, then install with the new one); if '${marker.metadataDb}' was never installed, run concurrency.install to switch to '${configuredName}'.`;
  }
  const server = serverKey(job.config.databases.bucardo);
  if (marker.metadataServer && marker.metadataServer !== server) {
    return `${title} was prepared by concurrency.install for a metadata database on ${marker.metadataServer}, but databases.bucardo now points at ${server}. Put the old host and port back to reach this job's metadata, or, if nothing was installed there, run concurrency.install again.`;
  }
  return undefined;
}
