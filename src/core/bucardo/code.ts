// The Bucardo code a job's daemon runs. Stock Bucardo 5.6 can mark a change applied that it never
// sent (docs/how-bucardo-behaves.md §19), so every job runs a copy of the packaged Bucardo.pm with
// the console's commit fence patched in: <state_dir>/bucardo-code/lib/Bucardo.pm, put first on
// Perl's module path by src/core/bucardo/run.ts. The installed files are never written. A job with a
// fork (fork_bucardo) runs the fork instead, which is made from the same patched text.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { OperatorError } from '../errors.js';
import type { Job } from '../job.js';

export const PACKAGED_BUCARDO_PM = '/usr/share/perl5/Bucardo.pm';
/** Present in every Bucardo.pm the console runs; a copy without it predates the fence. */
export const FENCE_MARKER = 'bucardo-console: commit fence';

interface CodePatch {
  name: string;
  find: string;
  replace: string;
}

// Each patch must match the packaged text exactly once: a Bucardo release that moved the code is
// refused rather than run without the fence.
const PATCHES: CodePatch[] = [
  {
    // The fence runs in its own short transaction, before the run's transaction takes its snapshot.
    name: 'fence before each run',
    find: `        if ('postgres' eq $d->{dbtype}) {
            ## We never want to timeout!`,
    replace: `        if ('postgres' eq $d->{dbtype}) {
            ## ${FENCE_MARKER}: before this run's snapshot, move the fence clock and read which
            ## transaction times open transactions hold, so the run marks none of them applied.
            if ($d->{role} eq 'source') {
                $dbh->do('SELECT bucardo.console_commit_fence()');
                $dbh->commit();
            }
            ## We never want to timeout!`,
  },
  {
    // The stage variant is derived from this statement by Bucardo, so it gets the same condition.
    name: 'mark only settled times applied',
    find: `                $SQL{track}{$g} = qq{
                    INSERT INTO bucardo.$g->{tracktable} (txntime,target)
                    SELECT DISTINCT txntime, DBGROUP::text
                    FROM bucardo.$g->{deltatable} d
                    WHERE NOT EXISTS (
                        SELECT 1
                        FROM   bucardo.$g->{tracktable} t
                        WHERE  d.txntime = t.txntime
                        AND    (t.target = DBGROUP::text)
                    );
                };`,
    replace: `                ## ${FENCE_MARKER}: only the times the fence says no open transaction can still use
                $SQL{track}{$g} = qq{
                    INSERT INTO bucardo.$g->{tracktable} (txntime,target)
                    SELECT v.txntime, DBGROUP::text
                    FROM (
                        SELECT DISTINCT txntime
                        FROM bucardo.$g->{deltatable} d
                        WHERE NOT EXISTS (
                            SELECT 1
                            FROM   bucardo.$g->{tracktable} t
                            WHERE  d.txntime = t.txntime
                            AND    (t.target = DBGROUP::text)
                        )
                    ) v
                    WHERE bucardo.console_settled(v.txntime);
                };`,
  },
  {
    // Stock Bucardo leaves every change recorded before its one-time copy pending, and its next run
    // deletes and copies those keys again (how-bucardo-behaves.md §21): in a cascade, every row A→B's
    // copy wrote into B. The copy read the table in this transaction's snapshot, so the change records
    // this transaction sees are in what it copied; tracking them here, with the fence's filter, is
    // exact. Not when a target of the dbgroup skipped the table (copy_data: empty, the target had rows).
    name: 'a one-time copy tracks what it carried',
    find: `                ## TODO: logic to clean out delta rows is this was a onetimecopy
`,
    replace: `                ## ${FENCE_MARKER}: the changes this snapshot saw are in the copy: mark them applied
                if ($sync->{onetimecopy} and @dbs_copytarget == @dbs_fullcopy and $g->{deltatable}
                    and $sourcedbh->selectrow_array('SELECT to_regclass(?) IS NOT NULL', undef,
                        "bucardo.$g->{deltatable}")) {
                    my $carried = $sourcedbh->do(qq{
                        INSERT INTO bucardo.$g->{tracktable} (txntime,target)
                        SELECT v.txntime, ?::text
                        FROM (
                            SELECT DISTINCT txntime
                            FROM bucardo.$g->{deltatable} d
                            WHERE NOT EXISTS (
                                SELECT 1
                                FROM   bucardo.$g->{tracktable} t
                                WHERE  d.txntime = t.txntime
                                AND    t.target = ?::text
                            )
                        ) v
                        WHERE bucardo.console_settled(v.txntime)
                    }, undef, "dbgroup $dbs", "dbgroup $dbs");
                    $self->glog(qq{Marked $carried change time(s) of $S.$T applied: the copy carried them}, LOG_NORMAL)
                        if $carried > 0;
                }
`,
  },
];

function occurrences(text: string, part: string): number {
  let count = 0;
  for (let at = text.indexOf(part); at !== -1; at = text.indexOf(part, at + part.length)) count += 1;
  return count;
}

/** Bucardo.pm's text with the console's patches applied; refuses a release they do not fit. */
export function patchBucardoPm(text: string, source = PACKAGED_BUCARDO_PM): string {
  let patched = text;
  for (const patch of PATCHES) {
    const found = occurrences(patched, patch.find);
    if (found !== 1)
      throw new OperatorError(
        `${source} does not have the code the console patches in exactly one place (patch "${patch.name}" matched ${found} times): it is not the Bucardo 5.6 this console was built for, and running it unpatched could lose changes (docs/how-bucardo-behaves.md §19). Install Debian's bucardo 5.6 package (scripts/setup.sh).`,
      );
    patched = patched.replace(patch.find, () => patch.replace);
  }
  return patched;
}

let packagedText: { text: string; patched: string } | undefined;

/** The packaged Bucardo.pm, read once per process, and its patched text. */
export function patchedPackagedBucardoPm(): string {
  if (!packagedText) {
    let text: string;
    try {
      text = readFileSync(PACKAGED_BUCARDO_PM, 'utf8');
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      throw new OperatorError(
        `Cannot read ${PACKAGED_BUCARDO_PM} (${reason}): the console runs a patched copy of Bucardo's daemon code, so Debian's bucardo package must be installed (apt-get install bucardo, or scripts/setup.sh).`,
      );
    }
    packagedText = { text, patched: patchBucardoPm(text) };
  }
  return packagedText.patched;
}

export function consoleCodeDirectory(job: Job): string {
  return path.join(job.paths.stateDir, 'bucardo-code');
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
const written = new Set<string>();

/**
 * The directory to put first on Perl's module path for this job: its fork when it has one, else the
 * job's patched copy of the packaged Bucardo.pm, (re)written when missing or stale. The copy is
 * swapped in whole, so a daemon (re)starting meanwhile reads either the old or the new file.
 */
export function bucardoPerlLib(job: Job): string {
  if (job.bucardoFork) {
    requireFencedFork(job.bucardoFork.files[PACKAGED_BUCARDO_PM] ?? '');
    return job.bucardoFork.perlLib;
  }
  const lib = path.join(consoleCodeDirectory(job), 'lib');
  const file = path.join(lib, 'Bucardo.pm');
  if (written.has(file)) return lib;
  // Every command that runs bucardo asks this: reading, patching and hashing 400 KB each time cost
  // ~30 ms of CPU. The stamp beside the copy names what it was made from (the packaged file's identity,
  // the patches) and the copy as written; when all still hold, the copy is current.
  const stampFile = `${file}.stamp`;
  const stamp = currentStamp(file);
  if (stamp !== undefined && readTextOrEmpty(stampFile) === stamp) {
    written.add(file);
    return lib;
  }
  const patched = patchedPackagedBucardoPm();
  if (!existsSync(file) || sha256(readFileSync(file, 'utf8')) !== sha256(patched)) {
    mkdirSync(lib, { recursive: true, mode: 0o700 });
    const staging = `${file}.new`;
    writeFileSync(staging, patched, { mode: 0o600 });
    renameSync(staging, file);
  }
  const madeStamp = currentStamp(file);
  if (madeStamp !== undefined) writeFileSync(stampFile, madeStamp, { mode: 0o600 });
  written.add(file);
  return lib;
}

const PATCHES_DIGEST = sha256(JSON.stringify(PATCHES));

/** The packaged file's and the copy's identity (inode, size, mtime) with the patches' digest. */
function currentStamp(copy: string): string | undefined {
  try {
    const identity = (file: string) => {
      const stat = statSync(file);
      return `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
    };
    return `${identity(PACKAGED_BUCARDO_PM)} ${identity(copy)} ${PATCHES_DIGEST}\n`;
  } catch {
    return undefined;
  }
}

function readTextOrEmpty(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

const checkedForks = new Set<string>();

function requireFencedFork(file: string): void {
  if (checkedForks.has(file)) return;
  if (!existsSync(file) || !readFileSync(file, 'utf8').includes(FENCE_MARKER))
    throw new OperatorError(
      `This job's fork of Bucardo (${file}) was made without the console's commit fence (by an earlier version of the console), and running it could lose changes (docs/how-bucardo-behaves.md §19). Run fork_bucardo.apply_changes again: it rebuilds the fork on the patched code. Then bucardo.restart if the daemon runs.`,
    );
  checkedForks.add(file);
}
