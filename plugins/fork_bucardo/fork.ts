// Where a job's fork of Bucardo lives and how it is recorded: <state dir>/fork_bucardo/ holds a copy
// of every file of BUCARDO_FILES (changed or not, so the copies always belong together) and
// fork.json, which records the changes applied and the sha256 of the packaged files and of the
// copies. Light (node:fs only): the plugin's configureJob reads it before the prompt appears.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { BucardoFork, Job } from '../../src/core/job.js';
import { BUCARDO_FILES } from './settings.js';

export interface AppliedChange {
  name: string;
  file: string;
  pattern: string;
  replacement: string;
  matches: number;
}

export interface ForkManifest {
  appliedAt: string;
  /** sha256 of each packaged file the copies were made from. */
  packaged: Record<string, string>;
  /** sha256 of each copy as written, after the changes. */
  forked: Record<string, string>;
  changes: AppliedChange[];
}

export const MANIFEST = 'fork.json';

export function forkDirectory(stateDir: string): string {
  return path.join(stateDir, 'fork_bucardo');
}

export function readManifest(directory: string): ForkManifest | undefined {
  const file = path.join(directory, MANIFEST);
  if (!existsSync(file)) return undefined;
  try {
    const manifest = JSON.parse(readFileSync(file, 'utf8')) as ForkManifest;
    return manifest && typeof manifest.forked === 'object' ? manifest : undefined;
  } catch {
    return undefined;
  }
}

/** The copies as core runs them: the executable, Perl's module dir, and each installed path's copy. */
export function forkOf(directory: string): BucardoFork {
  const files = Object.fromEntries(
    Object.entries(BUCARDO_FILES).map(([installed, copy]) => [installed, path.join(directory, copy)]),
  );
  return {
    executable: files['/usr/bin/bucardo']!,
    perlLib: path.dirname(files['/usr/share/perl5/Bucardo.pm']!),
    files,
  };
}

/** The job's applied fork, when one is complete on disk (an interrupted apply leaves none). */
export function appliedFork(stateDir: string): BucardoFork | undefined {
  const directory = forkDirectory(stateDir);
  if (!readManifest(directory)) return undefined;
  const fork = forkOf(directory);
  return Object.values(fork.files).every((file) => existsSync(file)) ? fork : undefined;
}

/** Points the job's bucardo commands and daemon at its fork, or back at the packaged Bucardo. */
export function useFork(job: Job, fork: BucardoFork | undefined): void {
  if (fork) job.bucardoFork = fork;
  else delete job.bucardoFork;
}
