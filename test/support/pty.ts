// Drives the shell through a real pseudo-terminal (util-linux `script`), as an operator's terminal would.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isProcessAlive } from '../../src/core/process.js';
import { pauseSync } from './pause.js';
import { FIXTURE_PLUGINS, ROOT } from './paths.js';

/** Single-quotes a word for the one /bin/sh line `script -c` needs (test-owned temp paths only). */
function shellWord(word: string): string {
  return `'${word.replace(/'/g, "'\\''")}'`;
}

/** Sessions whose `script` may still run: stopped by signalPtyTools/awaitPtyTools when the test file is killed. */
const liveSessions = new Set<PtySession>();

/** The pids whose parent is `pid` (the tool inside `script`). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** A signal to a process that may have exited meanwhile. */
function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    /* gone */
  }
}

/**
 * For a test file killed from outside (its after() hooks do not run): asks the tool in each terminal to
 * stop (SIGTERM: the demo then stops its clusters, daemons and kickers and removes its directory) and
 * returns their pids for awaitPtyTools. Synchronous, for a signal handler.
 */
export function signalPtyTools(): number[] {
  const tools = [...liveSessions].flatMap((session) => session.toolPids());
  for (const pid of tools) signal(pid, 'SIGTERM');
  return tools;
}

/** Waits at most `timeoutMs` for those tools to finish stopping, then kills what is left. */
export function awaitPtyTools(tools: number[], timeoutMs: number): void {
  const deadline = Date.now() + timeoutMs;
  while (tools.some(isProcessAlive) && Date.now() < deadline) pauseSync(100);
  for (const pid of tools.filter(isProcessAlive)) signal(pid, 'SIGKILL');
  for (const session of liveSessions) session.kill();
}

export class PtySession {
  private readonly child: ChildProcess;
  private raw = '';
  readonly exited: Promise<number>;

  constructor(args: string[], env: Record<string, string> = {}) {
    const command = `stty cols 160 rows 50; exec ${[process.execPath, path.join(ROOT, 'wrapper.js'), ...args].map(shellWord).join(' ')}`;
    this.child = spawn('script', ['-qfec', command, '/dev/null'], {
      env: { ...process.env, BUCARDO_CONSOLE_PLUGIN_PATH: FIXTURE_PLUGINS, TERM: 'xterm', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
      // Its own process group: a Ctrl-C in the terminal running the tests reaches the test file, whose
      // handler stops the tool once (signalPtyTools), not also `script`, which would pass it on.
      detached: true,
    });
    this.child.stdout!.on('data', (chunk: Buffer) => {
      this.raw += chunk.toString('utf8');
    });
    this.child.stderr!.on('data', (chunk: Buffer) => {
      this.raw += chunk.toString('utf8');
    });
    liveSessions.add(this);
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code) => {
        liveSessions.delete(this);
        resolve(code ?? 1);
      }),
    );
  }

  /** The tool's own process (`script` runs it as its child), if it still runs. */
  toolPids(): number[] {
    return this.child.exitCode === null && this.child.pid ? childrenOf(this.child.pid) : [];
  }

  /** Screen text without terminal escapes. */
  get output(): string {
    // eslint-disable-next-line no-control-regex
    return this.raw.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');
  }

  send(keys: string): void {
    this.child.stdin!.write(keys);
  }

  /** Waits until the output after `from` matches; returns the index after the match. */
  async waitFor(pattern: RegExp, timeoutMs = 15_000, from = 0): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = this.output.slice(from);
      const match = pattern.exec(text);
      if (match) return from + match.index + match[0].length;
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${pattern}; screen so far:\n${this.output.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  kill(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

export const KEYS = {
  tab: '\t',
  enter: '\r',
  up: '\u001b[A',
  ctrlC: '\u0003',
  ctrlD: '\u0004',
  ctrlU: '\u0015',
};
