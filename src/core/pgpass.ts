// libpq password files (~/.pgpass, PGPASSFILE): reading them for the tool's own connections, and
// writing the private one that the bucardo executable and daemon use instead of the operator's.
// Parsing and matching follow libpq (PostgreSQL 15, fe-connect.c passwordFromFile): lines are read in
// order and the first match wins; a field that is exactly `*` matches anything; `\` escapes the next
// character (so `\*` is a literal star and `\:` a colon); the password ends at the first unescaped
// colon; a file that group or others may read is ignored. docs/credentials-and-ssl.md has the rules.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

export interface PasswordEntry {
  host: string;
  port: string;
  database: string;
  user: string;
  password: string;
}

/** The field value that matches anything; a literal star is written `\*` and parsed as LITERAL_STAR. */
export const ANY = '*';
const LITERAL_STAR = '\u0000*';

/** libpq's compiled-in socket directory on Debian: a connection there is looked up as host "localhost". */
const DEFAULT_SOCKET_DIR = '/var/run/postgresql';

/** Splits one pgpass line on unescaped colons, undoing \ escapes; undefined for blanks and comments. */
export function parsePgpassLine(rawLine: string): PasswordEntry | undefined {
  const line = rawLine.replace(/[\r\n]+$/, '');
  if (line === '' || line.startsWith('#')) return undefined;
  const fields: string[] = [];
  let current = '';
  let escaped = false;
  let i = 0;
  for (; i < line.length && fields.length < 4; i++) {
    const char = line[i]!;
    if (char === '\\' && i + 1 < line.length) {
      const next = line[++i]!;
      current += next;
      escaped = true;
    } else if (char === ':') {
      // Only an unescaped field of exactly "*" is a wildcard.
      fields.push(current === ANY && escaped ? LITERAL_STAR : current);
      current = '';
      escaped = false;
    } else current += char;
  }
  if (fields.length < 4) return undefined;
  // The password: de-escaped, up to the first unescaped colon (libpq ignores anything after it).
  let password = '';
  for (; i < line.length; i++) {
    const char = line[i]!;
    if (char === '\\' && i + 1 < line.length) password += line[++i];
    else if (char === ':') break;
    else password += char;
  }
  const [host, port, database, user] = fields as [string, string, string, string];
  return { host, port, database, user, password };
}

export function formatPgpassLine(entry: PasswordEntry): string {
  const escape = (value: string) =>
    value === LITERAL_STAR ? '\\*' : value.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
  return [entry.host, entry.port, entry.database, entry.user, entry.password].map(escape).join(':');
}

/** Why libpq would skip a password file, or undefined when it would read it. */
export function unusablePgpassReason(file: string): string | undefined {
  try {
    const stat = statSync(file);
    if (!stat.isFile()) return 'it is not a plain file';
    // libpq ignores a password file that others can read (with a warning); so do we.
    const mode = (stat.mode & 0o777).toString(8);
    if ((stat.mode & 0o077) !== 0)
      return `group or others may read it (mode ${mode}), so libpq ignores it: chmod 0600 it`;
    return undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT'
      ? 'it does not exist'
      : (error as Error).message;
  }
}

export function readPgpass(file: string): PasswordEntry[] {
  if (!existsSync(file) || unusablePgpassReason(file) !== undefined) return [];
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .map(parsePgpassLine)
      .filter((entry): entry is PasswordEntry => entry !== undefined);
  } catch {
    return [];
  }
}

/** The host name libpq compares with a password file's host field: "localhost" for no host or the default socket. */
export function pgpassHost(host: string): string {
  return host === '' || host === DEFAULT_SOCKET_DIR ? 'localhost' : host;
}

function fieldMatches(pattern: string, value: string): boolean {
  return pattern === ANY || (pattern === LITERAL_STAR ? ANY : pattern) === value;
}

/** Does this line apply to logins of `user` on host:port, whatever the database? */
export function entryCovers(entry: PasswordEntry, host: string, port: number, user: string): boolean {
  return (
    fieldMatches(entry.host, pgpassHost(host)) &&
    fieldMatches(entry.port, String(port)) &&
    fieldMatches(entry.user, user)
  );
}

export function matchPassword(
  entries: PasswordEntry[],
  host: string,
  port: number,
  database: string,
  user: string,
): string | undefined {
  return entries.find((e) => entryCovers(e, host, port, user) && fieldMatches(e.database, database))
    ?.password;
}

/** The password file libpq would use for the operator: PGPASSFILE, else ~/.pgpass. */
export function operatorPgpassFile(): string {
  return process.env['PGPASSFILE'] || path.join(homedir(), '.pgpass');
}
