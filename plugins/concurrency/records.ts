// What the concurrency plugin keeps on disk (node:fs only: loaded with the plugin's index): the
// job's preparation marker in its state dir and the per-user registry of prepared jobs.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

// What a job occupies on a host: the names and paths two jobs must not share. Built from the config
// alone, so it can be compared for jobs that are not installed yet (the other config of a session).
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
  /** Every target (databases.secondaries); absent in footprints registered before fan-out. */
  targets?: DatabaseSpot[];
}

// The job's preparation marker: a small file in the job's own state dir, written by
// concurrency.install and removed by concurrency.uninstall. It is what says "this job's metadata
// lives in database X"; the config only says what the operator wants. Loaded with the plugin's index
// (node:fs only).
export interface PreparationMarker {
  metadataDb: string;
  metadataServer: string;
  replicationName: string;
  configFile: string;
  preparedAt: string;
}

export function markerFile(stateDir: string): string {
  return path.join(stateDir, 'concurrency.json');
}

export function readMarker(stateDir: string): PreparationMarker | undefined {
  const file = markerFile(stateDir);
  if (!existsSync(file)) return undefined;
  try {
    const marker = JSON.parse(readFileSync(file, 'utf8')) as PreparationMarker;
    return typeof marker.metadataDb === 'string' ? marker : undefined;
  } catch {
    // A torn or hand-edited file must not make the job look unprepared while its database exists:
    // treat it as naming a database nobody has, so bucardo commands refuse and say where it is.
    return {
      metadataDb: `(unreadable ${file})`,
      metadataServer: '',
      replicationName: '',
      configFile: '',
      preparedAt: '',
    };
  }
}

export function writeMarker(stateDir: string, marker: PreparationMarker): void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const file = markerFile(stateDir);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(marker, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

export function removeMarker(stateDir: string): boolean {
  const file = markerFile(stateDir);
  if (!existsSync(file)) return false;
  rmSync(file, { force: true });
  return true;
}

// The per-user registry of prepared jobs: one small JSON file per replication name, so that
// concurrency.install can see the other jobs on this host even when their configs are not loaded.
// The directory name contains a hyphen, which no replication name can, so it never collides with a
// job's default state dir (~/.bucardo-console/<replication_name>).
/** Tests (and operators who want a shared registry) point this elsewhere. */
export const REGISTRY_ENV = 'BUCARDO_CONSOLE_JOB_REGISTRY';

export interface RegistryEntry extends JobFootprint {
  preparedAt: string;
  /** Set by bucardo.install: from then on a missing metadata database means the entry is stale. */
  installedAt?: string;
}

export interface RegisteredJob {
  entry: RegistryEntry;
  file: string;
}

export function registryDir(): string {
  return process.env[REGISTRY_ENV] || path.join(homedir(), '.bucardo-console', 'installed-jobs');
}

export function registryFile(replicationName: string): string {
  return path.join(registryDir(), `${replicationName}.json`);
}

/** Every readable entry; a file that is not an entry is reported, never silently skipped. */
export function readRegistry(): { jobs: RegisteredJob[]; unreadable: string[] } {
  const dir = registryDir();
  if (!existsSync(dir)) return { jobs: [], unreadable: [] };
  const jobs: RegisteredJob[] = [];
  const unreadable: string[] = [];
  for (const name of readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()) {
    const file = path.join(dir, name);
    try {
      const entry = JSON.parse(readFileSync(file, 'utf8')) as RegistryEntry;
      if (
        typeof entry.replicationName !== 'string' ||
        typeof entry.pidDir !== 'string' ||
        !entry.metadata ||
        !entry.primary
      )
        throw new Error('not an entry');
      jobs.push({ entry, file });
    } catch {
      unreadable.push(file);
    }
  }
  return { jobs, unreadable };
}

/** The same job: the same replication name prepared from the same config file. */
export function isSameJob(a: JobFootprint, b: JobFootprint): boolean {
  return a.replicationName === b.replicationName && path.resolve(a.configFile) === path.resolve(b.configFile);
}

export function writeRegistryEntry(entry: RegistryEntry): string {
  const file = registryFile(entry.replicationName);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(`${file}.tmp`, `${JSON.stringify(entry, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
  return file;
}

export function readRegistryEntry(replicationName: string): RegistryEntry | undefined {
  const file = registryFile(replicationName);
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as RegistryEntry;
  } catch {
    return undefined;
  }
}

export function removeRegistryEntry(replicationName: string): boolean {
  const file = registryFile(replicationName);
  if (!existsSync(file)) return false;
  rmSync(file, { force: true });
  return true;
}
