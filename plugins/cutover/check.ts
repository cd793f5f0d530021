// cutover.check: the readiness list before switching production to the secondary. Each item says
// pass or fail, what was found, and for a failure what to do about it. Every item asks its questions
// on the command's sessions (one per database), one after the other.
import type { Activity } from '../../src/core/activity.js';
import { DatabaseContext } from '../../src/core/context.js';
import { withClient } from '../../src/core/db.js';
import { errorMessage } from '../../src/core/errors.js';
import type { Job } from '../../src/core/job.js';
import { kickerStatus } from '../../src/core/kicker.js';
import { findReplicationObjects } from '../../src/core/objects.js';
import { pendingChanges } from '../../src/core/pending.js';
import type { CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { processUptimeSeconds } from '../../src/core/process.js';
import { daemonPid } from '../../src/core/bucardo/daemon.js';
import { lastRun, metadataDatabaseExists, withMetadata } from '../../src/core/bucardo/metadata.js';
import { syncNames } from '../../src/core/bucardo/syncs.js';
import { copyState } from '../../src/core/copy/progress.js';
import { replicationDrift } from '../../src/core/drift.js';
import { leftBehindReadiness } from '../../src/core/left-behind.js';
import { lockRounds } from '../../src/core/rounds.js';
import { lastVerifyRun, withRecords, type VerifyRecord } from './records.js';
import { indexGap, materializedViewGap } from './compare/index.js';
import { cutoverSettings } from './settings.js';
import { activeDirection } from '../../src/core/bucardo/direction.js';
import { adoptRecordedNames } from '../../src/core/bucardo/records.js';

export interface ReadinessItem {
  item: string;
  pass: boolean;
  /** Passes, but the operator should read it (printed as `warn`). */
  warning?: boolean;
  detail: string;
  fix?: string;
}
export interface CheckData {
  job: string;
  ready: boolean;
  items: ReadinessItem[];
}

const ago = (date: Date) => `${Math.max(0, Math.round((Date.now() - date.getTime()) / 1000))} s ago`;

/** Runs one item; an item that cannot be evaluated fails with the reason. */
async function evaluate(
  item: string,
  fix: string,
  probe: () => Promise<Omit<ReadinessItem, 'item'>>,
): Promise<ReadinessItem> {
  try {
    return { item, ...(await probe()) };
  } catch (error) {
    return { item, pass: false, detail: `could not check: ${errorMessage(error)}`, fix };
  }
}

function daemonItem(job: Job): ReadinessItem {
  const pid = daemonPid(job);
  const fix =
    'start replication with bucardo.start (bucardo.restart if it is stuck), then look at bucardo.status';
  if (!pid)
    return {
      item: 'replication daemon running',
      pass: false,
      detail: `no live Bucardo process in ${job.paths.mcpPidFile}`,
      fix,
    };
  if (job.config.bucardo.asynchronousKicking && !kickerStatus(job).running) {
    return {
      item: 'replication daemon running',
      pass: false,
      detail: `daemon pid ${pid} runs, but no kicker (asynchronous kicking is on, so changes are not kicked)`,
      fix: 'bucardo.restart starts the kicker with the daemon',
    };
  }
  return {
    item: 'replication daemon running',
    pass: true,
    detail: `pid ${pid}${job.config.bucardo.asynchronousKicking ? `, kicker pid ${kickerStatus(job).pid}` : ''}`,
  };
}

/**
 * The readiness list of db's job, asked on db's sessions (the command's `ctx.db`). Given a job, it
 * opens sessions of its own for the list and closes them after.
 */
export async function collectReadiness(
  source: Job | DatabaseContext,
  activity: Activity,
): Promise<CheckData> {
  if (source instanceof DatabaseContext) return readiness(source, activity);
  const db = new DatabaseContext(source, activity);
  try {
    return await readiness(db, activity);
  } finally {
    await db.close();
  }
}

async function readiness(db: DatabaseContext, activity: Activity): Promise<CheckData> {
  const job = db.job;
  const settings = cutoverSettings(job.config);
  const installed = await metadataDatabaseExists(db, activity).catch(() => false);
  const notInstalled = {
    pass: false,
    detail: `Bucardo is not installed: the metadata database ${job.metadataDb} does not exist`,
  };
  const items: ReadinessItem[] = [daemonItem(job)];

  items.push(
    await evaluate('initial copy done', 'bucardo.wait_for_copy', async () => {
      if (!installed) return { ...notInstalled, fix: 'bucardo.install, bucardo.add_triggers, bucardo.start' };
      const copy = await copyState(db);
      const pass = copy.state === 'done' || copy.state === 'not requested';
      return {
        pass,
        detail: `${copy.state}${copy.table ? ` (${copy.table}: ${copy.rows} rows so far)` : ''}`,
        ...(pass
          ? {}
          : {
              fix:
                copy.state === 'pending'
                  ? 'bucardo.start begins the copy; bucardo.wait_for_copy waits for it'
                  : 'wait for it: bucardo.wait_for_copy',
            }),
      };
    }),
  );

  items.push(
    await evaluate(
      `replication lag under ${settings.maxLagSeconds} s`,
      'make sure the primary is reachable, then bucardo.status',
      async () => {
        const pending = await pendingChanges(await db.primary(), job.dbgroupName);
        const total = pending.reduce((sum, p) => sum + p.changes, 0);
        const oldest = pending
          .map((p) => p.oldest)
          .filter((d): d is Date => d !== null)
          .sort((a, b) => a.getTime() - b.getTime())[0];
        const lag = oldest ? Math.max(0, (Date.now() - oldest.getTime()) / 1000) : 0;
        const pass = total === 0 || lag <= settings.maxLagSeconds;
        return {
          pass,
          detail:
            total === 0
              ? 'nothing pending'
              : `${total} change(s) pending, oldest ${lag.toFixed(1)} s (cutover.max_lag ${settings.maxLagSeconds} s)`,
          ...(pass
            ? {}
            : {
                fix: 'wait for replication to catch up (bucardo.status shows the backlog per table); if it keeps growing, the secondary cannot keep up with the write load: reduce the load or look at the Bucardo log',
              }),
        };
      },
    ),
  );

  items.push(
    await evaluate('no schema drift', 'schema.diff, then schema.add_tables or schema.apply', async () => {
      if (!installed) return { ...notInstalled, fix: 'bucardo.install' };
      const drift = await replicationDrift(job, {
        primary: await db.primary(),
        secondary: await db.secondary(),
        metadata: await db.metadata(),
      });
      const listed = drift.map((d) => `${d.table}: ${d.problem}`);
      return drift.length === 0
        ? {
            pass: true,
            detail: "every table in scope is in the job's syncs, with the same columns on both sides",
          }
        : {
            pass: false,
            detail: `${listed.slice(0, 5).join('; ')}${listed.length > 5 ? `; and ${listed.length - 5} more` : ''}`,
            fix: [...new Set(drift.map((d) => d.fix))].join('; '),
          };
    }),
  );

  items.push(
    await evaluate(
      'no rows left behind',
      'schema.diff lists the tables the migration leaves behind',
      // A session of its own: the probe for rows runs in a transaction with SET LOCAL lock_timeout
      // (a table locked by the application is reported, not waited for), which must not share.
      async () =>
        withClient(job, { role: 'primary', activity }, (primary) =>
          leftBehindReadiness(
            primary,
            job.config.bucardo.replicationObjects,
            lockRounds(job).policy.timeoutMs,
          ),
        ),
    ),
  );

  const scope = await db
    .primary()
    .then((client) => findReplicationObjects(client, job.config.bucardo.replicationObjects))
    .catch(() => undefined);
  items.push(
    await evaluate(
      'indexes recreated on the secondary',
      'indexes.recreate (if the indexes plugin dropped them), or create the listed indexes on the secondary',
      async () => {
        if (!scope) throw new Error('cannot read the tables in scope on the primary');
        const gap = await indexGap(await db.primary(), await db.secondary(), scope.tables);
        const pass = gap.missing.length === 0 && gap.invalid.length === 0;
        const listed = [
          ...gap.missing.map((m) => `missing: ${m.definition}`),
          ...gap.invalid.map((m) => `invalid: ${m.definition}`),
        ];
        return {
          pass,
          detail: pass
            ? `every index of the primary's ${scope.tables.length} table(s) in scope exists on the secondary`
            : `${listed.slice(0, 5).join('; ')}${listed.length > 5 ? `; and ${listed.length - 5} more` : ''}`,
          ...(pass
            ? {}
            : {
                fix: 'indexes.recreate (if the indexes plugin dropped them), or create the listed indexes on the secondary; an invalid index (failed CREATE INDEX CONCURRENTLY) must be dropped and built again',
              }),
        };
      },
    ),
  );

  items.push(
    await evaluate('materialized views populated', 'mat_views.refresh', async () => {
      if (!scope) throw new Error('cannot read the materialized views in scope on the primary');
      const gap = await materializedViewGap(
        await db.primary(),
        await db.secondary(),
        scope.materializedViews,
      );
      const pass = gap.missing.length === 0 && gap.unpopulated.length === 0;
      return {
        pass,
        detail: pass
          ? `${scope.materializedViews.length} materialized view(s) in scope, all populated on the secondary`
          : [
              gap.unpopulated.length && `not populated: ${gap.unpopulated.join(', ')}`,
              gap.missing.length && `missing: ${gap.missing.join(', ')}`,
            ]
              .filter(Boolean)
              .join('; '),
        ...(pass ? {} : { fix: 'mat_views.refresh (Bucardo does not replicate materialized views)' }),
      };
    }),
  );

  const lastVerify = installed
    ? await withRecords(db, activity, (client) => lastVerifyRun(client, job)).catch(() => undefined)
    : undefined;

  items.push(
    await evaluate('no Bucardo errors since the daemon started', 'read the Bucardo log', async () => {
      if (!installed) return { ...notInstalled, fix: 'bucardo.install' };
      const pid = daemonPid(job);
      const uptime = pid ? processUptimeSeconds(pid) : undefined;
      const { good, bad } = await withMetadata(
        db,
        async (client) => ({
          good: await lastRun(client, syncNames(job), 'lastgood'),
          bad: await lastRun(client, syncNames(job), 'lastbad'),
        }),
        activity,
      );
      // Without a running daemon, "since it started" is unknowable: an error after the last good run counts.
      const since =
        uptime !== undefined ? new Date(Date.now() - uptime * 1000) : (good?.ended ?? new Date(0));
      if (!bad?.ended || bad.ended < since)
        return {
          pass: true,
          detail: bad?.ended
            ? `last failed run ${ago(bad.ended)}, before the daemon started`
            : 'no failed sync run recorded',
        };
      const error = (bad.status ?? bad.details ?? '').replace(/\s+/g, ' ').slice(0, 200);
      const recovered = good?.ended && good.ended > bad.ended;
      if (recovered && lastVerify?.passed && lastVerify.finishedAt > bad.ended) {
        return {
          pass: true,
          detail: `a sync run failed ${ago(bad.ended)} (${error}); replication recovered and a verify passed since (${ago(lastVerify.finishedAt)})`,
        };
      }
      return {
        pass: false,
        detail: `a sync run failed ${ago(bad.ended)}: ${error}${recovered ? ' (later runs succeeded)' : ''}`,
        fix: recovered
          ? 'replication recovered: run cutover.verify to prove no data was lost, then check again'
          : `fix the cause (details in ${job.paths.logFile}), then bucardo.restart`,
      };
    }),
  );

  items.push(
    await evaluate('verify passed recently', 'cutover.verify', async () =>
      verifyItem(lastVerify, settings.verifyMaxAgeSeconds, installed),
    ),
  );

  return { job: job.name, ready: items.every((i) => i.pass), items };
}

function verifyItem(
  run: VerifyRecord | undefined,
  maxAgeSeconds: number,
  installed: boolean,
): Omit<ReadinessItem, 'item'> {
  if (!installed)
    return { pass: false, detail: 'no record: Bucardo is not installed', fix: 'bucardo.install first' };
  if (!run) return { pass: false, detail: 'no verify recorded for this job', fix: 'cutover.verify' };
  const age = (Date.now() - run.finishedAt.getTime()) / 1000;
  if (!run.passed)
    return {
      pass: false,
      detail: `the last verify (${ago(run.finishedAt)}) failed: ${run.verdict}`,
      fix: 'repair the differences it lists (or find why they appeared), then cutover.verify',
    };
  if (age > maxAgeSeconds)
    return {
      pass: false,
      detail: `the last passing verify is ${Math.round(age)} s old (cutover.verify_max_age ${maxAgeSeconds} s)`,
      fix: 'cutover.verify',
    };
  // The final check of cutover.finish starts from this verify's horizon: the fresher, the fewer keys in the pause.
  const final = run.horizon
    ? `cutover.finish re-checks the keys changed since ${run.horizon.from ?? 'the hold began'}`
    : 'no change capture recorded with it: cutover.finish will compare every row while writes are stopped';
  return {
    pass: true,
    detail: `${ago(run.finishedAt)}: ${run.verdict} (at most cutover.verify_max_age ${maxAgeSeconds} s old; ${final})`,
  };
}

export async function check(ctx: CommandContext): Promise<CommandOutcome<CheckData>> {
  await adoptRecordedNames(ctx.db, ctx.activity);
  // After cutover.finish --way-back the list is about the way back: B→A, for cutover.rollback.
  const job = await activeDirection(ctx.job, ctx.db);
  const back = job !== ctx.job;
  const data = await collectReadiness(back ? ctx.databases(job) : ctx.db, ctx.activity);
  const failed = data.items.filter((i) => !i.pass);
  const what = back ? 'rollback over the way back (the secondary B is the source here)' : 'cutover';
  return {
    ok: data.ready,
    data,
    message: data.ready
      ? `Ready for ${what}: all ${data.items.length} checks pass. Next: ${back ? 'cutover.rollback' : 'cutover.finish'}.`
      : `Not ready for ${what}: ${failed.length} of ${data.items.length} checks fail (${failed.map((i) => i.item).join('; ')}).`,
  };
}
