// Declared command arguments through the real shell: a mistyped argument anywhere in a list refuses
// the whole list before anything runs (the old shell dropped the indexes on `indexes.drop --dryrun`),
// help shows a command's arguments, and a malformed assignment is refused; and the indexes plugin's
// hook that refuses bucardo.uninstall while a dropped index is not rebuilt.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ClusterInfo } from '../../src/sandbox/cluster.js';
import {
  clusters,
  dropDatabase,
  freshDatabase,
  query,
  runTool,
  writeJobConfig,
  type ToolResult,
} from '../support/harness.js';
import { KEYS, PtySession } from '../support/pty.js';

const SCHEMA = `
CREATE TABLE public.orders (id bigint PRIMARY KEY, customer int, note text);
CREATE INDEX orders_customer ON public.orders (customer);
`;
const PROMPT = /Enter the command you wish to run here, or type "exit": $/;

let a: ClusterInfo;
let b: ClusterInfo;
let job: { file: string };
const sessions: PtySession[] = [];

function tool(commands: string, ...more: string[]): Promise<ToolResult> {
  return runTool(['-c', job.file, '-l', commands, ...more], { timeoutMs: 120_000 });
}

async function metadataDatabaseExists(): Promise<boolean> {
  return (await query(a, 'postgres', "SELECT 1 FROM pg_database WHERE datname = 'bucardo'")).length > 0;
}

async function secondaryIndexes(): Promise<string[]> {
  const rows = await query<{ name: string }>(
    b,
    'args_b',
    "SELECT indexname AS name FROM pg_indexes WHERE tablename = 'orders' ORDER BY 1",
  );
  return rows.map((r) => r.name);
}

before(async () => {
  ({ a, b } = await clusters());
  await dropDatabase(a, 'bucardo');
  await freshDatabase(a, 'args_a', SCHEMA);
  // Well over indexes.larger_than: without the argument check, indexes.drop would drop orders_customer.
  await query(
    a,
    'args_a',
    "INSERT INTO public.orders SELECT g, g % 100, repeat('x', 100) FROM generate_series(1, 5000) g",
  );
  await query(a, 'args_a', 'ANALYZE');
  await freshDatabase(b, 'args_b', SCHEMA);
  job = writeJobConfig({
    name: 'args_ab',
    plugins: ['bucardo', 'indexes'],
    primary: { cluster: a, dbname: 'args_a' },
    secondary: { cluster: b, dbname: 'args_b' },
    metadata: a,
    extra: { indexes: { larger_than: '64 kB' } },
  });
});

after(async () => {
  for (const session of sessions) session.kill();
  if (a) await dropDatabase(a, 'bucardo').catch(() => undefined);
});

test('-l "bucardo.install indexes.drop --dryrun": exit 2, nothing installed, nothing dropped, the fix suggested', async () => {
  const result = await tool('bucardo.install indexes.install indexes.drop --dryrun');
  assert.equal(result.code, 2, result.stdout + result.stderr);
  assert.match(
    result.stderr,
    /indexes\.drop does not accept '--dryrun'\. Did you mean '--dry-run'\? indexes\.drop accepts --dry-run, --upstream-copy-done, --target NAME, --json, --help/,
  );
  assert.match(result.stderr, /Nothing was run: the list has 1 problem\(s\)/);
  assert.doesNotMatch(result.stdout, /== bucardo\.install|Preflight/);
  assert.equal(await metadataDatabaseExists(), false, 'bucardo.install, listed first, did not run');
  assert.deepEqual(await secondaryIndexes(), ['orders_customer', 'orders_pkey']);

  // --json gets the same refusal as one object, for scripts.
  const json = await tool('indexes.drop --dryrun', '--json');
  assert.equal(json.code, 2);
  const refusal = JSON.parse(json.stdout.trim()) as { ok: boolean; errors: string[] };
  assert.equal(refusal.ok, false);
  assert.match(refusal.errors[0]!, /Did you mean '--dry-run'\?/);
});

test('the correctly spelled --dry-run runs the list and still drops nothing', async () => {
  const result = await tool('bucardo.install indexes.install indexes.drop --dry-run');
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /orders_customer/, 'the index the real run would drop is listed');
  assert.equal(await metadataDatabaseExists(), true);
  assert.deepEqual(await secondaryIndexes(), ['orders_customer', 'orders_pkey']);
});

test('a plugin hook: bucardo.uninstall is refused while an index indexes.drop dropped is not rebuilt', async () => {
  const dropped = await tool('indexes.drop');
  assert.equal(dropped.code, 0, dropped.stdout + dropped.stderr);
  assert.deepEqual(await secondaryIndexes(), ['orders_pkey']);
  const refused = await tool('bucardo.uninstall');
  assert.equal(refused.code, 1, refused.stdout + refused.stderr);
  assert.match(
    refused.stderr,
    /1 index\(es\) were dropped on the secondary by indexes\.drop and not rebuilt \(public\.orders_customer\); .* Run indexes\.recreate first, then bucardo\.uninstall again\. Nothing was changed\./,
  );
  assert.equal(await metadataDatabaseExists(), true, 'the definitions are still there');
  const rebuilt = await tool('indexes.recreate --now');
  assert.equal(rebuilt.code, 0, rebuilt.stdout + rebuilt.stderr);
  assert.deepEqual(await secondaryIndexes(), ['orders_customer', 'orders_pkey']);
});

test('bucardo.change_config with a malformed assignment is refused before it runs', async () => {
  const before = await query<{ setting: string }>(
    a,
    'bucardo',
    "SELECT setting FROM bucardo.bucardo_config WHERE name = 'log_level'",
  );
  for (const [words, reason] of [
    [
      'log_level',
      /'log_level' is not a command, and bucardo\.change_config does not accept 'log_level'\. bucardo\.change_config accepts SETTING=VALUE/,
    ],
    ['log_level=', /'log_level=' gives log_level no value; write log_level=VALUE/],
    ['=verbose', /'=verbose' has no name before '='\. Write SETTING=VALUE/],
    ['log_level=verbose log_showpid=1', /gives a setting a second time/],
  ] as const) {
    const result = await tool(`bucardo.change_config ${words}`);
    assert.equal(result.code, 2, `${words}: ${result.stdout}${result.stderr}`);
    assert.match(result.stderr, reason);
  }
  assert.deepEqual(
    await query(a, 'bucardo', "SELECT setting FROM bucardo.bucardo_config WHERE name = 'log_level'"),
    before,
    'unchanged',
  );
  const good = await tool('bucardo.change_config log_level=verbose');
  assert.equal(good.code, 0, good.stdout + good.stderr);
  assert.match(good.stdout, /Check: log_level is stored as 'verbose' Pass\./);
});

test('bucardo.change_config at the prompt: the setting chosen there is read back from Bucardo by its check', async () => {
  const session = new PtySession(['-c', job.file], {});
  sessions.push(session);
  let at = await session.waitFor(PROMPT);
  session.send(`bucardo.change_config${KEYS.enter}`);
  at = await session.waitFor(/Which setting\?/, 15_000, at);
  // The list searches as one types: the first match is selected.
  session.send('log_showline');
  at = await session.waitFor(/❯ log_showline = /, 5000, at);
  session.send(KEYS.enter);
  at = await session.waitFor(/New value for log_showline:/, 5000, at);
  session.send(`1${KEYS.enter}`);
  at = await session.waitFor(/Set log_showline from '0' to '1'\./, 15_000, at);
  at = await session.waitFor(/Check: log_showline is stored as '1' Pass\./, 15_000, at);
  await session.waitFor(PROMPT, 5000, at);
  session.send(`exit${KEYS.enter}`);
  assert.equal(await session.exited, 0);
  const stored = await query<{ setting: string }>(
    a,
    'bucardo',
    "SELECT setting FROM bucardo.bucardo_config WHERE name = 'log_showline'",
  );
  assert.deepEqual(stored, [{ setting: '1' }]);
});

test('help indexes.drop at the prompt, and indexes.drop --help at the prompt and in a list, show its arguments', async () => {
  const listed = await tool('indexes.drop --help bucardo.uninstall');
  assert.equal(listed.code, 0, listed.stdout + listed.stderr);
  assert.match(
    listed.stdout,
    /Usage: indexes\.drop \[--dry-run\] \[--upstream-copy-done\] \[--target NAME\] \[--json\]/,
  );
  assert.match(listed.stdout, /--dry-run +list what would be dropped and kept; drop nothing/);
  assert.match(listed.stdout, /Nothing was run/);
  assert.equal(await metadataDatabaseExists(), true, 'bucardo.uninstall in the same list did not run');

  const session = new PtySession(['-c', job.file], {});
  sessions.push(session);
  let at = await session.waitFor(PROMPT);
  session.send(`help indexes.drop${KEYS.enter}`);
  at = await session.waitFor(/--upstream-copy-done +on a B→C job/, 5000, at);
  at = await session.waitFor(PROMPT, 5000, at);
  session.send(`indexes.drop --help${KEYS.enter}`);
  at = await session.waitFor(/Usage: indexes\.drop \[--dry-run\]/, 5000, at);
  at = await session.waitFor(PROMPT, 5000, at);
  session.send(`indexes.drop --dryrun${KEYS.enter}`);
  at = await session.waitFor(/Did you mean '--dry-run'\?[^]*Nothing was run\./, 5000, at);
  await session.waitFor(PROMPT, 5000, at);
  session.send(`exit${KEYS.enter}`);
  assert.equal(await session.exited, 0);
  assert.deepEqual(await secondaryIndexes(), ['orders_customer', 'orders_pkey']);

  const removed = await tool('bucardo.uninstall');
  assert.equal(removed.code, 0, removed.stdout + removed.stderr);
});
