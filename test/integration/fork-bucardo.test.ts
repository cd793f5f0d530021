// The fork_bucardo plugin on real clusters and the real Bucardo daemon: one job runs a fork whose
// changes alter messages the CLI, the MCP, the controller and the kid write, and the documented
// delta-count change; a second job beside it, on the packaged Bucardo, writes none of them. Applying
// is idempotent, a pattern that matches nothing changes nothing, revert goes back to the packaged
// Bucardo, and the installed files are byte-identical before and after.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import yaml from 'js-yaml';
import type { ClusterInfo } from '../../src/sandbox/cluster.js';
import {
  clusters,
  dropDatabase,
  freshDatabase,
  query,
  runTool,
  tempDir,
  waitFor,
  writeJobConfig,
} from '../support/harness.js';
import type { ToolResult } from '../support/harness.js';

const INSTALLED = ['/usr/bin/bucardo', '/usr/share/perl5/Bucardo.pm', '/usr/share/bucardo/bucardo.schema'];
const SCHEMA = 'CREATE TABLE public.items (id serial PRIMARY KEY, label text NOT NULL);';
const METADATA = ['bucardo_fork_f', 'bucardo_fork_p'];

const PM = '/usr/share/perl5/Bucardo.pm';
const CHANGES = {
  // The line the CLI appends to the reason file's log at every start (`|` is plain text in sed).
  cli_reason: {
    file: '/usr/bin/bucardo',
    pattern: 'sprintf "%s | %-5s | %s',
    replacement: 'sprintf "forked CLI %s | %-5s | %s',
  },
  mcp_start: {
    file: PM,
    pattern: 'Starting Bucardo version',
    replacement: 'Starting forked Bucardo version',
  },
  controller_start: {
    file: PM,
    pattern: 'New controller for sync',
    replacement: 'New forked controller for sync',
  },
  kid_start: { file: PM, pattern: 'New kid, sync', replacement: 'New forked kid, sync' },
  // The documented use: the kid logs its delta count in normal mode when there are deltas.
  log_deltacounts: {
    file: PM,
    pattern: '.*Total delta count.*',
    replacement:
      '            $self->glog("Total delta count: $deltacount{all}", ' +
      '$deltacount{all} ? LOG_NORMAL : LOG_VERBOSE);',
  },
};

const registry = tempDir('fork-registry');
const tool = (args: string[]) => runTool(args, { env: { BUCARDO_CONSOLE_JOB_REGISTRY: registry } });

let a: ClusterInfo;
let b: ClusterInfo;
let checksumsBefore: Record<string, string>;
type Config = ReturnType<typeof writeJobConfig>;
let forked: Config;
let packaged: Config;

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
const checksums = (): Record<string, string> =>
  Object.fromEntries(INSTALLED.map((file) => [file, sha256(file)]));
const output = (result: ToolResult): string => `${result.stdout}\n${result.stderr}`;
const forkDir = (job: Config): string => path.join(job.dir, 'state', 'fork_bucardo');
const logOf = (job: Config, name: string): string => {
  const file = path.join(job.logDir, `log.bucardo.${name}`);
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
};

function job(name: string, plugins: string[], extra: Record<string, unknown> = {}): Config {
  return writeJobConfig({
    name,
    plugins,
    primary: { cluster: a, dbname: `${name}_src` },
    secondary: { cluster: b, dbname: `${name}_dst` },
    metadata: a,
    extra: { concurrency: { bucardo_dbname: `bucardo_${name}` }, ...extra },
  });
}

function editConfig(file: string, change: (config: Record<string, any>) => void): void {
  const config = yaml.load(readFileSync(file, 'utf8')) as Record<string, any>;
  change(config);
  writeFileSync(file, yaml.dump(config));
}

async function rowArrives(name: string, label: string): Promise<void> {
  await query(a, `${name}_src`, 'INSERT INTO public.items (label) VALUES ($1)', [label]);
  const arrived = async () =>
    (await query(b, `${name}_dst`, 'SELECT 1 FROM public.items WHERE label = $1', [label])).length > 0;
  await waitFor(arrived, 30_000, `row '${label}' in ${name}_dst`);
}

before(async () => {
  checksumsBefore = checksums();
  ({ a, b } = await clusters());
  for (const name of METADATA) await dropDatabase(a, name);
  for (const name of ['fork_f', 'fork_p']) {
    await freshDatabase(a, `${name}_src`, SCHEMA);
    await query(
      a,
      `${name}_src`,
      `INSERT INTO public.items (label) SELECT 'seed-' || g FROM generate_series(1, 20) g`,
    );
    await freshDatabase(b, `${name}_dst`, SCHEMA);
  }
  forked = job('fork_f', ['bucardo', 'concurrency', 'fork_bucardo'], { fork_bucardo: CHANGES });
  packaged = job('fork_p', ['bucardo', 'concurrency']);
});

after(async () => {
  // Daemons are stopped by the harness (by the pids in each job's pid dir); then the databases go.
  await new Promise((resolve) => setTimeout(resolve, 500));
  for (const name of METADATA) await dropDatabase(a, name).catch(() => undefined);
  for (const name of ['fork_f', 'fork_p']) {
    await dropDatabase(a, `${name}_src`).catch(() => undefined);
    await dropDatabase(b, `${name}_dst`).catch(() => undefined);
  }
});

test('apply_changes reports matches, applies twice without change, refuses a pattern that matches nothing', async () => {
  const first = await tool(['-c', forked.file, '-l', 'fork_bucardo.apply_changes']);
  assert.equal(first.code, 0, output(first));
  assert.match(
    first.stdout,
    /log_deltacounts: \/usr\/share\/perl5\/Bucardo\.pm: s\/\.\*Total delta count\.\*\/.*\/ matched 1 line/,
  );
  assert.match(first.stdout, /cli_reason: \/usr\/bin\/bucardo: .* matched 1 line/);
  assert.match(first.stdout, /The daemon is not running: bucardo\.start runs it from the fork/);
  assert.match(first.stdout, /Check: the fork's copies hold the applied changes Pass/);
  assert.match(first.stdout, /Check: this job's bucardo commands run from the fork Pass/);
  const copy = path.join(forkDir(forked), 'lib', 'Bucardo.pm');
  assert.ok(readFileSync(copy, 'utf8').includes(CHANGES.log_deltacounts.replacement + '\n'));
  // The fork is made from the console's patched code: it keeps the commit fence.
  assert.ok(readFileSync(copy, 'utf8').includes('bucardo-console: commit fence'));
  const manifest = readFileSync(path.join(forkDir(forked), 'fork.json'), 'utf8');

  const again = await tool(['-c', forked.file, '-l', 'fork_bucardo.apply_changes']);
  assert.equal(again.code, 0, output(again));
  assert.match(again.stdout, /already holds these changes; nothing was rewritten/);
  assert.equal(
    readFileSync(path.join(forkDir(forked), 'fork.json'), 'utf8'),
    manifest,
    'the fork is not rewritten',
  );

  const copyHash = sha256(copy);
  editConfig(forked.file, (c) => {
    c['fork_bucardo'].nowhere = { file: PM, pattern: 'no such line in Bucardo', replacement: 'x' };
  });
  const unmatched = await tool(['-c', forked.file, '-l', 'fork_bucardo.apply_changes']);
  assert.equal(unmatched.code, 1, output(unmatched));
  assert.match(
    output(unmatched),
    /fork_bucardo\.nowhere: the pattern 'no such line in Bucardo' matches no line of /,
  );
  assert.match(
    output(unmatched),
    /Bucardo\.pm\. Nothing was applied \(the job still runs its previous fork\)/,
  );
  assert.equal(sha256(copy), copyHash, 'nothing was applied');
  assert.equal(readFileSync(path.join(forkDir(forked), 'fork.json'), 'utf8'), manifest);

  editConfig(forked.file, (c) => {
    c['fork_bucardo'].nowhere = { file: '/etc/passwd', pattern: 'root', replacement: 'x' };
  });
  const outside = await tool(['-c', forked.file, '-l', 'fork_bucardo.apply_changes']);
  assert.equal(outside.code, 2, output(outside));
  assert.match(
    outside.stderr,
    /fork_bucardo\.nowhere\.file: '\/etc\/passwd' is not one of Bucardo's installed files/,
  );
  editConfig(forked.file, (c) => {
    delete c['fork_bucardo'].nowhere;
  });
  assert.deepEqual(checksums(), checksumsBefore);
});

test("the forked job's CLI, MCP, controller and kid write the changed messages; the packaged job does not", async () => {
  for (const config of [forked, packaged]) {
    const commands = 'concurrency.install bucardo.install bucardo.add_triggers bucardo.start';
    const result = await tool(['-c', config.file, '-l', commands]);
    assert.equal(result.code, 0, output(result));
  }
  for (const name of ['fork_f', 'fork_p']) {
    const count = async () =>
      (await query<{ n: number }>(b, `${name}_dst`, 'SELECT count(*)::int AS n FROM public.items'))[0]!.n;
    await waitFor(async () => (await count()) === 20, 60_000, `initial copy into ${name}_dst`);
  }
  await Promise.all([rowArrives('fork_f', 'forked-live-1'), rowArrives('fork_p', 'packaged-live-1')]);
  const deltaCountLogged = async () => /KID.*Total delta count: [1-9]/.test(logOf(forked, 'fork_f'));
  await waitFor(deltaCountLogged, 60_000, "the fork's kid to log its delta count");

  const forkedLog = logOf(forked, 'fork_f');
  assert.match(forkedLog, /MCP Starting forked Bucardo version/);
  assert.match(forkedLog, /CTL New forked controller for sync "fork_f"/);
  assert.match(forkedLog, /KID \(fork_f\) New forked kid, sync "fork_f"/);
  // The MCP names the files it runs from.
  assert.match(forkedLog, new RegExp(`MCP bucardo: ${forkDir(forked)}/bin/bucardo\n`));
  assert.match(forkedLog, new RegExp(`MCP Bucardo.pm: ${forkDir(forked)}/lib/Bucardo.pm\n`));
  // The CLI appends each event to the reason file's .log sibling (the daemon deletes the reason file itself).
  const reasons = readFileSync(path.join(forked.logDir, 'bucardo.fork_f.restart.log'), 'utf8');
  assert.match(reasons, /^forked CLI .* \| start /m);

  const packagedLog = logOf(packaged, 'fork_p');
  assert.match(packagedLog, /MCP Starting Bucardo version/);
  assert.match(packagedLog, /CTL New controller for sync "fork_p"/);
  assert.match(packagedLog, /KID \(fork_p\) New kid, sync "fork_p"/);
  // Without a fork the job runs its copy of the packaged code with the commit fence (docs/how-bucardo-behaves.md §19).
  assert.match(packagedLog, /MCP Bucardo.pm: \S+\/state\/bucardo-code\/lib\/Bucardo.pm\n/);
  assert.doesNotMatch(packagedLog, /forked|Total delta count/);
  assert.match(readFileSync(path.join(packaged.logDir, 'bucardo.fork_p.restart.log'), 'utf8'), / \| start /);
  assert.doesNotMatch(
    readFileSync(path.join(packaged.logDir, 'bucardo.fork_p.restart.log'), 'utf8'),
    /forked/,
  );

  assert.deepEqual(checksums(), checksumsBefore);
});

test('revert refuses while the daemon runs from the fork; stopped, it goes back to the packaged Bucardo', async () => {
  const refused = await tool(['-c', forked.file, '-l', 'fork_bucardo.revert']);
  assert.equal(refused.code, 1, output(refused));
  assert.match(
    output(refused),
    /is running, possibly from the fork in .*fork_bucardo, and Bucardo re-executes its own file/,
  );
  assert.match(output(refused), /so the fork was not removed\. Stop it \(bucardo\.stop\)/);
  assert.ok(existsSync(forkDir(forked)));

  const logSize = statSync(path.join(forked.logDir, 'log.bucardo.fork_f')).size;
  const result = await tool(['-c', forked.file, '-l', 'bucardo.stop fork_bucardo.revert bucardo.start']);
  assert.equal(result.code, 0, output(result));
  assert.match(result.stdout, /Check: no fork of Bucardo in the job's state dir Pass/);
  assert.equal(existsSync(forkDir(forked)), false);
  await rowArrives('fork_f', 'forked-after-revert');
  const since = logOf(forked, 'fork_f').slice(logSize);
  assert.match(since, /MCP Starting Bucardo version/);
  assert.doesNotMatch(since, /forked|Total delta count/);
  assert.match(since, /MCP Bucardo.pm: \S+\/state\/bucardo-code\/lib\/Bucardo.pm\n/);

  const twice = await tool(['-c', forked.file, '-l', 'fork_bucardo.revert']);
  assert.equal(twice.code, 0, output(twice));
  assert.match(twice.stdout, /has no fork of Bucardo/);
});

test('both jobs uninstall cleanly; the installed Bucardo files are byte-identical', async () => {
  for (const config of [forked, packaged]) {
    const result = await tool(['-c', config.file, '-l', 'bucardo.uninstall concurrency.uninstall']);
    assert.equal(result.code, 0, output(result));
  }
  assert.deepEqual(checksums(), checksumsBefore);
});
