// Benchmark: cutover.verify on a few million rows across four tables (integer, composite and text
// keys), against the lower bound of any server-side comparison: a plain SELECT count(*) plus a
// full-table hash of every row, on both sides. Also: the cost of narrowing a few differing rows.
// Two throwaway clusters on this machine, identical data, no Bucardo (nothing is in flight).
//
//   node dist/bench/verify.js          (BENCH_ROWS=3000000 by default, BENCH_REPEATS=2, best run counts)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import yaml from 'js-yaml';
import pg from 'pg';
import { loadConfig } from '../src/config/load.js';
import { detachedActivity } from '../src/core/activity.js';
import { createJob } from '../src/core/job.js';
import { PluginCatalog } from '../src/core/plugin.js';
import { quoteIdent, quoteQualified } from '../src/core/quote.js';
import { startCluster, stopAllClusters, type ClusterInfo } from '../src/sandbox/cluster.js';
import { cutoverSettings } from '../plugins/cutover/settings.js';
import { runVerify } from '../plugins/cutover/compare/engine.js';
import type { VerifyReport } from '../plugins/cutover/compare/report.js';

const ROWS = Number(process.env['BENCH_ROWS'] ?? 3_000_000);
const REPEATS = Number(process.env['BENCH_REPEATS'] ?? 2);

const ORDERS = Math.round(ROWS * 0.45);
const EVENTS = Math.round(ROWS * 0.3);
const LINE_ORDERS = Math.round(ROWS * 0.1);
const TAGS = ROWS - ORDERS - EVENTS - LINE_ORDERS * 2;

const SCHEMA = `
CREATE SCHEMA bench;
CREATE TABLE bench.orders (id bigint PRIMARY KEY, customer int NOT NULL, amount numeric(12,2), note text, placed timestamptz NOT NULL);
CREATE TABLE bench.events (id int PRIMARY KEY, kind text NOT NULL, score float8, payload jsonb);
CREATE TABLE bench.line_items (order_id bigint, line int, sku text, qty int, PRIMARY KEY (order_id, line));
CREATE TABLE bench.tags (tag text PRIMARY KEY, note text, created date);
`;

const DATA = `
INSERT INTO bench.orders SELECT g, g % 50000, (g % 10000) / 100.0, CASE WHEN g % 3 = 0 THEN 'note ' || g END, TIMESTAMPTZ '2024-01-01' + g * interval '1 second' FROM generate_series(1, ${ORDERS}) g;
INSERT INTO bench.events SELECT g, 'kind-' || (g % 17), g / 7.0, jsonb_build_object('n', g, 'tags', jsonb_build_array(g % 5, g % 11)) FROM generate_series(1, ${EVENTS}) g;
INSERT INTO bench.line_items SELECT o, l, 'sku-' || ((o * 31 + l) % 5000), (o + l) % 9 FROM generate_series(1, ${LINE_ORDERS}) o, generate_series(1, 2) l;
INSERT INTO bench.tags SELECT md5(g::text), 'tag ' || g, DATE '2020-01-01' + g % 2000 FROM generate_series(1, ${TAGS}) g;
`;

const TABLES: { table: string; columns: string[] }[] = [
  { table: 'orders', columns: ['id', 'customer', 'amount', 'note', 'placed'] },
  { table: 'events', columns: ['id', 'kind', 'score', 'payload'] },
  { table: 'line_items', columns: ['order_id', 'line', 'sku', 'qty'] },
  { table: 'tags', columns: ['tag', 'note', 'created'] },
];

const SESSION =
  "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3; SET search_path = 'pg_catalog'";

async function connect(cluster: ClusterInfo): Promise<pg.Client> {
  const client = new pg.Client({
    host: cluster.host,
    port: cluster.port,
    user: 'postgres',
    database: 'bench',
  });
  await client.connect();
  await client.query(SESSION);
  return client;
}

/**
 * count(*), then count and hash of every row in one scan: per table, both sides at once, `parallel` tables at a time.
 */
async function lowerBound(primary: ClusterInfo, secondary: ClusterInfo, parallel: number): Promise<number> {
  const pairs = await Promise.all(
    Array.from({ length: parallel }, async () => [await connect(primary), await connect(secondary)] as const),
  );
  const started = Date.now();
  let next = 0;
  await Promise.all(
    pairs.map(async (pair) => {
      while (next < TABLES.length) {
        const { table, columns } = TABLES[next++]!;
        const name = quoteQualified('bench', table);
        const hash = `SELECT count(*), sum(hashtextextended(ROW(${columns.map(quoteIdent).join(', ')})::text, 0)) FROM ${name}`;
        await Promise.all(
          pair.map(async (client) => {
            await client.query(`SELECT count(*) FROM ${name}`);
            await client.query(hash);
          }),
        );
      }
    }),
  );
  const seconds = (Date.now() - started) / 1000;
  await Promise.all(pairs.flat().map((client) => client.end()));
  return seconds;
}

async function verifyOnce(jobFile: string, extra: Record<string, unknown> = {}): Promise<VerifyReport> {
  const config = await loadConfig(jobFile, new PluginCatalog());
  Object.assign(config.pluginSettings['cutover'] as object, extra);
  return runVerify(createJob(config), {
    settings: cutoverSettings(config),
    activity: detachedActivity(),
    progress: () => undefined,
  });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-verify-'));
  try {
    process.stdout.write(
      `Starting two clusters and loading ${ROWS.toLocaleString('en')} rows into each...\n`,
    );
    const [primary, secondary] = await Promise.all([
      startCluster('benchVerifyA', { settings: { shared_buffers: '512MB' } }),
      startCluster('benchVerifyB', { settings: { shared_buffers: '512MB' } }),
    ]);
    const loadStarted = Date.now();
    await Promise.all(
      [primary, secondary].map(async (cluster) => {
        const admin = new pg.Client({
          host: cluster.host,
          port: cluster.port,
          user: 'postgres',
          database: 'postgres',
        });
        await admin.connect();
        await admin.query('CREATE DATABASE bench');
        await admin.end();
        const client = await connect(cluster);
        await client.query(SCHEMA);
        await client.query(DATA);
        await client.query('VACUUM ANALYZE');
        await client.end();
      }),
    );
    process.stdout.write(`  loaded in ${((Date.now() - loadStarted) / 1000).toFixed(1)} s\n`);

    const jobFile = path.join(dir, 'bench.yml');
    writeFileSync(
      jobFile,
      yaml.dump({
        plugins: ['bucardo', 'cutover'],
        databases: {
          bucardo: {
            host: primary.host,
            port: primary.port,
            database_owner: 'bucardo',
            install_user: 'postgres',
            fallback_db: 'postgres',
          },
          primary: {
            host: primary.host,
            port: primary.port,
            dbname: 'bench',
            database_owner: 'postgres',
            schema_owner: 'postgres',
          },
          secondary: {
            host: secondary.host,
            port: secondary.port,
            dbname: 'bench',
            database_owner: 'postgres',
            schema_owner: 'postgres',
          },
        },
        bucardo: {
          replication_name: 'bench',
          pid_dir: path.join(dir, 'run'),
          log_dir: path.join(dir, 'log'),
          state_dir: path.join(dir, 'state'),
          replication_objects: { namespace_include: ['bench'] },
        },
        cutover: {},
      }),
    );
    const settings = cutoverSettings(await loadConfig(jobFile, new PluginCatalog()));

    await lowerBound(primary, secondary, settings.jobs); // warms the caches of both servers
    const serial: number[] = [];
    const parallel: number[] = [];
    const verify: VerifyReport[] = [];
    for (let i = 0; i < REPEATS; i++) {
      serial.push(await lowerBound(primary, secondary, 1));
      parallel.push(await lowerBound(primary, secondary, settings.jobs));
      verify.push(await verifyOnce(jobFile));
    }
    const best = (values: number[]) => Math.min(...values);
    const bestVerify = verify.reduce((x, y) => (y.seconds < x.seconds ? y : x));
    if (!bestVerify.clean) throw new Error(`verify did not find the sides identical: ${bestVerify.verdict}`);
    const rate = (seconds: number) => Math.round(ROWS / seconds).toLocaleString('en');

    // A few differing rows: what finding and naming them costs on top.
    const tamper = await connect(secondary);
    await tamper.query(`UPDATE bench.orders SET note = 'tampered' WHERE id IN (17, ${Math.floor(ORDERS / 2)}, ${ORDERS - 3});
      DELETE FROM bench.events WHERE id = ${Math.floor(EVENTS / 3)}; DELETE FROM bench.tags WHERE tag = md5('42');
      INSERT INTO bench.line_items VALUES (${LINE_ORDERS + 5}, 1, 'extra', 1)`);
    await tamper.end();
    const mismatched = await verifyOnce(jobFile);

    const row = (label: string, value: string) => `  ${label.padEnd(72)}: ${value}`;
    const lines = [
      '',
      `cutover.verify benchmark: ${ROWS.toLocaleString('en')} rows in 4 tables (bigint, int, composite and text keys), two clusters on this machine`,
      row(
        'lower bound: count(*) + full-table hash, both sides, 1 table at a time',
        `${best(serial).toFixed(2)} s  (${rate(best(serial))} rows/s)`,
      ),
      row(
        `lower bound: the same, ${settings.jobs} tables at a time`,
        `${best(parallel).toFixed(2)} s  (${rate(best(parallel))} rows/s)`,
      ),
      row(
        `cutover.verify: ${settings.chunkRows.toLocaleString('en')}-row chunks, ${settings.jobs} connection pairs`,
        `${bestVerify.seconds.toFixed(2)} s  (${rate(bestVerify.seconds)} rows/s), ${bestVerify.tables.reduce((sum, t) => sum + t.chunks, 0)} chunks`,
      ),
      row(
        'verify / best lower bound',
        `${(bestVerify.seconds / Math.min(best(serial), best(parallel))).toFixed(2)}x  (goal: within 2x)`,
      ),
      row(
        'verify with 6 rows differing (found and named)',
        `${mismatched.seconds.toFixed(2)} s: ${mismatched.tables.flatMap((t) => t.keys.map((k) => `${t.table} ${Object.values(k.key).join('/')} ${k.difference}`)).join('; ')}`,
      ),
      row(
        'every run (lower bound 1 / lower bound n / verify)',
        `${serial.map((x) => x.toFixed(2)).join(', ')} / ${parallel.map((x) => x.toFixed(2)).join(', ')} / ${verify.map((v) => v.seconds.toFixed(2)).join(', ')} s`,
      ),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    stopAllClusters();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
