// Write fencing (cutover.fence): once the write pause begins, the database writes move away from
// refuses writes from the application's roles. New sessions of those roles start read-only
// (default_transaction_read_only, per role and database, as ALTER ROLE ... IN DATABASE sets it); their
// sessions already there are ended: idle ones at once, those inside a transaction after
// cutover.fence_grace seconds (a transaction that began before the pause may still commit, and the
// late-write checks see it). So no write of those roles lands on the old primary after the switch,
// whoever forgot to repoint. The fence is recorded in the metadata database (cutover.fence) before it
// is put in place, so a rerun, a call-off and cutover.rollback know what to undo, and each role's own
// earlier setting there is put back rather than reset.
import { sleep, type Activity } from '../../src/core/activity.js';
import { DatabaseContext } from '../../src/core/context.js';
import { withClient, type Client } from '../../src/core/db.js';
import { OperatorError } from '../../src/core/errors.js';
import type { Job } from '../../src/core/job.js';
import type { CommandContext } from '../../src/core/plugin.js';
import { quoteIdent, quoteLiteral } from '../../src/core/quote.js';
import { RECORD_SCHEMA, withRecords } from './records.js';

interface FencedRole {
  role: string;
  /** The role's own default_transaction_read_only in that database before the fence, if it had one. */
  previous: string | null;
}

/** The side writes leave in this direction: the job's primary (the reverse job's is B). */
function fencedDatabase(job: Job) {
  return job.config.databases.primary;
}

/** What the fence will do, worked out before the pause so that the pause only applies it. */
export interface FencePlan {
  roles: string[];
  graceSeconds: number;
  /** Each role's earlier setting: from the record when an earlier run fenced already. */
  fenced: FencedRole[];
  recorded: boolean;
}

/**
 * Refuses, before anything is paused, a fence that would lock out the tool or Bucardo (their logins on
 * that database must keep writing: triggers are dropped there, the way back applies there) or that
 * names a role the server does not know; reads what the pause will need.
 */
export async function planFence(
  job: Job,
  ctx: CommandContext,
  roles: string[],
  graceSeconds: number,
): Promise<FencePlan> {
  const db = fencedDatabase(job);
  const own = roles.filter((role) => role === db.databaseOwner || role === db.schemaOwner);
  if (own.length)
    throw new OperatorError(
      `cutover.fence names ${own.join(', ')}, which the tool and Bucardo log in as on ${db.dbname} (databases.${db.role}.database_owner / schema_owner): fenced, they could not drop the triggers or carry the way back. List only the application's roles in cutover.fence. Nothing was paused.`,
    );
  const sessions = ctx.databases(job);
  const primary = await sessions.primary();
  const { rows } = await primary.query<{ role: string }>(
    'SELECT r AS role FROM unnest($1::text[]) r WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r)',
    [roles],
  );
  if (rows.length)
    throw new OperatorError(
      `cutover.fence names ${rows.map((row) => row.role).join(', ')}, unknown on ${db.host}:${db.port}: list the roles the application logs in as. Nothing was paused.`,
    );
  const recorded = await readFence(sessions, ctx.activity);
  return {
    roles,
    graceSeconds,
    fenced: recorded?.roles ?? (await previousSettings(primary, roles)),
    recorded: recorded !== undefined,
  };
}

async function previousSettings(client: Client, roles: string[]): Promise<FencedRole[]> {
  const { rows } = await client.query<{ role: string; previous: string | null }>(
    `SELECT r AS role,
            (SELECT substr(c, length('default_transaction_read_only=') + 1)
               FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase, unnest(s.setconfig) c
              WHERE d.datname = current_database() AND s.setrole = (SELECT oid FROM pg_roles WHERE rolname = r)
                AND c LIKE 'default_transaction_read_only=%') AS previous
       FROM unnest($1::text[]) r`,
    [roles],
  );
  return rows;
}

/**
 * Puts the fence in place: recorded first, then the roles made read-only, then their sessions ended.
 * On the command's shared sessions: inside the pause, no connection is opened.
 */
export async function fenceWrites(job: Job, ctx: CommandContext, plan: FencePlan): Promise<string> {
  const db = fencedDatabase(job);
  if (!plan.recorded) {
    const records = await ctx.databases(job).metadata();
    await records.query(
      `INSERT INTO ${RECORD_SCHEMA}.fence (job, host, port, dbname, roles) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (job) DO NOTHING`,
      [job.name, db.host, db.port, db.dbname, JSON.stringify(plan.fenced)],
    );
  }
  const client = await ctx.databases(job).primary();
  await client.query(
    plan.roles
      .map(
        (role) =>
          `ALTER ROLE ${quoteIdent(role)} IN DATABASE ${quoteIdent(db.dbname)} SET default_transaction_read_only = on`,
      )
      .join('; '),
  );
  const ended = await endSessions(client, ctx, plan.roles, plan.graceSeconds);
  const grace = plan.graceSeconds;
  return `fenced ${plan.roles.join(', ')} on ${db.dbname} (${db.host}:${db.port}): new sessions read-only${ended.total ? `; ended ${ended.total} session(s) of theirs${ended.afterGrace ? `, ${ended.afterGrace} still in a transaction after ${grace} s` : ''}` : ''}`;
}

/** Ends the roles' sessions: idle ones at once, those in a transaction once it ends or the grace is over. */
async function endSessions(
  client: Client,
  ctx: CommandContext,
  roles: string[],
  graceSeconds: number,
): Promise<{ total: number; afterGrace: number }> {
  const deadline = Date.now() + graceSeconds * 1000;
  let total = 0;
  let afterGrace = 0;
  for (;;) {
    const graceOver = Date.now() >= deadline;
    const { rows } = await client.query<{ pid: number; busy: boolean }>(
      `SELECT pid, state NOT IN ('idle', 'disabled') AS busy FROM pg_stat_activity
        WHERE datname = current_database() AND usename = ANY($1) AND pid <> pg_backend_pid()`,
      [roles],
    );
    const now = rows.filter((row) => graceOver || !row.busy);
    if (now.length)
      await client.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid', [
        now.map((r) => r.pid),
      ]);
    total += now.length;
    if (graceOver) afterGrace += now.length;
    if (now.length === rows.length) return { total, afterGrace };
    ctx.progress(`waiting for ${rows.length - now.length} fenced session(s) to finish their transaction`);
    await sleep(100, ctx.activity.signal);
  }
}

export interface FenceRecord {
  host: string;
  port: number;
  dbname: string;
  roles: FencedRole[];
  fencedAt: string;
}

/** The fence recorded for the job, read on `source`'s sessions (a command's `ctx.databases(job)`), or undefined. */
export async function readFence(
  source: Job | DatabaseContext,
  activity?: Activity,
): Promise<FenceRecord | undefined> {
  const job = source instanceof DatabaseContext ? source.job : source;
  const rows = await withRecords(source, activity, async (client) => {
    const result = await client.query<FenceRecord>(
      `SELECT host, port, dbname, roles, fenced_at::text AS "fencedAt" FROM ${RECORD_SCHEMA}.fence WHERE job = $1`,
      [job.name],
    );
    return result.rows;
  });
  return rows?.[0];
}

/**
 * Lifts the fence recorded for the job (each role's earlier setting put back), if there is one;
 * returns what it did. The job's primary is the fenced database. On sessions of its own, not the
 * command's: the call-off lifts the fence after a failure or Ctrl-C, without an activity, so that a
 * second Ctrl-C cannot cancel it halfway and leave the application's roles read-only.
 */
export async function liftFence(job: Job, activity?: Activity): Promise<string | undefined> {
  const fence = await readFence(job, activity);
  if (!fence) return undefined;
  await withClient(job, { role: 'primary', ...(activity ? { activity } : {}) }, async (client) => {
    for (const { role, previous } of fence.roles) {
      const target = `ALTER ROLE ${quoteIdent(role)} IN DATABASE ${quoteIdent(fence.dbname)}`;
      await client.query(
        previous === null
          ? `${target} RESET default_transaction_read_only`
          : `${target} SET default_transaction_read_only = ${quoteLiteral(previous)}`,
      );
    }
  });
  await withRecords(job, activity, (client) =>
    client.query(`DELETE FROM ${RECORD_SCHEMA}.fence WHERE job = $1`, [job.name]),
  );
  return `lifted the fence on ${fence.dbname} (${fence.host}:${fence.port}): ${fence.roles.map((r) => r.role).join(', ')} may write there again (new sessions)`;
}
