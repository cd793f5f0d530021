// The operator's shell, driven through a real pseudo-terminal: menu, Tab completion, history across
// sessions, unknown commands, Ctrl-C cancelling a running statement on the server, exit; and list mode.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { clusters, query, runTool, tempDir, waitFor, writeJobConfig } from '../support/harness.js';
import { KEYS, PtySession } from '../support/pty.js';

const PROMPT = /Enter the command you wish to run here, or type "exit": $/;
let configFile = '';
let secondConfig = '';
let historyFile = '';
const sessions: PtySession[] = [];

function shell(args: string[] = ['-c', configFile]): PtySession {
  const session = new PtySession(args, { BUCARDO_CONSOLE_HISTORY: historyFile });
  sessions.push(session);
  return session;
}

before(async () => {
  const { a, b } = await clusters();
  const job = {
    plugins: ['bucardo', 'sleeper'],
    primary: { cluster: a, dbname: 'postgres' },
    secondary: { cluster: b, dbname: 'postgres' },
  };
  configFile = writeJobConfig({ name: 'shell_one', ...job }).file;
  secondConfig = writeJobConfig({ name: 'shell_two', ...job }).file;
  historyFile = path.join(tempDir('history'), 'history');
});

after(() => {
  for (const session of sessions) session.kill();
});

test('menu, Tab completion (one and two Tabs), unknown command with suggestion, help, exit', async () => {
  const session = shell();
  let at = await session.waitFor(PROMPT);
  assert.match(
    session.output,
    /Commands for bucardo: .*\n(.*\n)*\s+bucardo\.install: check everything first/,
  );
  assert.ok(
    session.output.indexOf('Commands for bucardo') < session.output.indexOf('Commands for sleeper'),
    'bucardo first',
  );
  session.send(`sleeper.o${KEYS.tab}`);
  at = await session.waitFor(/sleeper\.ok/, 5000, at);
  session.send(KEYS.enter);
  at = await session.waitFor(/Check: ok is fine Pass\./, 10_000, at);
  at = await session.waitFor(PROMPT, 5000, at);
  session.send(`bucardo.st${KEYS.tab}${KEYS.tab}`);
  at = await session.waitFor(/bucardo\.start\s+bucardo\.stop\s+bucardo\.status/, 5000, at);
  session.send(`${KEYS.ctrlU}bucardo.instal${KEYS.enter}`);
  at = await session.waitFor(
    /Unknown command 'bucardo\.instal'\. Did you mean 'bucardo\.install'\?/,
    5000,
    at,
  );
  session.send(`help${KEYS.enter}`);
  at = await session.waitFor(/Commands for sleeper/, 5000, at);
  await session.waitFor(PROMPT, 5000, at);
  session.send(`exit${KEYS.enter}`);
  assert.equal(await session.exited, 0);
});

test('history is kept across sessions: Up recalls the last command of the previous session', async () => {
  const first = shell();
  let at = await first.waitFor(PROMPT);
  first.send(`sleeper.unchecked${KEYS.enter}`);
  at = await first.waitFor(/unchecked ran/, 10_000, at);
  await first.waitFor(PROMPT, 5000, at);
  first.send(KEYS.ctrlD);
  assert.equal(await first.exited, 0, 'Ctrl-D leaves');

  const second = shell();
  at = await second.waitFor(PROMPT);
  second.send(KEYS.up);
  at = await second.waitFor(/sleeper\.unchecked/, 5000, at);
  second.send(KEYS.enter);
  at = await second.waitFor(/unchecked ran/, 10_000, at);
  await second.waitFor(PROMPT, 5000, at);
  second.send(`exit${KEYS.enter}`);
  assert.equal(await second.exited, 0);
});

test('Ctrl-C during a long statement cancels it on the server and returns to the prompt; Ctrl-C at the prompt leaves', async () => {
  const { a } = await clusters();
  const session = shell();
  let at = await session.waitFor(PROMPT);
  session.send(`sleeper.sleep${KEYS.enter}`);
  const sleeping = await waitFor(
    async () => {
      const rows = await query<{ pid: number }>(
        a,
        'postgres',
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'sleeper-test' AND query LIKE 'SELECT pg_sleep%' AND state = 'active'",
      );
      return rows[0]?.pid;
    },
    15_000,
    'the pg_sleep statement to run',
  );
  session.send(KEYS.ctrlC);
  at = await session.waitFor(/sleeper\.sleep was interrupted\./, 10_000, at);
  await session.waitFor(
    /cancelled the running statement on primary database "postgres".*\(backend \d+\)/,
    5000,
    at,
  );
  at = await session.waitFor(PROMPT, 10_000, at);
  const left = await query(a, 'postgres', 'SELECT pid FROM pg_stat_activity WHERE pid = $1', [sleeping]);
  assert.equal(left.length, 0, 'the backend is gone from pg_stat_activity');
  session.send(KEYS.ctrlC);
  assert.equal(await session.exited, 0);
});

test('list mode: exit 0 when every command and check passes; a command without a check counts as passed', async () => {
  const result = await runTool(['-c', configFile, '-l', 'sleeper.ok sleeper.unchecked']);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /Check: ok is fine Pass\./);
  assert.match(
    result.stdout,
    /Summary: ran 2 of 2 command\(s\); passed: sleeper\.ok, sleeper\.unchecked; failed: none\./,
  );
});

test('list mode stops at the first failed check with a non-zero exit and says what did not run', async () => {
  const result = await runTool(['-c', configFile, '-l', 'sleeper.ok sleeper.bad_check sleeper.unchecked']);
  assert.equal(result.code, 1);
  assert.match(result.stdout, /Check: bad_check is fine Fail\. on purpose/);
  assert.doesNotMatch(result.stdout, /unchecked ran/);
  assert.match(
    result.stdout,
    /Summary: ran 2 of 3 command\(s\); passed: sleeper\.ok; failed: sleeper\.bad_check; not run: sleeper\.unchecked\./,
  );
  assert.match(result.stderr, /sleeper\.bad_check: check 'bad_check is fine' failed \(on purpose\)/);
});

test('list mode with --json prints one object per command and a summary', async () => {
  const result = await runTool(['-c', configFile, '--json', '-l', 'sleeper.ok sleeper.bad_check']);
  assert.equal(result.code, 1);
  const objects = result.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.deepEqual(
    objects.map((o) => o['command'] ?? 'summary'),
    ['sleeper.ok', 'sleeper.bad_check', 'summary'],
  );
  assert.equal(objects[0]!['ok'], true);
  assert.equal(objects[1]!['ok'], false);
  assert.deepEqual((objects[2]!['summary'] as Record<string, string[]>)['failed'], ['sleeper.bad_check']);
});

test('an unknown command or argument anywhere in a list: exit 2, every problem named, nothing run', async () => {
  const result = await runTool(['-c', configFile, '-l', 'sleeper.ok sleeper.okk sleeper.unchecked --fast']);
  assert.equal(result.code, 2, result.stdout + result.stderr);
  assert.match(result.stderr, /Unknown command 'sleeper\.okk'\. Did you mean 'sleeper\.ok'\?/);
  assert.match(
    result.stderr,
    /sleeper\.unchecked does not accept '--fast'\. sleeper\.unchecked accepts --json, --help/,
  );
  assert.match(result.stderr, /Nothing was run: the list has 2 problem\(s\)/);
  assert.doesNotMatch(result.stdout, /ok ran|== sleeper/, 'the first, valid command did not run either');
});

test('at the prompt: help <command> and <command> --help show its arguments, Tab completes them; an unknown one is refused', async () => {
  const session = shell();
  let at = await session.waitFor(PROMPT);
  session.send(`help bucardo.change_config${KEYS.enter}`);
  at = await session.waitFor(/Usage: bucardo\.change_config \[SETTING=VALUE\] \[--json\]/, 5000, at);
  at = await session.waitFor(PROMPT, 5000, at);
  session.send(`bucardo.status --help${KEYS.enter}`);
  at = await session.waitFor(/--watch \[SECONDS\] +redraw the status every SECONDS/, 5000, at);
  at = await session.waitFor(PROMPT, 5000, at);
  session.send(`bucardo.status --wa${KEYS.tab}`);
  at = await session.waitFor(/bucardo\.status --watch/, 5000, at);
  session.send(`${KEYS.ctrlU}help bucardo.change_c${KEYS.tab}`);
  at = await session.waitFor(/help bucardo\.change_config/, 5000, at);
  session.send(KEYS.ctrlU);
  session.send(`sleeper.ok --quick${KEYS.enter}`);
  at = await session.waitFor(/sleeper\.ok does not accept '--quick'\.[^]*Nothing was run\./, 5000, at);
  at = await session.waitFor(PROMPT, 5000, at);
  assert.doesNotMatch(session.output, /ok ran/);
  session.send(`sleeper.ok --json${KEYS.enter}`);
  at = await session.waitFor(/\{"command":"sleeper\.ok","ok":true,"message":"ok ran"/, 10_000, at);
  await session.waitFor(PROMPT, 5000, at);
  session.send(`exit${KEYS.enter}`);
  assert.equal(await session.exited, 0);
});

test('two configs: c1./c2. prefixes reach each job; an unknown prefix is named', async () => {
  const result = await runTool([
    '-c1',
    configFile,
    '-c2',
    secondConfig,
    '-l',
    'c2.sleeper.ok c1.sleeper.unchecked sleeper.ok',
  ]);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /== c2\.sleeper\.ok/);
  assert.match(result.stdout, /== c1\.sleeper\.unchecked/);
  const bad = await runTool(['-c1', configFile, '-c2', secondConfig, '-l', 'c3.sleeper.ok']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /There is no c3 in this session: use c1\. or c2\./);
});

test('--help lists the options and every command; a bad config exits 2 with the problems', async () => {
  const help = await runTool(['--help', '-c', configFile]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /-l, --list "CMDS"/);
  assert.match(help.stdout, /bucardo\.wait_for_copy: /);
  assert.match(help.stdout, /bucardo\.change_config \[SETTING=VALUE\]: /);
  assert.match(help.stdout, /sleeper\.sleep: runs SELECT pg_sleep/);
  const missing = await runTool(['-c', '/nonexistent/job.yml', '-l', 'bucardo.status']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /cannot read the file: it does not exist/);
});
