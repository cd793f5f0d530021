// The kicker process of one replication job (started by src/core/kicker.ts, detached from the shell).
// Every kick_interval (kick_interval_busy while changes arrive) it asks the primary, over one persistent
// connection, whether Bucardo's delta tables received anything new; only then it sends NOTIFY
// "bucardo_kick_sync_<sync>" over one persistent connection to the metadata database. An idle job
// therefore adds no syncrun rows.
// Both connections are re-established by themselves after a database restart.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { sleep } from '../core/activity.js';
import { openClient, type Client } from '../core/db.js';
import { errorMessage } from '../core/errors.js';
import { targetViews, type Job } from '../core/job.js';
import type { KickerState } from '../core/kicker.js';
import { maintainBookkeepingTables } from '../core/maintenance.js';
import { applyStallRemedy, detectStuckStatements } from '../core/watchdog.js';
import { trackTarget } from '../core/bucardo/names.js';
import { syncNames } from '../core/bucardo/syncs.js';
import { prepareSession } from '../core/compare/sql.js';
import { dropRecheckTarget, Recheck } from '../core/recheck.js';
import { partitionSettings } from '../core/bucardo/add-tables.js';
import { addNewPartitions, PARTITION_LOOK_EVERY_MS } from './partitions.js';

const job = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as Job;
/** With per-commit kick triggers the kicker only maintains statistics and watches for stalls. */
const kicking = job.config.bucardo.asynchronousKicking;
const intervalMs = Math.max(50, Math.round(job.config.bucardo.kickInterval * 1000));
/**
 * While changes arrive the kicker looks every kick_interval_busy, until BUSY_HOLD_MS pass without one;
 * then every kick_interval again. A look costs the primary about 30 ms of CPU with 1,000 delta tables
 * (docs/kicker.md): fast looks are paid only while they shorten the wait for changes that come.
 */
const busyIntervalMs = Math.min(
  intervalMs,
  Math.max(50, Math.round(job.config.bucardo.kickIntervalBusy * 1000)),
);
const BUSY_HOLD_MS = 3_000;
/** When a look last found new changes (any sync's). */
let lastChangeAt = 0;
const MAINTENANCE_EVERY_MS = 15_000;
const WATCHDOG_EVERY_MS = 5_000;
let lastMaintenance = 0;
let lastWatchdog = 0;
let lastRemedy = 0;
let lastHousekeepingError = '';
const RECHECK_EVERY_MS = job.config.bucardo.recheckSeconds * 1000;
let lastRecheck = 0;
/** The safety net's pass under way (it runs beside kicking, on sessions of its own). */
let recheckRunning: Promise<void> | undefined;
let recheckTargetDropped = false;
/** One per target (fan-out: each target is re-compared with the primary on sessions of its own). */
const rechecks: { view: Job; recheck: Recheck; sessions?: RecheckSessions }[] = targetViews(job).map(
  (view) => ({
    view,
    recheck: new Recheck(view),
  }),
);
type RecheckSessions = { primary: Client; secondary: Client; bookkeeping: Client };
const state: KickerState = {
  pid: process.pid,
  startedAt: new Date().toISOString(),
  kicks: 0,
  connected: false,
  intervalSeconds: intervalMs / 1000,
};
let stopping = false;
let metadata: Client | undefined;
let primary: Client | undefined;
/** Opened by the watchdog (worker statements on the target); kept like the others. */
let secondary: Client | undefined;
/**
 * What the kicker keeps per sync of the job (bucardo.syncs): each sync has its own worker, so each is
 * kicked only when its own tables changed, and each kick is confirmed by a run of that sync.
 */
interface SyncKicks {
  name: string;
  /** Bucardo's delta tables for this sync, re-read every 30 s (new tables appear only with a validate). */
  deltaTables?: { names: string[]; readAt: number };
  fingerprintStatement?: { text: string; name: string };
  /** Fingerprint of the delta tables at the last look: newest txntime and rows ever inserted. */
  lastFingerprint?: string;
  /**
   * A kick can be lost: Bucardo drops it while the sync has no kid (e.g. between the initial copy's kid
   * and the next one), and a run that fails leaves its changes pending. So each kick stays unconfirmed
   * until a sync run started after it has finished well (bucardo.syncrun), and is repeated with backoff
   * until then (not while a run is still in progress).
   */
  unconfirmedKickAt?: string;
  retryDelayMs: number;
  nextRetryAt: number;
  /** Whether the last kick was sent while the sync's initial copy had not run yet (see tick). */
  kickedDuringCopy: boolean;
}

const syncs: SyncKicks[] = syncNames(job).map((name) => ({
  name,
  retryDelayMs: 0,
  nextRetryAt: 0,
  kickedDuringCopy: false,
}));

function log(message: string): void {
  process.stdout.write(`${new Date().toISOString()} kicker ${job.name} [${process.pid}] ${message}\n`);
}

function saveState(): void {
  try {
    writeFileSync(job.paths.kickerStateFile, JSON.stringify(state));
  } catch {
    /* pid dir gone: we are being uninstalled */
  }
}

async function closeAll(): Promise<void> {
  await closeRecheckSessions();
  await Promise.all([metadata, primary, secondary].map((client) => client?.end().catch(() => undefined)));
  metadata = undefined;
  primary = undefined;
  secondary = undefined;
  for (const sync of syncs) sync.deltaTables = undefined;
}

/**
 * max(txntime) per delta table is an index lookup (Bucardo indexes txntime); it catches new changes
 * at once. n_tup_ins of the delta tables also catches a long transaction that commits late with an
 * older txntime. Together: cheap enough to run every 200 ms on thousands of tables.
 */
async function deltaFingerprint(client: Client, sync: SyncKicks): Promise<string> {
  if (!sync.deltaTables || Date.now() - sync.deltaTables.readAt > 30_000) {
    const { rows } = await client.query<{ deltaname: string }>(
      `SELECT DISTINCT dn.deltaname FROM bucardo.bucardo_delta_names dn
         JOIN bucardo.bucardo_delta_targets dt ON dt.tablename = to_regclass(dn.tablename)::oid
        WHERE dt.target = $1 AND dn.sync = $2`,
      [trackTarget(job.dbgroupName), sync.name],
    );
    sync.deltaTables = { names: rows.map((row) => row.deltaname), readAt: Date.now() };
  }
  const names = sync.deltaTables.names;
  if (names.length === 0) return 'no-delta-tables';
  // deltaname comes quote_ident-ed from Bucardo's own table (e.g. "delta_public_CamelCase").
  const parts = names.map((name) => `SELECT max(txntime) AS m FROM bucardo.${name}`);
  // A TRUNCATE writes no delta row, only a row in bucardo_truncate_trigger: watch that too.
  const text = `SELECT (SELECT max(m) FROM (${parts.join(' UNION ALL ')}) d)::text AS newest,
            (SELECT sum(n_tup_ins) FROM pg_stat_user_tables WHERE relid = ANY($2::regclass[]))::text AS inserted,
            (SELECT max(cdate) FROM bucardo.bucardo_truncate_trigger WHERE sync = $1 AND replicated IS NULL)::text AS truncated`;
  // Several times a second for as long as the job runs: a named statement is parsed and planned once
  // per connection (a new name when the table list changes).
  if (sync.fingerprintStatement?.text !== text)
    sync.fingerprintStatement = { text, name: `fingerprint_${++statementCount}` };
  const { rows } = await client.query<{
    newest: string | null;
    inserted: string | null;
    truncated: string | null;
  }>({ ...sync.fingerprintStatement, values: [sync.name, names.map((name) => `bucardo.${name}`)] });
  return `${rows[0]!.newest}|${rows[0]!.inserted}|${rows[0]!.truncated}`;
}

let statementCount = 0;

async function open(role: 'bucardo' | 'primary'): Promise<Client> {
  const client = await openClient(job, { role, applicationName: `bucardo-console kicker ${job.name}` });
  client.removeAllListeners('error');
  client.on('error', (error) => {
    state.lastError = errorMessage(error);
    void closeAll();
  });
  return client;
}

async function connect(): Promise<void> {
  metadata ??= await open('bucardo');
  primary ??= await open('primary');
  state.connected = true;
}

async function tick(): Promise<void> {
  await connect();
  // Maintenance and the watchdog must never hold up kicking (the secondary may be down, a table
  // may be locked for ANALYZE): their failures are logged and retried at their next turn.
  await housekeeping().catch((error) => {
    const message = errorMessage(error);
    if (message !== lastHousekeepingError) log(`housekeeping failed, will retry: ${message}`);
    lastHousekeepingError = message;
  });
  startRecheck();
  startPartitionLook();
  if (!kicking) return;
  for (const sync of syncs) await tickSync(sync);
}

/**
 * The safety net's next pass when it is due and none is under way. It runs beside kicking (a pass
 * re-reads differing rows for a second or two) and never fails the kicker: an error is logged, shown
 * in the state, and the next pass starts on fresh sessions.
 */
function startRecheck(): void {
  if (RECHECK_EVERY_MS === 0) {
    // Off: the safety net's target must not keep Bucardo's purge waiting for passes that never come.
    if (!recheckTargetDropped && primary) {
      recheckTargetDropped = true;
      void dropRecheckTarget(primary, job)
        .then((dropped) => dropped && log('bucardo.recheck_interval is 0: the safety net is off'))
        .catch(() => (recheckTargetDropped = false));
    }
    return;
  }
  if (recheckRunning || Date.now() - lastRecheck < RECHECK_EVERY_MS) return;
  lastRecheck = Date.now();
  recheckRunning = recheckPass().finally(() => {
    recheckRunning = undefined;
  });
}

let partitionLook: Promise<void> | undefined;
let lastPartitionLook = 0;

/** schema.auto_add_partitions: a look for new partitions when due and none is under way (beside kicking). */
function startPartitionLook(): void {
  if (partitionLook || Date.now() - lastPartitionLook < PARTITION_LOOK_EVERY_MS) return;
  if (!partitionSettings(job).autoAddPartitions) return;
  lastPartitionLook = Date.now();
  partitionLook = addNewPartitions(job, log)
    .catch((error) => log(`schema.auto_add_partitions failed, will try again: ${errorMessage(error)}`))
    .finally(() => {
      partitionLook = undefined;
    });
}

async function recheckPass(): Promise<void> {
  const counters = (state.recheck ??= { passes: 0, compared: 0, requeued: 0 });
  const began = Date.now();
  let behind = false;
  for (const entry of rechecks) {
    const where = job.config.fanOut ? `target ${entry.view.target}` : 'the secondary';
    try {
      entry.sessions ??= await openRecheckSessions(entry);
      const { primary: ours, secondary: theirs, bookkeeping } = entry.sessions;
      const pass = await entry.recheck.pass({ primary: ours, secondary: theirs }, bookkeeping);
      counters.compared += pass.compared;
      counters.requeued += pass.requeued.length;
      behind ||= pass.behind;
      delete counters.lastError;
      for (const missed of pass.requeued) {
        const line = `${missed.table} (${missed.key.join(', ')})${job.config.fanOut ? ` on ${entry.view.target}` : ''}`;
        log(`safety net: ${line} differed on ${where} with every change applied; re-queued it`);
        counters.lastRequeued = [...(counters.lastRequeued ?? []), line].slice(-10);
      }
    } catch (error) {
      counters.lastError = `${job.config.fanOut ? `${where}: ` : ''}${errorMessage(error)}`;
      log(`safety net pass failed, will retry: ${counters.lastError}`);
      await closeRecheckSessions(entry);
    }
  }
  counters.passes += 1;
  counters.lastPassAt = new Date().toISOString();
  counters.lastPassMs = Date.now() - began;
  counters.behind = behind;
  // Behind (a limit per pass reached): the next pass starts at once rather than after the interval.
  if (behind) lastRecheck = 0;
}

async function openRecheckSessions(entry: (typeof rechecks)[number]): Promise<RecheckSessions> {
  const applicationName = `bucardo-console safety net ${job.name}`;
  const opened: Client[] = [];
  try {
    for (const role of ['primary', 'secondary', 'primary'] as const) {
      const client = await openClient(entry.view, { role, applicationName });
      client.removeAllListeners('error');
      client.on('error', () => void closeRecheckSessions(entry));
      opened.push(client);
    }
    const [ours, theirs, bookkeeping] = opened as [Client, Client, Client];
    await Promise.all([prepareSession(ours), prepareSession(theirs), prepareSession(bookkeeping)]);
    return { primary: ours, secondary: theirs, bookkeeping };
  } catch (error) {
    await Promise.all(opened.map((client) => client.end().catch(() => undefined)));
    throw error;
  }
}

async function closeRecheckSessions(entry?: (typeof rechecks)[number]): Promise<void> {
  for (const one of entry ? [entry] : rechecks) {
    const sessions = one.sessions;
    delete one.sessions;
    if (sessions)
      await Promise.all(Object.values(sessions).map((client) => client.end().catch(() => undefined)));
  }
}

async function tickSync(sync: SyncKicks): Promise<void> {
  const fingerprint = await deltaFingerprint(primary!, sync);
  if (sync.lastFingerprint === undefined) {
    // First look after (re)connecting: kick once, in case changes arrived while we were away.
    sync.lastFingerprint = '';
  }
  if (fingerprint !== sync.lastFingerprint) {
    sync.lastFingerprint = fingerprint;
    lastChangeAt = Date.now();
    await kick(sync, false);
  } else if (sync.unconfirmedKickAt !== undefined && Date.now() >= sync.nextRetryAt) {
    // Delivered means: a run that started after the kick has finished well. A run that failed (a
    // cancelled or crashed worker) leaves its changes pending and Bucardo does not retry by itself.
    const { rows } = await metadata!.query<{ confirmed: boolean; running: boolean }>(
      `SELECT bool_or(ended IS NOT NULL AND (lastgood OR lastempty OR status LIKE 'Complete%' OR status LIKE 'No delta%')) AS confirmed,
              bool_or(ended IS NULL) AS running
         FROM bucardo.syncrun WHERE sync = $1 AND started >= $2::timestamptz`,
      [sync.name, sync.unconfirmedKickAt],
    );
    if (rows[0]?.confirmed) {
      sync.unconfirmedKickAt = undefined;
      // A kick sent while the initial copy was pending was confirmed by the copy's run, which applies
      // no delta rows: it tracks those its snapshot carried (how-bucardo-behaves.md §21; before that,
      // 16,400 changes of the demo's B -> C stayed pending for good), but not those of transactions
      // that committed after its snapshot or that the fence left untracked. One more kick makes a
      // normal run carry them.
      if (sync.kickedDuringCopy) {
        sync.kickedDuringCopy = false;
        await kick(sync, false);
      }
    } else if (rows[0]?.running) sync.nextRetryAt = Date.now() + sync.retryDelayMs;
    else await kick(sync, true);
  }
}

/** Fresh statistics on Bucardo's bookkeeping tables, and the stall watchdog (see src/core/watchdog.ts). */
async function housekeeping(): Promise<void> {
  const now = Date.now();
  // Off when the operator's DBA maintains these tables; the remedy still ANALYZEs them when a stall is found.
  if (job.config.bucardo.maintainStatistics && now - lastMaintenance >= MAINTENANCE_EVERY_MS) {
    lastMaintenance = now;
    const actions = await maintainBookkeepingTables(primary!);
    for (const action of actions) log(`${action.action} bucardo.${action.table}: ${action.reason}`);
    if (actions.length) {
      state.maintenance = (state.maintenance ?? 0) + actions.length;
      state.lastMaintenanceAt = new Date().toISOString();
    }
  }
  if (now - lastWatchdog >= WATCHDOG_EVERY_MS) {
    lastWatchdog = now;
    const threshold = job.config.bucardo.watchdogSeconds;
    secondary ??= await openClient(job, {
      role: 'secondary',
      applicationName: `bucardo-console kicker ${job.name}`,
    });
    secondary.removeAllListeners('error');
    secondary.on('error', () => {
      secondary = undefined;
    });
    const stalls = await detectStuckStatements(job, threshold, { primary: primary!, secondary });
    if (stalls.length && !state.stalls?.length) state.stallsDetected = (state.stallsDetected ?? 0) + 1;
    state.stalls = stalls.map((s) => `${s.cause}. Fix: ${s.fix}`);
    if (stalls.length) {
      for (const stall of stalls) log(`stall: ${stall.cause}`);
      // At most one remedy per watchdog period: give the restarted worker time to get going.
      if (job.config.bucardo.stallRemedy && now - lastRemedy >= threshold * 1000) {
        lastRemedy = now;
        const remedy = await applyStallRemedy(job, stalls, primary!);
        const line = `remedy: analyzed ${remedy.analyzed.length} bookkeeping table(s); cancelled ${remedy.cancelled.map((c) => `backend ${c.pid} on the ${c.role}`).join(', ') || 'nothing'}`;
        log(line);
        state.remedies = [...(state.remedies ?? []), `${new Date().toISOString()} ${line}`].slice(-10);
        state.remediesApplied = (state.remediesApplied ?? 0) + 1;
      }
    }
  }
}

async function kick(sync: SyncKicks, retry: boolean): Promise<void> {
  // The database's clock, not ours, is what syncrun.started is compared with.
  // One round trip: pg_notify takes the channel name as a value (no identifier quoting involved).
  const { rows } = await metadata!.query<{ at: string }>({
    name: 'kick',
    text: "SELECT clock_timestamp()::text AS at, pg_notify($1, '')",
    values: [`bucardo_kick_sync_${sync.name}`],
  });
  sync.unconfirmedKickAt = rows[0]!.at;
  const copy = await metadata!.query<{ pending: boolean }>({
    name: 'copy_pending',
    text: 'SELECT onetimecopy <> 0 AS pending FROM bucardo.sync WHERE name = $1',
    values: [sync.name],
  });
  sync.kickedDuringCopy = copy.rows[0]?.pending === true;
  // Bucardo restarts a sync's worker only at its controller's next check after the initial copy
  // (bucardo.worker_check_interval) and drops kicks meanwhile: retry
  // often enough that the first change after the copy is not held back long, but never more often
  // than every 2 s (each retry is a NOTIFY, and a run only when there is something to do).
  sync.retryDelayMs = retry
    ? Math.min(5000, Math.round(sync.retryDelayMs * 1.5))
    : Math.max(2000, 3 * intervalMs);
  sync.nextRetryAt = Date.now() + sync.retryDelayMs;
  state.kicks += 1;
  state.lastKickAt = new Date().toISOString();
  if (retry)
    log(
      `no run of sync ${sync.name} has finished well since the last kick; kicked again (next check in ${sync.retryDelayMs} ms)`,
    );
}

/**
 * Prometheus metrics on metrics.listen (off by default). An address in use must not cost the job
 * its kicker: the failure is logged and shown in the state file, and kicking goes on.
 */
async function startMetrics(): Promise<void> {
  const listen = job.config.metrics?.listen;
  if (!listen) return;
  const where = `http://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}/metrics`;
  try {
    const { serveMetrics } = await import('./metrics.js');
    metricsServer = await serveMetrics(job, () => state);
    state.metrics = where;
    log(`serving Prometheus metrics at ${where}`);
  } catch (error) {
    state.metrics = `not served: ${errorMessage(error)}`;
    log(`cannot serve metrics at ${where}: ${errorMessage(error)}; kicking goes on without them`);
  }
}

let metricsServer: { close(): void } | undefined;

async function main(): Promise<void> {
  log(
    kicking
      ? `started, kicking sync ${syncNames(job).join(', ')} when changes are pending: looks every ${intervalMs} ms, every ${busyIntervalMs} ms while changes arrive`
      : `started for sync ${syncNames(job).join(', ')}: per-commit kick triggers do the kicking; maintaining statistics and watching for stalls`,
  );
  await startMetrics();
  if (!job.config.bucardo.maintainStatistics)
    log(
      "bucardo.maintain_statistics is false: not analyzing Bucardo's delta/track tables (only the stall remedy does)",
    );
  saveState();
  let failures = 0;
  let lastSave = 0;
  let lastSaved = '';
  while (!stopping) {
    const began = Date.now();
    try {
      await tick();
      if (failures > 0) log('reconnected');
      failures = 0;
    } catch (error) {
      failures += 1;
      state.connected = false;
      state.lastError = errorMessage(error);
      state.lastErrorAt = new Date().toISOString();
      if (failures === 1 || failures % 30 === 0)
        log(`cannot kick (${failures} failure(s) in a row), retrying: ${state.lastError}`);
      await closeAll();
      for (const sync of syncs) sync.lastFingerprint = undefined;
      await sleep(Math.min(10_000, 500 * failures)).catch(() => undefined);
      continue;
    }
    // The state file is what bucardo.status shows: written when it changed, at most once a second.
    const snapshot = JSON.stringify(state);
    if (snapshot !== lastSaved && Date.now() - lastSave > 1000) {
      saveState();
      lastSave = Date.now();
      lastSaved = snapshot;
    }
    const interval = kicking && Date.now() - lastChangeAt < BUSY_HOLD_MS ? busyIntervalMs : intervalMs;
    state.intervalSeconds = interval / 1000;
    await sleep(Math.max(0, interval - (Date.now() - began))).catch(() => undefined);
  }
}

async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log(`stopping on ${signal}`);
  metricsServer?.close();
  await closeAll();
  state.connected = false;
  saveState();
  rmSync(job.paths.kickerPidFile, { force: true });
  process.exit(0);
}

process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGHUP', () => undefined);
main().catch((error) => {
  log(`fatal: ${errorMessage(error)}`);
  process.exit(1);
});
