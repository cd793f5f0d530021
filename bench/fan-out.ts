// What a second target costs (databases.secondaries, docs/fan-out.md): the primary's commit rate with
// one job replicating A→B and with the same job replicating A→{B, C}, alternated round by round on one
// machine (it is shared and noisy), and each target's lag measured by arrival: a probe row is
// committed on A every 250 ms during the load and each target is polled for it every 50 ms.
// Each round: the job installed for its mode (copy_data always: the targets are emptied and copied),
// BENCH_CLIENTS pgbench clients (default 16) for BENCH_SECONDS (default 30) running
//
//   \set id random(1, BENCH_ACCOUNTS)
//   BEGIN; UPDATE acct SET bal = bal + 1 WHERE id = :id; INSERT INTO log (at) VALUES (clock_timestamp()); END;
//
// then a wait until every target holds A's balance sum and log rows, then bucardo.uninstall.
// BENCH_ROUNDS (default 3) pairs; medians at the end, and both targets compared with A.
//
// Run: node dist/bench/fan-out.js   (about 6 minutes with the defaults)
import { readFileSync, writeFileSync } from 'node:fs';
import yaml from 'js-yaml';
import pg from 'pg';
import type { ClusterInfo } from '../src/sandbox/cluster.js';
import { query } from '../test/support/tool.js';
import {
  accountScript,
  benchClusters,
  cleanUp,
  job,
  median,
  otherWork,
  percentile,
  run,
  runPgbench,
} from './support.js';

const ACCOUNTS = Number(process.env['BENCH_ACCOUNTS'] ?? 200_000);
const CLIENTS = Number(process.env['BENCH_CLIENTS'] ?? 16);
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 30);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);

const script = accountScript(ACCOUNTS);

const SCHEMA = `CREATE TABLE public.acct (id int PRIMARY KEY, bal bigint NOT NULL);
CREATE TABLE public.log (id bigserial PRIMARY KEY, at timestamptz NOT NULL);
CREATE TABLE public.probe (id int PRIMARY KEY, at timestamptz NOT NULL);`;

const fingerprint = async (c: ClusterInfo) =>
  (
    await query<{ s: string }>(
      c,
      'net',
      "SELECT coalesce(sum(bal), 0)::text || '/' || (SELECT count(*) FROM public.log) || '/' || (SELECT count(*) FROM public.probe) AS s FROM public.acct",
    )
  )[0]!.s;

/**
 * Commits a probe row on A every 250 ms and records, per target, when each one arrived there (polled
 * every 50 ms). Returns the lags in ms once stopped.
 */
function probe(a: ClusterInfo, targets: Record<string, ClusterInfo>, firstId: number) {
  let stopping = false;
  const committed = new Map<number, number>();
  const lags: Record<string, number[]> = Object.fromEntries(Object.keys(targets).map((name) => [name, []]));
  // One session each for the whole round: a connection per poll would measure connecting, not lag.
  const connect = async (cluster: ClusterInfo) => {
    const client = new pg.Client({
      host: cluster.host,
      port: cluster.port,
      user: 'postgres',
      database: 'net',
    });
    await client.connect();
    return client;
  };
  const writer = (async () => {
    const client = await connect(a);
    try {
      for (let id = firstId; !stopping; id++) {
        await client.query('INSERT INTO public.probe VALUES ($1, clock_timestamp())', [id]);
        committed.set(id, Date.now());
        await new Promise((r) => setTimeout(r, 250));
      }
    } finally {
      await client.end();
    }
  })();
  const readers = Object.entries(targets).map(async ([name, cluster]) => {
    const client = await connect(cluster);
    try {
      let seen = firstId - 1;
      const last = () => Math.max(firstId - 1, ...committed.keys());
      const deadline = () => stopping && Date.now() > stoppedAt + 300_000;
      while (!(stopping && seen >= last()) && !deadline()) {
        const { rows } = await client.query<{ id: number }>('SELECT id FROM public.probe WHERE id > $1', [
          seen,
        ]);
        const now = Date.now();
        for (const { id } of rows) {
          const at = committed.get(id);
          if (at !== undefined) lags[name]!.push(now - at);
          seen = Math.max(seen, id);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await client.end();
    }
  });
  let stoppedAt = 0;
  return {
    stop: async () => {
      stopping = true;
      stoppedAt = Date.now();
      await writer;
      await Promise.all(readers);
      return lags;
    },
  };
}

interface Round {
  mode: 'one' | 'two';
  tps: number;
  lags: Record<string, number[]>;
  catchUp: number;
}

async function main(): Promise<void> {
  const [a, b, c] = (await benchClusters(['A', 'B', 'C'])) as [ClusterInfo, ClusterInfo, ClusterInfo];
  for (const cluster of [a, b, c]) {
    await query(cluster, 'postgres', 'CREATE DATABASE net');
    await query(cluster, 'net', SCHEMA);
  }
  await query(a, 'net', `INSERT INTO public.acct SELECT g, 0 FROM generate_series(1, ${ACCOUNTS}) g`);
  const written = job({
    name: 'fan',
    primary: { cluster: a, dbname: 'net' },
    secondary: { cluster: b, dbname: 'net' },
    copyData: 'always',
    asynchronousKicking: true,
    kickInterval: 0.25,
  });
  // The same job with two targets: the same dirs and names, databases.secondaries instead.
  const config = yaml.load(readFileSync(written.file, 'utf8')) as { databases: Record<string, any> };
  const target = (cluster: ClusterInfo) => ({
    ...config.databases['secondary'],
    host: cluster.host,
    port: cluster.port,
  });
  const twoFile = written.file.replace(/\.yml$/, '.two.yml');
  const others = { ...config.databases };
  delete others['secondary'];
  writeFileSync(
    twoFile,
    yaml.dump({ ...config, databases: { ...others, secondaries: { b: target(b), c: target(c) } } }),
  );
  const files = { one: written.file, two: twoFile };
  const rounds: Round[] = [];
  let probeId = 1;
  console.log(`other work on this machine at the start: ${JSON.stringify(otherWork([a, b, c]))}`);
  for (let round = 1; round <= ROUNDS; round++) {
    const order: ('one' | 'two')[] = round % 2 ? ['one', 'two'] : ['two', 'one'];
    for (const mode of order) {
      const targets: Record<string, ClusterInfo> = mode === 'one' ? { b } : { b, c };
      await run(
        files[mode],
        'bucardo.install bucardo.add_triggers --yes bucardo.start bucardo.wait_for_copy',
      );
      await new Promise((r) => setTimeout(r, 2000));
      const probes = probe(a, targets, probeId);
      const tps = await runPgbench(a, 'net', script, CLIENTS, SECONDS);
      const began = Date.now();
      const lags = await probes.stop();
      // Every target holds A's rows (balances, log rows, probes) within 10 minutes, or the round fails.
      const expected = await fingerprint(a);
      let identical = false;
      while (!identical && Date.now() - began < 600_000) {
        identical = (await Promise.all(Object.values(targets).map(fingerprint))).every((f) => f === expected);
        if (!identical) await new Promise((r) => setTimeout(r, 250));
      }
      const catchUp = (Date.now() - began) / 1000;
      probeId += 100_000;
      await run(files[mode], 'bucardo.uninstall');
      rounds.push({ mode, tps, lags, catchUp });
      console.log(
        `round ${round} ${mode === 'one' ? 'A→B    ' : 'A→{B,C}'}: ${tps.toFixed(0)} tps; probe lag p50/p95 ms ${Object.entries(
          lags,
        )
          .map(([name, l]) => `${name} ${median(l).toFixed(0)}/${percentile(l, 95).toFixed(0)}`)
          .join(
            ', ',
          )}; caught up ${catchUp.toFixed(1)} s after the load; targets ${identical ? 'identical to A' : 'DIFFERENT'}`,
      );
    }
  }
  const tpsOf = (mode: 'one' | 'two') => median(rounds.filter((r) => r.mode === mode).map((r) => r.tps));
  const lagOf = (mode: 'one' | 'two', name: string, p: number) => {
    const all = rounds.filter((r) => r.mode === mode).flatMap((r) => r.lags[name] ?? []);
    return p === 50 ? median(all) : percentile(all, p);
  };
  console.log('');
  console.log(
    `${ACCOUNTS.toLocaleString('en')} accounts, ${CLIENTS} clients, ${SECONDS} s per round, ${ROUNDS} round(s) each, medians:`,
  );
  console.log(
    `  A→B     : ${tpsOf('one').toFixed(0)} tps; lag B p50 ${lagOf('one', 'b', 50)} ms, p95 ${lagOf('one', 'b', 95)} ms`,
  );
  console.log(
    `  A→{B,C} : ${tpsOf('two').toFixed(0)} tps; lag B p50 ${lagOf('two', 'b', 50)} ms, p95 ${lagOf('two', 'b', 95)} ms; C p50 ${lagOf('two', 'c', 50)} ms, p95 ${lagOf('two', 'c', 95)} ms`,
  );
  console.log(`  two targets / one: ${(tpsOf('two') / tpsOf('one')).toFixed(3)} of the commit rate`);
}

main()
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(cleanUp);
