#!/usr/bin/env node
// Runs every test: starts the shared PostgreSQL clusters once for the whole run, hands their ports to
// the test files, and stops them afterwards, also when tests fail or the run is interrupted.
import { spawn } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const { startCluster, stopAllClusters, handleSignalsYourself } = await import(path.join(root, 'dist/src/sandbox/cluster.js'));
handleSignalsYourself();

// Major-version pairs (test/integration/versions.test.ts): the suite runs one old primary and one new
// secondary; --version-matrix (npm run test:versions) runs only that file, over every tested pair.
const VERSION_MATRIX = '10:15,11:15,12:15,13:15,14:15,15:17,15:18';
const versionMatrix = process.argv.includes('--version-matrix');
const only = process.argv.slice(2).filter((arg) => arg !== '--version-matrix');
if (versionMatrix) only.push('integration/versions.test');
const versionEnv = {
  BUCARDO_CONSOLE_VERSION_PAIRS: process.env.BUCARDO_CONSOLE_VERSION_PAIRS ?? (versionMatrix ? VERSION_MATRIX : '11:15,15:17'),
  BUCARDO_CONSOLE_VERSION_CONCURRENCY: process.env.BUCARDO_CONSOLE_VERSION_CONCURRENCY ?? (versionMatrix ? '3' : '2'),
};
const files = ['unit', 'integration']
  .map((dir) => path.join(root, 'dist/test', dir))
  .filter(existsSync)
  .flatMap((dir) => readdirSync(dir).filter((f) => f.endsWith('.test.js')).sort().map((f) => path.join(dir, f)))
  .filter((file) => only.length === 0 || only.some((name) => file.includes(name)));

async function startSharedClusters() {
  const [a, b] = await Promise.all([startCluster('testA'), startCluster('testB')]);
  return { a, b };
}

let exitCode = 1;
try {
  // The version pairs start their own servers: the matrix run needs no shared clusters.
  const shared = versionMatrix ? {} : { BUCARDO_CONSOLE_TEST_CLUSTERS: JSON.stringify(await startSharedClusters()) };
  const env = { ...process.env, ...versionEnv, ...shared };
  const child = spawn(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], { stdio: 'inherit', env });
  // Interrupted: the test files stop their own daemons on the signal; the clusters go after they exit.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill('SIGTERM'));
  exitCode = await new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))));
} finally {
  stopAllClusters();
}
process.exit(exitCode);
