// The command line: node wrapper.js [-c FILE] [-c1 FILE -c2 FILE] [-i] [-l "cmd cmd ..."] [--json] [--demo]
import { OperatorError } from '../core/errors.js';

export interface CliOptions {
  configFiles: string[];
  list?: string[];
  /** A command given after the options (`-c job.yml status --json`): run alone, like -l with one command. */
  command?: string;
  json: boolean;
  demo: boolean;
  /** --demo with cluster A on another PostgreSQL major version (src/sandbox/versions.ts). */
  primaryVersion?: number;
  help: boolean;
  version: boolean;
}

export const USAGE = `Usage: node wrapper.js [options] [COMMAND [ARGS]]

Options:
  -c, --config FILE   the replication job's config (default: config.yml in the current directory)
  -c1 FILE -c2 FILE   two jobs in one session (A->B and B->C); prefix commands with c1. / c2.
  -i, --interactive   open the prompt (the default when no -l is given)
  -l, --list "CMDS"   run these commands in order, each followed by its check; stop at the first failure
      --json          with -l: print one JSON object per command (for scripts)
      --demo          start a sandbox with three local PostgreSQL clusters and open the shell on A->B->C
      --primary-version N   with --demo: run A on PostgreSQL N (10-18), as in a major-version upgrade
  COMMAND [ARGS]      run one command and exit with its code (status --json: the state as JSON)
  -h, --help          this help, and every command of every enabled plugin when a config loads
  -v, --version       the tool's version`;

export function parseArguments(argv: string[]): CliOptions {
  const options: CliOptions = { configFiles: [], json: false, demo: false, help: false, version: false };
  const numbered: string[] = [];
  const value = (flag: string, index: number): string => {
    const next = argv[index + 1];
    if (next === undefined || (next.startsWith('-') && next.length > 1))
      throw new OperatorError(
        `${flag} needs a value. ${flag === '-l' || flag === '--list' ? 'Example: -l "bucardo.install bucardo.add_triggers"' : 'Example: -c configs/a_to_b.yml'}`,
      );
    return next;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const numberedMatch = /^--?c(\d)$/.exec(arg);
    if (arg === '-c' || arg === '--config') options.configFiles.push(value(arg, i++));
    else if (numberedMatch) numbered[Number(numberedMatch[1]) - 1] = value(arg, i++);
    else if (arg === '-l' || arg === '--list') options.list = splitList(value(arg, i++));
    else if (arg === '-i' || arg === '--interactive') continue;
    else if (arg === '--json') options.json = true;
    else if (arg === '--demo') options.demo = true;
    else if (arg === '--primary-version') {
      const text = value(arg, i++);
      if (!/^\d+$/.test(text))
        throw new OperatorError(
          `--primary-version needs a major version number, e.g. --primary-version 11; got '${text}'.`,
        );
      options.primaryVersion = Number(text);
    } else if (arg === '-h' || arg === '--help') options.help = true;
    else if (arg === '-v' || arg === '--version') options.version = true;
    else if (!arg.startsWith('-') && !options.list) {
      options.command = argv.slice(i).map(quoteWord).join(' ');
      if (argv.slice(i).includes('--json')) options.json = true;
      break;
    } else throw new OperatorError(`Unknown option '${arg}'.\n\n${USAGE}`);
  }
  if (numbered.length > 0) {
    if (options.configFiles.length > 0)
      throw new OperatorError('Use either -c FILE or -c1 FILE -c2 FILE, not both.');
    if (numbered.some((file) => file === undefined) || numbered.length < 2)
      throw new OperatorError(
        'Two-config sessions need both -c1 FILE and -c2 FILE (A->B first, B->C second).',
      );
    options.configFiles = numbered;
  }
  if (options.primaryVersion !== undefined && !options.demo)
    throw new OperatorError(
      '--primary-version only applies to --demo: node wrapper.js --demo --primary-version 11.',
    );
  if (options.configFiles.length > 1 && numbered.length === 0)
    throw new OperatorError('Give one -c FILE, or two configs as -c1 FILE -c2 FILE.');
  return options;
}

/**
 * "a b --json c x=1 d --watch 5" → ["a", "b --json", "c x=1", "d --watch 5"]: words starting with -,
 * name=value words and numbers are arguments of the command before them (a command name never
 * starts with a dash or a digit, nor contains '='). A leading argument stays an item of its own, for
 * list mode to refuse.
 */
export function splitList(text: string): string[] {
  const items: string[] = [];
  for (const word of rawWords(text)) {
    // A quoted word is a value (schema.apply --sql "ALTER TABLE ..."): a command name is never quoted.
    const argument = word.startsWith('-') || word.includes('=') || /^\d/.test(word) || /^["']/.test(word);
    if (argument && items.length > 0) items[items.length - 1] += ` ${word}`;
    else items.push(word);
  }
  return items;
}

/**
 * The words of a command as typed, quotes kept: whitespace separates words except inside "..." (where
 * \" and \\ escape) or '...' (literal), as in a POSIX shell, so that a value can hold spaces:
 * schema.apply --sql "ALTER TABLE t ADD COLUMN c int". An unclosed quote is refused.
 */
function rawWords(text: string): string[] {
  const words: string[] = [];
  let current = '';
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      if (inWord) words.push(current);
      current = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (c === '"' || c === "'") {
      let end = i + 1;
      while (end < text.length && text[end] !== c) end += c === '"' && text[end] === '\\' ? 2 : 1;
      if (end >= text.length)
        throw new OperatorError(
          `A ${c} quote is not closed in: ${text.slice(i, i + 60)}. Close it, as in --sql "ALTER TABLE t ADD COLUMN c int".`,
        );
      current += text.slice(i, end + 1);
      i = end;
      continue;
    }
    current += c;
  }
  if (inWord) words.push(current);
  return words;
}

/** A word without its quotes: "a b" → a b, 'x "y"' → x "y", \" inside double quotes → ". */
function unquote(word: string): string {
  let result = '';
  for (let i = 0; i < word.length; i++) {
    const c = word[i]!;
    if (c === "'") {
      const end = word.indexOf("'", i + 1);
      result += word.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      for (; word[j] !== '"'; j++) {
        if (word[j] === '\\' && (word[j + 1] === '"' || word[j + 1] === '\\')) j++;
        result += word[j];
      }
      i = j;
    } else result += c;
  }
  return result;
}

/** A command line's words, quotes removed (list items, the prompt's lines). Throws on an unclosed quote. */
export function splitWords(text: string): string[] {
  return rawWords(text).map(unquote);
}

/** A word as splitWords reads it back: quoted when it holds whitespace or a quote. */
export function quoteWord(word: string): string {
  return /[\s"'\\]/.test(word) || word === '' ? `"${word.replace(/["\\]/g, (c) => `\\${c}`)}"` : word;
}
