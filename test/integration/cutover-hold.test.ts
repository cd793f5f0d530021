// The change records the final check of cutover.finish relies on, on real clusters with the real
// daemon: Bucardo's VAC purges applied records older than 45 s (here every second); once a verify
// has put its hold in place, a record of a change made after the verify survives the purge, and the
// final check compares that key: a row tampered on the secondary there stops the switch, with
// replication still running. Without a tampered row, finish passes on only the changed keys.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  clusters,
  dropDatabase,
  forgetJob,
  freshDatabase,
  query,
  runTool,
  waitFor,
  writeJobConfig,
  type ToolResult,
} from '../support/harness.js';
import type { ClusterInfo } from '../../src/sandbox/cluster.js';

const SCHEMA = `
CREATE TABLE public.accounts (id int PRIMARY KEY, balance numeric(12,2) NOT NULL);
CREATE SEQUENCE public.ledger_no;`;
const DATA = 'INSERT INTO public.accounts SELECT g, g FROM generate_series(1, 50000) g;';
// Bucardo's VAC purges records applied and older than 45 s (fixed in Bucardo 5.6). Rather than wait
// that long twice, a test ages a record: it moves the record's transaction time (in the delta table
// and the matching track rows, which the purge joins on) a minute back.
const AGE_SECONDS = 60;

let a: ClusterInfo;
let b: ClusterInfo;
let job: { file: string; dir: string; pidDir: string; logDir: string };

function tool(list: string): Promise<ToolResult> {
  return runTool(['-c', job.file, '-l', list], { timeoutMs: 150_000 });
}

function outcome(result: ToolResult): { ok: boolean; message?: string; error?: string; data?: any } {
  const line = result.stdout.split('\n').find((l) => l.startsWith('{"command"'));
  assert.ok(line, `no JSON outcome in:\n${result.stdout}\n${result.stderr}`);
  return JSON.parse(line);
}

async function deltaRows(id: number): Promise<number> {
  const [row] = await query<{ n: number }>(
    a,
    'hold_a',
    'SELECT count(*)::int AS n FROM bucardo.delta_public_accounts WHERE id = $1',
    [id],
  );
  return row!.n;
}

/** Moves the applied change records of account `id` by `seconds` in time (back when negative). */
async function shiftRecords(id: number, seconds: number): Promise<void> {
  // Bucardo commits on the secondary first, then marks the change applied on the primary (a track row).
  await waitFor(
    async () =>
      (
        await query(
          a,
          'hold_a',
          'SELECT 1 FROM bucardo.delta_public_accounts d JOIN bucardo.track_public_accounts t USING (txntime) WHERE d.id = $1',
          [id],
        )
      ).length > 0,
    30_000,
    `the change of account ${id} to be marked applied on the primary`,
  );
  const [shifted] = await query<{ tracks: number }>(
    a,
    'hold_a',
    `WITH delta AS (
       UPDATE bucardo.delta_public_accounts SET txntime = txntime + make_interval(secs => $2)
        WHERE id = $1 RETURNING txntime
     ), track AS (
       UPDATE bucardo.track_public_accounts SET txntime = txntime + make_interval(secs => $2)
        WHERE txntime IN (SELECT txntime - make_interval(secs => $2) FROM delta) RETURNING 1
     )
     SELECT (SELECT count(*) FROM track)::int AS tracks`,
    [id, seconds],
  );
  assert.ok(shifted!.tracks > 0, `the track rows of account ${id} moved with its delta row`);
}

/** Purges Bucardo's VAC has finished so far (its log says so at log_level verbose). */
function purgesLogged(): number {
  const log = path.join(job.logDir, 'log.bucardo.hold');
  return existsSync(log) ? (readFileSync(log, 'utf8').match(/Purge on db "[^"]*" gave:/g) ?? []).length : 0;
}

/**
 * Waits until a whole purge has run since now: two more finish (the first may have begun before), and
 * the VAC starts its next purge only after it logged the last one.
 */
async function aWholePurgeRuns(): Promise<void> {
  const before = purgesLogged();
  await waitFor(async () => purgesLogged() >= before + 2, 30_000, "Bucardo's VAC to run a purge");
}

async function replicated(id: number, balance: string): Promise<void> {
  await waitFor(
    async () =>
      (
        await query<{ balance: string }>(
          b,
          'hold_b',
          'SELECT balance::text FROM public.accounts WHERE id = $1',
          [id],
        )
      )[0]?.balance === balance,
    30_000,
    `account ${id} to reach the secondary`,
  );
}

before(async () => {
  ({ a, b } = await clusters());
  await freshDatabase(a, 'hold_a', `${SCHEMA}${DATA}`);
  await freshDatabase(b, 'hold_b', SCHEMA);
  job = writeJobConfig({
    name: 'hold',
    plugins: ['bucardo', 'cutover'],
    primary: { cluster: a, dbname: 'hold_a' },
    secondary: { cluster: b, dbname: 'hold_b' },
    // No safety net here: it would re-queue the row tampered below before the final check sees it (a
    // key whose changes were all applied and that differs is what the safety net repairs).
    bucardoSettings: { purge_interval: 1, recheck_interval: 0 },
    extra: { cutover: { settle_time: 5, chunk_rows: 10_000 } },
  });
  // log_level verbose: the VAC logs each purge it finished, which aWholePurgeRuns counts.
  const setup = await tool(
    'bucardo.install bucardo.add_triggers bucardo.change_config log_level=verbose bucardo.start bucardo.wait_for_copy',
  );
  assert.equal(setup.code, 0, setup.stdout + setup.stderr);
});

after(async () => {
  // forgetJob stops the daemon by its pids: a bucardo.stop run first would only add its CPU.
  await forgetJob(job, a);
  await dropDatabase(a, 'hold_a').catch(() => undefined);
  await dropDatabase(b, 'hold_b').catch(() => undefined);
});

test('without a hold the VAC purges an applied change record; after a verify it keeps it, and the final check catches a row tampered there', async () => {
  // No verify yet, so no hold: the record of an applied change goes once it is old enough.
  await query(a, 'hold_a', 'UPDATE public.accounts SET balance = 1001 WHERE id = 1');
  await replicated(1, '1001.00');
  assert.equal(await deltaRows(1), 1);
  await shiftRecords(1, -AGE_SECONDS);
  await waitFor(
    async () => (await deltaRows(1)) === 0,
    30_000,
    "Bucardo's VAC to purge the applied change record",
  );

  const verified = await tool('cutover.verify --json');
  assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  const horizon = outcome(verified).data.horizon;
  assert.ok(horizon && horizon.from, `the verify recorded a horizon (${JSON.stringify(horizon)})`);
  assert.equal(outcome(verified).data.tables[0].counts.primary, 50_000, 'exact row counts cross-checked');
  const held = await query<{ target: string }>(
    a,
    'hold_a',
    "SELECT target FROM bucardo.bucardo_delta_targets WHERE target LIKE 'cutover hold%'",
  );
  assert.deepEqual(held, [{ target: 'cutover hold hold' }]);

  // A change after the verify, applied, then tampered on the secondary behind Bucardo's back.
  await query(a, 'hold_a', 'UPDATE public.accounts SET balance = 2002 WHERE id = 2');
  await replicated(2, '2002.00');
  await query(b, 'hold_b', 'UPDATE public.accounts SET balance = 0 WHERE id = 2');
  await shiftRecords(2, -AGE_SECONDS);
  await aWholePurgeRuns();
  assert.equal(await deltaRows(2), 1, "the hold kept the applied change record past the VAC's purge age");
  // Its own time back: the final check takes the records from the verify's horizon on.
  await shiftRecords(2, AGE_SECONDS);

  const stopped = await tool('cutover.finish --writes-stopped --json');
  assert.equal(stopped.code, 1, stopped.stdout + stopped.stderr);
  const result = outcome(stopped);
  assert.match(
    result.message!,
    /^The final check failed: FAILED: public\.accounts: id=2 \(changed\)\. Replication is still running and nothing is switched/,
  );
  assert.ok(
    result.data.finalCheck.keysCompared <= 5,
    `only the changed keys were compared (${result.data.finalCheck.keysCompared} of 50,000 rows)`,
  );
  assert.equal(
    outcome(await tool('bucardo.status --json')).data.daemon.running,
    true,
    'replication keeps running',
  );
  const triggers = await query(
    a,
    'hold_a',
    "SELECT tgname FROM pg_trigger WHERE tgrelid = 'public.accounts'::regclass AND tgname LIKE 'bucardo%'",
  );
  assert.ok(triggers.length >= 2, 'the triggers stay');

  // Repaired on the secondary: the same run (writes still stopped) now switches, comparing the same few keys.
  await query(b, 'hold_b', 'UPDATE public.accounts SET balance = 2002 WHERE id = 2');
  const done = await tool('cutover.finish --writes-stopped --json');
  assert.equal(done.code, 0, done.stdout + done.stderr);
  const finished = outcome(done).data;
  assert.ok(
    finished.finalCheck.keysCompared >= 1 && finished.finalCheck.keysCompared <= 5,
    `${finished.finalCheck.keysCompared} key(s) compared`,
  );
  assert.ok(
    finished.pause.seconds > 0 && finished.pause.seconds < 120,
    `the pause is reported (${finished.pause.seconds} s)`,
  );
  assert.deepEqual(
    await query(
      a,
      'hold_a',
      "SELECT target FROM bucardo.bucardo_delta_targets WHERE target LIKE 'cutover hold%'",
    ),
    [],
    'the hold is lifted',
  );
});
