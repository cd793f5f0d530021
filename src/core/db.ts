// The one module that opens database connections. Every connection is built from the job's config
// for a role (metadata db, primary, secondary) and a login (database owner or schema owner),
// follows libpq's password and sslmode conventions, and is registered with the command's Activity
// so that Ctrl-C cancels its statement on the server.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import type { DatabaseConfig, DatabaseRole } from '../config/types.js';
import type { Activity } from './activity.js';
import { privatePgpassFile, resolvePassword } from './credentials.js';
import { OperatorError, UnreachableServerError } from './errors.js';
import { metadataDbName, type Job } from './job.js';

export type Login = 'database_owner' | 'schema_owner' | 'install_user';

export interface ConnectionRequest {
  role: DatabaseRole;
  /** Which configured role to log in as; default database_owner. */
  login?: Login;
  /** Another database on the same server (e.g. the metadata db's fallback_db). */
  database?: string;
  activity?: Activity;
  applicationName?: string;
}

export type Client = pg.Client;

/** Sessions opened and closed by this process so far: tests prove a command closes what it opened. */
const sessionCounts = { opened: 0, closed: 0 };
export function sessionsOpenedAndClosed(): { opened: number; closed: number } {
  return { ...sessionCounts };
}

let pgModule: typeof pg | undefined;
async function loadPg(): Promise<typeof pg> {
  // pg is loaded on first use only: the shell must reach its prompt without it.
  if (pgModule) return pgModule;
  // pg (lib/stream.js) asks on load whether it runs in a Cloudflare Worker: by navigator.userAgent,
  // else by constructing a fetch Response. Node 20 has no global navigator, so the Response loads
  // Node's whole fetch implementation (undici), some 30 ms of CPU in every tool run that opens a
  // session. A navigator that is not Cloudflare's answers the question; it is removed again at once.
  const lacksNavigator = !('navigator' in globalThis);
  if (lacksNavigator)
    Object.defineProperty(globalThis, 'navigator', { value: { userAgent: 'Node.js' }, configurable: true });
  try {
    pgModule = (await import('pg')).default;
  } finally {
    if (lacksNavigator) delete (globalThis as { navigator?: unknown }).navigator;
  }
  return pgModule;
}

export function databaseFor(job: Job, role: DatabaseRole): DatabaseConfig {
  return job.config.databases[role];
}

export function defaultDatabase(job: Job, role: DatabaseRole): string {
  return role === 'bucardo' ? metadataDbName(job) : job.config.databases[role].dbname;
}

export function loginUser(db: DatabaseConfig, login: Login = 'database_owner'): string {
  return login === 'schema_owner'
    ? db.schemaOwner
    : login === 'install_user'
      ? db.installUser
      : db.databaseOwner;
}

function describeTarget(db: DatabaseConfig, database: string, user: string): string {
  return `${db.role} database "${database}" on ${db.host}:${db.port} as ${user}`;
}

type SslOption = false | { rejectUnauthorized: boolean; ca?: string; checkServerIdentity?: () => undefined };

/**
 * The CA file libpq would use for this database: its sslrootcert, else PGSSLROOTCERT, else
 * ~/.postgresql/root.crt of the operator (Bucardo's HOME is the job's state dir, so it is named to
 * Bucardo explicitly). Undefined when that file does not exist.
 */
export function rootCertificate(db: DatabaseConfig): string | undefined {
  const file = defaultRootCertificate(db);
  return existsSync(file) ? file : undefined;
}

function defaultRootCertificate(db: DatabaseConfig): string {
  return db.sslrootcert ?? process.env['PGSSLROOTCERT'] ?? path.join(homedir(), '.postgresql', 'root.crt');
}

function sslAttempts(db: DatabaseConfig): SslOption[] {
  const rootCertFile = rootCertificate(db);
  let ca: string | undefined;
  try {
    ca = rootCertFile ? readFileSync(rootCertFile, 'utf8') : undefined;
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new OperatorError(
      `Cannot read the root certificate ${rootCertFile} for the ${db.role} database: ${reason}. ` +
        `Make databases.${db.role}.sslrootcert (or PGSSLROOTCERT) a readable CA file.`,
    );
  }
  // As libpq does: when a root certificate exists, every encrypted connection verifies the server's
  // certificate against it (require then behaves as verify-ca); without one, require only encrypts.
  const verifyCa: SslOption | undefined = ca
    ? { rejectUnauthorized: true, ca, checkServerIdentity: () => undefined }
    : undefined;
  const encrypted: SslOption = verifyCa ?? { rejectUnauthorized: false };
  switch (db.sslmode) {
    case 'disable':
      return [false];
    case 'allow':
      return [false, encrypted];
    case 'prefer':
      return [encrypted, false];
    case 'require':
      return [encrypted];
    case 'verify-ca':
    case 'verify-full': {
      if (!ca) {
        throw new OperatorError(
          `sslmode ${db.sslmode} for the ${db.role} database needs a root certificate, and ` +
            `${defaultRootCertificate(db)} does not exist. Set databases.${db.role}.sslrootcert (or PGSSLROOTCERT) ` +
            "to the CA file that signed the server's certificate, or use sslmode require.",
        );
      }
      return [db.sslmode === 'verify-ca' ? verifyCa! : { rejectUnauthorized: true, ca }];
    }
  }
}

/** A libpq conninfo value, single-quoted (with \\ and \\' escapes) when it holds spaces, quotes, backslashes or ';'. */
export function conninfoValue(value: string): string {
  return /^[^\s';\\]+$/.test(value) ? value : `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/**
 * Servers that answered "no SSL" to an encrypted attempt under sslmode prefer, by host and port, with
 * the time. libpq goes on in the same connection after that answer; pg closes it and connects again, so
 * each such session would cost the server two backends (two process starts). For a few minutes after
 * a refusal, prefer goes straight to an unencrypted connection there: a server's SSL setting does not
 * change from one statement to the next, and prefer promises no encryption (a long-lived process, the
 * kicker, asks again after the pause).
 */
const sslRefusedAt = new Map<string, number>();
const SSL_REFUSAL_REMEMBERED_MS = 5 * 60_000;

function serverKey(db: DatabaseConfig): string {
  return `${db.host}:${db.port}`;
}

/** Opens a connected client. The caller must end() it; prefer withClient. */
export async function openClient(job: Job, request: ConnectionRequest): Promise<Client> {
  const { Client: PgClient } = await loadPg();
  const db = databaseFor(job, request.role);
  const user = loginUser(db, request.login);
  const database = request.database ?? defaultDatabase(job, request.role);
  const password = resolvePassword({ db, user, database }, privatePgpassFile(job));
  const refusedAt = db.sslmode === 'prefer' ? sslRefusedAt.get(serverKey(db)) : undefined;
  const attempts =
    refusedAt !== undefined && Date.now() - refusedAt < SSL_REFUSAL_REMEMBERED_MS
      ? [false as const]
      : sslAttempts(db);
  let lastError: unknown;
  for (const ssl of attempts) {
    const client = new PgClient({
      host: db.host,
      port: db.port,
      database,
      user,
      password,
      ssl,
      application_name: request.applicationName ?? 'bucardo-console',
      connectionTimeoutMillis: 10_000,
    });
    // An idle client whose server goes away emits 'error'; without a listener that would crash the shell.
    client.on('error', () => undefined);
    try {
      await client.connect();
      sessionCounts.opened += 1;
      client.once('end', () => {
        sessionCounts.closed += 1;
      });
      if (request.activity) trackClient(job, request, client, db, database, user);
      return client;
    } catch (error) {
      lastError = error;
      await client.end().catch(() => undefined);
      const message = (error as Error).message ?? '';
      // As libpq does under allow/prefer: an SSL attempt that fails (no SSL, or a certificate that does
      // not verify against an existing root certificate) is retried the other way.
      const sslRefused =
        /SSL|certificate|unable to (get|verify)/i.test(message) && !/password|does not exist/i.test(message);
      if (!(sslRefused && attempts.length > 1)) break;
      if (db.sslmode === 'prefer' && /does not support SSL/.test(message))
        sslRefusedAt.set(serverKey(db), Date.now());
    }
  }
  throw explainConnectionError(lastError, db, database, user);
}

function trackClient(
  job: Job,
  request: ConnectionRequest,
  client: Client,
  db: DatabaseConfig,
  database: string,
  user: string,
): void {
  const activity = request.activity!;
  const backendPid = (client as unknown as { processID?: number }).processID;
  // Count statements in flight ourselves (pg's own activeQuery/queryQueue are private and deprecated).
  let inFlight = 0;
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    inFlight += 1;
    const done = () => {
      inFlight -= 1;
    };
    const result = query(...args);
    if (result && typeof (result as Promise<unknown>).then === 'function')
      (result as Promise<unknown>).then(done, done);
    else if (result && typeof (result as { once?: unknown }).once === 'function') {
      (result as NodeJS.EventEmitter).once('end', done);
      (result as NodeJS.EventEmitter).once('error', done);
    } else done();
    return result;
  };
  const untrack = activity.trackSession({
    description: describeTarget(db, database, user),
    backendPid,
    busy: () => inFlight > 0,
    cancel: async () => {
      const canceller = await openClient(job, {
        ...request,
        activity: undefined,
        applicationName: 'bucardo-console cancel',
      });
      try {
        const result = await canceller.query<{ cancelled: boolean }>(
          'SELECT pg_cancel_backend($1) AS cancelled',
          [backendPid],
        );
        return result.rows[0]?.cancelled === true;
      } finally {
        await canceller.end().catch(() => undefined);
      }
    },
  });
  client.once('end', untrack);
}

/** Runs fn with a connection and always closes it. */
export async function withClient<T>(
  job: Job,
  request: ConnectionRequest,
  fn: (client: Client) => Promise<T>,
): Promise<T> {
  const client = await openClient(job, request);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * A server that is not one of the job's databases: PgBouncer's admin console. Plain TCP (the console
 * speaks only the simple query protocol, which pg uses for a query without parameters), the password
 * from libpq's sources as for a database, and a timeout on connecting.
 */
export interface ServerEndpoint {
  host: string;
  port: number;
  user: string;
  database: string;
  passwordEnv?: string;
  passfile?: string;
  /** How messages name it ("the PgBouncer admin console") and the config section that sets it. */
  description: string;
  keys: string;
}

/** Runs fn on a connection to the endpoint and always closes it; connection failures name the cause and the fix. */
export async function withServerClient<T>(
  endpoint: ServerEndpoint,
  fn: (client: Client) => Promise<T>,
): Promise<T> {
  const client = await openServerClient(endpoint);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * A connection to the endpoint that the caller ends (a session kept over several steps: the pooler's
 * admin console over a switch); prefer withServerClient.
 */
export async function openServerClient(endpoint: ServerEndpoint): Promise<Client> {
  const { Client: PgClient } = await loadPg();
  const { host, port, user, database } = endpoint;
  const password = resolvePassword({ db: endpoint, user, database });
  const client = new PgClient({
    host,
    port,
    user,
    database,
    password,
    ssl: false,
    application_name: 'bucardo-console',
    connectionTimeoutMillis: 10_000,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    throw explainEndpointError(error, endpoint, password !== undefined);
  }
  sessionCounts.opened += 1;
  client.once('end', () => {
    sessionCounts.closed += 1;
  });
  return client;
}

function explainEndpointError(error: unknown, endpoint: ServerEndpoint, hadPassword: boolean): Error {
  const err = error as { code?: string; message?: string };
  const message = err?.message ?? String(error);
  const target = `${endpoint.description} (database "${endpoint.database}" on ${endpoint.host}:${endpoint.port} as ${endpoint.user})`;
  const keys = endpoint.keys;
  const passwordSources = `${keys}.password_env (an environment variable name), ${keys}.passfile, PGPASSWORD, PGPASSFILE or ~/.pgpass`;
  if (err?.code === 'ECONNREFUSED')
    return new OperatorError(
      `Cannot reach ${target}: connection refused. Is it running and listening on ${endpoint.host}:${endpoint.port}? Check ${keys}.host and ${keys}.port (its listen_addr and listen_port).`,
    );
  if (err?.code === 'ENOTFOUND' || err?.code === 'EAI_AGAIN')
    return new OperatorError(`Cannot reach ${target}: the host name does not resolve. Check ${keys}.host.`);
  if (/timeout/i.test(message) || err?.code === 'ETIMEDOUT' || err?.code === 'EHOSTUNREACH')
    return new OperatorError(
      `Cannot reach ${target}: ${message}. Check ${keys}.host/port and any firewall between this machine and it.`,
    );
  if (err?.code === '28P01' || /password authentication failed|SASL authentication failed/i.test(message))
    return new OperatorError(
      `Password authentication failed for ${target}: ${message}. Supply the password of ${endpoint.user} (as in the pooler's auth_file) through ${passwordSources}.`,
    );
  if (
    /password must be a string|client password must be a string/i.test(message) ||
    (!hadPassword && /SASL|password/i.test(message))
  )
    return new OperatorError(
      `${target} asks for a password and none was found. Supply it through ${passwordSources}.`,
    );
  return new OperatorError(`Cannot connect to ${target}: ${message}.`);
}

/** BEGIN / COMMIT around fn; ROLLBACK on any error. */
export async function withTransaction<T>(client: Client, fn: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** Turns driver errors into one paragraph naming the cause and the fix. */
export function explainConnectionError(
  error: unknown,
  db: DatabaseConfig,
  database: string,
  user: string,
): Error {
  const err = error as { code?: string; message?: string };
  const target = describeTarget(db, database, user);
  const keys = `databases.${db.role}`;
  const message = err?.message ?? String(error);
  switch (err?.code) {
    case 'ECONNREFUSED':
      return new UnreachableServerError(
        `Cannot reach the ${target}: connection refused. Is PostgreSQL running and listening on ${db.host}:${db.port}? Check ${keys}.host and ${keys}.port, and listen_addresses on the server.`,
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new UnreachableServerError(
        `Cannot reach the ${target}: the host name ${db.host} does not resolve. Check ${keys}.host.`,
      );
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
      return new UnreachableServerError(
        `Cannot reach the ${target}: ${message}. Check ${keys}.host/port and any firewall between this machine and the server.`,
      );
    case '28P01':
      return new OperatorError(
        `Password authentication failed for the ${target}. Supply the right password through ${keys}.password_env (an environment variable name), ${keys}.passfile, PGPASSWORD, PGPASSFILE or ~/.pgpass.`,
      );
    case '28000':
      if (/no encryption/.test(message)) {
        return new OperatorError(
          `The server refused the unencrypted ${target}: ${message}. It accepts SSL ` +
            `connections only: set ${keys}.sslmode to require (or verify-full with ${keys}.sslrootcert).`,
        );
      }
      return new OperatorError(
        `The server refused the ${target}: ${message}. Add a pg_hba.conf entry for this host and role, or check ${keys}.database_owner / sslmode.`,
      );
    case '3D000':
      return new OperatorError(
        `The ${target} does not exist: ${message}. Check ${keys}.dbname${db.role === 'bucardo' ? ' (the metadata database is created by bucardo.install)' : ''}.`,
      );
    case '57P03':
      return new OperatorError(
        `The server for the ${target} is starting up or shutting down; try again in a moment.`,
      );
  }
  if (/timeout expired|Connection terminated due to connection timeout/i.test(message)) {
    return new UnreachableServerError(
      `Cannot reach the ${target}: the connection timed out after 10 s. Check ${keys}.host/port and the network path.`,
    );
  }
  if (/password must be a string|SASL|client password must be a string/i.test(message)) {
    return new OperatorError(
      `The ${target} asks for a password and none was found. Supply it through ${keys}.password_env, ${keys}.passfile, PGPASSWORD, PGPASSFILE or ~/.pgpass.`,
    );
  }
  const certificateProblem =
    /self.signed|certificate|unable to (get|verify)|Hostname\/IP does not match/i.test(message) ||
    /^CERT_|_CERT|SELF_SIGNED/.test(err?.code ?? '');
  if (certificateProblem) {
    const cause = /Hostname\/IP does not match|ERR_TLS_CERT_ALTNAME_INVALID/.test(
      `${message} ${err?.code ?? ''}`,
    )
      ? `the server's certificate does not name ${db.host} (sslmode ${db.sslmode} checks the host name)`
      : "certificate verify failed: the server's certificate is not signed by the root certificate " +
        `${rootCertificate(db) ?? '(none found)'}`;
    const byName = db.sslmode === 'verify-full' ? ', connect by the name the certificate carries' : '';
    return new OperatorError(
      `SSL connection to the ${target} failed: ${cause} (${message}). Set ${keys}.sslrootcert ` +
        `(or PGSSLROOTCERT) to the CA file that signed the server's certificate${byName}, or lower ${keys}.sslmode ` +
        'to require to encrypt without verifying.',
    );
  }
  if (/does not support SSL|SSL/i.test(message)) {
    return new OperatorError(
      `SSL negotiation with the ${target} failed: ${message}. Check ${keys}.sslmode (the server ` +
        `may not offer SSL, or may require it) and ${keys}.sslrootcert.`,
    );
  }
  return new OperatorError(`Cannot connect to the ${target}: ${message}.`);
}
