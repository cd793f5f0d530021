// How long the shell takes to reach its prompt (goal: 150 ms; the Python tool it replaces: 65 ms).
// Spawns `node wrapper.js -c <config>` in a pseudo-terminal and times the first prompt, 15 runs.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PtySession } from '../test/support/pty.js';

const dir = mkdtempSync(path.join(tmpdir(), 'bench-startup-'));
const config = path.join(dir, 'job.yml');
writeFileSync(
  config,
  `plugins: [bucardo]
databases:
  bucardo: {host: 127.0.0.1, port: 5432}
  primary: {host: 127.0.0.1, port: 5432, dbname: a}
  secondary: {host: 127.0.0.1, port: 5432, dbname: b}
bucardo: {replication_name: bench}
`,
);

const inProcess: number[] = [];

async function once(): Promise<number> {
  const started = process.hrtime.bigint();
  const session = new PtySession(['-c', config], {
    BUCARDO_CONSOLE_HISTORY: path.join(dir, 'history'),
    BUCARDO_CONSOLE_TIMING: '1',
  });
  await session.waitFor(/Enter the command you wish to run here/, 10_000);
  const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
  // The tool's own clock: from the node process's start to the prompt (no pty or script overhead).
  const own = /\[timing\] prompt after ([\d.]+) ms/.exec(session.output);
  if (own) inProcess.push(Number(own[1]));
  session.send('exit\r');
  await session.exited;
  return elapsed;
}

async function bareNode(): Promise<number> {
  const started = process.hrtime.bigint();
  const session = new PtySession(['--version']);
  await session.exited;
  return Number(process.hrtime.bigint() - started) / 1e6;
}

const runs: number[] = [];
await once(); // warm the file cache
inProcess.length = 0;
for (let i = 0; i < 15; i++) runs.push(await once());
const version: number[] = [];
for (let i = 0; i < 10; i++) version.push(await bareNode());
const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!;
console.log(
  `time to prompt (pty, includes the pty/script start): median ${median(runs).toFixed(0)} ms, min ${Math.min(...runs).toFixed(0)} ms, max ${Math.max(...runs).toFixed(0)} ms`,
);
console.log(
  `inside the process (node start to prompt, as the operator waits for it): median ${median(inProcess).toFixed(0)} ms, min ${Math.min(...inProcess).toFixed(0)} ms`,
);
console.log(
  `node wrapper.js --version (same harness, no config/menu): median ${median(version).toFixed(0)} ms`,
);
console.log(`goal: 150 ms to the prompt`);
rmSync(dir, { recursive: true, force: true });
