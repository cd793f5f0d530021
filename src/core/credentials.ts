// Where passwords come from, following libpq's conventions, and the private password file handed to
// the bucardo executable and daemon so that no password is ever on a command line or in a log.
// docs/credentials-and-ssl.md describes the order and the logins Bucardo makes.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { DatabaseConfig } from '../config/types.js';
import { metadataDbName, type Job } from './job.js';
import {
  ANY,
  entryCovers,
  formatPgpassLine,
  matchPassword,
  operatorPgpassFile,
  parsePgpassLine,
  pgpassHost,
  readPgpass,
  type PasswordEntry,
} from './pgpass.js';
import { servicePassword } from './pgservice.js';

/** What decides where a login's password comes from: a job's database, or another server (the pooler). */
export type PasswordConfig = Pick<DatabaseConfig, 'host' | 'port' | 'passwordEnv' | 'passfile' | 'service'>;

export interface LoginTarget {
  db: DatabaseConfig;
  user: string;
  database: string;
}

/**
 * Order (libpq's, with the tool's own key first): the database's password_env, the password of its
 * pg_service.conf service, its passfile, PGPASSWORD, PGPASSFILE or ~/.pgpass, then the job's private file.
 */
export function resolvePassword(
  target: { db: PasswordConfig; user: string; database: string },
  privateFile?: string,
): string | undefined {
  const { db, user, database } = target;
  for (const source of passwordSources(db)) {
    if (source.kind === 'password') return source.password;
    const found = matchPassword(source.entries, db.host, db.port, database, user);
    if (found !== undefined) return found;
  }
  return privateFile ? matchPassword(readPgpass(privateFile), db.host, db.port, database, user) : undefined;
}

/** A password that applies to every database (an environment variable, a service's password=), or a file's lines. */
type PasswordSource = { kind: 'password'; password: string } | { kind: 'file'; entries: PasswordEntry[] };

function passwordSources(db: PasswordConfig): PasswordSource[] {
  const sources: PasswordSource[] = [];
  // As libpq treats an empty PGPASSWORD or password=: as no password, so the files are read next.
  const add = (password: string | undefined) => {
    if (password) sources.push({ kind: 'password', password });
  };
  add(db.passwordEnv ? process.env[db.passwordEnv] : undefined);
  add(db.service ? servicePassword(db.service) : undefined);
  if (db.passfile) sources.push({ kind: 'file', entries: readPgpass(db.passfile) });
  add(process.env['PGPASSWORD']);
  sources.push({ kind: 'file', entries: readPgpass(operatorPgpassFile()) });
  return sources;
}

export function privatePgpassFile(job: Job): string {
  return path.join(job.paths.stateDir, '.pgpass');
}

/** Every login the bucardo executable, its schema script and the daemon make for this job. */
export function jobLogins(job: Job): LoginTarget[] {
  const { bucardo, primary, secondary } = job.config.databases;
  return [
    // bucardo install: psql as the install user to the fallback db, whose schema script then
    // reconnects (\c) to the new metadata database as the same user.
    { db: bucardo, user: bucardo.installUser, database: bucardo.fallbackDb },
    { db: bucardo, user: bucardo.installUser, database: metadataDbName(job) },
    // Every later bucardo command, the daemon (MCP, CTL, KID, VAC) and the tool's own metadata sessions.
    { db: bucardo, user: bucardo.databaseOwner, database: metadataDbName(job) },
    { db: bucardo, user: bucardo.databaseOwner, database: bucardo.fallbackDb },
    { db: primary, user: primary.databaseOwner, database: primary.dbname },
    { db: secondary, user: secondary.databaseOwner, database: secondary.dbname },
  ];
}

/** Marks where the lines Bucardo itself appends begin; everything above is rewritten from the config each time. */
const KEPT_MARKER =
  "# Lines below were appended by Bucardo (its installer stores the bucardo role's password): kept.";

/**
 * The lines of the private file for this job's logins, in libpq's first-match-wins order:
 * 1. one exact line per known login (host:port:database:user), resolved as the tool resolves it;
 * 2. per server and user, every line of the sources that could apply to it, in source order, with the
 *    database field kept as written (a `*` stays `*`) and host/port/user pinned to that login.
 * So any database Bucardo reconnects to on a server as a user it already uses finds the password the
 * operator's own files would give libpq, without the tool knowing every database in advance.
 */
export function privatePgpassEntries(logins: LoginTarget[]): PasswordEntry[] {
  const entries: PasswordEntry[] = [];
  const pinned = (db: DatabaseConfig, user: string, database: string, password: string): PasswordEntry => ({
    host: pgpassHost(db.host),
    port: String(db.port),
    database,
    user,
    password,
  });
  for (const login of logins) {
    const password = resolvePassword(login);
    if (password !== undefined) entries.push(pinned(login.db, login.user, login.database, password));
  }
  const seen = new Set<string>();
  for (const { db, user } of logins) {
    const key = `${pgpassHost(db.host)}\u0000${db.port}\u0000${user}`;
    if (seen.has(key)) continue;
    seen.add(key);
    for (const source of passwordSources(db)) {
      if (source.kind === 'password') {
        // Matches every database, as the environment variable does for libpq: later sources cannot win.
        entries.push(pinned(db, user, ANY, source.password));
        break;
      }
      for (const entry of source.entries.filter((e) => entryCovers(e, db.host, db.port, user))) {
        entries.push(pinned(db, user, entry.database, entry.password));
      }
    }
  }
  const unique = new Set<string>();
  return entries.filter((entry) => {
    const line = formatPgpassLine(entry);
    if (unique.has(line)) return false;
    unique.add(line);
    return true;
  });
}

/**
 * Writes the job's private .pgpass (mode 0600) with the passwords the operator supplied, keeping the
 * lines Bucardo itself appended (its install stores the generated password of the bucardo role there).
 */
export function writePrivatePgpass(job: Job): string {
  const file = privatePgpassFile(job);
  mkdirSync(job.paths.stateDir, { recursive: true, mode: 0o700 });
  const generated = privatePgpassEntries(jobLogins(job)).map(formatPgpassLine);
  const kept = existsSync(file) ? bucardoAppendedLines(readFileSync(file, 'utf8'), generated) : [];
  const text = [
    "# The job's private password file for Bucardo, rewritten by bucardo-console from its config and the",
    "# operator's password sources before every bucardo run. Do not edit: change those instead.",
    ...generated,
    KEPT_MARKER,
    ...kept,
  ].join('\n');
  writeFileSync(file, `${text}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return file;
}

/** Lines after the marker; in a file from before the marker existed, the lines that are not ours. */
function bucardoAppendedLines(text: string, generated: string[]): string[] {
  const lines = text.split('\n');
  const marker = lines.indexOf(KEPT_MARKER);
  const candidates =
    marker >= 0 ? lines.slice(marker + 1) : lines.filter((line) => !generated.includes(line));
  return candidates.filter((line) => parsePgpassLine(line) !== undefined);
}

export { readPgpass };
