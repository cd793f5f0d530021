// What schema.apply has done with one SQL text, kept in the job's state dir so that a rerun after a
// failure or a kill completes it without running anything twice. A side's transaction is recorded as
// 'committing' with its transaction id just before its COMMIT, and 'done' after: a run killed in
// between leaves the id, and the server says whether that transaction committed (txid_status).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Job } from '../../src/core/job.js';

export type StepState = { state: 'done'; at: string } | { state: 'committing'; xid: string };

export interface ApplyJournal {
  fingerprint: string;
  source: string;
  startedAt: string;
  finishedAt?: string;
  steps: Record<string, StepState>;
}

export function fingerprint(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export function journalFile(job: Job, print: string): string {
  return path.join(job.paths.stateDir, `schema.apply.${print.slice(0, 16)}.json`);
}

export function readJournal(job: Job, print: string): ApplyJournal | undefined {
  const file = journalFile(job, print);
  if (!existsSync(file)) return undefined;
  const journal = JSON.parse(readFileSync(file, 'utf8')) as ApplyJournal;
  return journal.fingerprint === print ? journal : undefined;
}

/** Written whole to a temporary file and renamed: a kill never leaves half a journal. */
export function writeJournal(job: Job, journal: ApplyJournal): void {
  const file = journalFile(job, journal.fingerprint);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(`${file}.tmp`, `${JSON.stringify(journal, null, 1)}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}
