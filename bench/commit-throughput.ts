// Transactions per second on the primary with 8, 32 and 64 clients committing single-row inserts
// into a replicated table: no replication, Bucardo's per-commit kick triggers, and the kicker.
// Each is measured two ways, because the client's cost per commit decides how hard the NOTIFY lock
// bites: over the Unix socket with prepared statements (what busy applications do, and the only way
// the unreplicated figure reaches the issue's baseline of 22,300 here) and over TCP with the simple protocol.
// Every run starts from a fresh database (and, replicated, a freshly installed job); after it, the
// time the secondary needed to catch up is printed too.
// Uses pgbench. Run: node dist/bench/commit-throughput.js   (about 15 minutes; BENCH_SECONDS per run, default 15 as in
// the issue's baseline)
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PG_BIN, type ClusterInfo } from '../src/sandbox/cluster.js';
import { query } from '../test/support/tool.js';
import { benchClusters, benchDir, cleanUp, job, run } from './support.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 15);
// BENCH_CLIENTS=64 BENCH_ROUNDS=3 repeats only the goal's cell, three times, and prints medians.
const CLIENTS = (process.env['BENCH_CLIENTS'] ?? '8 32 64').split(/[ ,]+/).filter(Boolean).map(Number);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 1);
const scriptDir = mkdtempSync(path.join(benchDir, 'pgbench-'));
const script = path.join(scriptDir, 'insert.sql');
writeFileSync(script, "INSERT INTO public.events (payload) VALUES ('x');\n");
// pgbench runs as root here but the cluster as postgres; the script must be readable, not the temp dir private.
chmodSync(scriptDir, 0o755);

interface ClientMode {
  label: string;
  host: (cluster: ClusterInfo) => string;
  pgbenchArgs: string[];
}
const MODES: ClientMode[] = [
  {
    label: 'Unix socket, prepared statements',
    host: (cluster) => cluster.socketDir,
    pgbenchArgs: ['-M', 'prepared'],
  },
  { label: 'TCP, simple protocol', host: (cluster) => cluster.host, pgbenchArgs: [] },
];

function pgbench(cluster: ClusterInfo, db: string, clients: number, mode: ClientMode): number {
  const output = execFileSync(
    path.join(PG_BIN, 'pgbench'),
    [
      '-n',
      '-h',
      mode.host(cluster),
      '-p',
      String(cluster.port),
      '-U',
      'postgres',
      ...mode.pgbenchArgs,
      '-f',
      script,
      '-c',
      String(clients),
      '-j',
      '2',
      '-T',
      String(SECONDS),
      db,
    ],
    { encoding: 'utf8' },
  );
  return Number(/tps = ([\d.]+)/.exec(output)![1]);
}

async function fresh(clusters: ClusterInfo[], db: string): Promise<void> {
  for (const cluster of clusters) {
    await query(cluster, 'postgres', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await query(cluster, 'postgres', `CREATE DATABASE ${db}`);
    await query(cluster, db, 'CREATE TABLE public.events (id bigserial PRIMARY KEY, payload text)');
  }
}

/** The newest id: one primary-key probe, so polling does not take CPU from Bucardo as count(*) would. */
async function newestId(cluster: ClusterInfo, db: string): Promise<number> {
  return Number(
    (await query<{ max: string }>(cluster, db, 'SELECT coalesce(max(id), 0) AS max FROM public.events'))[0]!
      .max,
  );
}

/** Seconds until the secondary has the primary's newest row (each run brings every change pending when it began). */
async function waitForCatchUp(primary: ClusterInfo, secondary: ClusterInfo, db: string): Promise<number> {
  const started = Date.now();
  const target = await newestId(primary, db);
  while ((await newestId(secondary, db)) < target) {
    if (Date.now() - started > 600_000)
      throw new Error(`the secondary did not catch up within 600 s (${db})`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return (Date.now() - started) / 1000;
}

/** method → one list per client count → one figure per round */
type Cells = Record<string, number[][]>;
// The last is no way to run replication: Bucardo's delta trigger alone, with the daemon stopped. It is
// the ceiling for any kicking method, since every replicated commit pays for that trigger.
const LABELS = [
  'no replication',
  'per-commit kick triggers',
  'kicker (kick triggers off)',
  'delta trigger only (ceiling)',
] as const;
type Label = (typeof LABELS)[number];

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

async function main(): Promise<void> {
  const [a, b] = await benchClusters(['A', 'B']);
  const tps: Record<string, Cells> = {};
  const catchUp: Record<string, Cells> = {};
  let cell = 0;
  // One cell: a fresh database and, for the replicated methods, a freshly installed job. Running
  // 8, 32 and 64 clients on one table would leave the faster method a bigger table, delta and
  // track table (and a purge in progress) for its next run, and rank the methods by their order.
  const measureCell = async (
    mode: ClientMode,
    label: Label,
    clients: number,
  ): Promise<{ tps: number; catchUp?: number }> => {
    const db = `tp${++cell}`;
    await fresh([a!, b!], db);
    const dropDatabase = async (): Promise<void> => {
      for (const cluster of [a!, b!])
        await query(cluster, 'postgres', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    };
    if (label === 'no replication') {
      const figure = pgbench(a!, db, clients, mode);
      await dropDatabase();
      return { tps: figure };
    }
    const replicated = job({
      name: `tp_${db}`,
      primary: { cluster: a!, dbname: db },
      secondary: { cluster: b!, dbname: db },
      asynchronousKicking: label !== 'per-commit kick triggers',
      kickInterval: 1,
    });
    await run(replicated.file, 'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy');
    const ceiling = label === 'delta trigger only (ceiling)';
    if (ceiling) await run(replicated.file, 'bucardo.stop');
    const figure = pgbench(a!, db, clients, mode);
    const seconds = ceiling ? undefined : await waitForCatchUp(a!, b!, db);
    // A big delta table can keep autovacuum busy: retry the uninstall instead of losing the figures.
    for (let attempt = 1; ; attempt++) {
      try {
        await run(replicated.file, 'bucardo.uninstall');
        break;
      } catch (error) {
        if (attempt >= 5) throw error;
        await new Promise((r) => setTimeout(r, 5000));
      }
    }
    await dropDatabase();
    return seconds === undefined ? { tps: figure } : { tps: figure, catchUp: seconds };
  };
  for (let round = 1; round <= ROUNDS; round++) {
    for (const mode of MODES) {
      for (const [index, clients] of CLIENTS.entries()) {
        // The methods back to back for each client count, so a slow spell of the machine hits them all.
        for (const label of LABELS) {
          const result = await measureCell(mode, label, clients);
          ((tps[mode.label] ??= {})[label] ??= CLIENTS.map(() => []))[index]!.push(result.tps);
          if (result.catchUp !== undefined)
            ((catchUp[mode.label] ??= {})[label] ??= CLIENTS.map(() => []))[index]!.push(result.catchUp);
          console.error(
            `round ${round}, ${mode.label}, ${clients} clients, ${label}: ${result.tps.toFixed(0)} TPS${result.catchUp !== undefined ? `, caught up in ${result.catchUp.toFixed(1)} s` : ''}`,
          );
        }
      }
    }
  }
  const show = (values: number[], digits: number): string =>
    ROUNDS > 1
      ? `${median(values).toFixed(digits)} (${values.map((v) => v.toFixed(digits)).join('/')})`
      : values[0]!.toFixed(digits);
  const width = ROUNDS > 1 ? 10 + 8 * ROUNDS : 10;
  for (const mode of MODES) {
    console.log(
      `\nINSERT TPS on the primary, ${mode.label}, ${SECONDS} s per run, each on a fresh table${ROUNDS > 1 ? `, median of ${ROUNDS} rounds (each round's figure in brackets)` : ''} (2 cores, PostgreSQL 15, Bucardo 5.6):`,
    );
    console.log(`${'clients'.padEnd(30)}${CLIENTS.map((n) => String(n).padStart(width)).join('')}`);
    for (const label of LABELS)
      console.log(
        `${label.padEnd(30)}${tps[mode.label]![label]!.map((v) => show(v, 0).padStart(width)).join('')}`,
      );
    console.log('seconds until the secondary had caught up after the run:');
    for (const [label, values] of Object.entries(catchUp[mode.label]!))
      console.log(`${label.padEnd(30)}${values.map((v) => show(v, 1).padStart(width)).join('')}`);
    const last = CLIENTS.length - 1;
    const [none, triggers, kicker, deltaOnly] = LABELS.map((label) =>
      median(tps[mode.label]![label]![last]!),
    );
    const ratios = tps[mode.label]!['kicker (kick triggers off)']![last]!.map((k, i) =>
      (k / tps[mode.label]!['per-commit kick triggers']![last]![i]!).toFixed(1),
    );
    console.log(
      `at ${CLIENTS[last]} clients the kicker gives ${(kicker! / triggers!).toFixed(1)}x the throughput of per-commit kick triggers (goal: >= 4x${ROUNDS > 1 ? `; per round ${ratios.join(', ')}` : ''}); it keeps ${Math.round((kicker! / none!) * 100)}% of unreplicated throughput, the triggers ${Math.round((triggers! / none!) * 100)}%`,
    );
    console.log(
      `Bucardo's delta trigger alone, nothing replicating, allows ${(deltaOnly! / triggers!).toFixed(1)}x: the most any kicking method can reach here`,
    );
  }
}

main().then(cleanUp, (error) => {
  console.error(error);
  cleanUp();
  process.exitCode = 1;
});
