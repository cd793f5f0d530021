// libpq password files (~/.pgpass, PGPASSFILE): reading them for the tool's own connections, and
// writing the private one that the bucardo executable and daemon use instead of the operator's.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

export interface PasswordEntry { host: string; port: string; database: string; user: string; password: string }

/** Splits one pgpass line on unescaped colons, undoing \: and \\ escapes. */
export function parsePgpassLine(line: string): PasswordEntry | undefined {
  if (line.trim() === '' || line.startsWith('#')) return undefined;
  const fields: string[] = [];
  let current = '';
  for (let i = 0; i < line.length; i++) {
    const char = line[i]!;
    if (char === '\\' && i + 1 < line.length) current += line[++i];
    else if (char === ':' && fields.length < 4) { fields.push(current); current = ''; }
    else current += char;
  }
  fields.push(current);
  if (fields.length < 5) return undefined;
  const [host, port, database, user, password] = fields as [string, string, string, string, string];
  return { host, port, database, user, password };
}

export function formatPgpassLine(entry: PasswordEntry): string {
  const escape = (value: string) => value.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
  return [entry.host, entry.port, entry.database, entry.user, entry.password].map(escape).join(':');
}

export function readPgpass(file: string): PasswordEntry[] {
  if (!existsSync(file)) return [];
  try {
    // libpq ignores a password file that others can read; so do we, to behave the same way.
    if ((statSync(file).mode & 0o077) !== 0) return [];
    return readFileSync(file, 'utf8').split('\n').map(parsePgpassLine).filter((entry): entry is PasswordEntry => entry !== undefined);
  } catch {
    return [];
  }
}

export function matchPassword(entries: PasswordEntry[], host: string, port: number, database: string, user: string): string | undefined {
  // libpq matches "localhost" entries for Unix-socket connections too; host names are compared literally.
  const matches = (pattern: string, value: string) => pattern === '*' || pattern === value;
  return entries.find((e) => matches(e.host, host) && matches(e.port, String(port)) && matches(e.database, database) && matches(e.user, user))?.password;
}

/** The password file libpq would use for the operator: PGPASSFILE, else ~/.pgpass. */
export function operatorPgpassFile(): string {
  return process.env['PGPASSFILE'] || path.join(homedir(), '.pgpass');
}
