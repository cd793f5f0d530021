// libpq connection service files (pg_service.conf), read by the tool itself: node-postgres has no
// service support, and Bucardo's validate_sync runs inside the metadata server where the operator's
// service file is not visible, so a service is resolved here into plain host/port/dbname/user values.
// The rules are libpq's (PostgreSQL 15, fe-connect.c parseServiceInfo): PGSERVICEFILE, else
// ~/.pg_service.conf, is searched first, then PGSYSCONFDIR/pg_service.conf; `[name]` starts a
// section; inside it each line is key=value (split at the first '=', no spaces around the key);
// blank lines and lines starting with # are skipped; the first file that has the section wins.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

/** Debian's libpq is built with this sysconfdir; PGSYSCONFDIR overrides it. */
const DEFAULT_SYSCONFDIR = '/etc/postgresql-common';

export interface Service {
  name: string;
  file: string;
  settings: Record<string, string>;
}

export class ServiceFileError extends Error {}

/** The files libpq searches, in order. */
export function serviceFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  const user = env['PGSERVICEFILE'] || path.join(env['HOME'] || homedir(), '.pg_service.conf');
  const system = path.join(env['PGSYSCONFDIR'] || DEFAULT_SYSCONFDIR, 'pg_service.conf');
  return [user, system];
}

/** The settings of section `name` in a service file's text, or undefined when it has no such section. */
export function parseServiceSection(
  text: string,
  name: string,
  file = 'the service file',
): Record<string, string> | undefined {
  let inSection = false;
  let found: Record<string, string> | undefined;
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index]!.replace(/\s+$/, '').replace(/^\s+/, '');
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('[')) {
      // A second section after ours ends it.
      if (found) break;
      inSection = line.slice(1, line.endsWith(']') ? -1 : undefined) === name;
      if (inSection) found = {};
      continue;
    }
    if (!inSection) continue;
    const equals = line.indexOf('=');
    const where = `service file ${file}, line ${index + 1}`;
    if (equals < 0) throw new ServiceFileError(`syntax error in ${where}: expected key=value`);
    const key = line.slice(0, equals);
    if (key === 'service')
      throw new ServiceFileError(`nested service specifications are not supported in ${where}`);
    // As in libpq, a key set twice keeps its first value.
    found![key] ??= line.slice(equals + 1);
  }
  return found;
}

/** Finds a service as libpq would; undefined when no file defines it. */
export function findService(name: string, env: NodeJS.ProcessEnv = process.env): Service | undefined {
  for (const file of serviceFiles(env)) {
    if (!existsSync(file)) continue;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      throw new ServiceFileError(`cannot read service file ${file}: ${reason}`);
    }
    const settings = parseServiceSection(text, name, file);
    if (settings) return { name, file, settings };
  }
  return undefined;
}

/** A service's password= value (libpq allows one there); read when needed, never kept in the config. */
export function servicePassword(name: string): string | undefined {
  try {
    return findService(name)?.settings['password'];
  } catch {
    return undefined;
  }
}
