#!/usr/bin/env node
// Runs every test: starts the shared PostgreSQL clusters once for the whole run, hands their ports to
// the test files, and stops them afterwards, also when tests fail or the run is interrupted.
import { spawn } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const { startCluster, stopAllClusters, handleSignalsYourself } = await import(path.join(root, 'dist/src/sandbox/cluster.js'));
handleSignalsYourself();

const only = process.argv.slice(2);
const files = ['unit', 'integration']
  .map((dir) => path.join(root, 'dist/test', dir))
  .filter(existsSync)
  .flatMap((dir) => readdirSync(dir).filter((f) => f.endsWith('.test.js')).sort().map((f) => path.join(dir, f)))
  .filter((file) => only.length === 0 || only.some((name) => file.includes(name)));

let exitCode = 1;
try {
  const [a, b] = await Promise.all([startCluster('testA'), startCluster('testB')]);
  const env = { ...process.env, BUCARDO_CONSOLE_TEST_CLUSTERS: JSON.stringify({ a, b }) };
  const child = spawn(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], { stdio: 'inherit', env });
  // Interrupted: the test files stop their own daemons on the signal; the clusters go after they exit.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill('SIGTERM'));
  exitCode = await new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))));
} finally {
  stopAllClusters();
}
process.exit(exitCode);
