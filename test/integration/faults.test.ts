// Replication surviving faults under a continuous write load (several clients inserting, updating
// and deleting on the primary): the Bucardo daemon killed with SIGKILL, the secondary's PostgreSQL
// restarted, the primary's PostgreSQL restarted. After each, once replication has caught up, verify
// must find the secondary identical, and an independent row-by-row comparison must agree: zero rows
// lost, zero extra. The metadata database lives on a cluster of its own, as in production, so a
// restarted primary or secondary does not also take Bucardo's own database down.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import pg from 'pg';
import { isProcessAlive, readPidFile } from '../../src/core/process.js';
import { restartCluster, startCluster, stopCluster, type ClusterInfo } from '../../src/sandbox/cluster.js';
import { jobBetween } from '../support/fixture.js';
import {
  clusters,
  forgetJob,
  sameRowsEventually,
  tableRows,
  waitFor,
  type ToolResult,
  type WrittenJob,
} from '../support/harness.js';

const SCHEMA = `
CREATE TABLE public.accounts (id bigserial PRIMARY KEY, owner text NOT NULL, balance int NOT NULL, touched timestamptz NOT NULL DEFAULT now());
CREATE TABLE public.ledger (account bigint, entry bigint, amount numeric(12,2), note text, PRIMARY KEY (account, entry));
`;
const DATA = `
INSERT INTO public.accounts (owner, balance) SELECT 'owner ' || g, g FROM generate_series(1, 2000) g;
INSERT INTO public.ledger SELECT g, 0, g / 3.0, 'opening' FROM generate_series(1, 2000) g;
`;
const TABLES = ['public.accounts', 'public.ledger'];

let a: ClusterInfo;
let b: ClusterInfo;
let metadata: ClusterInfo;

before(async () => {
  ({ a, b } = await clusters());
  metadata = await startCluster('faultsMeta');
});

after(() => {
  stopCluster(metadata);
});

interface Load {
  stop(): Promise<{ operations: number; errors: number }>;
}

/**
 * Writers on the primary, each in its own connection: single-row inserts, updates and deletes, and
 * two-table transactions. A writer whose connection breaks (a restart) reconnects and goes on.
 */
let loadsStarted = 0;
function startLoad(cluster: ClusterInfo, database: string, writers = 4): Load {
  let running = true;
  let operations = 0;
  let errors = 0;
  // Ledger keys of their own: a later load on the same (shared) job must not collide with an earlier one.
  const firstEntry = 100_000 * ++loadsStarted;
  const writer = async (index: number) => {
    let client: pg.Client | undefined;
    let entry = firstEntry;
    while (running) {
      try {
        if (!client) {
          client = new pg.Client({ host: cluster.host, port: cluster.port, user: 'postgres', database });
          client.on('error', () => undefined);
          await client.connect();
        }
        const pick = Math.random();
        const id = 1 + Math.floor(Math.random() * 2400);
        if (pick < 0.35)
          await client.query(
            "INSERT INTO public.accounts (owner, balance) VALUES ('writer ' || $1::text, $2)",
            [index, operations],
          );
        else if (pick < 0.7)
          await client.query(
            'UPDATE public.accounts SET balance = balance + 1, touched = now() WHERE id = $1',
            [id],
          );
        else if (pick < 0.8) await client.query('DELETE FROM public.accounts WHERE id = $1', [id]);
        else if (pick < 0.9)
          await client.query('DELETE FROM public.ledger WHERE account = $1 AND entry = 0', [id]);
        else {
          entry += 1;
          await client.query('BEGIN');
          await client.query('INSERT INTO public.ledger VALUES ($1, $2, $3, $4)', [
            id,
            index * 1_000_000 + entry,
            entry / 4,
            `writer ${index}`,
          ]);
          await client.query('UPDATE public.accounts SET balance = balance - 1 WHERE id = $1', [id]);
          await client.query('COMMIT');
        }
        operations += 1;
      } catch {
        errors += 1;
        await client?.end().catch(() => undefined);
        client = undefined;
        await new Promise((r) => setTimeout(r, 200));
      }
      // Paced, not as fast as the machine allows: the CPU a test costs must not grow with the CPU it
      // finds free (CONTRIBUTING.md, the suite's time); a few clients still overlap every step.
      await new Promise((r) => setTimeout(r, 20));
    }
    await client?.end().catch(() => undefined);
  };
  const done = Promise.all(Array.from({ length: writers }, (_, i) => writer(i + 1)));
  return {
    async stop() {
      running = false;
      await done;
      return { operations, errors };
    },
  };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

function outcome(result: ToolResult): { ok: boolean; data?: any; error?: string } {
  const line = result.stdout.split('\n').find((l) => l.startsWith('{"command"'));
  assert.ok(line, `no JSON outcome in:\n${result.stdout}\n${result.stderr}`);
  return JSON.parse(line);
}

/**
 * A→B with its metadata on the cluster of its own, replicating (test/support/fixture.ts): forgotten
 * after the test `t`, or after the file when the file's tests share it.
 */
async function replicate(
  t: TestContext | undefined,
  name: string,
  asynchronousKicking: boolean,
): Promise<{ job: WrittenJob; tool: (list: string) => Promise<ToolResult> }> {
  const { job, tool } = await jobBetween(t, {
    name,
    schema: SCHEMA,
    primaryData: DATA,
    plugins: ['bucardo', 'cutover'],
    metadata,
    asynchronousKicking,
    extra: { cutover: { chunk_rows: 1000, settle_time: 10 } },
    toolTimeoutMs: 120_000,
    // When a database fails its ping, Bucardo stops the daemon and respawns it mcp_dbproblem_sleep
    // seconds later (15 by default): 2 keeps these tests short without changing what happens.
    flow: 'bucardo.install bucardo.add_triggers bucardo.change_config mcp_dbproblem_sleep=2 bucardo.start bucardo.wait_for_copy',
  });
  return { job, tool: (list) => tool(list) };
}

/** Waits until nothing is pending, then proves the secondary identical twice over. */
async function assertIdentical(name: string, tool: (list: string) => Promise<ToolResult>): Promise<void> {
  // The rows first, by SQL (each status run costs a tool's start): status then says caught up at once
  // or soon after (Bucardo records a change applied a moment after the secondary committed it).
  await sameRowsEventually([a, `${name}_a`], [b, `${name}_b`], TABLES, 60_000, 'the secondary to catch up');
  await waitFor(
    async () => {
      const status = outcome(await tool('bucardo.status --json'));
      return status.data?.verdict === 'caught up';
    },
    60_000,
    'bucardo.status to say caught up',
  );
  const verified = await tool('cutover.verify --json');
  const report = outcome(verified).data;
  assert.equal(verified.code, 0, `${report?.verdict}\n${verified.stdout}`);
  assert.equal(report.clean, true, report.verdict);
  assert.equal(report.totals.mismatchedRows, 0);
  assert.equal(report.totals.inFlightRows, 0);
  for (const table of TABLES) {
    const [primary, secondary] = await Promise.all([
      tableRows(a, `${name}_a`, table),
      tableRows(b, `${name}_b`, table),
    ]);
    const lost = primary.filter((row) => !secondary.includes(row));
    const extra = secondary.filter((row) => !primary.includes(row));
    assert.deepEqual(
      { lost, extra },
      { lost: [], extra: [] },
      `${table}: rows lost or extra on the secondary`,
    );
    assert.equal(report.tables.find((t: any) => t.table === table).rowsSecondary, secondary.length);
  }
}

/** Live Bucardo processes named by the job's pid files (MCP, VAC, controller, kid). */
function bucardoProcesses(pidDir: string): number[] {
  return readdirSync(pidDir)
    .filter((f) => f.startsWith('bucardo.') && f.endsWith('.pid'))
    .map((f) => readPidFile(path.join(pidDir, f)))
    .filter((pid): pid is number => pid !== undefined && isProcessAlive(pid));
}

/**
 * The job with kick triggers, shared by the first two tests (a job's life costs some 15 s of CPU): the
 * second's fault follows the first's on the same replication, each proven whole by assertIdentical.
 * The second forgets it: the third test's job installs into the same metadata database, which one
 * daemon serves.
 */
let triggersJob: Awaited<ReturnType<typeof replicate>> | undefined;
async function kickTriggersJob(): Promise<Awaited<ReturnType<typeof replicate>>> {
  triggersJob ??= await replicate(undefined, 'fault_trig', false);
  return triggersJob;
}

/** The killed MCP's VAC is orphaned and outlives the restart: stopped after the test. */
function stopOrphans(t: TestContext, pids: () => number[]): void {
  // SIGKILL, not TERM: on TERM it would unlink bucardo.vac.pid, which names the new daemon's VAC by
  // now, and bucardo.stop could not find that one.
  t.after(() => {
    for (const pid of pids()) if (isProcessAlive(pid)) process.kill(pid, 'SIGKILL');
  });
}

test('kill -9 of the Bucardo daemon under load, then bucardo.restart: nothing lost, nothing extra', async (t) => {
  const { job, tool } = await kickTriggersJob();
  let before: number[] = [];
  stopOrphans(t, () => before);
  const load = startLoad(a, 'fault_trig_a');
  // Stopped also when the test fails: a load left running keeps the file (and the servers) busy.
  t.after(() => load.stop());
  await pause(1500);
  // Under the load, rows on their way through replication are in flight, never mismatches.
  const underLoad = await tool('cutover.verify settle=0 --json');
  const report = outcome(underLoad).data;
  assert.equal(underLoad.code, 0, `${report?.verdict}\n${underLoad.stdout}`);
  assert.equal(report.totals.mismatchedRows, 0, report.verdict);
  t.diagnostic(`verify under load: ${report.verdict}`);
  before = bucardoProcesses(job.pidDir);
  const mcp = readPidFile(path.join(job.pidDir, 'bucardo.mcp.pid'));
  assert.ok(mcp && isProcessAlive(mcp), 'the daemon runs');
  process.kill(mcp, 'SIGKILL');
  await waitFor(async () => !isProcessAlive(mcp), 5000, 'the daemon to die');
  await pause(1500);
  const restart = await tool('bucardo.restart');
  assert.equal(restart.code, 0, restart.stdout + restart.stderr);
  await pause(1500);
  const { operations } = await load.stop();
  assert.ok(operations > 50, `the load ran (${operations} operations)`);
  const again = readPidFile(path.join(job.pidDir, 'bucardo.mcp.pid'));
  assert.ok(again && again !== mcp && isProcessAlive(again), 'a new daemon runs');
  await assertIdentical('fault_trig', tool);
});

test("the secondary's PostgreSQL restarted under load (the same job, after the kill -9): replication resumes, nothing lost, nothing extra", async (t) => {
  const { job, tool } = await kickTriggersJob();
  t.after(() => forgetJob(job, metadata));
  const load = startLoad(a, 'fault_trig_a');
  // Stopped also when the test fails: a load left running keeps the file (and the servers) busy.
  t.after(() => load.stop());
  await pause(1500);
  restartCluster(b);
  await pause(2500);
  const { operations } = await load.stop();
  assert.ok(operations > 50, `the load ran (${operations} operations)`);
  await assertIdentical('fault_trig', tool);
});

test("the primary's PostgreSQL restarted under load, asynchronous kicking: the kicker reconnects, nothing lost, nothing extra", async (t) => {
  const { job, tool } = await replicate(t, 'fault_pri', true);
  const kicker = () =>
    JSON.parse(readFileSync(path.join(job.pidDir, 'kicker.fault_pri.json'), 'utf8')) as {
      pid: number;
      kicks: number;
      lastKickAt?: string;
    };
  const load = startLoad(a, 'fault_pri_a');
  // Stopped also when the test fails: a load left running keeps the file (and the servers) busy.
  t.after(() => load.stop());
  await pause(1500);
  const kickerBefore = kicker();
  restartCluster(a);
  const restartedAt = Date.now();
  await pause(2500);
  const { operations, errors } = await load.stop();
  assert.ok(
    operations > 50 && errors > 0,
    `the load ran through the restart (${operations} operations, ${errors} broken)`,
  );
  await assertIdentical('fault_pri', tool);
  // The same kicker process survived the restart and kicked again afterwards.
  const kickerAfter = kicker();
  assert.equal(kickerAfter.pid, kickerBefore.pid);
  assert.ok(isProcessAlive(kickerAfter.pid), 'the kicker still runs');
  assert.ok(
    kickerAfter.kicks > kickerBefore.kicks && Date.parse(kickerAfter.lastKickAt!) > restartedAt,
    `the kicker kicked after the restart (${JSON.stringify(kickerAfter)})`,
  );
});
