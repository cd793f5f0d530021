// The database sessions of one command: `ctx.db.primary()`, `ctx.db.secondary()`, `ctx.db.metadata()`
// open a connection on first use (through db.ts, so logins, passwords, SSL and Ctrl-C come with it),
// hand the same session to every later call of the command (its run, the hooks around it, its
// validate), and the runner closes them all when the command ends, whether it succeeded, failed or was
// interrupted. A command that asks several small questions of a server then costs one connection
// per server instead of one per question.
//
// Shared sessions are for single statements. Anything that leaves state on a session takes a
// dedicated one with `withClient` and closes it itself: a transaction (`withTransaction`, lock-bounded
// DDL with SET LOCAL lock_timeout), session settings (`set_config(..., false)`), COPY, LISTEN, a
// notice listener, or work run in parallel on several connections (`runPool`). Two callers of one
// shared session may interleave their statements, which is harmless for single statements only; a
// shared session queues them itself (pg's own queue warns that it is going away).
import type { DatabaseRole } from '../config/types.js';
import type { Activity } from './activity.js';
import { openClient, withClient, type Client, type ConnectionRequest, type Login } from './db.js';
import { OperatorError } from './errors.js';
import type { Job } from './job.js';
import type { CommandContext } from './plugin.js';

/** One job's shared sessions for the command under way. */
export class DatabaseContext {
  private readonly sessions = new Map<string, Promise<Client>>();
  private closed = false;

  constructor(
    readonly job: Job,
    /** The command's activity: a shared session's running statement is cancelled on Ctrl-C. */
    readonly activity?: Activity,
  ) {}

  /** The primary database, as the database owner unless another login is asked for. */
  primary(login: Login = 'database_owner'): Promise<Client> {
    return this.session({ role: 'primary', login });
  }

  /** The secondary database, as the database owner unless another login is asked for. */
  secondary(login: Login = 'database_owner'): Promise<Client> {
    return this.session({ role: 'secondary', login });
  }

  /** The job's Bucardo metadata database (job.metadataDb) as the Bucardo role. */
  metadata(): Promise<Client> {
    return this.session({ role: 'bucardo' });
  }

  /**
   * The metadata server's fallback database as the install user: there, the metadata database's
   * existence can be asked before it exists (bucardo.install creates it).
   */
  metadataServer(): Promise<Client> {
    return this.session({
      role: 'bucardo',
      login: 'install_user',
      database: this.job.config.databases.bucardo.fallbackDb,
    });
  }

  /** The shared session for a role, login and database (the defaults of db.ts when left out). */
  session(request: SessionRequest): Promise<Client> {
    if (this.closed) {
      return Promise.reject(
        new Error(`the command has ended: its ${request.role} session is closed and cannot be reopened`),
      );
    }
    const key = `${request.role}/${request.login ?? 'database_owner'}/${request.database ?? ''}`;
    let session = this.sessions.get(key);
    if (!session) {
      const full: ConnectionRequest = { ...request, ...(this.activity ? { activity: this.activity } : {}) };
      session = openClient(this.job, full).then((client) => {
        oneStatementAtATime(client);
        // A session the server ended (restart, idle timeout) is opened again by the next call.
        client.once('end', () => {
          if (this.sessions.get(key) === session) this.sessions.delete(key);
        });
        return client;
      });
      // A failed connection is not kept: the next call tries again (bucardo.status --watch).
      session.catch(() => {
        if (this.sessions.get(key) === session) this.sessions.delete(key);
      });
      this.sessions.set(key, session);
    }
    return session;
  }

  /** How many shared sessions are open now. */
  get openSessions(): number {
    return this.sessions.size;
  }

  /** Closes every session; later requests are refused. Never throws: closing is cleanup. */
  async close(): Promise<void> {
    this.closed = true;
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(
      sessions.map(async (session) => {
        const client = await session.catch(() => undefined);
        await client?.end().catch(() => undefined);
      }),
    );
  }
}

/**
 * Makes a shared session run its statements one after the other when callers running side by side
 * (listeners of one announcement, a hook and a poll) ask at once: each waits for the one before.
 * COPY streams and callback-style calls pass straight through; shared sessions are not for them.
 */
function oneStatementAtATime(client: Client): void {
  const direct = client.query.bind(client) as (...args: unknown[]) => unknown;
  let previous: Promise<unknown> = Promise.resolve();
  const queued = (...args: unknown[]): unknown => {
    const first = args[0] as { submit?: unknown } | undefined;
    if (typeof first?.submit === 'function' || typeof args.at(-1) === 'function') return direct(...args);
    const result = previous.then(() => direct(...args));
    previous = result.catch(() => undefined);
    return result;
  };
  client.query = queued as Client['query'];
}

/** A database as asked of a job: its role, the login (database owner by default), another database. */
export interface SessionRequest {
  role: DatabaseRole;
  login?: Login;
  database?: string;
}

/**
 * Runs fn on the command's shared session when given `ctx.db`, else on a session of its own that is
 * closed after: for core readers called both by commands and by code without a command (the kicker).
 */
export async function withSession<T>(
  source: Job | DatabaseContext,
  request: SessionRequest,
  fn: (client: Client) => Promise<T>,
  activity?: Activity,
): Promise<T> {
  if (source instanceof DatabaseContext) return fn(await source.session(request));
  return withClient(source, { ...request, ...(activity ? { activity } : {}) }, fn);
}

/** The shared sessions of every job a command touches (a -c1/-c2 session has two). */
export class CommandDatabases {
  private readonly contexts = new Map<Job, DatabaseContext>();

  constructor(private readonly activity?: Activity) {}

  for(job: Job): DatabaseContext {
    let context = this.contexts.get(job);
    if (!context) {
      context = new DatabaseContext(job, this.activity);
      this.contexts.set(job, context);
    }
    return context;
  }

  /** Closes every job's sessions (the runner's finally). */
  async close(): Promise<void> {
    await Promise.all([...this.contexts.values()].map((context) => context.close()));
  }
}

/** Runs fn with a command's databases and closes them after, for code run outside the runner (the demo, benchmarks). */
export async function withCommandDatabases<T>(
  activity: Activity | undefined,
  fn: (databases: CommandDatabases) => Promise<T>,
): Promise<T> {
  const databases = new CommandDatabases(activity);
  try {
    return await fn(databases);
  } finally {
    await databases.close();
  }
}

/** What a command would destroy, in the operator's words, before it asks (copyOverwriteRisk). */
export interface Risk {
  /** What would be lost and why, one sentence. */
  what: string;
  /** The yes/no question put at the prompt. */
  question: string;
  /** What to do instead of confirming: the command again with --yes, or another setting. */
  refusal: string;
}

/**
 * Confirm or refuse, the one way a command asks before it destroys something: with --yes (which the
 * command declares) it goes on; in a list, where nobody can answer, it refuses and names --yes; at the
 * prompt it shows the risk and asks, no by default. Throws an OperatorError when not confirmed (the
 * command has changed nothing yet); returns the step the command records.
 */
export async function confirmOrRefuse(ctx: CommandContext, risk: Risk, command: string): Promise<string> {
  if (ctx.options.flag('yes')) return `${risk.what}; confirmed with --yes`;
  if (!ctx.prompt.interactive)
    throw new OperatorError(`${risk.what}. A list cannot ask, so ${command} stops here. ${risk.refusal}`);
  ctx.log(`${risk.what}.`);
  if (!(await ctx.prompt.confirm(risk.question, false)))
    throw new OperatorError(`Not confirmed. ${risk.refusal}`);
  return `${risk.what}; confirmed at the prompt`;
}
