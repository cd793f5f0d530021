// The PgBouncer in front of the application (cutover.pgbouncer), driven over its admin console:
// PAUSE is the write stop (running transactions finish, new ones queue in the pooler), the switch
// rewrites the application's [databases] entries in the pooler's ini file and RELOADs it, and RESUME
// lets the queued transactions run on the new primary. Before anything is paused, checkPooler proves
// every step can be taken (the console answers, the password is right, the running pooler reads the
// configured file, the file is writable and holds the entries), so a bad setting stops the command
// with nothing paused.
import { constants, accessSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { sleep } from '../../src/core/activity.js';
import { openServerClient, withServerClient, type Client, type ServerEndpoint } from '../../src/core/db.js';
import { OperatorError, errorMessage } from '../../src/core/errors.js';
import type { PoolerSettings } from './settings.js';
import { databaseEntries, entryTarget, pointEntries, type PoolerTarget } from './pooler-config.js';

const KEYS = 'cutover.pgbouncer';

function adminConsole(settings: PoolerSettings): ServerEndpoint {
  return {
    host: settings.host,
    port: settings.port,
    user: settings.user,
    database: 'pgbouncer',
    ...(settings.passwordEnv ? { passwordEnv: settings.passwordEnv } : {}),
    ...(settings.passfile ? { passfile: settings.passfile } : {}),
    description: 'the PgBouncer admin console',
    keys: KEYS,
  };
}

interface PoolerDatabase {
  name: string;
  host: string | null;
  port: string;
  database: string;
  paused: string;
}

async function showDatabases(client: Client): Promise<PoolerDatabase[]> {
  return (await client.query<PoolerDatabase>('SHOW DATABASES')).rows;
}

function describeTarget(target: {
  host?: string | undefined;
  port?: number | undefined;
  dbname: string;
}): string {
  return `${target.dbname} on ${target.host ?? '(socket)'}:${target.port ?? 5432}`;
}

function sameTarget(a: { host?: string; port?: number; dbname: string }, b: PoolerTarget): boolean {
  return (
    a.host?.toLowerCase() === b.host.toLowerCase() && (a.port ?? 5432) === b.port && a.dbname === b.dbname
  );
}

/** Why the ini file cannot be rewritten, or undefined. Root could write a file of mode 0444: its mode is respected. */
function unwritableReason(file: string): string | undefined {
  try {
    const stat = statSync(file);
    if (!stat.isFile()) return 'it is not a regular file';
    accessSync(file, constants.R_OK | constants.W_OK);
    if ((stat.mode & 0o222) === 0)
      return `its mode is ${(stat.mode & 0o777).toString(8).padStart(4, '0')} (nobody may write it)`;
    return undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? errorMessage(error);
  }
}

export interface PoolerCheck {
  /** Where the entries point now: 'source' (writes still go to the side being left) or 'target' (already switched). */
  pointsAt: 'source' | 'target';
  detail: string;
}

/** A session on the admin console, held open until released. */
interface ConsoleSession {
  client: Client;
  /** Statements in flight on it. */
  busy: number;
  /** The pooler or the network ended it. */
  ended: boolean;
  release(): Promise<void>;
}

/**
 * The pooler's admin console for one command (cutover.finish, cutover.rollback): one session, opened
 * at the check and ended by close() when the command's switch is over (WriteStop.around), serves its
 * statements one after the other: SHOW, PAUSE, RELOAD, RESUME. In the pause that also spares the
 * application a login to the console before the RELOAD and the RESUME. Two exceptions keep the write
 * stop safe, since the console answers a PAUSE only once the pause is done and runs one statement at a
 * time per session: a PAUSE still waiting at pause_timeout keeps its session busy, so the RESUME that
 * takes it back goes over a new one (the waiting session is dropped, and ended at close()); and a
 * RESUME never queues behind another statement in flight: it goes over a session of its own. A RELOAD
 * or a RESUME whose session ended under it (a pooler restart, the network) runs again on a new one.
 */
export class PoolerConsole {
  private session?: Promise<ConsoleSession>;
  private readonly dropped: Promise<ConsoleSession>[] = [];

  constructor(readonly settings: PoolerSettings) {}

  /**
   * Everything the switch will need, checked without changing anything: refuses with one paragraph
   * naming the cause and the fix.
   */
  async check(source: PoolerTarget, target: PoolerTarget): Promise<PoolerCheck> {
    const { settings } = this;
    const file = settings.configFile;
    const { databases, conffile } = await this.run(async (client) => ({
      databases: await showDatabases(client),
      conffile: (await client.query<{ key: string; value: string }>('SHOW CONFIG')).rows.find(
        (row) => row.key === 'conffile',
      )?.value,
    })).catch((error: unknown) => {
      throw error instanceof OperatorError
        ? new OperatorError(`${error.message} Nothing was paused.`)
        : error;
    });
    const unknown = settings.databases.filter((name) => !databases.some((db) => db.name === name));
    if (unknown.length)
      throw new OperatorError(
        `The pooler at ${settings.host}:${settings.port} has no database ${unknown.join(', ')} (it has ${databases.map((d) => d.name).join(', ')}). Name in ${KEYS}.databases the pooler's database names the application connects to. Nothing was paused.`,
      );
    if (conffile && realpathOr(conffile) !== realpathOr(file))
      throw new OperatorError(
        `The pooler at ${settings.host}:${settings.port} reads ${conffile}, not ${KEYS}.config_file ${file}: the switch would rewrite a file the pooler never reads. Set ${KEYS}.config_file to ${conffile}. Nothing was paused.`,
      );
    const unwritable = unwritableReason(file);
    if (unwritable)
      throw new OperatorError(
        `The pooler's ${KEYS}.config_file ${file} cannot be rewritten at the switch: ${unwritable}. Run the tool as a user that may write it (the pooler's owner), or make it writable (chmod u+w), so that its [databases] entries can be pointed at the new primary. Nothing was paused.`,
      );
    let entries;
    try {
      entries = databaseEntries(readFileSync(file, 'utf8'));
      for (const name of settings.databases) if (entries.has(name)) entryTarget(entries.get(name)!);
    } catch (error) {
      throw new OperatorError(
        `The pooler's ${KEYS}.config_file ${file} cannot be read as PgBouncer's ini file: ${errorMessage(error)}. Nothing was paused.`,
      );
    }
    const missing = settings.databases.filter((name) => !entries.has(name));
    if (missing.length)
      throw new OperatorError(
        `${file} has no entry for ${missing.join(', ')} in its [databases] section (an entry in a %include'd file or the * fallback cannot be switched). Write the entry in that file itself, as name = host=... port=... dbname=..., then RELOAD the pooler. Nothing was paused.`,
      );
    const targets = settings.databases.map((name) => ({ name, at: entryTarget(entries.get(name)!) }));
    const elsewhere = targets.filter((t) => !sameTarget(t.at, source) && !sameTarget(t.at, target));
    if (elsewhere.length)
      throw new OperatorError(
        `The pooler's entries ${elsewhere.map((t) => `${t.name} (${describeTarget(t.at)})`).join(', ')} in ${file} point at neither side of the switch (${describeTarget(source)} nor ${describeTarget(target)}). Write them with the host, port and dbname of the databases section, as the tool connects, then RELOAD the pooler. Nothing was paused.`,
      );
    const switched = targets.every((t) => sameTarget(t.at, target));
    return {
      pointsAt: switched ? 'target' : 'source',
      detail: `pooler ${settings.host}:${settings.port}: ${settings.databases.join(', ')} → ${describeTarget(switched ? target : source)}, ${file} writable`,
    };
  }

  /**
   * PAUSE on each of the application's databases: returns once their running transactions finished
   * and their server connections are closed. Bounded by pause_timeout; past it, RESUME and refuse.
   */
  async pause(signal?: AbortSignal): Promise<void> {
    const { settings } = this;
    const timeoutMs = settings.pauseTimeoutSeconds * 1000;
    let timer: NodeJS.Timeout | undefined;
    const paused = this.run(async (client) => {
      for (const name of settings.databases) {
        try {
          await client.query(`PAUSE ${adminName(name)}`);
        } catch (error) {
          if (!alreadyInState(error)) throw error;
        }
      }
    });
    const pausing = this.session;
    const expired = new Promise<'expired'>((resolve) => {
      timer = setTimeout(() => resolve('expired'), timeoutMs);
    });
    try {
      const outcome = await Promise.race([paused.then(() => 'paused' as const), expired]);
      if (outcome === 'expired') {
        // The PAUSE still waits for a transaction or a session pool's client, and holds its session
        // until then: that session is dropped, and the RESUME that takes the pause back goes over a new one.
        this.drop(pausing);
        await this.resume();
        paused.catch(() => undefined);
        throw new OperatorError(
          `The pooler did not finish pausing ${settings.databases.join(', ')} within ${settings.pauseTimeoutSeconds} s (${KEYS}.pause_timeout): a transaction ran longer, or the pool_mode is session and clients stay connected (PAUSE then waits for them to disconnect). It was resumed on the primary: the application saw a stall, no error. Use pool_mode = transaction for the application's databases, or raise ${KEYS}.pause_timeout, and run the command again.`,
        );
      }
    } finally {
      clearTimeout(timer);
    }
    signal?.throwIfAborted();
  }

  /** RESUME on each of the application's databases (one not paused is fine). */
  async resume(): Promise<void> {
    const resume = async (client: Client) => {
      for (const name of this.settings.databases) {
        try {
          await client.query(`RESUME ${adminName(name)}`);
        } catch (error) {
          if (!alreadyInState(error)) throw error;
        }
      }
    };
    // The application's transactions wait in the pooler until the RESUME: it waits for no other statement.
    const current = await this.session?.catch(() => undefined);
    if (current && current.busy > 0) await withServerClient(adminConsole(this.settings), resume);
    else await this.run(resume, { again: true });
  }

  /**
   * Points the entries at the target in the ini file (everything else kept) and RELOADs; returns the
   * file's previous text, to put back if the switch is called off. Waits (bounded) until the running
   * pooler reports the new target for every entry.
   */
  async point(target: PoolerTarget): Promise<string> {
    const file = this.settings.configFile;
    const previous = readFileSync(file, 'utf8');
    writeFileSync(file, pointEntries(previous, this.settings.databases, target));
    await this.reloadUntil(target);
    return previous;
  }

  /**
   * Points the entries back at the source (the call-off before the switch): the file's earlier text
   * when its entries pointed there, byte for byte; otherwise (an earlier run had switched it) that text
   * with the entries pointed at the source. Then RELOAD.
   */
  async restore(previous: string, source: PoolerTarget): Promise<void> {
    const { settings } = this;
    const entries = databaseEntries(previous);
    const atSource = settings.databases.every((name) => {
      const entry = entries.get(name);
      return entry !== undefined && sameTarget(entryTarget(entry), source);
    });
    writeFileSync(
      settings.configFile,
      atSource ? previous : pointEntries(previous, settings.databases, source),
    );
    await this.reloadUntil(source);
  }

  /** Ends the console's sessions (the one in use and any dropped). Never throws: closing is cleanup. */
  async close(): Promise<void> {
    const sessions = [...this.dropped, ...(this.session ? [this.session] : [])];
    this.session = undefined;
    this.dropped.length = 0;
    await Promise.all(
      sessions.map(async (session) =>
        (await session.catch(() => undefined))?.release().catch(() => undefined),
      ),
    );
  }

  private async reloadUntil(target: PoolerTarget): Promise<void> {
    const { settings } = this;
    await this.run(
      async (client) => {
        await client.query('RELOAD');
        const deadline = Date.now() + 10_000;
        for (;;) {
          const databases = await showDatabases(client);
          const wrong = settings.databases.filter((name) => {
            const db = databases.find((d) => d.name === name);
            return (
              !db ||
              !sameTarget(
                { ...(db.host ? { host: db.host } : {}), port: Number(db.port), dbname: db.database },
                target,
              )
            );
          });
          if (!wrong.length) return;
          if (Date.now() > deadline)
            throw new OperatorError(
              `The pooler did not take the new entries for ${wrong.join(', ')} within 10 s of RELOAD (SHOW DATABASES still shows the old target): its log says why (a syntax error in ${settings.configFile}?).`,
            );
          await sleep(100);
        }
      },
      { again: true },
    );
  }

  /**
   * Runs fn on the console's session, opened on first use (again after the pooler ended it). With
   * again (RELOAD, RESUME: both may be repeated), fn runs once more on a new session when the one it
   * ran on ended under it: the call-off needs them as much as a fresh login per statement gave them.
   */
  private async run<T>(fn: (client: Client) => Promise<T>, { again = false } = {}): Promise<T> {
    const session = (this.session ??= this.open());
    const held = await session.catch((error: unknown) => {
      // A failed login is not kept: the next statement tries again.
      if (this.session === session) this.session = undefined;
      throw error;
    });
    held.busy += 1;
    try {
      return await fn(held.client);
    } catch (error) {
      // The session's 'end' may come a moment after the statement failed.
      if (again && !held.ended) await sleep(50);
      if (!again || !held.ended) throw error;
      this.drop(session);
      return this.run(fn);
    } finally {
      held.busy -= 1;
    }
  }

  /** The console's session, until released or until the pooler ends it. */
  private open(): Promise<ConsoleSession> {
    const opened = openServerClient(adminConsole(this.settings)).then((client) => {
      const held: ConsoleSession = {
        client,
        busy: 0,
        ended: false,
        release: () => client.end().catch(() => undefined),
      };
      // The pooler ended the session (restarted, client_idle_timeout): the next statement opens another.
      client.once('end', () => {
        held.ended = true;
        if (this.session === opened) this.session = undefined;
      });
      return held;
    });
    return opened;
  }

  private drop(session: Promise<ConsoleSession> | undefined): void {
    if (!session) return;
    if (this.session === session) this.session = undefined;
    this.dropped.push(session);
  }
}

function realpathOr(file: string): string {
  try {
    return realpathSync(file);
  } catch {
    return file;
  }
}

function alreadyInState(error: unknown): boolean {
  return /already|not paused|is not paused/i.test(errorMessage(error));
}

/** The admin console takes a database name as a bare word; quote only what needs it. */
function adminName(name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

export function poolerTargetOf(db: { host: string; port: number; dbname: string }): PoolerTarget {
  return { host: db.host, port: db.port, dbname: db.dbname };
}
