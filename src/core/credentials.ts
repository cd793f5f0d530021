// Where passwords come from, following libpq's conventions, and the private password file handed to
// the bucardo executable and daemon so that no password is ever on a command line or in a log.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { DatabaseConfig } from '../config/types.js';
import type { Job } from './job.js';
import { formatPgpassLine, matchPassword, operatorPgpassFile, parsePgpassLine, readPgpass, type PasswordEntry } from './pgpass.js';

export interface LoginTarget { db: DatabaseConfig; user: string; database: string }

/** Order: the database's password_env, its passfile, PGPASSWORD, PGPASSFILE or ~/.pgpass, then the job's private file. */
export function resolvePassword(target: LoginTarget, privateFile?: string): string | undefined {
  const { db, user, database } = target;
  const lookup = (file: string) => matchPassword(readPgpass(file), db.host, db.port, database, user);
  if (db.passwordEnv && process.env[db.passwordEnv] !== undefined) return process.env[db.passwordEnv];
  const fromConfiguredFile = db.passfile ? lookup(db.passfile) : undefined;
  if (fromConfiguredFile !== undefined) return fromConfiguredFile;
  if (process.env['PGPASSWORD'] !== undefined) return process.env['PGPASSWORD'];
  return lookup(operatorPgpassFile()) ?? (privateFile ? lookup(privateFile) : undefined);
}

export function privatePgpassFile(job: Job): string {
  return path.join(job.paths.stateDir, '.pgpass');
}

/** Every login the bucardo executable and daemon make for this job. */
export function jobLogins(job: Job): LoginTarget[] {
  const { bucardo, primary, secondary } = job.config.databases;
  return [
    { db: bucardo, user: bucardo.databaseOwner, database: job.metadataDb },
    { db: bucardo, user: bucardo.databaseOwner, database: bucardo.fallbackDb },
    { db: bucardo, user: bucardo.installUser, database: bucardo.fallbackDb },
    { db: primary, user: primary.databaseOwner, database: primary.dbname },
    { db: secondary, user: secondary.databaseOwner, database: secondary.dbname },
  ];
}

/**
 * Writes the job's private .pgpass (mode 0600) with the passwords the operator supplied, keeping the
 * lines Bucardo itself appended (its install stores the generated password of the bucardo role there).
 */
export function writePrivatePgpass(job: Job): string {
  const file = privatePgpassFile(job);
  mkdirSync(job.paths.stateDir, { recursive: true, mode: 0o700 });
  const resolved: PasswordEntry[] = [];
  for (const login of jobLogins(job)) {
    // Skip the private file itself as a source: it is what we are writing.
    const password = resolvePassword(login);
    if (password !== undefined) resolved.push({ host: login.db.host, port: String(login.db.port), database: login.database, user: login.user, password });
  }
  const sameKey = (a: PasswordEntry, b: PasswordEntry) => a.host === b.host && a.port === b.port && a.database === b.database && a.user === b.user;
  const kept = existsSync(file)
    ? readFileSync(file, 'utf8').split('\n').filter((line) => {
      const entry = parsePgpassLine(line);
      return entry !== undefined && !resolved.some((r) => sameKey(r, entry));
    })
    : [];
  const text = [...resolved.map(formatPgpassLine), ...kept].join('\n');
  writeFileSync(file, text ? `${text}\n` : '', { mode: 0o600 });
  chmodSync(file, 0o600);
  return file;
}

export { readPgpass };
