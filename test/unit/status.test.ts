// Pure parts of bucardo.status: durations for people, the states' exit codes and precedence, --watch.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { judge } from '../../plugins/bucardo/status.js';
import type { StatusData } from '../../plugins/bucardo/status-data.js';
import {
  formatBytes,
  formatCopy,
  formatDuration,
  STATE_EXIT_CODES,
} from '../../plugins/bucardo/status-format.js';
import { watchSeconds } from '../../plugins/bucardo/status-watch.js';

test('durations read as the two largest units', () => {
  assert.equal(formatDuration(0), '0 s');
  assert.equal(formatDuration(42), '42 s');
  assert.equal(formatDuration(185), '3 min 5 s');
  assert.equal(formatDuration(3600), '1 h');
  assert.equal(formatDuration(93_784), '1 d 2 h');
  assert.equal(formatDuration(86_400 + 59), '1 d');
  assert.equal(formatBytes(1536), '1.5 KB');
  assert.equal(formatBytes(300 * 1024 ** 3), '300 GB');
});

test('each state has its documented exit code', () => {
  assert.deepEqual(STATE_EXIT_CODES, {
    'caught up': 0,
    lagging: 1,
    copying: 1,
    stopped: 2,
    stalled: 2,
    failed: 2,
    unknown: 3,
    drift: 4,
  });
});

const base: StatusData = {
  schemaVersion: 1,
  checkedAt: '',
  job: 'j',
  state: 'unknown',
  exitCode: 3,
  verdict: '',
  installed: true,
  daemon: { running: true },
  sync: { name: 'j', exists: true, loaded: true },
  copy: { state: 'done' },
  pending: [],
  pendingTotal: 0,
  stalls: [],
  unreachable: [],
  problems: [],
};

test('states: unreachable beats everything, then stopped, stalled, failed, copying, lagging', () => {
  assert.deepEqual(judge(base), { state: 'caught up', verdict: 'caught up' });
  assert.equal(
    judge({ ...base, installed: false, unreachable: ['cannot reach the primary (refused)'] }).verdict,
    'unknown: cannot reach the primary (refused)',
  );
  assert.equal(judge({ ...base, installed: false }).state, 'stopped');
  assert.equal(
    judge({ ...base, daemon: { running: false }, pendingTotal: 3, oldestPendingSeconds: 185 }).verdict,
    'daemon stopped: 3 change(s) pending, oldest 3 min 5 s',
  );
  const stall = {
    kind: 'stuck statement' as const,
    role: 'secondary' as const,
    seconds: 9,
    cause: 'stuck',
    fix: 'unstick',
  };
  assert.equal(judge({ ...base, stalls: [stall], pendingTotal: 1 }).state, 'stalled');
  const failed = {
    ...base,
    pendingTotal: 1,
    sync: {
      ...base.sync!,
      lastGood: '2026-01-01T00:00:00Z',
      lastBad: '2026-01-01T00:01:00Z',
      lastError: 'boom',
    },
  };
  assert.deepEqual(judge(failed), { state: 'failed', verdict: 'FAILED: the last sync run failed: boom' });
  const copying = {
    ...base,
    copy: {
      state: 'running' as const,
      tablesDone: 3,
      tablesTotal: 120,
      table: 'sales.orders',
      tablePercent: 40,
      remainingSeconds: 7200,
    },
  };
  assert.deepEqual(judge(copying), {
    state: 'copying',
    verdict: 'copy running (3 of 120 tables done, sales.orders 40%, about 2 h left)',
  });
  assert.equal(judge({ ...base, pendingTotal: 2, oldestPendingSeconds: 1 }).state, 'lagging');
});

test('copy progress in one line, and between tables only the totals', () => {
  assert.equal(
    formatCopy({
      state: 'running',
      tablesDone: 3,
      tablesTotal: 120,
      bytesDone: 41 * 1024 ** 3,
      bytesTotal: 300 * 1024 ** 3,
      table: 'sales.orders',
      rows: 120_000,
      tableRows: 300_000,
      tablePercent: 40,
      elapsedSeconds: 125,
      remainingSeconds: 3600,
    }),
    'running, 3 of 120 tables, 41 GB of 300 GB, sales.orders 120,000 of ~300,000 rows (40%), 2 min 5 s elapsed, about 1 h left',
  );
  assert.equal(
    formatCopy({ state: 'running', tablesTotal: 7, bytesTotal: 2_621_440 }),
    'running, 7 tables in all, 2.5 MB in all, between tables',
  );
  // No estimate of the table's rows (issue 31): the rows so far, never "of ~0 rows (0%)".
  assert.equal(
    formatCopy({ state: 'running', tablesDone: 0, tablesTotal: 1, table: 'public.acct', rows: 876_999 }),
    'running, 0 of 1 tables, public.acct 876,999 rows so far',
  );
});

test('--watch takes an optional interval; other arguments are refused', () => {
  assert.equal(watchSeconds(undefined), undefined);
  assert.equal(watchSeconds(5), 5);
  assert.throws(() => watchSeconds(0), /1 to 3600 seconds/);
  assert.throws(() => watchSeconds(7200), /1 to 3600 seconds/);
});

test('a command after the options runs alone: -c job.yml status --json', async () => {
  const { parseArguments } = await import('../../src/shell/args.js');
  const options = parseArguments(['-c', 'job.yml', 'status', '--json']);
  assert.equal(options.command, 'status --json');
  assert.equal(options.json, true);
  assert.equal(parseArguments(['-c', 'job.yml', 'c2.status', '--watch', '5']).command, 'c2.status --watch 5');
});
