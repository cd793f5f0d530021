// Benchmark: the write pause of cutover.finish (from the operator's confirmation that writes stopped
// to "writes may go to the secondary"), at several database sizes, beside today's alternative of a
// full strict verify inside the pause. For each size: both sides loaded with the same rows, Bucardo
// replicating, a write load running; cutover.verify passes; the load goes on for BENCH_VERIFY_AGE
// seconds; the load stops and cutover.finish runs at once. Then, on the same (now identical) data,
// a full strict verify is timed: the step the old final check spent inside the pause.
//
//   node dist/bench/cutover-pause.js    BENCH_SIZES=1000000,10000000 (rows), BENCH_VERIFY_AGE=60 (s),
//                                       BENCH_WRITE_RATE=300 (changes per second after the verify),
//                                       BENCH_VERIFY_RATE=30 (changes per second while verify runs)
import pg from 'pg';
import { sleep } from '../src/core/activity.js';
import type { ClusterInfo } from '../src/sandbox/cluster.js';
import { query, runTool } from '../test/support/tool.js';
import { benchClusters, cleanUp, job, run } from './support.js';

const SIZES = (process.env['BENCH_SIZES'] ?? '1000000,10000000').split(',').map(Number);
const VERIFY_AGE = Number(process.env['BENCH_VERIFY_AGE'] ?? 60);
const WRITE_RATE = Number(process.env['BENCH_WRITE_RATE'] ?? 300);
/** The load while cutover.verify runs: verify narrows differing chunks to keys, which rows changing fast defeat. */
const VERIFY_RATE = Number(process.env['BENCH_VERIFY_RATE'] ?? 30);

const SCHEMA = `
CREATE SCHEMA bench;
CREATE TABLE bench.items (id bigint PRIMARY KEY, owner int NOT NULL, amount numeric(12,2), note text, updated timestamptz NOT NULL);
CREATE TABLE bench.owners (id int PRIMARY KEY, name text NOT NULL);
CREATE SEQUENCE bench.ticket;`;

function data(rows: number): string {
  return `
INSERT INTO bench.items SELECT g, g % 10000, (g % 100000) / 100.0, 'item ' || g, TIMESTAMPTZ '2024-01-01' + g * interval '1 second' FROM generate_series(1, ${rows}) g;
INSERT INTO bench.owners SELECT g, 'owner ' || g FROM generate_series(0, 9999) g;
SELECT setval('bench.ticket', 1000);`;
}

interface Outcome {
  ok: boolean;
  message?: string;
  error?: string;
  data?: any;
}

function outcome(stdout: string): Outcome {
  const line = stdout.split('\n').find((l) => l.startsWith('{"command"'));
  if (!line) throw new Error(`no JSON outcome in:\n${stdout}`);
  return JSON.parse(line) as Outcome;
}

/**
 * Updates random rows at about `rate` changes per second until stopped. (Inserts past the last key
 * would keep the open-ended last range of verify changing under it; updates spread over the table.)
 */
class WriteLoad {
  private stopped = false;
  private done?: Promise<void>;
  changes = 0;
  constructor(
    private readonly cluster: ClusterInfo,
    private readonly rows: number,
    public rate: number,
  ) {}

  start(): void {
    this.done = (async () => {
      const client = new pg.Client({
        host: this.cluster.host,
        port: this.cluster.port,
        user: 'postgres',
        database: 'pause',
      });
      await client.connect();
      try {
        while (!this.stopped) {
          const started = Date.now();
          const batch = Math.max(1, Math.round(this.rate / 10));
          const ids = Array.from({ length: batch }, () => 1 + Math.floor(Math.random() * this.rows));
          await client.query(
            'UPDATE bench.items SET amount = amount + 1, updated = now() WHERE id = ANY($1::bigint[])',
            [ids],
          );
          this.changes += batch;
          await sleep(Math.max(0, 100 - (Date.now() - started)));
        }
      } finally {
        await client.end();
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

interface Figures {
  rows: number;
  verify: number;
  pause: number;
  steps: string;
  keys: number;
  counting: number;
  fullVerify: number;
  changes: number;
}

async function measure(a: ClusterInfo, b: ClusterInfo, rows: number): Promise<Figures> {
  for (const cluster of [a, b]) {
    await query(cluster, 'postgres', 'DROP DATABASE IF EXISTS pause WITH (FORCE)');
    await query(cluster, 'postgres', 'CREATE DATABASE pause');
    await query(cluster, 'pause', SCHEMA);
  }
  console.log(`${rows.toLocaleString('en')} rows: loading both sides`);
  await Promise.all(
    [a, b].map(async (cluster) => {
      await query(cluster, 'pause', data(rows));
      await query(cluster, 'pause', 'VACUUM ANALYZE bench.items');
    }),
  );
  const written = job({
    name: `pause_${rows}`,
    plugins: ['bucardo', 'cutover'],
    primary: { cluster: a, dbname: 'pause' },
    secondary: { cluster: b, dbname: 'pause' },
    copyData: 'never',
    extra: { cutover: { verify_max_age: VERIFY_AGE + 3600, max_lag: 30, chunk_rows: 20_000 } },
  });
  await run(written.file, 'bucardo.install bucardo.add_triggers bucardo.start');
  const load = new WriteLoad(a, rows, VERIFY_RATE);
  let verify = 0;
  try {
    load.start();
    console.log(`${rows.toLocaleString('en')} rows: cutover.verify under a write load of ~${VERIFY_RATE}/s`);
    const verifyStarted = Date.now();
    await run(written.file, 'cutover.verify');
    verify = (Date.now() - verifyStarted) / 1000;
    load.rate = WRITE_RATE;
    console.log(
      `  verify passed in ${verify.toFixed(1)} s; load goes on at ~${WRITE_RATE}/s for ${VERIFY_AGE} s`,
    );
    await sleep(VERIFY_AGE * 1000);
  } finally {
    await load.stop();
  }
  console.log(`  writes stopped (${load.changes} changes during the load); cutover.finish --writes-stopped`);
  const finished = await runTool(['-c', written.file, '-l', 'cutover.finish --writes-stopped --json'], {
    timeoutMs: 1_800_000,
  });
  const result = outcome(finished.stdout);
  if (!result.ok)
    throw new Error(`cutover.finish failed: ${result.message ?? result.error}\n${finished.stderr}`);
  const pause = result.data.pause as { seconds: number; steps: { step: string; seconds: number }[] };
  const steps = pause.steps.map((s) => `${s.step} ${s.seconds}`).join(', ');
  console.log(
    `  pause ${pause.seconds} s (${steps}); ${result.data.finalCheck?.keysCompared} key(s) compared; counting rows ${result.data.finalCheck?.countSeconds} s of the final check`,
  );
  // The same data, now identical and still: what a full strict verify costs (the old final check).
  const fullStarted = Date.now();
  await run(written.file, 'cutover.verify --strict');
  const fullVerify = (Date.now() - fullStarted) / 1000;
  console.log(`  full strict verify on the same data: ${fullVerify.toFixed(1)} s`);
  await run(written.file, 'bucardo.uninstall');
  const finalCheck = result.data.finalCheck as { keysCompared: number; countSeconds: number } | undefined;
  return {
    rows,
    verify,
    pause: pause.seconds,
    steps,
    keys: finalCheck?.keysCompared ?? 0,
    counting: finalCheck?.countSeconds ?? 0,
    fullVerify,
    changes: load.changes,
  };
}

async function main(): Promise<void> {
  const [a, b] = await benchClusters(['PauseA', 'PauseB']);
  const figures: Figures[] = [];
  for (const rows of SIZES) figures.push(await measure(a!, b!, rows));
  console.log(
    `\ncutover.finish write pause (verify ${VERIFY_AGE} s before the confirmation, ~${WRITE_RATE} changes/s until then)`,
  );
  console.log(
    `${'rows'.padStart(12)} ${'verify s'.padStart(9)} ${'pause s'.padStart(8)} ${'keys'.padStart(8)} ${'counts s'.padStart(9)} ${'old pause s'.padStart(12)}  steps (s)`,
  );
  for (const f of figures) {
    // Today's pause = the new one with the final check replaced by a full strict verify.
    const check = Number(/final check ([\d.]+)/.exec(f.steps)?.[1] ?? 0);
    const old = f.pause - check + f.fullVerify;
    console.log(
      `${f.rows.toLocaleString('en').padStart(12)} ${f.verify.toFixed(1).padStart(9)} ${f.pause.toFixed(1).padStart(8)} ${String(f.keys).padStart(8)} ${f.counting.toFixed(1).padStart(9)} ${old.toFixed(1).padStart(12)}  ${f.steps}`,
    );
  }
  if (figures.length > 1)
    console.log(`largest / smallest pause: ${(figures.at(-1)!.pause / figures[0]!.pause).toFixed(2)}x`);
}

main().then(
  () => {
    cleanUp();
  },
  (error: unknown) => {
    console.error(error);
    cleanUp();
    process.exitCode = 1;
  },
);
