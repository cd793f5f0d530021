// What a job occupies on a host: the names and paths two jobs must not share. Built from the config
// alone, so it can be compared for jobs that are not installed yet (the other config of a session).
import path from 'node:path';
import type { Job } from '../../src/core/job.js';
import { DEFAULT_METADATA_DB, type ConcurrencySettings } from './settings.js';

export interface DatabaseSpot {
  host: string;
  port: number;
  dbname: string;
  cascade: boolean;
}

export interface JobFootprint {
  replicationName: string;
  configFile: string;
  metadata: { host: string; port: number; dbname: string };
  pidDir: string;
  logDir: string;
  stateDir: string;
  primary: DatabaseSpot;
  secondary: DatabaseSpot;
}

/** The metadata database the job's config asks for (never reads job.metadataDb, which may refuse). */
export function intendedMetadataDb(job: Job): string {
  if (!job.config.plugins.includes('concurrency'))
    return job.config.databases.bucardo.dbname || DEFAULT_METADATA_DB;
  const settings = job.config.pluginSettings['concurrency'] as ConcurrencySettings | undefined;
  return settings?.bucardoDbname || DEFAULT_METADATA_DB;
}

export function footprintOf(job: Job): JobFootprint {
  const { bucardo, primary, secondary } = job.config.databases;
  const spot = (db: typeof primary): DatabaseSpot => ({
    host: db.host,
    port: db.port,
    dbname: db.dbname,
    cascade: db.cascade,
  });
  return {
    replicationName: job.name,
    configFile: job.config.file,
    metadata: { host: bucardo.host, port: bucardo.port, dbname: intendedMetadataDb(job) },
    pidDir: path.resolve(job.paths.pidDir),
    logDir: path.resolve(job.paths.logDir),
    stateDir: path.resolve(job.paths.stateDir),
    primary: spot(primary),
    secondary: spot(secondary),
  };
}

export function describeSpot(db: { host: string; port: number; dbname: string }): string {
  return `${db.host}:${db.port}/${db.dbname}`;
}
