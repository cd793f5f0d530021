// Prometheus metrics of one job, served by its kicker (the one long-running process per job) on
// metrics.listen. Every scrape reads the facts fresh: the backlog on the primary, the last good run
// and the copy in the metadata database, the last verify the cutover plugin recorded there, the
// daemon's pid, and the kicker's own counters. The list is in docs/status-and-monitoring.md.
import http from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import { copyProgress } from '../core/copy/progress.js';
import { withClient, type Client } from '../core/db.js';
import { errorMessage } from '../core/errors.js';
import { replicationDrift } from '../core/drift.js';
import { targetKey, targetViews, type Job } from '../core/job.js';
import type { KickerState } from '../core/kicker.js';
import { syncNames } from '../core/bucardo/syncs.js';
import { pendingChanges } from '../core/pending.js';
import { isProcessAlive, processCommandLine, readPidFile } from '../core/process.js';

/** A scrape must answer even when a database hangs: each source gets this long. */
const SOURCE_TIMEOUT_MS = 5_000;

type Labels = 'job';

interface JobMetrics {
  registry: Registry;
  reachable: Gauge<'job' | 'role'>;
  pending: Gauge<Labels>;
  pendingOldest: Gauge<Labels>;
  pendingTable: Gauge<'job' | 'table'>;
  lastGoodAge: Gauge<Labels>;
  daemonUp: Gauge<Labels>;
  kicks: Counter<Labels>;
  stallsDetected: Counter<Labels>;
  remedies: Counter<Labels>;
  recheckCompared: Counter<Labels>;
  recheckRequeued: Counter<Labels>;
  stalled: Gauge<Labels>;
  driftTables: Gauge<Labels>;
  copyRunning: Gauge<Labels>;
  copyTablesDone: Gauge<Labels>;
  copyTablesTotal: Gauge<Labels>;
  copyBytesDone: Gauge<Labels>;
  copyBytesTotal: Gauge<Labels>;
  verifyPassed: Gauge<Labels>;
  verifyAge: Gauge<Labels>;
  targetReachable: Gauge<'job' | 'target'>;
  targetPending: Gauge<'job' | 'target'>;
  targetPendingOldest: Gauge<'job' | 'target'>;
  targetVerifyPassed: Gauge<'job' | 'target'>;
  targetVerifyAge: Gauge<'job' | 'target'>;
}

function defineMetrics(): JobMetrics {
  const registry = new Registry();
  const gauge = <L extends string>(name: string, help: string, labelNames: L[]) =>
    new Gauge<L>({ name: `bucardo_console_${name}`, help, labelNames, registers: [registry] });
  const counter = (name: string, help: string) =>
    new Counter<Labels>({
      name: `bucardo_console_${name}`,
      help,
      labelNames: ['job'],
      registers: [registry],
    });
  return {
    registry,
    reachable: gauge('database_reachable', '1 when the last scrape could read this database', [
      'job',
      'role',
    ]),
    pending: gauge('pending_changes', 'Changes recorded on the primary not yet applied to the secondary', [
      'job',
    ]),
    pendingOldest: gauge('pending_oldest_seconds', 'Age of the oldest pending change (0 when none)', ['job']),
    pendingTable: gauge('pending_table_changes', 'Pending changes per table (per_table: true)', [
      'job',
      'table',
    ]),
    lastGoodAge: gauge('last_good_run_age_seconds', 'Seconds since the last sync run that finished well', [
      'job',
    ]),
    daemonUp: gauge('daemon_up', '1 when the Bucardo daemon of this job runs', ['job']),
    kicks: counter('kicker_kicks_total', 'Kicks the kicker sent since it started'),
    stallsDetected: counter(
      'stalls_detected_total',
      "Stall episodes the kicker's watchdog detected since it started",
    ),
    remedies: counter('stall_remedies_total', 'Stall remedies the kicker applied since it started'),
    recheckCompared: counter(
      'recheck_keys_compared_total',
      "Keys Bucardo marked applied that the kicker's safety net re-compared on both sides",
    ),
    recheckRequeued: counter(
      'recheck_keys_requeued_total',
      'Keys that differed with every change applied, re-queued by the safety net',
    ),
    stalled: gauge('stalled', '1 while the watchdog sees a stall', ['job']),
    driftTables: gauge(
      'schema_drift_tables',
      "Tables the job's syncs no longer carry as they are: in scope but in no sync, gone from the primary, or other columns on the secondary (src/core/drift.ts; 0 when none)",
      ['job'],
    ),
    copyRunning: gauge('copy_running', '1 while the initial copy runs', ['job']),
    copyTablesDone: gauge('copy_tables_done', 'Tables the initial copy has finished', ['job']),
    copyTablesTotal: gauge('copy_tables_total', 'Tables the initial copy has to do', ['job']),
    copyBytesDone: gauge('copy_bytes_done', 'Bytes (heap size on the primary) the initial copy has done', [
      'job',
    ]),
    copyBytesTotal: gauge('copy_bytes_total', 'Bytes (heap size on the primary) the initial copy has to do', [
      'job',
    ]),
    verifyPassed: gauge('verify_passed', '1 when the last cutover.verify passed, 0 when it failed', ['job']),
    verifyAge: gauge('verify_age_seconds', 'Seconds since the last cutover.verify finished', ['job']),
    // Per target (databases.secondaries; one target named secondary otherwise). One sync applies every
    // target in the same run, so the backlog is the job's, repeated for each target's dashboards.
    targetReachable: gauge('target_reachable', '1 when the last scrape could read this target', [
      'job',
      'target',
    ]),
    targetPending: gauge('target_pending_changes', 'Changes not yet applied to this target', [
      'job',
      'target',
    ]),
    targetPendingOldest: gauge(
      'target_pending_oldest_seconds',
      'Age of the oldest change not yet applied to this target (0 when none)',
      ['job', 'target'],
    ),
    targetVerifyPassed: gauge(
      'target_verify_passed',
      "1 when this target's last cutover.verify passed, 0 when it failed",
      ['job', 'target'],
    ),
    targetVerifyAge: gauge(
      'target_verify_age_seconds',
      "Seconds since this target's last cutover.verify finished",
      ['job', 'target'],
    ),
  };
}

function bounded<T>(promise: Promise<T>): Promise<T> {
  const timeout = new Promise<T>((_, reject) => {
    setTimeout(
      () => reject(new Error(`no answer within ${SOURCE_TIMEOUT_MS} ms`)),
      SOURCE_TIMEOUT_MS,
    ).unref();
  });
  return Promise.race([promise, timeout]);
}

function daemonRunning(job: Job): boolean {
  const pid = readPidFile(job.paths.mcpPidFile);
  return pid !== undefined && isProcessAlive(pid) && /bucardo/i.test(processCommandLine(pid));
}

/** The last verify of this job, from the cutover plugin's record table when it exists. */
async function lastVerify(
  client: Client,
  job: Job,
): Promise<{ passed: boolean; ageSeconds: number } | undefined> {
  const table = await client.query<{ t: string | null }>(
    "SELECT to_regclass('cutover.verify_run')::text AS t",
  );
  if (!table.rows[0]?.t) return undefined;
  const { rows } = await client.query<{ passed: boolean; age: number }>(
    `SELECT passed, extract(epoch FROM now() - finished_at)::float8 AS age FROM cutover.verify_run
      WHERE job = $1 ORDER BY finished_at DESC, id DESC LIMIT 1`,
    [targetKey(job)],
  );
  return rows[0] ? { passed: rows[0].passed, ageSeconds: rows[0].age } : undefined;
}

export class MetricsCollector {
  private readonly metrics = defineMetrics();
  private counted = { kicks: 0, stalls: 0, remedies: 0, recheckCompared: 0, recheckRequeued: 0 };

  constructor(
    private readonly job: Job,
    private readonly kickerState: () => KickerState,
  ) {}

  /** Reads every source and returns the exposition text; a source that fails is marked unreachable. */
  async scrape(): Promise<string> {
    const { job, metrics: m } = this;
    const labels = { job: job.name };
    m.daemonUp.set(labels, daemonRunning(job) ? 1 : 0);
    const state = this.kickerState();
    this.advance(m.kicks, 'kicks', state.kicks);
    this.advance(m.stallsDetected, 'stalls', state.stallsDetected ?? 0);
    this.advance(m.remedies, 'remedies', state.remediesApplied ?? 0);
    this.advance(m.recheckCompared, 'recheckCompared', state.recheck?.compared ?? 0);
    this.advance(m.recheckRequeued, 'recheckRequeued', state.recheck?.requeued ?? 0);
    m.stalled.set(labels, state.stalls?.length ? 1 : 0);
    await Promise.all([this.primary(), this.metadata(), this.secondary(), this.drift()]);
    return m.registry.metrics();
  }

  get contentType(): string {
    return this.metrics.registry.contentType;
  }

  private advance(counter: Counter<Labels>, key: keyof MetricsCollector['counted'], value: number): void {
    // The kicker's counts only grow while it runs; a counter must never go down.
    if (value > this.counted[key]) counter.inc({ job: this.job.name }, value - this.counted[key]);
    this.counted[key] = Math.max(this.counted[key], value);
  }

  private async source(
    role: 'primary' | 'secondary' | 'bucardo',
    fn: (client: Client) => Promise<void>,
    job: Job = this.job,
  ): Promise<boolean> {
    try {
      await bounded(withClient(job, { role, applicationName: `bucardo-console metrics ${job.name}` }, fn));
      if (job === this.job) this.metrics.reachable.set({ job: this.job.name, role }, 1);
      return true;
    } catch {
      // The scrape still answers: the gauge says which database could not be read.
      if (job === this.job) this.metrics.reachable.set({ job: this.job.name, role }, 0);
      return false;
    }
  }

  private primary(): Promise<boolean> {
    const { job, metrics: m } = this;
    return this.source('primary', async (client) => {
      const pending = await pendingChanges(client, job.dbgroupName);
      const total = pending.reduce((sum, p) => sum + p.changes, 0);
      const times = pending.map((p) => p.oldest?.getTime()).filter((t): t is number => t !== undefined);
      const oldest = times.length ? Math.min(...times) : undefined;
      const oldestSeconds = oldest === undefined ? 0 : Math.max(0, (Date.now() - oldest) / 1000);
      m.pending.set({ job: job.name }, total);
      m.pendingOldest.set({ job: job.name }, oldestSeconds);
      for (const target of job.targets) {
        m.targetPending.set({ job: job.name, target: target.name }, total);
        m.targetPendingOldest.set({ job: job.name, target: target.name }, oldestSeconds);
      }
      if (job.config.metrics?.perTable) {
        m.pendingTable.reset();
        for (const p of pending) m.pendingTable.set({ job: job.name, table: p.table }, p.changes);
      }
    });
  }

  private metadata(): Promise<boolean> {
    const { job, metrics: m } = this;
    const labels = { job: job.name };
    return this.source('bucardo', async (client) => {
      type Row = {
        age: number | null;
        onetimecopy: number | null;
        relgroup: string | null;
        started: Date | null;
      };
      // With several syncs (bucardo.syncs): the age is the oldest sync's, the copy figures their sums.
      const rows: Row[] = [];
      for (const name of syncNames(job)) {
        const result = await client.query<Row>(
          `SELECT (SELECT extract(epoch FROM now() - max(ended))::float8 FROM bucardo.syncrun
                    WHERE sync = $1 AND lastgood) AS age,
                  s.onetimecopy, s.herd AS relgroup,
                  (SELECT max(started) FROM bucardo.syncrun WHERE sync = $1 AND ended IS NULL) AS started
             FROM (SELECT 1) one LEFT JOIN bucardo.sync s ON s.name = $1`,
          [name],
        );
        rows.push(result.rows[0]!);
      }
      const ages = rows.map((row) => row.age).filter((age): age is number => age !== null);
      if (ages.length) m.lastGoodAge.set(labels, Math.max(...ages));
      for (const view of targetViews(job)) {
        const verify = await lastVerify(client, view);
        if (!verify) continue;
        const target = { job: job.name, target: view.target };
        m.targetVerifyPassed.set(target, verify.passed ? 1 : 0);
        m.targetVerifyAge.set(target, verify.ageSeconds);
        // The job's own series: its first target's (the only one without databases.secondaries).
        if (view === job) {
          m.verifyPassed.set(labels, verify.passed ? 1 : 0);
          m.verifyAge.set(labels, verify.ageSeconds);
        }
      }
      if (rows.some((row) => row.relgroup === null) || job.config.bucardo.copyData === 'never') return;
      const totals = {
        running: false,
        tablesTotal: 0,
        bytesTotal: 0,
        tablesDone: 0,
        bytesDone: 0,
        known: true,
      };
      for (const row of rows) {
        const running = Number(row.onetimecopy) !== 0 && daemonRunning(job);
        const progress = await copyProgress(job, row.relgroup!, row.started ?? undefined, running);
        const done = Number(row.onetimecopy) === 0;
        totals.running ||= running;
        totals.tablesTotal += progress.tablesTotal ?? 0;
        totals.bytesTotal += progress.bytesTotal ?? 0;
        // Between two tables the done figures are unknown: the last scraped value stays.
        const tablesDone = done ? (progress.tablesTotal ?? 0) : progress.tablesDone;
        const bytesDone = done ? (progress.bytesTotal ?? 0) : progress.bytesDone;
        if (tablesDone === undefined || bytesDone === undefined) totals.known = false;
        totals.tablesDone += tablesDone ?? 0;
        totals.bytesDone += bytesDone ?? 0;
      }
      m.copyRunning.set(labels, totals.running ? 1 : 0);
      m.copyTablesTotal.set(labels, totals.tablesTotal);
      m.copyBytesTotal.set(labels, totals.bytesTotal);
      if (totals.known) {
        m.copyTablesDone.set(labels, totals.tablesDone);
        m.copyBytesDone.set(labels, totals.bytesDone);
      }
    });
  }

  /**
   * Schema drift, as bucardo.status shows it: three sessions at once, each bounded like the others;
   * the gauge keeps its last value when a database cannot be read (database_reachable says which).
   */
  private async drift(): Promise<void> {
    const { job, metrics: m } = this;
    const applicationName = `bucardo-console metrics ${job.name}`;
    await bounded(
      withClient(job, { role: 'primary', applicationName }, (primary) =>
        withClient(job, { role: 'secondary', applicationName }, (secondary) =>
          withClient(job, { role: 'bucardo', applicationName }, async (metadata) => {
            const drift = await replicationDrift(job, { primary, secondary, metadata });
            m.driftTables.set({ job: job.name }, drift.length);
          }),
        ),
      ),
    ).catch(() => undefined);
  }

  /** Every target (role secondary: the first one, as before fan-out). */
  private async secondary(): Promise<void> {
    await Promise.all(
      targetViews(this.job).map(async (view) => {
        const reached = await this.source(
          'secondary',
          (client) => client.query('SELECT 1').then(() => undefined),
          view,
        );
        this.metrics.targetReachable.set({ job: this.job.name, target: view.target }, reached ? 1 : 0);
      }),
    );
  }
}

/** Serves GET /metrics on the job's metrics.listen address. Resolves once listening. */
export async function serveMetrics(job: Job, kickerState: () => KickerState): Promise<http.Server> {
  const listen = job.config.metrics!.listen!;
  const collector = new MetricsCollector(job, kickerState);
  const server = http.createServer((request, response) => {
    if (request.method !== 'GET' || (request.url ?? '/').split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('Prometheus metrics are at /metrics\n');
      return;
    }
    collector.scrape().then(
      (text) => response.writeHead(200, { 'content-type': collector.contentType }).end(text),
      (error) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${errorMessage(error)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
