// Colours and plain text. Colour only on a terminal and never with NO_COLOR (https://no-color.org).
import chalk from 'chalk';

export const colourEnabled =
  Boolean(process.stdout.isTTY) && !('NO_COLOR' in process.env) && process.env['TERM'] !== 'dumb';
if (!colourEnabled) chalk.level = 0;

export const style = {
  bold: (text: string) => chalk.bold(text),
  pass: (text: string) => chalk.green(text),
  fail: (text: string) => chalk.red(text),
  warn: (text: string) => chalk.yellow(text),
  dim: (text: string) => chalk.dim(text),
  heading: (text: string) => chalk.cyan.bold(text),
};

export function write(line = ''): void {
  process.stdout.write(`${line}\n`);
}

export function writeError(line: string): void {
  process.stderr.write(`${style.fail(line)}\n`);
}
