// Command history kept across sessions in a per-user file (newest last, like a shell's).
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

const LIMIT = 1000;

export function historyFile(): string {
  return process.env['BUCARDO_CONSOLE_HISTORY'] || path.join(homedir(), '.bucardo_console_history');
}

/** Newest first, as readline wants it. */
export function loadHistory(file = historyFile()): string[] {
  if (!existsSync(file)) return [];
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean).slice(-LIMIT).reverse();
  } catch {
    return [];
  }
}

export function appendHistory(line: string, file = historyFile()): void {
  try {
    appendFileSync(file, `${line}\n`, { mode: 0o600 });
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    if (lines.length > LIMIT * 2) writeFileSync(file, `${lines.slice(-LIMIT).join('\n')}\n`, { mode: 0o600 });
  } catch {
    // History is a convenience: an unwritable home must not break the shell.
  }
}
