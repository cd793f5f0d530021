// The console's audit log: one JSON line per command, in shell and list mode, with who, which config,
// the arguments, start, end, outcome and checks; a password given through password_env never shows.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { clusters, runTool, writeJobConfig } from '../support/harness.js';

const SECRET = 'pw-Audit-7f3e9c';

test('every command leaves one audit line; the password of password_env never appears', async () => {
  const { a, b } = await clusters();
  const job = writeJobConfig({
    name: 'audit',
    primary: { cluster: a, dbname: 'postgres' },
    secondary: { cluster: b, dbname: 'postgres' },
    extra: {},
  });
  // password_env on the primary: the clusters trust local connections, so the password is only carried.
  const yaml = readFileSync(job.file, 'utf8').replace(
    /(primary:\n(?: {4}.*\n)*?)( {4}cascade)/,
    `$1    password_env: AUDIT_PASSWORD\n$2`,
  );
  (await import('node:fs')).writeFileSync(job.file, yaml);
  assert.match(readFileSync(job.file, 'utf8'), /password_env: AUDIT_PASSWORD/);
  const env = { AUDIT_PASSWORD: SECRET };

  // A list with a refused argument runs nothing, so it leaves no audit line (the runner checks the whole
  // list first). At the prompt a refused argument is a command the operator tried: it is recorded, and a
  // password typed where it does not belong is masked there too.
  const list = await runTool(['-c', job.file, '-l', `bucardo.status bucardo.status --note=${SECRET}`], {
    env,
  });
  assert.equal(list.code, 2, list.stdout + list.stderr);
  // Without a terminal the prompt reads one line: one shell per command.
  const shell = await runTool(['-c', job.file], { env, input: 'status\n' });
  assert.equal(shell.code, 0, shell.stdout + shell.stderr);
  const refused = await runTool(['-c', job.file], { env, input: `bucardo.status --note=${SECRET}\n` });
  assert.match(refused.stdout + refused.stderr, /does not accept/);
  const unknown = await runTool(['-c', job.file], { env, input: 'bucardo.nosuch\n' });
  assert.match(unknown.stdout + unknown.stderr, /Unknown command/);
  const unknownCommand = await runTool(['-c', job.file, '-l', 'bucardo.wait_for_copy'], { env });
  assert.equal(unknownCommand.code, 1);

  const text = readFileSync(path.join(job.logDir, 'console.audit.jsonl'), 'utf8');
  assert.ok(!text.includes(SECRET), 'the password is not in the audit log');
  const lines = text
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.deepEqual(
    lines.map((l) => l['command']),
    ['bucardo.status', 'bucardo.status', 'bucardo.wait_for_copy'],
  );
  const [first, second, failed] = lines;
  assert.equal(first!['user'], os.userInfo().username);
  assert.equal(first!['config'], job.file);
  assert.equal(first!['outcome'], 'ok');
  assert.equal(first!['exitCode'], 2, "the state's code is recorded");
  assert.deepEqual(second!['args'], ['--note=********']);
  assert.equal(second!['outcome'], 'failed');
  assert.match(String(second!['error']), /does not accept '--note=\*{8}'/);
  assert.ok(Date.parse(String(first!['startedAt'])) <= Date.parse(String(first!['endedAt'])));
  assert.equal(failed!['outcome'], 'failed');
  assert.match(
    String(failed!['error'] ?? (failed!['checks'] as { detail?: string }[]).map((c) => c.detail).join()),
    /./,
  );
});
