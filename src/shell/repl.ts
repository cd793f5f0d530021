// The interactive prompt: menu, Tab completion, history across sessions, help/exit, and running
// commands through the runner. A fresh readline interface is made for each prompt so that while a
// command runs the terminal is in its normal mode and Ctrl-C reaches the runner as SIGINT.
import readline from 'node:readline';
import { errorMessage } from '../core/errors.js';
import { splitWords } from './args.js';
import { commandHelpLines, menuLines } from './menu.js';
import { write, writeError } from './output.js';
import { appendHistory, loadHistory } from './history.js';
import { interactivePrompter } from './prompter.js';
import { runCommand } from './runner.js';
import type { Session } from './session.js';

const PROMPT = 'Enter the command you wish to run here, or type "exit": ';

export function completer(session: Session): (line: string) => [string[], string] {
  return (line) => {
    // After a command name: its arguments (`indexes.drop --d` → `--dry-run`).
    const [name, ...rest] = line.trimStart().split(/\s+/);
    if (rest.length === 1 && (name === 'help' || name === '?')) {
      return [session.commandNames().filter((command) => command.startsWith(rest[0]!)), rest[0]!];
    }
    if (rest.length > 0) {
      const resolved = session.resolve(name!);
      const last = rest[rest.length - 1]!;
      if ('error' in resolved) return [[], last];
      const declared = Object.entries(resolved.command.arguments ?? {}).filter(
        ([, spec]) => spec.kind !== 'assignment',
      );
      const usages = [...declared.map(([arg]) => `--${arg}`), '--json', '--help'];
      return [usages.filter((usage) => usage.startsWith(last)), last];
    }
    const words = [...session.commandNames(), 'status', 'help', 'exit'];
    const hits = words.filter((word) => word.startsWith(line.trim()));
    return [hits.length ? hits : [], line.trim()];
  };
}

function ask(session: Session, history: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    const rl = readline.createInterface({
      input: process.stdin,
      output: process.stdout,
      completer: completer(session),
      history: [...history],
      historySize: 1000,
      removeHistoryDuplicates: true,
      terminal: Boolean(process.stdin.isTTY),
    });
    let answered = false;
    rl.on('SIGINT', () => {
      answered = true;
      rl.close();
      write('');
      resolve(undefined);
    });
    rl.on('close', () => {
      if (!answered) {
        write('');
        resolve(undefined);
      }
    });
    rl.question(PROMPT, (line) => {
      answered = true;
      rl.close();
      resolve(line);
    });
  });
}

export async function runShell(session: Session, onExit?: () => Promise<void>): Promise<number> {
  for (const line of menuLines(session)) write(line);
  const history = loadHistory();
  const prompt = interactivePrompter();
  let first = true;
  for (;;) {
    if (first && process.env['BUCARDO_CONSOLE_TIMING'])
      process.stderr.write(`[timing] prompt after ${performance.now().toFixed(1)} ms\n`);
    first = false;
    const line = await ask(session, history);
    if (line === undefined) break;
    const trimmed = line.trim();
    if (trimmed === '') continue;
    if (history[0] !== trimmed) {
      history.unshift(trimmed);
      appendHistory(trimmed);
    }
    if (trimmed === 'exit' || trimmed === 'quit') break;
    if (trimmed === 'help' || trimmed === '?') {
      for (const menuLine of menuLines(session)) write(menuLine);
      continue;
    }
    let words: string[];
    try {
      words = splitWords(trimmed);
    } catch (error) {
      writeError(errorMessage(error));
      continue;
    }
    const [name, ...args] = words;
    if (name === 'help' || name === '?') {
      const asked = session.resolve(args[0]!);
      if ('error' in asked) writeError(asked.error);
      else for (const helpLine of commandHelpLines(asked)) write(helpLine);
      continue;
    }
    const resolved = session.resolve(name!);
    if ('error' in resolved) {
      writeError(resolved.error);
      continue;
    }
    const json = args.includes('--json');
    await runCommand(
      session,
      resolved,
      args.filter((arg) => arg !== '--json'),
      { interactive: true, json, prompt },
    );
  }
  await onExit?.();
  return 0;
}
