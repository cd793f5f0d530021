// What the kicker's safety net (bucardo.recheck_interval, src/core/recheck.ts) costs under the issue's
// load: the primary's commit rate and the CPU of the primary, the secondary and the kicker, with the
// safety net on (every BENCH_RECHECK seconds, default 10) and off (0), alternated round by round on
// one job (the daemon and kicker restarted with the other setting between rounds), since this machine
// is shared and noisy. Each round: BENCH_CLIENTS pgbench clients (default 16) for BENCH_SECONDS
// (default 30) running
//
//   \set id random(1, BENCH_ACCOUNTS)
//   BEGIN; UPDATE acct SET bal = bal + 1 WHERE id = :id; INSERT INTO log (at) VALUES (clock_timestamp()); END;
//
// then a wait until nothing is pending, so no round inherits another's backlog; CPU is counted from the
// round's start to the end of that wait. BENCH_ROUNDS (default
// 3) pairs. At the end: medians, the safety net's own counts (keys compared, re-queued: must be 0), and
// both sides compared.
//
// Run: node dist/bench/safety-net-cost.js   (about 8 minutes with the defaults)
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import type { ClusterInfo } from '../src/sandbox/cluster.js';
import { query } from '../test/support/tool.js';
import { CpuWatch } from './cpu.js';
import { accountScript, benchClusters, cleanUp, cpuSeconds, job, run, runPgbench } from './support.js';

const ACCOUNTS = Number(process.env['BENCH_ACCOUNTS'] ?? 1_000_000);
const CLIENTS = Number(process.env['BENCH_CLIENTS'] ?? 16);
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 30);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const RECHECK = Number(process.env['BENCH_RECHECK'] ?? 10);

const script = accountScript(ACCOUNTS);

const SCHEMA = `CREATE TABLE public.acct (id int PRIMARY KEY, bal bigint NOT NULL);
CREATE TABLE public.log (id bigserial PRIMARY KEY, at timestamptz NOT NULL);`;

async function pendingChanges(a: ClusterInfo): Promise<number> {
  const rows = await query<{ n: string }>(
    a,
    'net',
    `SELECT (SELECT count(*) FROM bucardo.delta_public_acct d WHERE NOT EXISTS (SELECT 1 FROM bucardo.track_public_acct t WHERE t.txntime = d.txntime AND t.target = 'dbgroup cost'))
          + (SELECT count(*) FROM bucardo.delta_public_log d WHERE NOT EXISTS (SELECT 1 FROM bucardo.track_public_log t WHERE t.txntime = d.txntime AND t.target = 'dbgroup cost')) AS n`,
  );
  return Number(rows[0]!.n);
}

async function caughtUp(a: ClusterInfo): Promise<number> {
  const started = Date.now();
  while ((await pendingChanges(a)) > 0) {
    if (Date.now() - started > 600_000) throw new Error('B did not catch up within 10 minutes');
    await new Promise((r) => setTimeout(r, 1000));
  }
  return (Date.now() - started) / 1000;
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

interface Round {
  mode: 'on' | 'off';
  tps: number;
  cpu: { primary: number; secondary: number; kicker: number };
  catchUp: number;
}

async function main(): Promise<void> {
  const [a, b] = (await benchClusters(['A', 'B'])) as [ClusterInfo, ClusterInfo];
  await query(a, 'postgres', 'CREATE DATABASE net');
  await query(b, 'postgres', 'CREATE DATABASE net');
  await query(a, 'net', SCHEMA);
  await query(b, 'net', SCHEMA);
  await query(a, 'net', `INSERT INTO public.acct SELECT g, 0 FROM generate_series(1, ${ACCOUNTS}) g`);
  const written = job({
    name: 'cost',
    primary: { cluster: a, dbname: 'net' },
    secondary: { cluster: b, dbname: 'net' },
    copyData: 'empty',
    asynchronousKicking: true,
    kickInterval: 1,
    bucardoSettings: { recheck_interval: RECHECK },
  });
  // The same job with the safety net off: same dirs, same names, only the setting differs.
  const config = yaml.load(readFileSync(written.file, 'utf8')) as { bucardo: Record<string, unknown> };
  const offFile = written.file.replace(/\.yml$/, '.off.yml');
  writeFileSync(offFile, yaml.dump({ ...config, bucardo: { ...config.bucardo, recheck_interval: 0 } }));
  const files = { on: written.file, off: offFile };
  await run(written.file, 'bucardo.install bucardo.add_triggers bucardo.start bucardo.wait_for_copy');
  const kickerPidFile = path.join(written.pidDir, 'kicker.cost.pid');
  const rounds: Round[] = [];
  const recheck = { compared: 0, requeued: 0, passes: 0, passMs: [] as number[] };
  for (let round = 1; round <= ROUNDS; round++) {
    const order: ('on' | 'off')[] = round % 2 ? ['on', 'off'] : ['off', 'on'];
    for (const mode of order) {
      await run(files[mode], 'bucardo.restart');
      await new Promise((r) => setTimeout(r, 3000));
      const kickerPid = Number(readFileSync(kickerPidFile, 'utf8').trim());
      const watch = new CpuWatch({ primary: a.postmasterPid, secondary: b.postmasterPid });
      watch.start(500);
      const kicker0 = cpuSeconds(kickerPid);
      const began = Date.now();
      const tps = await runPgbench(a, 'net', script, CLIENTS, SECONDS);
      const catchUp = await caughtUp(a);
      // Until the catch-up: pgbench's backends have exited and been reaped by then (a backend's CPU
      // reaches its postmaster's figure only when it is reaped), and Bucardo applied the round's work.
      await new Promise((r) => setTimeout(r, 1000));
      const ended = Date.now();
      const kicker = cpuSeconds(kickerPid) - kicker0;
      watch.stop();
      const cpu = {
        primary: watch.between(began, ended, (s) => s.clusters['primary'] ?? 0),
        secondary: watch.between(began, ended, (s) => s.clusters['secondary'] ?? 0),
        kicker,
      };
      if (mode === 'on') {
        // Let a pass or two look at the round's last changes, then take the safety net's counts.
        await new Promise((r) => setTimeout(r, (RECHECK + 2) * 1000));
        const state = JSON.parse(readFileSync(path.join(written.pidDir, 'kicker.cost.json'), 'utf8')) as {
          recheck?: { compared: number; requeued: number; passes: number; lastPassMs?: number };
        };
        recheck.compared += state.recheck?.compared ?? 0;
        recheck.requeued += state.recheck?.requeued ?? 0;
        recheck.passes += state.recheck?.passes ?? 0;
        if (state.recheck?.lastPassMs !== undefined) recheck.passMs.push(state.recheck.lastPassMs);
      }
      rounds.push({ mode, tps, cpu, catchUp });
      console.log(
        `round ${round} safety net ${mode.padEnd(3)}: ${tps.toFixed(0)} tps; CPU s primary ${cpu.primary.toFixed(1)}, secondary ${cpu.secondary.toFixed(1)}, kicker ${cpu.kicker.toFixed(2)}; caught up ${catchUp.toFixed(1)} s after`,
      );
    }
  }
  const of = (mode: 'on' | 'off', pick: (r: Round) => number) =>
    median(rounds.filter((r) => r.mode === mode).map(pick));
  console.log('');
  console.log(
    `${ACCOUNTS.toLocaleString('en')} accounts, ${CLIENTS} clients, ${SECONDS} s per round, ${ROUNDS} round(s) each, medians:`,
  );
  for (const mode of ['off', 'on'] as const)
    console.log(
      `  safety net ${mode.padEnd(3)}: ${of(mode, (r) => r.tps).toFixed(0)} tps; CPU s per round (load and catch-up): primary ${of(mode, (r) => r.cpu.primary).toFixed(1)}, secondary ${of(mode, (r) => r.cpu.secondary).toFixed(1)}, kicker ${of(mode, (r) => r.cpu.kicker).toFixed(2)}`,
    );
  console.log(
    `  throughput with / without: ${(of('on', (r) => r.tps) / of('off', (r) => r.tps)).toFixed(3)}`,
  );
  console.log(
    `  the safety net over the 'on' rounds: ${recheck.compared.toLocaleString('en')} key(s) compared in ${recheck.passes} pass(es) (a pass's last duration, median: ${recheck.passMs.length ? median(recheck.passMs) : '?'} ms), ${recheck.requeued} re-queued`,
  );
  const sum = async (c: ClusterInfo) =>
    (
      await query<{ s: string }>(
        c,
        'net',
        "SELECT sum(bal)::text || '/' || (SELECT count(*) FROM public.log) AS s FROM public.acct",
      )
    )[0]!.s;
  const [ours, theirs] = [await sum(a), await sum(b)];
  console.log(
    `  both sides: balance sum / log rows ${ours} on A, ${theirs} on B: ${ours === theirs ? 'identical' : 'DIFFERENT'}`,
  );
}

main()
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(cleanUp);
