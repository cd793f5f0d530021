// The shape of bucardo.status's data (its --json), apart from the code that collects it (status.ts)
// and the code that prints it (status-format.ts), so that neither imports the other's module for it.
// Types and a constant only: the menu loads it without pg.
import type { CopyProgress } from '../../src/core/copy/progress.js';
import type { DriftItem } from '../../src/core/drift.js';
import type { RecheckState } from '../../src/core/kicker.js';
import type { PendingTable } from '../../src/core/pending.js';
import type { Stall } from '../../src/core/watchdog.js';

export type { CopyProgress, CopyState } from '../../src/core/copy/progress.js';

/** The fixed set of states bucardo.status reports, each with the process exit code of a status run. */
export type StatusState =
  'caught up' | 'lagging' | 'copying' | 'stopped' | 'stalled' | 'failed' | 'drift' | 'unknown';

/** Bumped when a field of the JSON changes meaning or disappears (new fields do not bump it). */
export const STATUS_SCHEMA_VERSION = 1;

export interface StatusData {
  schemaVersion: number;
  checkedAt: string;
  job: string;
  state: StatusState;
  exitCode: number;
  /** One line: why this state (names what could not be reached for `unknown`). */
  verdict: string;
  installed: boolean;
  daemon: { running: boolean; pid?: number; uptimeSeconds?: number };
  kicker?: {
    running: boolean;
    kicking: boolean;
    pid?: number;
    lastKickAt?: string;
    kicks?: number;
    lastError?: string;
    maintenance?: number;
    lastMaintenanceAt?: string;
    remedies?: string[];
    /** The safety net's counters and last pass (bucardo.recheck_interval). */
    recheck?: RecheckState;
  };
  sync?: {
    name: string;
    exists: boolean;
    loaded: boolean;
    lastGood?: string;
    lastGoodRows?: string;
    lastBad?: string;
    lastError?: string;
    running?: string;
  };
  /** Each of the job's syncs (bucardo.syncs; one entry with one sync), `sync` above being their sum. */
  syncs?: SyncStatus[];
  copy: CopyProgress;
  pending: PendingTable[];
  pendingTotal: number;
  oldestPendingSeconds?: number;
  stalls: Stall[];
  /** Tables the syncs no longer carry as they are (src/core/drift.ts): new in scope, gone, other columns. */
  drift?: DriftItem[];
  /** The databases status could not reach, each with the cause. */
  unreachable: string[];
  problems: string[];
  /**
   * Each target of a job with databases.secondaries: one sync applies every target in one run, so the
   * backlog and lag are the job's; what differs is whether status reached the target and whether the
   * sync's last failure names it. The job's state is the worst of theirs.
   */
  targets?: TargetStatus[];
}

export interface TargetStatus {
  name: string;
  /** host:port/dbname */
  where: string;
  reachable: boolean;
  /** The sync's last failure names this target's database (Bucardo's errors carry its dbname and port). */
  failing: boolean;
  state: StatusState;
  exitCode: number;
  verdict: string;
}

export interface SyncStatus {
  name: string;
  exists: boolean;
  loaded: boolean;
  tables: number;
  lastGood?: string;
  lastGoodRows?: string;
  lastBad?: string;
  lastError?: string;
  running?: string;
  pendingTotal: number;
  oldestPendingSeconds?: number;
}
