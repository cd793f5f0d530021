// copy_data: parallel — the copy's record, a small JSON file in the job's state dir per sync: the plan,
// which units are done, whether the target tables were emptied, and the pid of the process copying
// now. It belongs to one sync: a sync dropped and created again (another cdate) starts a fresh copy.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Job } from '../job.js';
import { isProcessAlive } from '../process.js';
import type { CopyUnit } from './plan.js';

export interface CopyRecord {
  sync: string;
  /** bucardo.sync.cdate of the sync this copy belongs to. */
  syncCreated: string;
  plan: CopyUnit[];
  /** The target tables were emptied once; from then on each unit deletes its own rows before copying. */
  emptied: boolean;
  /** Ids of the units committed on the target. */
  done: string[];
  /** The process copying now (absent when none). */
  pid?: number;
  startedAt?: string;
  finishedAt?: string;
  /** Rows and bytes (COPY text) of the units done. */
  rowsDone: number;
  bytesDone: number;
}

export function copyRecordFile(job: Job, syncName: string): string {
  // A fan-out job's targets are copied one by one: each has its own record.
  const target = job.config.fanOut ? `.${job.target}` : '';
  return path.join(job.paths.stateDir, `parallel-copy.${syncName}${target}.json`);
}

export function readCopyRecord(job: Job, syncName: string): CopyRecord | undefined {
  const file = copyRecordFile(job, syncName);
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as CopyRecord;
  } catch {
    return undefined;
  }
}

/** Written whole to a temporary file and renamed: a reader never sees half a record. */
export function writeCopyRecord(job: Job, record: CopyRecord): void {
  const file = copyRecordFile(job, record.sync);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(record, null, 1)}\n`, { mode: 0o600 });
  renameSync(temporary, file);
}

/** The record of this very sync (same creation time), or undefined. */
export function currentRecord(job: Job, syncName: string, syncCreated: string): CopyRecord | undefined {
  const record = readCopyRecord(job, syncName);
  return record && record.syncCreated === syncCreated ? record : undefined;
}

/** Is a live process copying under this record (not this one's own earlier crash)? */
export function copyingPid(record: CopyRecord | undefined): number | undefined {
  return record?.pid !== undefined && isProcessAlive(record.pid) ? record.pid : undefined;
}
