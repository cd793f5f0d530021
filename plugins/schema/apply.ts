// schema.apply: a schema change made on both sides while replication runs, in the order that never
// breaks it (docs/commands/schema.md, "The order"; docs/how-bucardo-behaves.md §23):
//   remove dropped tables from the sync → the secondary's widening statements → every statement on
//   the primary → the secondary's narrowing statements → the daemon reloaded (the syncs load the new
//   column lists) → new tables in scope added to the job with their rows.
// Each side's statements run in one transaction whose lock waits are bounded, in rounds. Everything
// Bucardo cannot follow is refused before anything runs, and the whole file is rehearsed on the
// secondary in a transaction rolled back, so a mistake changes nothing. A journal per SQL text makes
// a rerun complete what a failure or a kill left. While cutover.finish --way-back's reverse sync runs,
// the same steps run on the B→A job (direction.ts): A takes what widens first, B every statement.
import { readFileSync } from 'node:fs';
import { addTablesToJob, kickUntilApplied } from '../../src/core/bucardo/add-tables.js';
import { runBucardo } from '../../src/core/bucardo/run.js';
import { isDaemonRunning, reloadDaemon } from '../../src/core/bucardo/daemon.js';
import { metadataDatabaseExists, withMetadata } from '../../src/core/bucardo/metadata.js';
import { recordedTableSyncs } from '../../src/core/bucardo/syncs.js';
import { withClient, type Client } from '../../src/core/db.js';
import { downstreamJob } from '../../src/core/cascade.js';
import { targetViews, type Job } from '../../src/core/job.js';
import {
  formatFailures,
  isLockWait,
  rolledBackWithLockTimeout,
  withLockTimeout,
  type TableFailure,
} from '../../src/core/ddl.js';
import { errorMessage, OperatorError } from '../../src/core/errors.js';
import { bucardoRelationName, quoteIdent, quoteQualified } from '../../src/core/quote.js';
import { lockRounds, runRounds } from '../../src/core/rounds.js';
import { sleep } from '../../src/core/activity.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { schemaDifferences, type Difference } from './diff.js';
import { fingerprint, readJournal, writeJournal, type ApplyJournal } from './journal.js';
import { classify, keepsTextForm, splitStatements, type AddedColumn, type Statement } from './statements.js';
import { runningWayBack } from '../../src/core/bucardo/direction.js';
import { schemaDirection, wayBackPlanLine } from './direction.js';

type Side = 'primary' | 'secondary';

export interface PlannedStep {
  name: StepName;
  /** What the step does, for the plan and the progress. */
  what: string;
  /** Statement numbers it runs (side steps). */
  statements: number[];
}

export type StepName = 'unsync' | 'secondary-first' | 'primary' | 'secondary-after' | 'reload' | 'add-tables';

export interface ApplyData {
  source: string;
  statements: { number: number; kind: string; table?: string; sql: string }[];
  plan: PlannedStep[];
  /** Steps done by this run, and those an earlier run had done. */
  done: StepName[];
  skipped: StepName[];
  steps: string[];
  /** Tables a side's step could not lock in any round, with who held them. */
  waiting: TableFailure[];
  alreadyApplied: boolean;
  /** While the way back runs: its sync, the one this change was applied along (B the source, A the target). */
  wayBack?: string;
}

/** A statement with its table resolved on the primary ("schema.name"). */
interface Resolved extends Statement {
  resolved?: { schema: string; name: string };
}

/** The change as a file, or inline (--sql): the same text gets the same journal either way. */
function readSql(ctx: CommandContext): { text: string; source: string } {
  const file = ctx.options.string('file');
  const inline = ctx.options.string('sql');
  if (inline !== undefined) {
    if (!inline.trim())
      throw new OperatorError(
        '--sql is empty. Give the statements quoted, as in schema.apply --sql "ALTER TABLE public.t ADD COLUMN c int".',
      );
    const oneLine = inline.replace(/\s+/g, ' ').trim();
    return {
      text: inline,
      source: `--sql "${oneLine.length > 60 ? `${oneLine.slice(0, 57)}...` : oneLine}"`,
    };
  }
  if (file === undefined)
    throw new OperatorError(
      'Give the change as --file=PATH, a file of SQL statements (schema.apply --file=deploy.sql), or inline as --sql "ALTER TABLE ...; ...".',
    );
  try {
    return { text: readFileSync(file!, 'utf8'), source: file! };
  } catch (error) {
    throw new OperatorError(
      `Cannot read ${file}: ${errorMessage(error)}. Give the path of a file of SQL statements.`,
    );
  }
}

/** Splits and classifies; throws one paragraph naming every statement refused, before anything runs. */
function readStatements(text: string, source: string): Statement[] {
  let parts: string[];
  try {
    parts = splitStatements(text);
  } catch (error) {
    throw new OperatorError(`${source} cannot be read as SQL: ${errorMessage(error)}. Nothing was changed.`);
  }
  if (parts.length === 0) throw new OperatorError(`${source} holds no SQL statement. Nothing was changed.`);
  return parts.map((sql, i) => classify(sql, i + 1));
}

function refuse(refused: Statement[], source: string): never {
  const listed = refused.map((s) => `statement ${s.number} (${s.sql.slice(0, 80)}): ${s.refused}`);
  throw new OperatorError(
    `schema.apply refuses ${source}: ${listed.join('; ')}. Nothing was changed on either side.`,
  );
}

/**
 * Names each table on the primary, and refuses what only the catalog shows (a primary key dropped, a
 * type whose text form changes).
 */
async function resolve(ctx: CommandContext, statements: Statement[], timeoutMs: number): Promise<Resolved[]> {
  const primary = await ctx.db.primary('schema_owner');
  const resolved: Resolved[] = [];
  for (const statement of statements) {
    if (!statement.table) {
      resolved.push(statement);
      continue;
    }
    const { schema, name } = statement.table;
    const written = schema ? quoteQualified(schema, name) : quoteIdent(name);
    const { rows } = await primary.query<{ schema: string; name: string; current: string }>(
      `SELECT n.nspname AS schema, c.relname AS name, current_schema() AS current
         FROM (SELECT to_regclass($1) AS oid) r LEFT JOIN pg_class c ON c.oid = r.oid
         LEFT JOIN pg_namespace n ON n.oid = c.relnamespace`,
      [written],
    );
    const row = rows[0]!;
    const table = row.name ? { schema: row.schema, name: row.name } : { schema: schema ?? row.current, name };
    const entry: Resolved = { ...statement, resolved: table };
    if (statement.droppedConstraint && row.name) {
      const { rows: key } = await primary.query<{ pk: boolean }>(
        `SELECT contype = 'p' AS pk FROM pg_constraint WHERE conrelid = $1::regclass AND conname = $2`,
        [quoteQualified(table.schema, table.name), statement.droppedConstraint],
      );
      if (key[0]?.pk)
        entry.refused =
          "it drops the primary key. Bucardo deletes and copies rows by primary key, and keeps the key's columns from when it loaded the sync: a changed key would delete the wrong rows on the secondary. The safe sequence: exclude the table (bucardo.replication_objects.table_exclude), change the key on both sides, then include it again and run schema.add_tables (its rows are copied again)";
    }
    if (statement.newType && statement.column && row.name) {
      const { rows: column } = await primary.query<{ type: string }>(
        `SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute
          WHERE attrelid = $1::regclass AND attname = $2 AND NOT attisdropped`,
        [quoteQualified(table.schema, table.name), statement.column],
      );
      const current = column[0]?.type;
      if (current && !keepsTextForm(current, statement.newType))
        entry.refused = `it changes ${statement.column} from ${current} to ${statement.newType}, whose text form differs: Bucardo copies rows as text, and every row copied between the two sides' steps would fail or change. Allowed are a wider integer, a longer varchar, varchar to text, a numeric with more digits and the same scale. The safe sequence: add a new column of the new type, fill it on the primary in batches (Bucardo carries them), move the application to it, then drop the old column (each with schema.apply)`;
    }
    if (statement.addedColumns && row.name && !entry.refused) {
      const why = await unsharedDefault(ctx, table, statement.addedColumns, timeoutMs);
      if (why) entry.refused = why;
    }
    resolved.push(entry);
  }
  return resolved;
}

/**
 * Why an added column's values for the rows a table already has would differ between the sides, or
 * undefined. ADD COLUMN computes them on each side on its own: the same on both only when the default
 * is immutable. Volatility is the primary's own: the default is compiled on a temporary table in a
 * transaction rolled back (no lock on the real table) and the functions of its expression tree looked
 * up in pg_proc; CURRENT_TIMESTAMP and its kind (SQLValueFunction) and identity columns count as not
 * immutable. Only then is the table asked whether it has a row, its lock wait bounded.
 */
async function unsharedDefault(
  ctx: CommandContext,
  table: { schema: string; name: string },
  columns: AddedColumn[],
  timeoutMs: number,
): Promise<string | undefined> {
  const shown = `${table.schema}.${table.name}`;
  const qualified = quoteQualified(table.schema, table.name);
  return withClient(
    ctx.job,
    { role: 'primary', login: 'schema_owner', activity: ctx.activity },
    async (client) => {
      const unshared: { column: AddedColumn; why: string }[] = [];
      try {
        const hasRows = await rolledBackWithLockTimeout(client, timeoutMs, async () => {
          for (const column of columns) {
            const why = await notImmutable(client, column, shown);
            if (why) unshared.push({ column, why });
          }
          if (unshared.length === 0) return false;
          const { rows } = await client.query<{ any: boolean }>(
            `SELECT EXISTS (SELECT FROM ${qualified}) AS any`,
          );
          return rows[0]!.any;
        });
        if (!hasRows) return undefined;
      } catch (error) {
        // A table busy beyond the bound: assume it has rows rather than let the hazard through.
        if (!isLockWait(error, true) || unshared.length === 0) throw error;
      }
      const { column, why } = unshared[0]!;
      const alter = `ALTER TABLE ${qualified}`;
      const type = column.type.replace(/^(small|big)?serial$/i, (_m, size?: string) =>
        size ? `${size.toLowerCase()}int` : 'integer',
      );
      return `it adds column ${column.name} to ${shown}, which has rows, and ${why}: each side computes the existing rows' values on its own, so they would differ, and Bucardo never copies a row nobody changes (cutover.verify would find them). The safe sequence, each step with schema.apply: ${alter} ADD COLUMN ${quoteIdent(column.name)} ${type} (no default, nullable); then ${alter} ALTER COLUMN ${quoteIdent(column.name)} SET DEFAULT ${column.default ?? '<the default>'} (new rows get it on the primary and Bucardo carries them); then fill the existing rows on the primary in batches of a few thousand (UPDATE ${qualified} SET ${quoteIdent(column.name)} = ... WHERE <key range> AND ${quoteIdent(column.name)} IS NULL), which the triggers carry; then SET NOT NULL if it must be`;
    },
  );
}

/**
 * Why one added column's default is not immutable, or undefined, judged inside the caller's open
 * transaction: compiled on a temporary table in a savepoint rolled back, its expression tree's
 * functions looked up in pg_proc.
 */
async function notImmutable(client: Client, column: AddedColumn, shown: string): Promise<string | undefined> {
  if (column.identity) return 'an identity column, numbered from a sequence on each side';
  if (column.default === undefined && !/serial\d?$/i.test(column.type)) return undefined;
  await client.query('SAVEPOINT probe');
  try {
    await client.query(
      `CREATE TEMP TABLE schema_apply_probe (probe ${column.type}${column.default !== undefined ? ` DEFAULT ${column.default}` : ''})`,
    );
    const { rows } = await client.query<{ expression: string; tree: string }>(
      `SELECT pg_get_expr(adbin, adrelid) AS expression, adbin::text AS tree FROM pg_attrdef
    WHERE adrelid = 'pg_temp.schema_apply_probe'::regclass`,
    );
    const tree = rows[0]?.tree ?? '';
    const ids = [...tree.matchAll(/:(?:funcid|opfuncid) (\d+)/g)].map((m) => m[1]!);
    const { rows: functions } = await client.query<{ name: string; volatility: string }>(
      `SELECT p.oid::regprocedure::text AS name,
          CASE p.provolatile WHEN 'v' THEN 'volatile' WHEN 's' THEN 'stable' ELSE 'immutable' END AS volatility
     FROM pg_proc p WHERE p.oid = ANY($1::oid[]) AND p.provolatile <> 'i' ORDER BY 1`,
      [ids],
    );
    const reasons = functions.map((f) => `${f.name} is ${f.volatility}`);
    if (/\{SQLVALUEFUNCTION\b/.test(tree)) reasons.push('CURRENT_TIMESTAMP and its kind are stable');
    if (/\{NEXTVALUEEXPR\b/.test(tree)) reasons.push('it numbers from a sequence');
    if (reasons.length)
      return `its default ${rows[0]!.expression.replace(/schema_apply_probe/g, shown)} is not immutable (${reasons.join(', ')})`;
  } catch (error) {
    // A default the primary cannot compile yet (a type or function the same change creates
    // first): the rehearsal runs it in order; its volatility is not judged here.
    if (isLockWait(error, true)) throw error;
    return undefined;
  } finally {
    await client.query('ROLLBACK TO SAVEPOINT probe');
  }
}

const displayTable = (s: Resolved) => (s.resolved ? `${s.resolved.schema}.${s.resolved.name}` : undefined);

/** Statements that create a sequence, directly or for a column. */
const CREATES_SEQUENCE =
  /\bCREATE\s+(?:(?:TEMP|TEMPORARY|UNLOGGED)\s+)?SEQUENCE\b|\b(?:small|big)?serial\b|\bGENERATED\s+(?:ALWAYS|BY\s+DEFAULT)\s+AS\s+IDENTITY\b/i;

/** The steps for these statements, in the order that never breaks replication. */
export function planSteps(
  statements: Resolved[],
  context: { recorded: Set<string>; daemonRunning: boolean; cascade?: string; wayBack?: string },
): PlannedStep[] {
  const numbers = (filter: (s: Resolved) => boolean) => statements.filter(filter).map((s) => s.number);
  const secondaryFirst = numbers(
    (s) => s.kind === 'widen' || s.kind === 'create table' || s.kind === 'other',
  );
  const secondaryAfter = numbers((s) => s.kind === 'narrow' || s.kind === 'drop table');
  const dropped = statements.filter(
    (s) => s.kind === 'drop table' && context.recorded.has(displayTable(s) ?? ''),
  );
  const created = statements.filter((s) => s.kind === 'create table').map(displayTable);
  const steps: PlannedStep[] = [];
  if (dropped.length)
    steps.push({
      name: 'unsync',
      what: `Bucardo: remove ${dropped.map(displayTable).join(', ')} from ${context.wayBack ? `the way back's sync ${context.wayBack}` : "the job's sync"}${context.cascade ? ` and ${context.cascade}'s` : ''}${context.daemonRunning ? ' and reload the daemon' : ''}, before the table goes`,
      statements: [],
    });
  if (secondaryFirst.length)
    steps.push({
      name: 'secondary-first',
      what: context.cascade
        ? `C (${context.cascade}'s secondary), then B, one transaction each (what the source will send, each target accepts first)`
        : context.wayBack
          ? "A (the primary, the way back's target), one transaction (what B will send, A accepts first)"
          : 'secondary, one transaction (what the primary will send, the secondary accepts first)',
      statements: secondaryFirst,
    });
  steps.push({
    name: 'primary',
    what: context.wayBack
      ? 'B (the secondary, where the application writes), one transaction (every statement)'
      : 'primary, one transaction (every statement)',
    statements: statements.map((s) => s.number),
  });
  if (secondaryAfter.length)
    steps.push({
      name: 'secondary-after',
      what: context.cascade
        ? `B, then C (${context.cascade}'s secondary), one transaction each (what the source no longer sends)`
        : context.wayBack
          ? 'A (the primary), one transaction (what B no longer sends)'
          : 'secondary, one transaction (what the primary no longer sends)',
      statements: secondaryAfter,
    });
  if (context.daemonRunning)
    steps.push({
      name: 'reload',
      what: context.cascade
        ? `Bucardo: reload both hops' daemons, A→B then ${context.cascade}, so every sync loads the new column lists`
        : context.wayBack
          ? `Bucardo: reload the daemon, so the way back (sync ${context.wayBack}) loads the new column lists and tables`
          : 'Bucardo: reload the daemon, so every sync loads the new column lists and tables',
      statements: [],
    });
  // A sequence Bucardo does not carry is behind on the new primary after the cutover: one the file
  // creates (CREATE SEQUENCE, a serial or identity column) joins the job's relgroup like a new table.
  // The way back carries no sequence: cutover.rollback sets A's past B's itself.
  const sequences = !context.wayBack && statements.some((s) => CREATES_SEQUENCE.test(s.sql));
  if (created.length || sequences)
    steps.push({
      name: 'add-tables',
      what: `Bucardo: add the new ${[
        created.length ? `table(s) in scope (${created.join(', ')})` : '',
        sequences ? 'sequence(s) in scope' : '',
      ]
        .filter(Boolean)
        .join(
          ' and ',
        )} to ${context.wayBack ? `the way back (sync ${context.wayBack})` : 'the job'}${created.length ? (context.wayBack ? ': relgroup, triggers on B, rows copied B→A online' : ': relgroup, triggers, rows copied online') : ''}`,
      statements: [],
    });
  return steps;
}

export function formatPlan(
  source: string,
  statements: Statement[],
  plan: PlannedStep[],
  timeout: string,
): string[] {
  const lines = [
    `Plan for ${source} (${statements.length} statement(s); each lock wait at most ${timeout}):`,
  ];
  for (const s of statements)
    lines.push(`  [${s.number}] ${s.kind}: ${s.sql.replace(/\s+/g, ' ').slice(0, 100)}`);
  plan.forEach((step, i) =>
    lines.push(
      `  ${i + 1}. ${step.what}${step.statements.length ? `: statements ${step.statements.join(', ')}` : ''}`,
    ),
  );
  return lines;
}

/**
 * The file's statements on the secondary in one transaction rolled back: a syntax error, a missing
 * table or a failing statement stops the command before either side changed.
 */
async function rehearse(
  ctx: CommandContext,
  statements: Statement[],
  timeoutMs: number,
  downstream: Job | undefined,
  label?: string,
): Promise<void> {
  for (const view of targetViews(ctx.job)) await rehearseOn(ctx, view, statements, timeoutMs, label);
  // Along a cascade the secondary's statements run on C too: rehearsed there as well.
  for (const view of downstream ? targetViews(downstream) : [])
    await rehearseOn(ctx, view, statements, timeoutMs, `${view.name}'s secondary (C)`);
}

async function rehearseOn(
  ctx: CommandContext,
  view: Job,
  statements: Statement[],
  timeoutMs: number,
  label?: string,
): Promise<void> {
  const { activity } = ctx;
  const where = label ?? (view.config.fanOut ? `target ${view.target}` : 'the secondary');
  await withClient(view, { role: 'secondary', login: 'schema_owner', activity }, async (client) => {
    for (let attempt = 1; ; attempt++) {
      let failed: { statement: Statement; error: unknown } | undefined;
      await rolledBackWithLockTimeout(client, timeoutMs, async () => {
        for (const statement of statements) {
          try {
            await client.query(statement.sql);
          } catch (error) {
            failed = { statement, error };
            break;
          }
        }
      });
      if (!failed) return;
      if (isLockWait(failed.error, true) && attempt < 3) {
        await sleep(1000, activity.signal);
        continue;
      }
      throw new OperatorError(
        `Statement ${failed.statement.number} fails on ${where} (rehearsed in a transaction that was rolled back): ${errorMessage(failed.error)}. Nothing was changed on either side. Fix ${failed.statement.sql.slice(0, 80)} and run schema.apply again.`,
      );
    }
  });
}

/**
 * One side's statements in one transaction with bounded lock waits, in rounds. Just before COMMIT the
 * transaction id is journaled, so a run killed at that moment can ask the server what happened.
 */
async function runSide(
  ctx: CommandContext,
  view: Job,
  side: Side,
  step: string,
  statements: Resolved[],
  journal: ApplyJournal,
  label: string = side,
): Promise<TableFailure[]> {
  const { job, activity } = ctx;
  const { policy, setting } = lockRounds(job);
  return withClient(view, { role: side, login: 'schema_owner', activity }, async (client) => {
    let waiting: TableFailure[] = [];
    let done = false;
    await runRounds(policy, activity, {
      pending: () => !done,
      pausing: (round, pause) =>
        ctx.progress(`${label}: round ${round} in ${(pause / 1000).toFixed(1)} s (a table was busy)`),
      round: async (round) => {
        ctx.progress(
          `${label}: ${statements.length} statement(s) in one transaction, round ${round} of ${policy.attempts}`,
        );
        const first = statements.find((s) => s.resolved)?.resolved;
        const outcome = await withLockTimeout(
          client,
          {
            timeoutMs: policy.timeoutMs,
            activity,
            deadlockIsLockWait: true,
            ...(first ? { target: { schema: first.schema, table: first.name } } : {}),
          },
          async () => {
            for (const statement of statements) await client.query(statement.sql);
            const { rows } = await client.query<{ xid: string }>('SELECT txid_current()::text AS xid');
            journal.steps[step] = { state: 'committing', xid: rows[0]!.xid };
            writeJournal(job, journal);
          },
        );
        if (outcome.done) {
          done = true;
          journal.steps[step] = { state: 'done', at: new Date().toISOString() };
          writeJournal(job, journal);
          return;
        }
        delete journal.steps[step];
        writeJournal(job, journal);
        waiting = [
          {
            table: statements.map(displayTable).filter(Boolean).join(', ') || label,
            error: `a lock was not had within ${setting} (${policy.timeoutMs} ms): ${errorMessage(outcome.error)}`,
            blockers: outcome.blockers,
          },
        ];
        if (round < policy.attempts)
          ctx.log(`${label}, round ${round}: ${formatFailures(waiting).join(' ').trim()}`);
      },
    });
    return done ? [] : waiting;
  });
}

/**
 * A step journaled as committing by a killed run: did its transaction commit? Waits for the server to
 * notice the end of that session.
 */
async function settleCommitting(
  ctx: CommandContext,
  view: Job,
  side: Side,
  step: string,
  journal: ApplyJournal,
): Promise<void> {
  const state = journal.steps[step];
  if (state?.state !== 'committing') return;
  const status = await withClient(view, { role: side, activity: ctx.activity }, async (client) => {
    for (let i = 0; i < 50; i++) {
      const { rows } = await client.query<{ status: string | null }>(
        'SELECT txid_status($1::bigint) AS status',
        [state.xid],
      );
      if (rows[0]!.status !== 'in progress') return rows[0]!.status;
      await sleep(200, ctx.activity.signal);
    }
    return 'in progress';
  });
  if (status === 'committed') journal.steps[step] = { state: 'done', at: new Date().toISOString() };
  else if (status === 'in progress')
    throw new OperatorError(
      `The ${side}'s transaction ${state.xid} of an earlier schema.apply run is still open after 10 s. End that session (pg_stat_activity, application bucardo-console), then run schema.apply again.`,
    );
  else delete journal.steps[step];
  writeJournal(ctx.job, journal);
}

async function removeFromSync(ctx: CommandContext, job: Job, tables: string[]): Promise<string[]> {
  const { activity } = ctx;
  const recorded = await withMetadata(job, (client) => recordedTableSyncs(client, job), activity);
  const still = tables.filter((t) => recorded.has(t));
  if (still.length === 0 && job !== ctx.job) return [];
  if (still.length) {
    await runBucardo(
      job,
      [
        'remove',
        'table',
        ...still.map((t) => bucardoRelationName(t.slice(0, t.indexOf('.')), t.slice(t.indexOf('.') + 1))),
        `db=${job.bucardoDbName.primary}`,
      ],
      { activity },
    );
  }
  if (isDaemonRunning(job)) await reloadDaemon(job, ctx);
  return [
    `removed ${still.join(', ')} from ${job.name}'s sync${isDaemonRunning(job) ? ' and reloaded its daemon' : ''}`,
  ];
}

export async function apply(command: CommandContext): Promise<CommandOutcome<ApplyData>> {
  // While the way back runs, the B→A job: B is its primary (the source), A its secondary.
  const { ctx, wayBack } = await schemaDirection(command, 'schema.apply');
  const { job } = ctx;
  const { text, source } = readSql(ctx);
  const parsed = readStatements(text, source);
  // Its own journal on the way back: the same text applied forward before the switch is another change.
  const print = fingerprint(wayBack ? `${wayBack.reverse.syncName}\n${text}` : text);
  let journal = readJournal(job, print);
  const { policy, setting } = lockRounds(job);
  const timeout = `${setting} (${policy.timeoutMs} ms) in ${policy.attempts} round(s)`;
  const statements = await resolve(ctx, parsed, policy.timeoutMs);
  const summary = statements.map((s) => ({
    number: s.number,
    kind: s.kind,
    ...(displayTable(s) ? { table: displayTable(s)! } : {}),
    sql: s.sql,
  }));
  const installed = await metadataDatabaseExists(ctx.db, ctx.activity);
  const recorded = installed
    ? new Set((await withMetadata(ctx.db, (c) => recordedTableSyncs(c, job), ctx.activity)).keys())
    : new Set<string>();
  // Along a cascade A→B→C (both jobs loaded) the change reaches C as well: what widens on C, then B,
  // then A; what narrows on A, then B, then C; both hops' daemons reloaded (docs/cascade.md).
  // No way back is ever set up on a hop of a cascade (way-back.ts refuses it).
  const downstream = wayBack ? undefined : downstreamJob(job, ctx.jobs);
  const daemons = [job, ...(downstream ? [downstream] : [])].filter((j) => isDaemonRunning(j));
  const plan = planSteps(statements, {
    recorded,
    daemonRunning: daemons.length > 0,
    ...(downstream ? { cascade: downstream.name } : {}),
    ...(wayBack ? { wayBack: wayBack.reverse.syncName } : {}),
  });
  const sideLabel = (side: Side) =>
    !wayBack ? side : side === 'primary' ? 'B (the secondary)' : 'A (the primary)';
  const data: ApplyData = {
    source,
    statements: summary,
    plan,
    done: [],
    skipped: [],
    steps: [],
    waiting: [],
    alreadyApplied: false,
    ...(wayBack ? { wayBack: wayBack.reverse.syncName } : {}),
  };
  if (journal?.finishedAt)
    return {
      data: { ...data, alreadyApplied: true },
      message: `${source} was applied already (${journal.finishedAt}); nothing to do. schema.diff shows where the sides stand.`,
    };
  if (!journal) {
    const refused = statements.filter((s) => s.refused);
    if (refused.length) refuse(refused, source);
    ctx.progress(
      `rehearsing every statement on ${wayBack ? 'the primary (A)' : 'the secondary'} (rolled back)`,
    );
    await rehearse(
      ctx,
      statements,
      policy.timeoutMs,
      downstream,
      wayBack ? "the primary (A, the way back's target)" : undefined,
    );
  }
  ctx.log(
    [...(wayBack ? [wayBackPlanLine(wayBack)] : []), ...formatPlan(source, statements, plan, timeout)].join(
      '\n',
    ),
  );
  if (journal)
    ctx.log(`An earlier run did ${Object.keys(journal.steps).join(', ') || 'nothing yet'}: continuing.`);
  if (!ctx.options.flag('yes')) {
    if (!ctx.prompt.interactive)
      throw new OperatorError(
        `A list cannot ask, so schema.apply stops at its plan (above): nothing was changed. Run schema.apply --yes to apply it.`,
      );
    if (!(await ctx.prompt.confirm('Apply this plan?', false)))
      throw new OperatorError('Not confirmed: nothing was changed.');
  }
  journal ??= { fingerprint: print, source, startedAt: new Date().toISOString(), steps: {} };
  writeJournal(job, journal);
  const byNumber = (numbers: number[]) => statements.filter((s) => numbers.includes(s.number));
  /**
   * A side's step: the primary once; the secondary on every target of a fan-out job, one after the
   * other, each journaled as `<step>:<target>` so that a rerun skips the targets done. Along a
   * cascade the secondary's steps run on C too, journaled as `<step>:<B→C job>`: C before B for
   * what widens (C accepts what B will send first), B before C for what narrows.
   */
  const runOnSide = async (step: PlannedStep, side: Side): Promise<string[] | TableFailure[]> => {
    const views = side === 'primary' ? [job] : targetViews(job);
    const databases = views.map((view) => ({
      view,
      key: views.length > 1 ? `${step.name}:${view.target}` : step.name,
      where:
        views.length > 1
          ? ` on target ${view.target}`
          : wayBack
            ? '' // the step's words name the side already
            : !downstream
              ? ''
              : side === 'primary'
                ? ' on A'
                : ' on B',
    }));
    if (downstream && side === 'secondary') {
      const c = targetViews(downstream).map((view) => ({
        view,
        key: `${step.name}:${downstream.name}`,
        where: ` on C (${downstream.name}'s secondary)`,
      }));
      databases.splice(step.name === 'secondary-first' ? 0 : databases.length, 0, ...c);
    }
    const lines: string[] = [];
    for (const { view, key, where } of databases) {
      await settleCommitting(ctx, view, side, key, journal!);
      if (journal!.steps[key]?.state === 'done') {
        lines.push(`${step.what}${where}: done by an earlier run`);
        continue;
      }
      const waiting = await runSide(
        ctx,
        view,
        side,
        key,
        byNumber(step.statements),
        journal!,
        sideLabel(side),
      );
      if (waiting.length) return waiting;
      lines.push(`${step.what}${where}: statement(s) ${step.statements.join(', ')} committed`);
    }
    return lines;
  };
  const runners: Record<StepName, (step: PlannedStep) => Promise<string[] | TableFailure[]>> = {
    unsync: async () => {
      const dropped = statements
        .filter((s) => s.kind === 'drop table')
        .map(displayTable)
        .filter((t): t is string => !!t && recorded.has(t));
      // Each hop's sync lets go of the table before it goes from its source.
      const lines = await removeFromSync(ctx, job, dropped);
      if (downstream) lines.push(...(await removeFromSync(ctx, downstream, dropped)));
      return lines;
    },
    'secondary-first': (step) => runOnSide(step, 'secondary'),
    primary: (step) => runOnSide(step, 'primary'),
    'secondary-after': (step) => runOnSide(step, 'secondary'),
    reload: async () => {
      if (!downstream) {
        if (!isDaemonRunning(job))
          return ['the daemon is not running: bucardo.start loads the new definitions'];
        await reloadDaemon(job, ctx);
        return ['reloaded the daemon: every sync loaded the new column lists', await kickUntilApplied(ctx)];
      }
      // Both hops, A→B first: B→C's changes recorded meanwhile wait in B's change tables.
      const lines: string[] = [];
      for (const hop of [job, downstream]) {
        if (!isDaemonRunning(hop)) {
          lines.push(`${hop.name}'s daemon is not running: bucardo.start loads the new definitions`);
          continue;
        }
        const hopCtx = hop === job ? ctx : ctx.forJob(hop);
        await reloadDaemon(hop, hopCtx);
        lines.push(`reloaded ${hop.name}'s daemon: its syncs loaded the new column lists`);
        lines.push(await kickUntilApplied(hopCtx));
      }
      return lines;
    },
    'add-tables': async () => {
      const created = statements
        .filter((s) => s.kind === 'create table')
        .map(displayTable)
        .filter((t): t is string => !!t);
      const lines: string[] = [];
      // Along a cascade A→B first: its copy fills B, then B→C's copy reads B (its triggers on B,
      // firing ALWAYS, record what A→B applies from then on).
      for (const hop of [job, ...(downstream ? [downstream] : [])]) {
        const hopCtx = hop === job ? ctx : ctx.forJob(hop);
        const result = await addTablesToJob(hopCtx, 'schema.apply', {
          only: created,
          sequences: !wayBack,
          ...(wayBack ? { recordsOf: wayBack.switched } : {}),
        });
        if (result.waiting.length) return result.waiting;
        const prefix = downstream ? `${hop.name}: ` : '';
        lines.push(
          ...result.steps.map((step) => prefix + step),
          ...result.blocked.map((t) => `${prefix}not added to the job: ${t.table}: ${t.blocked}`),
          ...(result.added.length || result.blocked.length
            ? []
            : [`${prefix}no new table is in scope: nothing to add`]),
        );
      }
      return lines;
    },
  };
  for (const step of plan) {
    if (journal.steps[step.name]?.state === 'done') {
      data.skipped.push(step.name);
      continue;
    }
    ctx.progress(step.what);
    const result = await runners[step.name](step);
    if (result.length && typeof result[0] === 'object') {
      data.waiting = result as TableFailure[];
      return {
        ok: false,
        data,
        message: `Step "${step.what}" could not lock its tables in ${policy.attempts} round(s) (listed above with who holds them). ${data.done.length ? `Done before it: ${data.done.join(', ')}; ` : ''}nothing of this step was applied. Run the same schema.apply again once the lock is released: it continues from this step.`,
      };
    }
    data.steps.push(...(result as string[]));
    journal.steps[step.name] = { state: 'done', at: new Date().toISOString() };
    writeJournal(job, journal);
    data.done.push(step.name);
  }
  journal.finishedAt = new Date().toISOString();
  writeJournal(job, journal);
  return {
    data,
    message: `Applied ${statements.length} statement(s) from ${source} to both sides${wayBack ? ` along the way back (B, where the application writes, is the source; sync ${wayBack.reverse.syncName})` : ''}${plan.some((s) => s.name === 'reload') ? '; Bucardo reloaded' : ''}.`,
  };
}

/** No difference left between the sides, and every new table in scope replicated. */
export async function validateApply(command: CommandContext): Promise<Check[]> {
  // On the way back, B (the source) against A, and the way back's sync.
  const wayBack = await runningWayBack(command.job, command.db);
  const ctx = wayBack ? command.forJob(wayBack.reverse) : command;
  const installed = await metadataDatabaseExists(ctx.db, ctx.activity);
  const found = { differences: [] as Difference[] };
  for (const view of targetViews(ctx.job)) {
    const onView = view === ctx.job ? ctx : ctx.forJob(view);
    const { differences } = await schemaDifferences(
      view,
      {
        primary: await ctx.db.primary(),
        secondary: await onView.db.secondary(),
        ...(installed ? { metadata: await ctx.db.metadata() } : {}),
      },
      { wayBack: Boolean(wayBack) },
    );
    found.differences.push(
      ...differences.map((d) =>
        view.config.fanOut ? { ...d, object: `${d.object} (target ${view.target})` } : d,
      ),
    );
  }
  // Along a cascade, B and C compared as the B→C job sees them.
  const downstream = wayBack ? undefined : downstreamJob(ctx.job, ctx.jobs);
  if (downstream) {
    const hop = ctx.forJob(downstream);
    const hopInstalled = await metadataDatabaseExists(hop.db, ctx.activity);
    const { differences } = await schemaDifferences(downstream, {
      primary: await hop.db.primary(),
      secondary: await hop.db.secondary(),
      ...(hopInstalled ? { metadata: await hop.db.metadata() } : {}),
    });
    found.differences.push(...differences.map((d) => ({ ...d, object: `${d.object} (${downstream.name})` })));
  }
  return [
    {
      name: `schema.diff finds no difference between the sides${downstream ? ` of both hops (${ctx.job.name}, ${downstream.name})` : ''}`,
      pass: found.differences.length === 0,
      ...(found.differences.length
        ? {
            detail: found.differences
              .slice(0, 3)
              .map((d) => `${d.kind} ${d.object}: ${d.detail}`)
              .join('; '),
          }
        : {}),
    },
  ];
}
