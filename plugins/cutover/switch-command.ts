// cutover.switch_command: the operator's own step at the switch (a DNS record, service discovery, a
// config push). It runs as an argument array, never through a shell, with the new primary's host,
// port and database in its environment, bounded by cutover.switch_timeout; its output is kept for the
// audit log. A non-zero exit (or the timeout) is a failure before the switch: the cutover is called off.
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { OperatorError } from '../../src/core/errors.js';
import { isProcessAlive } from '../../src/core/process.js';

export interface SwitchEnvironment {
  /** Where writes go from now on. */
  to: { host: string; port: number; dbname: string };
  /** Where they came from. */
  from: { host: string; port: number; dbname: string };
  /** finish, rollback, or call-off (the switch taken back: `to` is the old primary again). */
  reason: 'finish' | 'rollback' | 'call-off';
}

export interface SwitchCommandRun {
  command: string[];
  exitCode: number;
  seconds: number;
  /** stdout and stderr as they came, at most the last 64 KB. */
  output: string;
}

const OUTPUT_LIMIT = 64 * 1024;

/** Refuses, before anything is paused, a program that is not there or not executable. */
export function checkSwitchCommand(command: string[]): void {
  try {
    accessSync(command[0]!, constants.X_OK);
  } catch (error) {
    throw new OperatorError(
      `cutover.switch_command cannot run: ${command[0]} is ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not there' : 'not executable'}. Give the program's absolute path (and make it executable), or remove the key. Nothing was paused.`,
    );
  }
}

export function switchEnvironment(env: SwitchEnvironment): Record<string, string> {
  return {
    BUCARDO_CONSOLE_SWITCH: env.reason,
    BUCARDO_CONSOLE_NEW_PRIMARY_HOST: env.to.host,
    BUCARDO_CONSOLE_NEW_PRIMARY_PORT: String(env.to.port),
    BUCARDO_CONSOLE_NEW_PRIMARY_DBNAME: env.to.dbname,
    BUCARDO_CONSOLE_OLD_PRIMARY_HOST: env.from.host,
    BUCARDO_CONSOLE_OLD_PRIMARY_PORT: String(env.from.port),
    BUCARDO_CONSOLE_OLD_PRIMARY_DBNAME: env.from.dbname,
  };
}

/** Runs the command; resolves with its exit code and output, whatever the code. Stopped by pid at the timeout. */
export function runSwitchCommand(
  command: string[],
  env: SwitchEnvironment,
  timeoutSeconds: number,
  options: { signal?: AbortSignal; withhold?: string[] } = {},
): Promise<SwitchCommandRun> {
  const { signal, withhold = [] } = options;
  // The command inherits the tool's environment, less the variables holding secrets it has no use for
  // (the pooler's admin password).
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !withhold.includes(name)),
  );
  const started = Date.now();
  return new Promise((resolve, reject) => {
    // Its own process group, so that the timeout stops what it started too.
    const child = spawn(command[0]!, command.slice(1), {
      env: { ...inherited, ...switchEnvironment(env) },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-OUTPUT_LIMIT);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    let timedOut = false;
    const stop = () => {
      if (child.pid === undefined || !isProcessAlive(child.pid)) return;
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        child.kill('SIGTERM');
      }
      setTimeout(() => {
        if (child.pid !== undefined && isProcessAlive(child.pid)) {
          try {
            process.kill(-child.pid, 'SIGKILL');
          } catch {
            child.kill('SIGKILL');
          }
        }
      }, 5000).unref();
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, timeoutSeconds * 1000);
    signal?.addEventListener('abort', stop, { once: true });
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(
        new OperatorError(
          `cutover.switch_command could not be started (${command[0]}): ${error.message}. Nothing was switched.`,
        ),
      );
    });
    child.on('close', (code, killedBy) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', stop);
      resolve({
        command,
        exitCode: timedOut ? 124 : (code ?? (killedBy ? 128 : 1)),
        seconds: Math.round((Date.now() - started) / 100) / 10,
        output: timedOut ? `${output}\n(stopped after ${timeoutSeconds} s: cutover.switch_timeout)` : output,
      });
    });
  });
}
