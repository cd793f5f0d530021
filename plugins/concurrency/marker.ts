// The job's preparation marker: a small file in the job's own state dir, written by
// concurrency.install and removed by concurrency.uninstall. It is what says "this job's metadata
// lives in database X"; the config only says what the operator wants. Loaded with the plugin's index
// (node:fs only).
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

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
