// Colours and plain text. Colour only on a terminal and never with NO_COLOR (https://no-color.org).
import type { ChalkInstance } from 'chalk';

export const colourEnabled =
  Boolean(process.stdout.isTTY) && !('NO_COLOR' in process.env) && process.env['TERM'] !== 'dumb';
// chalk only when there is colour to print: loading it costs some 50 ms of CPU, paid by every list
// run, script and test that prints plain text (chalk at level 0 returns the text unchanged too).
const chalk: ChalkInstance | undefined = colourEnabled ? (await import('chalk')).default : undefined;
const paint =
  (colour: (chalk: ChalkInstance) => (text: string) => string) =>
  (text: string): string =>
    chalk ? colour(chalk)(text) : text;

export const style = {
  bold: paint((c) => c.bold),
  pass: paint((c) => c.green),
  fail: paint((c) => c.red),
  warn: paint((c) => c.yellow),
  dim: paint((c) => c.dim),
  heading: paint((c) => c.cyan.bold),
};

export function write(line = ''): void {
  process.stdout.write(`${line}\n`);
}

export function writeError(line: string): void {
  process.stderr.write(`${style.fail(line)}\n`);
}
