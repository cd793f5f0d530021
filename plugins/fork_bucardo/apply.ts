// fork_bucardo.apply_changes and fork_bucardo.revert. The installed Bucardo is never written: its
// files are copied into the job's state dir, the config's sed substitutions are applied to the
// copies, and core runs this job's bucardo commands and daemon from there (job.bucardoFork). Every
// apply starts again from the packaged files, so applying twice gives the same bytes; a change that
// matches nothing stops the whole apply before anything is written.
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PACKAGED_BUCARDO_PM, patchBucardoPm } from '../../src/core/bucardo/code.js';
import { OperatorError } from '../../src/core/errors.js';
import type { Job } from '../../src/core/job.js';
import type { Check, CommandContext, CommandOutcome } from '../../src/core/plugin.js';
import { isProcessAlive, processCommandLine, readPidFile } from '../../src/core/process.js';
import { appliedFork, forkDirectory, forkOf, MANIFEST, readManifest, useFork } from './fork.js';
import type { AppliedChange, ForkManifest } from './fork.js';
import { compileSubstitution, substituteLines } from './sed.js';
import { BUCARDO_FILES, forkSettings } from './settings.js';

export interface ApplyData {
  directory: string;
  changes: AppliedChange[];
  /** False when the fork on disk already held exactly these bytes. */
  changed: boolean;
  /** The job's running daemon, which keeps its code until it is restarted. */
  daemonPid?: number;
}

export interface RevertData {
  directory: string;
  removed: boolean;
}

export interface ForkedContents {
  /** Installed path → the text of its copy after every change. */
  contents: Map<string, string>;
  /** Installed path → sha256 of the packaged file. */
  packaged: Record<string, string>;
  changes: AppliedChange[];
}

const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

/** The copies after every change, in config order (a later change sees an earlier one's result, as sed would). */
export function forkedContents(job: Job): ForkedContents {
  const { changes } = forkSettings(job.config);
  if (changes.length === 0) {
    throw new OperatorError(
      `The fork_bucardo section of ${job.config.file} lists no change, so there is nothing to ` +
        'apply. Add one (file, pattern, replacement; see docs/fork_bucardo.md), or run fork_bucardo.revert to go back ' +
        'to the packaged Bucardo.',
    );
  }
  const contents = new Map<string, string>();
  const packaged: Record<string, string> = {};
  for (const file of Object.keys(BUCARDO_FILES)) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      throw new OperatorError(
        `Cannot read ${file} (${reason}): fork_bucardo copies the packaged Bucardo, so it must ` +
          'be installed (apt-get install bucardo, or scripts/setup.sh). Nothing was applied.',
      );
    }
    packaged[file] = sha256(bytes);
    // The daemon code starts from the console's patched text, so a fork keeps the commit fence
    // (docs/how-bucardo-behaves.md §19); the operator's changes apply on top of it.
    contents.set(
      file,
      file === PACKAGED_BUCARDO_PM ? patchBucardoPm(bytes.toString('utf8')) : bytes.toString('utf8'),
    );
  }
  const applied: AppliedChange[] = [];
  for (const change of changes) {
    const substitution = compileSubstitution(change.pattern, change.replacement);
    const result = substituteLines(contents.get(change.file)!, substitution);
    contents.set(change.file, result.text);
    applied.push({ ...change, matches: result.matches });
  }
  const unmatched = applied.filter((change) => change.matches === 0);
  if (unmatched.length) {
    const which = unmatched.map(
      (c) => `fork_bucardo.${c.name}: the pattern '${c.pattern}' matches no line of ` + c.file,
    );
    const running = appliedFork(job.paths.stateDir) ? 'its previous fork' : 'the packaged Bucardo';
    throw new OperatorError(
      `${which.join('; ')}. Nothing was applied (the job still runs ${running}). Check the ` +
        'pattern against the packaged file (grep it there: an earlier change in the section may already have ' +
        'rewritten the line), then run fork_bucardo.apply_changes again.',
    );
  }
  return { contents, packaged, changes: applied };
}

export async function applyChanges(ctx: CommandContext): Promise<CommandOutcome<ApplyData>> {
  const { job } = ctx;
  const directory = forkDirectory(job.paths.stateDir);
  const { contents, packaged, changes } = forkedContents(job);
  const forked = Object.fromEntries([...contents].map(([file, text]) => [file, sha256(text)]));
  const unchanged = holdsAlready(job.paths.stateDir, forked);
  if (!unchanged)
    writeFork(directory, contents, { appliedAt: new Date().toISOString(), packaged, forked, changes });
  useFork(job, appliedFork(job.paths.stateDir));
  const pid = runningDaemon(job);
  const done = unchanged
    ? 'The fork already holds these changes; nothing was rewritten'
    : `Applied ${changes.length} change(s) to this job's copy of Bucardo in ${directory}`;
  const restart =
    pid === undefined
      ? 'The daemon is not running: bucardo.start runs it from the fork.'
      : `The daemon (pid ${pid}) keeps the code it started with: run bucardo.restart for the fork to take effect.`;
  return {
    message: `${done}; the installed files are untouched and other jobs keep the packaged Bucardo. ${restart}`,
    data: { directory, changes, changed: !unchanged, ...(pid !== undefined ? { daemonPid: pid } : {}) },
  };
}

/** Whether the job's fork on disk is complete and its copies already have these hashes. */
function holdsAlready(stateDir: string, forked: Record<string, string>): boolean {
  const fork = appliedFork(stateDir);
  const previous = readManifest(forkDirectory(stateDir));
  if (!fork || !previous) return false;
  return Object.entries(forked).every(
    ([file, hash]) => previous.forked[file] === hash && sha256(readFileSync(fork.files[file]!)) === hash,
  );
}

/** Written beside the fork and swapped in whole, so an interrupted apply leaves the previous fork (or none). */
function writeFork(directory: string, contents: Map<string, string>, manifest: ForkManifest): void {
  const staging = `${directory}.new`;
  const replaced = `${directory}.old`;
  rmSync(staging, { recursive: true, force: true });
  const staged = forkOf(staging);
  for (const [file, text] of contents) {
    mkdirSync(path.dirname(staged.files[file]!), { recursive: true, mode: 0o700 });
    writeFileSync(staged.files[file]!, text, { mode: 0o600 });
  }
  chmodSync(staged.executable, 0o700);
  writeFileSync(path.join(staging, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
  rmSync(replaced, { recursive: true, force: true });
  if (existsSync(directory)) renameSync(directory, replaced);
  renameSync(staging, directory);
  rmSync(replaced, { recursive: true, force: true });
}

export async function validateApply(ctx: CommandContext): Promise<Check[]> {
  const { job } = ctx;
  const directory = forkDirectory(job.paths.stateDir);
  const manifest = readManifest(directory);
  const fork = appliedFork(job.paths.stateDir);
  const copiesIntact =
    manifest !== undefined &&
    fork !== undefined &&
    Object.entries(fork.files).every(([file, copy]) => sha256(readFileSync(copy)) === manifest.forked[file]);
  const changedPackages = !manifest
    ? []
    : Object.keys(BUCARDO_FILES).filter(
        (file) => !existsSync(file) || sha256(readFileSync(file)) !== manifest.packaged[file],
      );
  return [
    {
      name: "the fork's copies hold the applied changes",
      pass: copiesIntact,
      ...(copiesIntact ? {} : { detail: `no complete fork in ${directory}` }),
    },
    {
      name: "this job's bucardo commands run from the fork",
      pass: job.bucardoFork !== undefined && job.bucardoFork.executable === fork?.executable,
    },
    {
      name: 'the packaged Bucardo is the one the fork was made from',
      pass: manifest !== undefined && changedPackages.length === 0,
      ...(changedPackages.length
        ? { detail: `changed since: ${changedPackages.join(', ')} (run fork_bucardo.apply_changes again)` }
        : {}),
    },
  ];
}

export async function revert(ctx: CommandContext): Promise<CommandOutcome<RevertData>> {
  const { job } = ctx;
  const directory = forkDirectory(job.paths.stateDir);
  const pid = runningDaemon(job);
  if (pid !== undefined && existsSync(directory)) {
    // Bucardo's MCP re-executes its own file when it respawns: removing the fork under it would kill
    // it. Which files a running daemon loaded cannot be told from outside (Perl's $0 rewrite clobbers
    // /proc/<pid>/environ), so any running daemon of the job is taken to run from the fork.
    throw new OperatorError(
      `The daemon of ${job.name} (pid ${pid}) is running, possibly from the fork in ` +
        `${directory}, and Bucardo re-executes its own file when it respawns, so the fork was not removed. Stop it ` +
        '(bucardo.stop), run fork_bucardo.revert, then bucardo.start to run the packaged Bucardo.',
    );
  }
  const leftovers = [directory, `${directory}.new`, `${directory}.old`];
  const existed = leftovers.some((dir) => existsSync(dir));
  for (const dir of leftovers) rmSync(dir, { recursive: true, force: true });
  useFork(job, undefined);
  return {
    message: existed
      ? `Removed this job's fork of Bucardo (${directory}): its bucardo commands and daemon use the packaged ` +
        'Bucardo again.'
      : `This job has no fork of Bucardo (${directory} does not exist): it already uses the packaged Bucardo.`,
    data: { directory, removed: existed },
  };
}

export async function validateRevert(ctx: CommandContext): Promise<Check[]> {
  const directory = forkDirectory(ctx.job.paths.stateDir);
  return [
    { name: "no fork of Bucardo in the job's state dir", pass: !existsSync(directory) },
    { name: "this job's bucardo commands run the packaged Bucardo", pass: ctx.job.bucardoFork === undefined },
  ];
}

function runningDaemon(job: Job): number | undefined {
  const pid = readPidFile(job.paths.mcpPidFile);
  return pid !== undefined && isProcessAlive(pid) && /bucardo/i.test(processCommandLine(pid))
    ? pid
    : undefined;
}
