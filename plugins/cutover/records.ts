// What the cutover plugin remembers, in the job's metadata database (schema cutover): every verify
// result (cutover.check asks for a recent pass) and how far cutover.finish got, so an interrupted
// finish continues where it stopped, from any machine. bucardo.uninstall drops the metadata
// database and with it this record, so a new migration starts clean. Rows are keyed by job.
import { withClient, type Client } from '../../src/core/db.js';
import type { Activity } from '../../src/core/activity.js';
import { DatabaseContext } from '../../src/core/context.js';
import { targetKey, type Job } from '../../src/core/job.js';
import { metadataDatabaseExists } from '../../src/core/bucardo/metadata.js';
import type { ChangeHorizon } from './compare/capture.js';
import type { VerifyReport } from './compare/report.js';

export const RECORD_SCHEMA = 'cutover';

const CREATE_RECORDS = `
CREATE SCHEMA IF NOT EXISTS ${RECORD_SCHEMA};
CREATE TABLE IF NOT EXISTS ${RECORD_SCHEMA}.verify_run (
  id          bigserial PRIMARY KEY,
  job         text NOT NULL,
  started_at  timestamptz NOT NULL,
  finished_at timestamptz NOT NULL DEFAULT now(),
  -- passed: no row or schema differs; clean: also nothing in flight and no sequence behind
  passed      boolean NOT NULL,
  clean       boolean NOT NULL,
  verdict     text NOT NULL,
  summary     jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS verify_run_job ON ${RECORD_SCHEMA}.verify_run (job, finished_at DESC);
CREATE TABLE IF NOT EXISTS ${RECORD_SCHEMA}.finish_progress (
  job                    text PRIMARY KEY,
  confirmed_at           timestamptz,
  drained_at             timestamptz,
  sequences_at           timestamptz,
  verified_at            timestamptz,
  replication_stopped_at timestamptz,
  triggers_removed_at    timestamptz,
  finished_at            timestamptz,
  updated_at             timestamptz NOT NULL DEFAULT now()
);
-- A fan-out job's chosen target (cutover.finish --target): a rerun must switch to the same one.
ALTER TABLE ${RECORD_SCHEMA}.finish_progress ADD COLUMN IF NOT EXISTS target text;
-- Each step of the switch with its start, end and milliseconds (steps.ts), appended as points are recorded.
ALTER TABLE ${RECORD_SCHEMA}.finish_progress ADD COLUMN IF NOT EXISTS step_times jsonb;
-- The write fence a switch left on the database writes moved away from (fence.ts): what to undo.
CREATE TABLE IF NOT EXISTS ${RECORD_SCHEMA}.fence (
  job       text PRIMARY KEY,
  host      text NOT NULL,
  port      int NOT NULL,
  dbname    text NOT NULL,
  -- [{role, previous}]: previous is the role's own default_transaction_read_only there before, or null
  roles     jsonb NOT NULL,
  fenced_at timestamptz NOT NULL DEFAULT now()
);
-- cutover.finish's pre-check (compare/pre-check.ts): the horizon it took, valid with the verify it
-- started from, where the final check in the pause starts; and the keys it left in flight.
CREATE TABLE IF NOT EXISTS ${RECORD_SCHEMA}.pre_check (
  job        text PRIMARY KEY,
  verify_id  bigint NOT NULL,
  horizon    jsonb NOT NULL,
  in_flight  jsonb NOT NULL,
  checked_at timestamptz NOT NULL DEFAULT now()
);`;

/** Shared sessions whose metadata database has the record tables: a command creates them once. */
const recordsInPlace = new WeakSet<Client>();

async function ensureRecords(client: Client): Promise<void> {
  if (recordsInPlace.has(client)) return;
  try {
    await client.query(CREATE_RECORDS);
  } catch (error) {
    // Two commands creating the schema at the same moment: the other one won, which is fine.
    if (!['23505', '42P06', '42P07'].includes((error as { code?: string }).code ?? '')) throw error;
  }
  recordsInPlace.add(client);
}

/**
 * Runs fn on the metadata database with the record tables in place; undefined when Bucardo is not
 * installed. Given the command's sessions (`ctx.db`, or `ctx.databases(job)` for another view), on its
 * shared metadata session: fn then runs single statements only (src/core/context.ts). Given a job, on
 * a session of its own, closed after.
 */
export async function withRecords<T>(
  source: Job | DatabaseContext,
  activity: Activity | undefined,
  fn: (client: Client) => Promise<T>,
): Promise<T | undefined> {
  if (source instanceof DatabaseContext) {
    const client = await openRecords(source);
    return client ? fn(client) : undefined;
  }
  if (!(await metadataDatabaseExists(source, activity))) return undefined;
  return withClient(source, { role: 'bucardo', activity }, async (client) => {
    await ensureRecords(client);
    return fn(client);
  });
}

/**
 * The command's shared metadata session with the record tables in place, for a command that records
 * many times (cutover.finish, several times inside the write pause); undefined when Bucardo is not installed.
 */
export async function openRecords(db: DatabaseContext): Promise<Client | undefined> {
  if (!(await metadataDatabaseExists(db, db.activity))) return undefined;
  const client = await db.metadata();
  await ensureRecords(client);
  return client;
}

export interface VerifyRecord {
  id: number;
  startedAt: Date;
  finishedAt: Date;
  passed: boolean;
  clean: boolean;
  verdict: string;
  /** Where cutover.finish's final check starts (capture.ts); absent for a verify without change capture. */
  horizon?: ChangeHorizon;
}

export async function saveVerifyRun(
  client: Client,
  job: Job,
  run: { startedAt: string; passed: boolean; clean: boolean; verdict: string; summary: unknown },
): Promise<number> {
  const { rows } = await client.query<{ id: string }>(
    `INSERT INTO ${RECORD_SCHEMA}.verify_run (job, started_at, passed, clean, verdict, summary) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
    [targetKey(job), run.startedAt, run.passed, run.clean, run.verdict, JSON.stringify(run.summary)],
  );
  return Number(rows[0]!.id);
}

export async function lastVerifyRun(client: Client, job: Job): Promise<VerifyRecord | undefined> {
  const { rows } = await client.query<{
    id: string;
    started_at: Date;
    finished_at: Date;
    passed: boolean;
    clean: boolean;
    verdict: string;
    horizon: ChangeHorizon | null;
  }>(
    `SELECT id, started_at, finished_at, passed, clean, verdict, summary->'horizon' AS horizon
       FROM ${RECORD_SCHEMA}.verify_run WHERE job = $1 ORDER BY finished_at DESC, id DESC LIMIT 1`,
    // Each target's own verifies (fan-out: keyed <job>:<target>).
    [targetKey(job)],
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    id: Number(row.id),
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    passed: row.passed,
    clean: row.clean,
    verdict: row.verdict,
    ...(row.horizon ? { horizon: row.horizon } : {}),
  };
}

/**
 * The keys a recorded verify listed in flight, per table (at most 1000 per table are listed): the
 * final check of cutover.finish compares them again, whatever the horizon says.
 */
export async function inFlightKeys(
  client: Client,
  id: number,
): Promise<Map<string, Record<string, string>[]>> {
  const { rows } = await client.query<{ table: string; keys: Record<string, string>[] }>(
    `SELECT t->>'table' AS table, jsonb_agg(k->'key') AS keys
       FROM ${RECORD_SCHEMA}.verify_run v, jsonb_array_elements(v.summary->'tables') t, jsonb_array_elements(t->'keys') k
      WHERE v.id = $1 AND (k->>'inFlight')::boolean
      GROUP BY 1`,
    [id],
  );
  return new Map(rows.map((row) => [row.table, row.keys]));
}

/** A passed pre-check: its horizon and the keys it left in flight, for the verify it started from. */
export interface PreCheckRecord {
  verifyId: number;
  horizon: ChangeHorizon;
  inFlight: Record<string, Record<string, string>[]>;
}

export async function savePreCheck(client: Client, job: Job, record: PreCheckRecord): Promise<void> {
  await client.query(
    `INSERT INTO ${RECORD_SCHEMA}.pre_check (job, verify_id, horizon, in_flight) VALUES ($1, $2, $3, $4)
     ON CONFLICT (job) DO UPDATE SET verify_id = EXCLUDED.verify_id, horizon = EXCLUDED.horizon,
       in_flight = EXCLUDED.in_flight, checked_at = now()`,
    [targetKey(job), record.verifyId, JSON.stringify(record.horizon), JSON.stringify(record.inFlight)],
  );
}

/** The last pre-check that started from this verify (a later verify makes it useless). */
export async function lastPreCheck(
  client: Client,
  job: Job,
  verifyId: number,
): Promise<PreCheckRecord | undefined> {
  const { rows } = await client.query<{
    horizon: ChangeHorizon;
    in_flight: Record<string, Record<string, string>[]>;
  }>(`SELECT horizon, in_flight FROM ${RECORD_SCHEMA}.pre_check WHERE job = $1 AND verify_id = $2`, [
    targetKey(job),
    verifyId,
  ]);
  const row = rows[0];
  return row ? { verifyId, horizon: row.horizon, inFlight: row.in_flight } : undefined;
}

/** The last recorded verify with its whole report (differing keys and ranges), for cutover.repair. */
export async function lastVerifyReport(
  client: Client,
  job: Job,
): Promise<{ record: VerifyRecord; report: VerifyReport } | undefined> {
  const record = await lastVerifyRun(client, job);
  if (!record) return undefined;
  const { rows } = await client.query<{ summary: VerifyReport }>(
    `SELECT summary FROM ${RECORD_SCHEMA}.verify_run WHERE id = $1`,
    [record.id],
  );
  return { record, report: rows[0]!.summary };
}

export const FINISH_STEPS = [
  'confirmed',
  'drained',
  'sequences',
  'verified',
  'replication_stopped',
  'triggers_removed',
  'finished',
] as const;
export type FinishStep = (typeof FINISH_STEPS)[number];
/**
 * When each step was done, as PostgreSQL timestamptz text (microseconds kept: 'confirmed' is compared with txntimes).
 */
export type FinishProgress = Partial<Record<FinishStep, string>>;

export async function readProgress(client: Client, job: Job): Promise<FinishProgress> {
  const { rows } = await client.query<Record<string, string | null>>(
    `SELECT ${FINISH_STEPS.map((step) => `${step}_at::text AS ${step}`).join(', ')} FROM ${RECORD_SCHEMA}.finish_progress WHERE job = $1`,
    [job.name],
  );
  const progress: FinishProgress = {};
  if (rows[0]) for (const step of FINISH_STEPS) if (rows[0][step]) progress[step] = rows[0][step]!;
  return progress;
}

// Read by the core too (which way replication runs): src/core/bucardo/direction.ts.
export { chosenTarget } from '../../src/core/bucardo/direction.js';

/** One step of a switch as it ran (steps.ts): in --json (data.timeline) and in finish_progress.step_times. */
export interface StepTime {
  step: string;
  status: 'done' | 'done earlier' | 'failed' | 'stopped';
  /** ISO times on this machine's clock. */
  startedAt?: string;
  endedAt?: string;
  ms?: number;
  /** Part of the write pause. */
  inPause?: boolean;
  /** For a step an earlier run did: when its point was recorded. */
  recordedAt?: string;
}

/**
 * Records a step as done at the given time (the primary's clock for 'confirmed'), or now, with the
 * times of the steps that led to it (appended to step_times in the same statement: no round trip more).
 */
export async function markStep(
  client: Client,
  job: Job,
  step: FinishStep,
  at?: string,
  times: StepTime[] = [],
): Promise<string> {
  const column = `${step}_at`;
  const { rows } = await client.query<{ at: string }>(
    `INSERT INTO ${RECORD_SCHEMA}.finish_progress (job, ${column}, target, step_times) VALUES ($1, coalesce($2::timestamptz, now()), $3, $4::jsonb)
     ON CONFLICT (job) DO UPDATE SET ${column} = EXCLUDED.${column}, target = coalesce(finish_progress.target, EXCLUDED.target),
       step_times = coalesce(finish_progress.step_times, '[]'::jsonb) || EXCLUDED.step_times, updated_at = now() RETURNING ${column}::text AS at`,
    [job.name, at ?? null, job.config.fanOut ? job.target : null, JSON.stringify(times)],
  );
  return rows[0]!.at;
}

/** Forgets the steps before the point of no return (writes resumed, or the operator starts over). */
export async function resetProgress(client: Client, job: Job): Promise<void> {
  await client.query(`DELETE FROM ${RECORD_SCHEMA}.finish_progress WHERE job = $1`, [job.name]);
}
