// The core's shared mechanisms without a database: rounds (attempts, pauses, stopping when nothing
// is pending), the retry policy's backoff, the worker pool (tasks adding tasks, the first failure
// stopping every worker, an interrupt), slots shared by independent callers, announcements to the
// enabled plugins, and the cascade's A→B job.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Activity } from '../../src/core/activity.js';
import { upstreamJob } from '../../src/core/cascade.js';
import { InterruptedError } from '../../src/core/errors.js';
import type { Job } from '../../src/core/job.js';
import { createAnnouncer, definePlugin, type CommandContext } from '../../src/core/plugin.js';
import { attempt, runPool, Slots } from '../../src/core/pool.js';
import { backoffBeforeRound, lockRounds, runRounds, type RoundsPolicy } from '../../src/core/rounds.js';
import { retryPolicy } from '../../plugins/retry/settings.js';

const noPause = (attempts: number): RoundsPolicy => ({ timeoutMs: 1, attempts, pauseBeforeRound: () => 0 });

test('rounds: run while something is pending, at most attempts, pausing only before later rounds', async () => {
  let left = 3;
  const ran: number[] = [];
  const rounds = await runRounds(noPause(5), new Activity(), {
    pending: () => left > 0,
    round: async (n) => {
      ran.push(n);
      left -= 1;
    },
  });
  assert.equal(rounds, 3);
  assert.deepEqual(ran, [1, 2, 3]);
  const none = await runRounds(noPause(5), new Activity(), {
    pending: () => false,
    round: async () => assert.fail('no round'),
  });
  assert.equal(none, 0);
  assert.equal(
    await runRounds(noPause(2), new Activity(), { pending: () => true, round: async () => undefined }),
    2,
  );
  const pauses: [number, number][] = [];
  const policy: RoundsPolicy = { timeoutMs: 1, attempts: 3, pauseBeforeRound: (n) => (n > 1 ? 5 : 0) };
  await runRounds(policy, new Activity(), {
    pending: () => true,
    pausing: (n, ms) => pauses.push([n, ms]),
    round: async () => undefined,
  });
  assert.deepEqual(pauses, [
    [2, 5],
    [3, 5],
  ]);
});

test('rounds: an interrupt during the pause ends them with InterruptedError', async () => {
  const activity = new Activity();
  const policy: RoundsPolicy = { timeoutMs: 1, attempts: 3, pauseBeforeRound: (n) => (n > 1 ? 60_000 : 0) };
  const running = runRounds(policy, activity, {
    pending: () => true,
    pausing: () => void activity.interrupt(),
    round: async () => undefined,
  });
  await assert.rejects(running, InterruptedError);
});

test('retry policy: backoff doubles from round 2, capped at a minute (or the backoff when larger)', () => {
  const settings = { timeoutMs: 100, attempts: 9, backoffMs: 5000 };
  const pauses = [1, 2, 3, 4, 5, 6].map((n) => backoffBeforeRound(settings.backoffMs, n));
  assert.deepEqual(pauses, [0, 5000, 10000, 20000, 40000, 60000]);
  assert.equal(backoffBeforeRound(90_000, 4), 90_000);
  const job = { config: { pluginSettings: { retry: settings } } } as unknown as Job;
  const policy = retryPolicy(job.config);
  assert.equal(policy.timeoutMs, 100);
  assert.equal(policy.attempts, 9);
  assert.equal(policy.pauseBeforeRound(3), 10000);
  assert.equal(retryPolicy({ pluginSettings: {} } as unknown as Job['config']).attempts, 5);
  // The core follows the rounds the retry plugin registered on the job, never its section.
  const fixed = {
    config: { pluginSettings: { retry: settings }, bucardo: { lockTimeoutMs: 700 } },
  } as unknown as Job;
  assert.equal(lockRounds(fixed).policy.timeoutMs, 700);
  const tuned = lockRounds({ ...fixed, tunedRounds: { ...settings, setting: 'retry.timeout' } });
  assert.deepEqual(
    [tuned.policy.timeoutMs, tuned.setting, tuned.policy.pauseBeforeRound(3)],
    [100, 'retry.timeout', 10000],
  );
});

test('pool: workers share the queue, a task may add tasks, each worker keeps its resource', async () => {
  const queue = [1, 2, 3];
  const seen: [number, string][] = [];
  await runPool<string, number>({
    workers: 2,
    activity: new Activity(),
    withResource: (index, loop) => loop(`w${index}`),
    next: () => queue.shift(),
    work: async (task, resource) => {
      seen.push([task, resource]);
      if (task === 1) queue.push(4);
      await new Promise((resolve) => setTimeout(resolve, 5));
    },
  });
  assert.deepEqual(seen.map(([task]) => task).sort(), [1, 2, 3, 4]);
  assert.deepEqual([...new Set(seen.map(([, w]) => w))].sort(), ['w0', 'w1']);
});

test('pool: the first failing task stops every worker and is thrown; an interrupt ends it', async () => {
  const queue = [1, 2, 3, 4, 5, 6];
  const done: number[] = [];
  await assert.rejects(
    runPool<null, number>({
      workers: 2,
      activity: new Activity(),
      withResource: (_, loop) => loop(null),
      next: () => queue.shift(),
      work: async (task) => {
        if (task === 2) throw new Error('task 2 broke');
        await new Promise((resolve) => setTimeout(resolve, 5));
        done.push(task);
      },
    }),
    /task 2 broke/,
  );
  assert.ok(done.length <= 2, `stopped early (done ${done.join(', ')})`);
  const activity = new Activity();
  await assert.rejects(
    runPool<null, number>({
      workers: 1,
      activity,
      withResource: (_, loop) => loop(null),
      next: () => 1,
      work: async () => void activity.interrupt(),
    }),
    InterruptedError,
  );
  const failed = await attempt(async () => {
    throw new Error('no');
  });
  assert.equal(failed.error, 'no');
  assert.equal((await attempt(async () => undefined)).error, undefined);
});

test('slots: at most size tasks at once across independent callers, the rest in arrival order', async () => {
  const slots = new Slots(2);
  let running = 0;
  let most = 0;
  const started: number[] = [];
  const task = (n: number, ms: number) =>
    slots.run(async () => {
      started.push(n);
      running += 1;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, ms));
      running -= 1;
      return n;
    });
  const failing = slots.run(async () => {
    throw new Error('boom');
  });
  await assert.rejects(failing, /boom/);
  const results = await Promise.all([task(1, 30), task(2, 10), task(3, 5), task(4, 5)]);
  assert.deepEqual(results, [1, 2, 3, 4]);
  assert.equal(most, 2, 'never more than two at once; a failed task gave its slot back');
  assert.deepEqual(started, [1, 2, 3, 4]);
});

test('announce: only enabled plugins with a listener hear it, in the order given, lines prefixed', async () => {
  const heard: string[] = [];
  const listener = (name: string) =>
    definePlugin({
      name,
      summary: '',
      commands: {},
      events: {
        tableCopied: async (_ctx, table) => {
          heard.push(`${name}:${table.schema}.${table.name}`);
          return [`saw ${table.name}`];
        },
      },
    });
  const plugins = [
    listener('indexes'),
    listener('other'),
    definePlugin({ name: 'quiet', summary: '', commands: {} }),
  ];
  const announce = createAnnouncer(plugins, ['quiet', 'indexes'], () => ({}) as CommandContext);
  const lines = await announce.tableCopied({ schema: 'public', name: 'Orders' });
  assert.deepEqual(heard, ['indexes:public.Orders'], 'a plugin that is not enabled hears nothing');
  assert.deepEqual(lines, ['indexes: saw Orders']);
});

test("cascade: the A→B job is the loaded job whose cascade secondary is this job's primary, only that", () => {
  const db = (host: string, dbname: string, cascade = false) => ({ host, port: 5432, dbname, cascade });
  const job = (name: string, primary: object, secondary: object) =>
    ({ name, config: { databases: { primary, secondary } } }) as unknown as Job;
  // The B→C job spells B's host in capitals: hosts compare case-insensitively.
  const bc = job('bc', db('DB1', 'b', true), db('db2', 'c'));
  const ab = job('ab', db('db0', 'a'), db('db1', 'b', true));
  const other = job('xy', db('db0', 'x'), db('db9', 'y', true));
  assert.equal(upstreamJob(bc, [bc, other, ab]), ab);
  assert.equal(upstreamJob(bc, [bc, other]), undefined);
});
