// Names Bucardo gives to the objects it creates for a sync (docs/how-bucardo-behaves.md §4). Sync names are
// at most 42 characters (checked in the config), so these are the stable, non-random forms.

export const DELTA_TRIGGER = 'bucardo_delta';

export function kickTriggerName(syncName: string): string {
  return syncName.length <= 48 ? `bucardo_kick_${syncName}` : `bkick_${syncName}`;
}

export function truncateTriggerName(syncName: string): string {
  return syncName.length <= 42 ? `bucardo_note_trunc_${syncName}` : `btrunc_${syncName}`;
}

/**
 * copy_data → Bucardo's onetimecopy: never 0, always 1, empty (copy only into empty tables) 2, and
 * parallel 0: the console copies the rows itself, and Bucardo only applies what its triggers recorded.
 */
export function onetimecopyFor(copyData: 'never' | 'always' | 'empty' | 'parallel'): 0 | 1 | 2 {
  return copyData === 'never' || copyData === 'parallel' ? 0 : copyData === 'always' ? 1 : 2;
}

/** Whether a sync or relgroup name is one a job of this replication name uses (whatever its bucardo.syncs). */
export function isJobSyncName(name: string, replicationName: string): boolean {
  return (
    name === replicationName ||
    (name.startsWith(`${replicationName}_`) && /^\d+$/.test(name.slice(replicationName.length + 1)))
  );
}

/**
 * The names of a job's database records in Bucardo's metadata: named after the job, so that jobs
 * sharing a metadata database never share one by accident. A dbgroup is named after the job too.
 */
export function databaseRecordNames(replicationName: string): { primary: string; secondary: string } {
  return { primary: `${replicationName}_primary`, secondary: `${replicationName}_secondary` };
}

/** A fan-out job's record of one target (databases.secondaries): named after the job and the target. */
export function targetRecordName(replicationName: string, target: string): string {
  return `${replicationName}_${target}`;
}

/**
 * What the console called every job's database records before they carried the job's name. A job
 * installed then keeps them (src/core/bucardo/records.ts reads which names a job's records carry).
 */
export const LEGACY_DATABASE_NAMES = { primary: 'primary_db', secondary: 'secondary_db' } as const;

/**
 * How Bucardo names a dbgroup as a target: in the source's track tables and bucardo_delta_targets a
 * change is applied once a row carries this target (docs/how-bucardo-behaves.md §11).
 */
export function trackTarget(dbgroup: string): string {
  return `dbgroup ${dbgroup}`;
}
