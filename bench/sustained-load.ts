// Sustained load (issue 9): 64 clients commit single-row inserts and updates into a replicated table
// for BENCH_SECONDS (default 300) while the kicker kicks (asynchronous_kicking, kick_interval
// BENCH_KICK_INTERVAL, default 1 s). Goals: during the load no gap over 30 s without a successful
// sync run; lag back under 5 s within 60 s after the load stops; then cutover.verify passes with
// zero missing rows (if it fails, cutover.repair runs and verify again, and what it needed is shown).
//
// Sampled every second while the load runs and drains:
// - successful sync runs (bucardo.syncrun), noted when the sampler first sees them committed (what an
//   operator watching would see); the gap by Bucardo's own syncrun.ended is printed beside it;
// - visible lag: the age (A's clock) of A's oldest row newer than B's newest id;
// - backlog (every BENCH_PENDING_EVERY s, default 5): changes Bucardo recorded but has not applied
//   (src/core/pending.ts) and the age of the oldest one. "Lag" is the larger of the two ages;
// - the load average, and any stall the kicker's watchdog reports.
//
// Run: node dist/bench/sustained-load.js [--sweep: several tables, rising rates, bucardo.syncs 1 and 4]
// [--drain: the apply rate of bucardo.syncs 1 and 4 on a backlog recorded with the daemon stopped]
//   (BENCH_SECONDS=45 for a short run, BENCH_RATE=2000 to throttle the load). A
// full run takes about
// 7 minutes when replication keeps up, up to about 18 when it stalls (the drain is watched for at most
// BENCH_DRAIN_SECONDS, default 600, and a failing verify is followed by repair and a second verify).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadConfig } from '../src/config/load.js';
import { sleep } from '../src/core/activity.js';
import { createJob, type Job } from '../src/core/job.js';
import { kickerStatus } from '../src/core/kicker.js';
import { pendingChanges } from '../src/core/pending.js';
import { PluginCatalog } from '../src/core/plugin.js';
import { handleSignalsYourself, PG_BIN, type ClusterInfo } from '../src/sandbox/cluster.js';
import { query, runTool } from '../test/support/tool.js';
import { benchClusters, benchDir, cleanUp, job, otherWork, percentile, run } from './support.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 300);
const KICK_INTERVAL = Number(process.env['BENCH_KICK_INTERVAL'] ?? 1);
const CLIENTS = 64;
/** BENCH_RATE: total transactions per second pgbench aims at (pgbench -R); unset: as fast as it can. */
const RATE = process.env['BENCH_RATE'] ? Number(process.env['BENCH_RATE']) : undefined;
const SEED_ROWS = Number(process.env['BENCH_SEED_ROWS'] ?? 10_000);
/** After the load: how long to keep watching for the backlog to drain before giving up. */
const DRAIN_LIMIT_SECONDS = Number(process.env['BENCH_DRAIN_SECONDS'] ?? 600);
/** bucardo.stall_remedy for the job (default off, as in a fresh config): BENCH_STALL_REMEDY=1 turns it on. */
const STALL_REMEDY = process.env['BENCH_STALL_REMEDY'] === '1';
/** How often the backlog is counted (the visible lag is sampled every second). */
const PENDING_EVERY_MS = 1000 * Number(process.env['BENCH_PENDING_EVERY'] ?? 5);
const GOAL = { gapSeconds: 30, lagSeconds: 5, recoverSeconds: 60 };
const DB = 'load';
const NAME = 'sustained';

const SCHEMA = `CREATE TABLE public.events (
  id bigserial PRIMARY KEY, payload text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(), updated_at timestamptz NOT NULL DEFAULT clock_timestamp())`;
const INSERT_SCRIPT = 'INSERT INTO public.events (payload) VALUES (md5(random()::text));\n';
// The scalar subquery runs once per statement: one random id among those committed so far.
const UPDATE_SCRIPT = `UPDATE public.events SET payload = md5(random()::text), updated_at = clock_timestamp()
  WHERE id = (SELECT (random() * (max(id) - 1))::bigint + 1 FROM public.events);\n`;

// ---- processes this benchmark starts: every one is stopped by its pid, on success, error or signal

const children = new Set<ChildProcess>();

function spawnTracked(
  command: string,
  args: string[],
): { child: ChildProcess; done: Promise<{ code: number; stdout: string; stderr: string }> } {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  const done = new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      children.delete(child);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
  return { child, done };
}

let cleaned = false;
function stopEverything(): void {
  if (cleaned) return;
  cleaned = true;
  for (const child of children) {
    if (child.pid && child.exitCode === null) {
      try {
        process.kill(child.pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
    }
  }
  cleanUp();
}

handleSignalsYourself();
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping pgbench, the daemon, the kicker and the clusters...`);
    stopEverything();
    process.exit(code);
  });
}
process.on('exit', stopEverything);

// ---- the tool, as an operator runs it (list mode)

interface ToolJson {
  command?: string;
  ok?: boolean;
  error?: string;
  message?: string;
  data?: unknown;
  checks?: { name: string; pass: boolean; detail?: string }[];
}

async function tool(
  jobFile: string,
  commands: string,
): Promise<{ code: number; stdout: string; stderr: string; json: ToolJson[] }> {
  // A verify of a big backlog, or a repair, may take long: the daemons it touches are stopped by pid file on exit.
  const result = await runTool(['-c', jobFile, '-l', commands], { timeoutMs: 1_800_000 });
  const json = result.stdout
    .split('\n')
    .filter((line) => line.startsWith('{"command"'))
    .map((line) => JSON.parse(line) as ToolJson);
  return { ...result, json };
}

// ---- pgbench

interface LoadResult {
  tps: number;
  transactions: number;
  failed: number;
  perScript: string[];
  progressTps: number[];
  seconds: number;
  output: string;
}

function startLoad(cluster: ClusterInfo): { child: ChildProcess; done: Promise<LoadResult> } {
  const dir = mkdtempSync(path.join(benchDir, 'pgbench-'));
  writeFileSync(path.join(dir, 'insert.sql'), INSERT_SCRIPT);
  writeFileSync(path.join(dir, 'update.sql'), UPDATE_SCRIPT);
  const started = Date.now();
  const { child, done } = spawnTracked(path.join(PG_BIN, 'pgbench'), [
    '-n',
    '-h',
    cluster.host,
    '-p',
    String(cluster.port),
    '-U',
    'postgres',
    '-c',
    String(CLIENTS),
    '-j',
    '2',
    '-T',
    String(SECONDS),
    '-P',
    '10',
    ...(RATE ? ['-R', String(RATE)] : []),
    '-f',
    `${path.join(dir, 'insert.sql')}@1`,
    '-f',
    `${path.join(dir, 'update.sql')}@1`,
    DB,
  ]);
  child.stderr!.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n'))
      if (line.startsWith('progress:')) console.log(`  pgbench ${line}`);
  });
  return {
    child,
    done: done.then(({ code, stdout, stderr }) => {
      if (code !== 0) throw new Error(`pgbench exited with ${code}:\n${stdout}\n${stderr.slice(-3000)}`);
      const number = (pattern: RegExp) => Number(pattern.exec(stdout)?.[1] ?? NaN);
      const perScript = [
        ...stdout.matchAll(
          /SQL script \d+: .*?([a-z]+)\.sql\n - weight: \d+ \([^)]*\)\n - (\d+) transactions \(([\d.]+)% of total, tps = ([\d.]+)\)/g,
        ),
      ].map((m) => `${m[1]} ${Number(m[2]).toLocaleString('en')} (${Number(m[4]).toFixed(0)} tps)`);
      const progressTps = [...stderr.matchAll(/^progress: [\d.]+ s, ([\d.]+) tps/gm)].map((m) =>
        Number(m[1]),
      );
      return {
        tps: number(/tps = ([\d.]+)/),
        transactions: number(/number of transactions actually processed: (\d+)/),
        failed: number(/number of failed transactions: (\d+)/) || 0,
        perScript,
        progressTps,
        seconds: (Date.now() - started) / 1000,
        output: stdout,
      };
    }),
  };
}

// ---- sampling

interface Sample {
  at: number;
  goodRuns: number;
  maxA: number;
  maxB: number;
  visibleLag: number;
  load1: number;
  stalls: string[];
}
interface PendingSample {
  at: number;
  changes: number;
  oldestAge: number;
  queryMs: number;
}

function loadAverage(): number[] {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
}

async function connect(cluster: ClusterInfo, database: string): Promise<pg.Client> {
  const client = new pg.Client({
    host: cluster.host,
    port: cluster.port,
    user: 'postgres',
    database,
    application_name: 'sustained-load sampler',
  });
  await client.connect();
  await client.query("SET statement_timeout = '60s'");
  return client;
}

const GOOD_RUN = "ended IS NOT NULL AND (lastgood OR status LIKE 'Complete%')";

class Sampler {
  readonly samples: Sample[] = [];
  readonly pending: PendingSample[] = [];
  readonly errors: string[] = [];
  /** When the sampler first saw each new successful run (wall clock, ms). */
  readonly goodRunSeen: number[] = [];
  private stopped = false;
  private loops: Promise<void>[] = [];

  private constructor(
    private readonly clients: { meta: pg.Client; a: pg.Client; b: pg.Client; aPending: pg.Client },
    private readonly job: Job,
  ) {}

  static async start(a: ClusterInfo, b: ClusterInfo, job: Job): Promise<Sampler> {
    const sampler = new Sampler(
      {
        meta: await connect(a, 'bucardo'),
        a: await connect(a, DB),
        b: await connect(b, DB),
        aPending: await connect(a, DB),
      },
      job,
    );
    // Counting the backlog reads the whole delta table (seconds under load): every PENDING_EVERY_MS, on
    // one core, so the measurement takes little from the load and from Bucardo.
    await sampler.clients.aPending.query('SET max_parallel_workers_per_gather = 0');
    sampler.loops = [
      sampler.every(1000, () => sampler.sample()),
      sampler.every(PENDING_EVERY_MS, () => sampler.samplePending()),
    ];
    return sampler;
  }

  private async every(intervalMs: number, probe: () => Promise<void>): Promise<void> {
    while (!this.stopped) {
      const began = Date.now();
      // A failed sample is noted and the next one tried: the load must not lose its measurement.
      await probe().catch((error: Error) => {
        this.errors.push(`${new Date().toISOString()} ${error.message}`);
      });
      await sleep(Math.max(0, intervalMs - (Date.now() - began)));
    }
  }

  private async sample(): Promise<void> {
    const at = Date.now();
    const {
      rows: [runs],
    } = await this.clients.meta.query<{ n: string }>(
      `SELECT count(*) AS n FROM bucardo.syncrun WHERE sync = $1 AND ${GOOD_RUN}`,
      [NAME],
    );
    const {
      rows: [b],
    } = await this.clients.b.query<{ max: string }>('SELECT coalesce(max(id), 0) AS max FROM public.events');
    const {
      rows: [a],
    } = await this.clients.a.query<{ max: string; lag: number }>(
      `SELECT (SELECT coalesce(max(id), 0) FROM public.events) AS max,
        coalesce(extract(epoch FROM clock_timestamp() - (SELECT created_at FROM public.events WHERE id > $1 ORDER BY id LIMIT 1)), 0)::float8 AS lag`,
      [b!.max],
    );
    const goodRuns = Number(runs!.n);
    const previous = this.samples.at(-1);
    if (previous && goodRuns > previous.goodRuns) this.goodRunSeen.push(at);
    const stalls = kickerStatus(this.job).state?.stalls ?? [];
    this.samples.push({
      at,
      goodRuns,
      maxA: Number(a!.max),
      maxB: Number(b!.max),
      visibleLag: a!.lag,
      load1: loadAverage()[0]!,
      stalls,
    });
  }

  private async samplePending(): Promise<void> {
    const at = Date.now();
    const tables = await pendingChanges(this.clients.aPending, NAME);
    const changes = tables.reduce((sum, t) => sum + t.changes, 0);
    const oldest = tables
      .map((t) => t.oldest?.getTime())
      .filter((t): t is number => t !== undefined)
      .sort((x, y) => x - y)[0];
    this.pending.push({
      at,
      changes,
      oldestAge: oldest === undefined ? 0 : Math.max(0, (at - oldest) / 1000),
      queryMs: Date.now() - at,
    });
  }

  latest(): { sample?: Sample; pending?: PendingSample } {
    return { sample: this.samples.at(-1), pending: this.pending.at(-1) };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
    await Promise.all(Object.values(this.clients).map((client) => client.end().catch(() => undefined)));
  }
}

/** Longest interval inside [from, to] without one of the moments (the window's ends count as moments). */
function longestGap(moments: number[], from: number, to: number): { seconds: number; endingAt: number } {
  const points = [from, ...moments.filter((m) => m > from && m < to).sort((x, y) => x - y), to];
  let best = { seconds: 0, endingAt: from };
  for (let i = 1; i < points.length; i++) {
    const seconds = (points[i]! - points[i - 1]!) / 1000;
    if (seconds > best.seconds) best = { seconds, endingAt: points[i]! };
  }
  return best;
}

/** PostgreSQL clusters and Bucardo daemons on this host that are not this benchmark's (contention). */
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const met = (ok: boolean) => (ok ? 'MET' : 'NOT MET');

// ---- verify and repair through the tool

interface VerifyFigures {
  ok: boolean;
  passed: boolean;
  missing: number;
  extra: number;
  changed: number;
  inFlight: number;
  /** Differing key ranges verify did not narrow down to keys, and the rows they hold on each side. */
  ranges: number;
  rangeRowsA: number;
  rangeRowsB: number;
  rowsA: number;
  rowsB: number;
  verdict: string;
  seconds: number;
}

interface VerifyData {
  passed: boolean;
  verdict: string;
  seconds: number;
  totals: { rowsPrimary: number; rowsSecondary: number };
  tables: {
    missing: number;
    extra: number;
    changed: number;
    inFlight: number;
    ranges: { primaryRows: number; secondaryRows: number }[];
  }[];
}

async function verify(jobFile: string): Promise<VerifyFigures> {
  const result = await tool(jobFile, 'cutover.verify --json');
  const report = result.json.find((j) => j.command === 'cutover.verify');
  const data = report?.data as VerifyData | undefined;
  if (!data)
    throw new Error(
      `cutover.verify gave no report (exit ${result.code}):\n${result.stdout}\n${result.stderr}`,
    );
  const sum = (key: 'missing' | 'extra' | 'changed' | 'inFlight') =>
    data.tables.reduce((total, t) => total + t[key], 0);
  const ranges = data.tables.flatMap((t) => t.ranges);
  return {
    ok: result.code === 0,
    passed: data.passed,
    missing: sum('missing'),
    extra: sum('extra'),
    changed: sum('changed'),
    inFlight: sum('inFlight'),
    ranges: ranges.length,
    rangeRowsA: ranges.reduce((total, r) => total + r.primaryRows, 0),
    rangeRowsB: ranges.reduce((total, r) => total + r.secondaryRows, 0),
    rowsA: data.totals.rowsPrimary,
    rowsB: data.totals.rowsSecondary,
    verdict: data.verdict,
    seconds: data.seconds,
  };
}

function verifyLine(figures: VerifyFigures): string {
  const ranges = figures.ranges
    ? `, ${figures.ranges} differing range(s) not narrowed to keys (A ${figures.rangeRowsA.toLocaleString('en')} rows, B ${figures.rangeRowsB.toLocaleString('en')})`
    : '';
  return `${figures.passed ? 'passed' : 'FAILED'} in ${figures.seconds.toFixed(1)} s: missing ${figures.missing}, extra ${figures.extra}, changed ${figures.changed}, in flight ${figures.inFlight}${ranges}; rows A ${figures.rowsA.toLocaleString('en')} / B ${figures.rowsB.toLocaleString('en')} (${figures.verdict})`;
}

interface RepairData {
  requeued: number;
  fixed: number;
  remaining: number;
  appliedAfterSeconds?: number;
  timedOut: boolean;
  verdict: string;
}

async function repair(jobFile: string): Promise<string[]> {
  const result = await tool(jobFile, 'cutover.repair --json');
  const report = result.json.find((j) => j.command === 'cutover.repair');
  const unknown = `${report?.error ?? ''}${result.stdout}${result.stderr}`;
  if (/Unknown command 'cutover\.repair'/.test(unknown)) return ['repair not available'];
  const data = report?.data as RepairData | undefined;
  if (!data)
    return [
      `repair failed without a report (exit ${result.code}): ${report?.error ?? result.stderr.trim().slice(-500)}`,
    ];
  const checks = (report?.checks ?? []).map(
    (c) => `${c.name}: ${c.pass ? 'pass' : 'FAIL'}${c.detail ? ` (${c.detail})` : ''}`,
  );
  return [
    `re-queued ${data.requeued} key(s), fixed ${data.fixed}, still differing ${data.remaining}${data.appliedAfterSeconds !== undefined ? `, applied by Bucardo after ${data.appliedAfterSeconds} s` : ''}${data.timedOut ? ', TIMED OUT' : ''}`,
    `verdict: ${data.verdict}`,
    ...checks.map((c) => `check: ${c}`),
  ];
}

// ---- the benchmark

async function main(): Promise<void> {
  const benchStarted = Date.now();
  const loadBefore = loadAverage();
  console.log(
    `Sustained load: ${CLIENTS} clients, ${SECONDS} s, kick_interval ${KICK_INTERVAL} s, stall_remedy ${STALL_REMEDY}; load average before start ${loadBefore.join(' ')} (${availableParallelism()} cores)`,
  );
  const [a, b] = await benchClusters(['A', 'B']);
  const others = otherWork([a!, b!]);
  for (const cluster of [a!, b!]) {
    await query(cluster, 'postgres', `CREATE DATABASE ${DB}`);
    await query(cluster, DB, SCHEMA);
  }
  await query(
    a!,
    DB,
    `INSERT INTO public.events (payload) SELECT md5(g::text) FROM generate_series(1, ${SEED_ROWS}) g`,
  );
  const written = job({
    name: NAME,
    plugins: ['bucardo', 'cutover'],
    primary: { cluster: a!, dbname: DB },
    secondary: { cluster: b!, dbname: DB },
    asynchronousKicking: true,
    kickInterval: KICK_INTERVAL,
    bucardoSettings: { stall_remedy: STALL_REMEDY },
    extra: { cutover: {} },
  });
  const jobObject = createJob(await loadConfig(written.file, new PluginCatalog()));
  console.log('Installing Bucardo, adding triggers, starting the daemon and the kicker, initial copy...');
  await run(written.file, 'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy');
  // Bucardo restarts the sync's worker after the initial copy: wait until a change goes through, so
  // the measurement is of sustained load, not of start-up.
  const warmUpStarted = Date.now();
  await query(a!, DB, "INSERT INTO public.events (payload) VALUES ('warm-up')");
  for (;;) {
    if ((await query(b!, DB, "SELECT 1 FROM public.events WHERE payload = 'warm-up'")).length) break;
    if (Date.now() - warmUpStarted > 120_000) throw new Error('the warm-up row did not reach B within 120 s');
    await sleep(200);
  }
  console.log(
    `Replication running (first change through after ${seconds(Date.now() - warmUpStarted)}). Starting pgbench.`,
  );

  const sampler = await Sampler.start(a!, b!, jobObject);
  await sleep(2000);
  const loadStart = Date.now();
  const load = startLoad(a!);
  const reporter = setInterval(() => {
    const { sample, pending } = sampler.latest();
    if (!sample) return;
    const lastRun = sampler.goodRunSeen.at(-1);
    console.log(
      `  t=${Math.round((Date.now() - loadStart) / 1000)} s: ${sample.goodRuns} good runs (last seen ${lastRun ? seconds(Date.now() - lastRun) : '-'} ago), A ${sample.maxA} / B ${sample.maxB}, visible lag ${sample.visibleLag.toFixed(1)} s, pending ${pending?.changes ?? '?'} (oldest ${pending?.oldestAge.toFixed(1) ?? '?'} s, query ${pending?.queryMs ?? '?'} ms), load ${sample.load1}${sample.stalls.length ? `, STALL: ${sample.stalls[0]!.replace(/\s+/g, ' ').slice(0, 120)}` : ''}`,
    );
  }, 10_000);
  let loadResult: LoadResult;
  try {
    loadResult = await load.done;
  } finally {
    clearInterval(reporter);
  }
  const loadEnd = Date.now();
  const loadAvgAtEnd = loadAverage();
  console.log(
    `Load stopped after ${seconds(loadEnd - loadStart)}. Watching replication drain (up to ${DRAIN_LIMIT_SECONDS} s)...`,
  );

  // Drained: nothing pending and B holds A's newest row, seen by samples taken after the load stopped.
  let drainedInTime = false;
  for (;;) {
    const { sample, pending } = sampler.latest();
    if (
      sample &&
      pending &&
      sample.at > loadEnd &&
      pending.at > loadEnd &&
      pending.changes === 0 &&
      sample.maxB >= sample.maxA
    ) {
      drainedInTime = true;
      break;
    }
    if (Date.now() - loadEnd > DRAIN_LIMIT_SECONDS * 1000) break;
    await sleep(500);
  }
  await sleep(1000);
  await sampler.stop();
  const drainStopped = Date.now();

  // ---- figures
  const during = sampler.samples.filter((s) => s.at >= loadStart && s.at <= loadEnd);
  const pendingDuring = sampler.pending.filter((p) => p.at >= loadStart && p.at <= loadEnd);
  const after = sampler.samples.filter((s) => s.at > loadEnd);
  const pendingAfter = sampler.pending.filter((p) => p.at > loadEnd);
  const observedGap = longestGap(sampler.goodRunSeen, loadStart, loadEnd);
  const recorded = await query<{ ended: Date; started: Date }>(
    a!,
    'bucardo',
    `SELECT started, ended FROM bucardo.syncrun WHERE sync = $1 AND ${GOOD_RUN} ORDER BY ended`,
    [NAME],
  );
  const recordedGap = longestGap(
    recorded.map((r) => r.ended.getTime()),
    loadStart,
    loadEnd,
  );
  const runsDuringLoad = sampler.goodRunSeen.filter((t) => t >= loadStart && t <= loadEnd).length;
  const longestRun = Math.max(
    0,
    ...recorded
      .filter((r) => r.ended.getTime() >= loadStart)
      .map((r) => r.ended.getTime() - r.started.getTime()),
  );
  const samplingHoles = Math.max(0, ...during.slice(1).map((s, i) => s.at - during[i]!.at));
  const maxVisibleLag = Math.max(0, ...during.map((s) => s.visibleLag));
  const maxPendingAge = Math.max(0, ...pendingDuring.map((p) => p.oldestAge));
  const maxPending = Math.max(0, ...pendingDuring.map((p) => p.changes));
  const lagValues = during.map((s) => s.visibleLag);
  const firstAfter = <T extends { at: number }>(list: T[], ok: (x: T) => boolean) => {
    const found = list.find(ok);
    return found ? found.at - loadEnd : undefined;
  };
  const visibleRecovered = firstAfter(after, (s) => s.visibleLag < GOAL.lagSeconds);
  const pendingRecovered = firstAfter(pendingAfter, (p) => p.oldestAge < GOAL.lagSeconds);
  const lagRecovered =
    visibleRecovered !== undefined && pendingRecovered !== undefined
      ? Math.max(visibleRecovered, pendingRecovered)
      : undefined;
  const drained = firstAfter(pendingAfter, (p) => p.changes === 0);
  const caughtUp = firstAfter(after, (s) => s.maxB >= s.maxA);
  const loads = during.map((s) => s.load1);
  const stallSamples = sampler.samples.filter((s) => s.stalls.length);
  const stallKinds = [
    ...new Set(
      stallSamples.flatMap((s) =>
        s.stalls.map((text) => text.replace(/\s+/g, ' ').replace(/\d+/g, '#').slice(0, 160)),
      ),
    ),
  ];
  const pendingQueryMs = sampler.pending.map((p) => p.queryMs);

  console.log(
    drainedInTime
      ? 'Replication drained. Running cutover.verify through the tool...'
      : `Replication did NOT drain within ${DRAIN_LIMIT_SECONDS} s of the load stopping. Running cutover.verify through the tool anyway...`,
  );
  const firstVerify = await verify(written.file);
  let repairLines: string[] = [];
  let secondVerify: VerifyFigures | undefined;
  if (!firstVerify.passed) {
    console.log(`verify failed (${firstVerify.verdict}); running cutover.repair...`);
    repairLines = await repair(written.file);
    if (repairLines[0] !== 'repair not available') secondVerify = await verify(written.file);
  }

  const status = await tool(written.file, 'bucardo.status --json');
  const statusData = status.json.find((j) => j.command === 'bucardo.status')?.data as
    | {
        verdict: string;
        stalls: { cause: string }[];
        kicker?: { kicks?: number; maintenance?: number; remedies?: string[] };
      }
    | undefined;
  const kickerLog = readFileSync(jobObject.paths.kickerLogFile, 'utf8');
  const kickerStallLines = kickerLog.split('\n').filter((line) => / stall: /.test(line));
  const kickerRetries = kickerLog.split('\n').filter((line) => /kicked again/.test(line)).length;
  await tool(written.file, 'bucardo.stop').catch(() => undefined);

  const gapOk = observedGap.seconds <= GOAL.gapSeconds;
  const recoverOk = lagRecovered !== undefined && lagRecovered <= GOAL.recoverSeconds * 1000;
  const verifyOk = firstVerify.passed && firstVerify.missing === 0;
  const row = (label: string, value: string) => `  ${label.padEnd(44)} ${value}`;
  const lines = [
    '',
    `Sustained load, ${CLIENTS} clients (pgbench -j 2${RATE ? `, -R ${RATE}` : ''}), single-row INSERT + UPDATE 1:1, ${SECONDS} s, kicker every ${KICK_INTERVAL} s (2 cores, PostgreSQL 15, Bucardo 5.6)`,
    row(
      'host',
      `${availableParallelism()} cores; load average before start ${loadBefore.join(' ')}; other PostgreSQL clusters running: ${others.clusters}, other Bucardo daemons: ${others.bucardos}`,
    ),
    row(
      'load average during the load (1 min)',
      `mean ${(loads.reduce((x, y) => x + y, 0) / Math.max(1, loads.length)).toFixed(2)}, max ${Math.max(0, ...loads).toFixed(2)}; at load end ${loadAvgAtEnd.join(' ')}`,
    ),
    row(
      'pgbench',
      `${loadResult.tps.toFixed(0)} tps over ${seconds(loadResult.seconds * 1000)}, ${loadResult.transactions.toLocaleString('en')} transactions, ${loadResult.failed} failed; ${loadResult.perScript.join(', ')}`,
    ),
    row(
      'pgbench tps per 10 s',
      loadResult.progressTps.length
        ? `min ${Math.min(...loadResult.progressTps).toFixed(0)}, max ${Math.max(...loadResult.progressTps).toFixed(0)}`
        : 'n/a',
    ),
    row(
      'rows on A after the load',
      `${(after.at(-1)?.maxA ?? 0).toLocaleString('en')} (max id; ${SEED_ROWS.toLocaleString('en')} seeded)`,
    ),
    row(
      'successful sync runs during the load',
      `${runsDuringLoad} (every ${(runsDuringLoad ? (loadEnd - loadStart) / 1000 / runsDuringLoad : 0).toFixed(1)} s on average); longest run ${seconds(longestRun)}`,
    ),
    row(
      'longest gap without a successful run',
      `${observedGap.seconds.toFixed(1)} s seen by the sampler (ending t=${Math.round((observedGap.endingAt - loadStart) / 1000)} s); ${recordedGap.seconds.toFixed(1)} s by syncrun.ended; sampling resolution ${seconds(samplingHoles)}  goal <= ${GOAL.gapSeconds} s: ${met(gapOk)}`,
    ),
    row(
      'lag during the load',
      `visible lag max ${maxVisibleLag.toFixed(1)} s (p50 ${percentile(lagValues.length ? lagValues : [0], 50).toFixed(1)} s, p95 ${percentile(lagValues.length ? lagValues : [0], 95).toFixed(1)} s); oldest pending change max ${maxPendingAge.toFixed(1)} s`,
    ),
    row(
      'backlog during the load',
      `max ${maxPending.toLocaleString('en')} pending change(s); pending query took p50 ${percentile(pendingQueryMs.length ? pendingQueryMs : [0], 50)} ms, max ${Math.max(0, ...pendingQueryMs)} ms`,
    ),
    row(
      'after the load stopped: lag < 5 s after',
      `${lagRecovered !== undefined ? seconds(lagRecovered) : `not within ${seconds(drainStopped - loadEnd)}`} (visible ${visibleRecovered !== undefined ? seconds(visibleRecovered) : 'never'}, backlog age ${pendingRecovered !== undefined ? seconds(pendingRecovered) : 'never'})  goal <= ${GOAL.recoverSeconds} s: ${met(recoverOk)}`,
    ),
    row(
      'after the load stopped: nothing pending after',
      `${drained !== undefined ? seconds(drained) : 'never'}; B has A's newest row after ${caughtUp !== undefined ? seconds(caughtUp) : 'never'}`,
    ),
    row(
      'kicker',
      `${statusData?.kicker?.kicks ?? '?'} kicks (${kickerRetries} repeated for want of a finished run), ${statusData?.kicker?.maintenance ?? '?'} maintenance runs (ANALYZE/VACUUM of Bucardo's delta/track tables)${statusData?.kicker?.remedies?.length ? `, remedies: ${statusData.kicker.remedies.join('; ')}` : ''}`,
    ),
    row(
      'stalls reported',
      stallSamples.length || kickerStallLines.length || statusData?.stalls.length
        ? `watchdog reported a stall in ${stallSamples.length} sample(s) (first at t=${stallSamples[0] ? Math.round((stallSamples[0].at - loadStart) / 1000) : '?'} s), ${kickerStallLines.length} kicker log line(s), ${statusData?.stalls.length ?? 0} at the end: ${stallKinds.slice(0, 3).join(' | ') || statusData?.stalls.map((s) => s.cause.replace(/\s+/g, ' ').slice(0, 160)).join(' | ')}`
        : 'none (kicker watchdog, bucardo.status)',
    ),
    row(
      'bucardo.status at the end',
      statusData?.verdict.replace(/\s+/g, ' ').slice(0, 300) ?? `no status (exit ${status.code})`,
    ),
    row(
      'cutover.verify',
      `${drainedInTime ? '' : `(replication NOT drained after ${DRAIN_LIMIT_SECONDS} s) `}${verifyLine(firstVerify)}`,
    ),
    ...(firstVerify.passed
      ? []
      : [
          ...repairLines.map((line) => row('cutover.repair', line)),
          ...(secondVerify ? [row('cutover.verify after repair', verifyLine(secondVerify))] : []),
        ]),
    row(
      'verify passes with zero missing rows',
      `${met(verifyOk)}${firstVerify.passed ? ' (no repair needed)' : secondVerify?.passed ? ' (passed only after repair)' : ''}`,
    ),
    row(
      'sampling errors',
      sampler.errors.length ? `${sampler.errors.length}, first: ${sampler.errors[0]}` : 'none',
    ),
    row('benchmark wall time', seconds(Date.now() - benchStarted)),
  ];
  console.log(lines.join('\n'));
  if (!(gapOk && recoverOk && verifyOk)) process.exitCode = 1;
}

// --sweep: 8 tables at increasing commit rates with bucardo.syncs 1 and 4 (issue 19; bench/sustained-sweep.ts).
const body = process.argv.includes('--drain')
  ? import('./sustained-sweep.js').then((sweep) => sweep.drain(spawnTracked))
  : process.argv.includes('--sweep')
    ? import('./sustained-sweep.js').then((sweep) => sweep.sweep(spawnTracked))
    : main();
body.then(stopEverything, (error) => {
  console.error(error);
  stopEverything();
  process.exitCode = 1;
});
