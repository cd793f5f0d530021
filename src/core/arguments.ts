// A command's arguments, declared in its descriptor and parsed before it runs, so that a typo such
// as `indexes.drop --dryrun` is refused instead of silently ignored (docs/commands-arguments.md).
// Pure and light: the shell loads it before the prompt appears, and unit tests call it directly.
import { closest, editDistance } from '../config/reader.js';

/**
 * flag: `--name`, true when given. integer / number: `--name N` or `--name=N`. seconds: a duration,
 * `--name 30`, `30s`, `2m`, `1h`. string: `--name VALUE`. assignment: a bare `NAME=VALUE` word
 * (`bucardo.change_config log_level=verbose`).
 */
export type ArgumentKind = 'flag' | 'integer' | 'number' | 'seconds' | 'string' | 'assignment';

export interface ArgumentDescriptor {
  kind: ArgumentKind;
  help: string;
  /** The value a command sees when the argument is not given (flags: false). */
  default?: number | string;
  /** The value may be left out (`--watch` alone means this value; `--watch 5` gives 5). */
  bareValue?: number | string;
  /** Shown in place of the value in help (`SECONDS`, `SETTING=VALUE`). */
  placeholder?: string;
  /** Arguments that cannot be given together with this one. */
  conflicts?: string[];
}

export interface Assignment {
  name: string;
  value: string;
}

export type ArgumentValue = boolean | number | string | Assignment | undefined;

/** The parsed arguments of one command run, by declared name (without the dashes). */
export class CommandOptions {
  constructor(
    readonly values: Readonly<Record<string, ArgumentValue>> = {},
    readonly given: ReadonlySet<string> = new Set(),
  ) {}

  flag(name: string): boolean {
    return this.values[name] === true;
  }

  number(name: string): number | undefined {
    const value = this.values[name];
    return typeof value === 'number' ? value : undefined;
  }

  string(name: string): string | undefined {
    const value = this.values[name];
    return typeof value === 'string' ? value : undefined;
  }

  assignment(name: string): Assignment | undefined {
    const value = this.values[name];
    return typeof value === 'object' ? value : undefined;
  }

  /** Whether the operator typed it (a default does not count). */
  has(name: string): boolean {
    return this.given.has(name);
  }
}

/** Accepted by every command, handled by the runner: they never reach the command's options. */
export const RUNNER_ARGUMENTS: Readonly<Record<string, ArgumentDescriptor>> = {
  json: { kind: 'flag', help: 'print the result as one JSON object (for scripts)' },
  help: { kind: 'flag', help: "show this command's summary and arguments instead of running it" },
};

export interface ParsedArguments {
  options: CommandOptions;
  json: boolean;
  help: boolean;
  /** One message per problem; the command must not run when there is any. */
  problems: string[];
}

const PLACEHOLDERS: Partial<Record<ArgumentKind, string>> = { seconds: 'SECONDS', string: 'VALUE' };
const SECONDS_UNITS: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600 };

/** Turns a value word into the argument's kind, or says why it cannot. */
export function parseValue(kind: ArgumentKind, text: string): { value: number | string } | { error: string } {
  switch (kind) {
    case 'integer':
      return /^-?\d+$/.test(text) ? { value: Number(text) } : { error: 'expected a whole number' };
    case 'number':
      return /^-?(\d+(\.\d*)?|\.\d+)$/.test(text) ? { value: Number(text) } : { error: 'expected a number' };
    case 'seconds': {
      const match = /^(\d+(?:\.\d+)?)\s*(s|m|h)?$/.exec(text);
      if (!match) return { error: 'expected a duration in seconds (30, 30s, 2m, 1h)' };
      return { value: Number(match[1]) * SECONDS_UNITS[match[2] ?? '']! };
    }
    case 'string':
      return text === '' ? { error: 'expected a value' } : { value: text };
    default:
      return { error: `a ${kind} takes no value` };
  }
}

/** `--dry-run` for a flag, `--wait SECONDS` for a value, `SETTING=VALUE` for an assignment. */
export function argumentUsage(name: string, spec: ArgumentDescriptor): string {
  if (spec.kind === 'assignment') return spec.placeholder ?? 'NAME=VALUE';
  if (spec.kind === 'flag') return `--${name}`;
  const placeholder = spec.placeholder ?? PLACEHOLDERS[spec.kind] ?? 'N';
  return spec.bareValue !== undefined ? `--${name} [${placeholder}]` : `--${name} ${placeholder}`;
}

/** Help lines for a command's arguments, the runner's included. */
export function argumentHelpLines(declared: Readonly<Record<string, ArgumentDescriptor>> = {}): string[] {
  const all = Object.entries({ ...declared, ...RUNNER_ARGUMENTS });
  const width = Math.max(...all.map(([name, spec]) => argumentUsage(name, spec).length));
  return all.map(([name, spec]) => {
    const extras = [
      spec.default !== undefined ? `default ${spec.default}` : '',
      spec.bareValue !== undefined ? `alone: ${spec.bareValue}` : '',
    ]
      .filter(Boolean)
      .join('; ');
    return `  ${argumentUsage(name, spec).padEnd(width)}  ${spec.help}${extras ? ` (${extras})` : ''}`;
  });
}

/** "indexes.drop accepts --dry-run, --upstream-copy-done, --json, --help." */
export function acceptedSentence(
  command: string,
  declared: Readonly<Record<string, ArgumentDescriptor>> = {},
): string {
  const usages = Object.entries({ ...declared, ...RUNNER_ARGUMENTS }).map(([name, spec]) =>
    argumentUsage(name, spec),
  );
  return `${command} accepts ${usages.join(', ')}; '${command} --help' explains them.`;
}

/**
 * Parses the words typed after a command name against its declared arguments. Value arguments take
 * `--name VALUE` or `--name=VALUE`; a bare `name=VALUE` also names a value argument (the older
 * `cutover.verify settle=0` form), otherwise it is the command's assignment, if it declares one.
 * Every problem is collected, each naming the command, what it accepts and a likely intended word.
 */
export function parseCommandArguments(
  command: string,
  declared: Readonly<Record<string, ArgumentDescriptor>> = {},
  words: readonly string[] = [],
): ParsedArguments {
  const all: Record<string, ArgumentDescriptor> = { ...declared, ...RUNNER_ARGUMENTS };
  const values: Record<string, ArgumentValue> = {};
  const given = new Set<string>();
  const problems: string[] = [];
  const assignmentName = Object.keys(declared).find((name) => declared[name]!.kind === 'assignment');
  const candidates = Object.entries(all).flatMap(([name, spec]) =>
    spec.kind === 'assignment' ? [] : [`--${name}`],
  );
  const accepted = acceptedSentence(command, declared);
  const unknown = (word: string, stem: string) => {
    const hint = likelyMeant(stem, candidates);
    problems.push(
      `${command} does not accept '${word}'.${hint ? ` Did you mean '${hint}'?` : ''} ${accepted}`,
    );
  };
  const store = (name: string, value: ArgumentValue, word: string) => {
    if (given.has(name) && all[name]!.kind !== 'flag') {
      const what = all[name]!.kind === 'assignment' ? 'a setting' : `--${name}`;
      problems.push(`${command}: '${word}' gives ${what} a second time; give it once.`);
      return;
    }
    given.add(name);
    values[name] = value;
  };

  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    const long = /^--([A-Za-z][\w-]*)(?:=(.*))?$/s.exec(word);
    const bareAssignment = /^([^-=][^=]*)=(.*)$/s.exec(word);
    if (long) {
      const [, name, inlineValue] = long as unknown as [string, string, string | undefined];
      const spec = all[name];
      if (!spec || spec.kind === 'assignment') {
        unknown(word, `--${name}`);
        continue;
      }
      if (spec.kind === 'flag') {
        if (inlineValue === undefined) store(name, true, word);
        else
          problems.push(`${command}: --${name} is a flag and takes no value ('${word}'); write '--${name}'.`);
        continue;
      }
      let text = inlineValue;
      const next = words[i + 1];
      if (text === undefined && next !== undefined && !next.startsWith('--')) {
        // An optional value is taken only when the next word is one: `--watch bucardo.stop` is not.
        if (spec.bareValue === undefined || 'value' in parseValue(spec.kind, next)) {
          text = next;
          i += 1;
        }
      }
      if (text === undefined) {
        if (spec.bareValue !== undefined) store(name, spec.bareValue, word);
        else
          problems.push(
            `${command}: ${argumentUsage(name, spec)} needs a value, e.g. --${name}=${example(spec)}.`,
          );
        continue;
      }
      const parsed = parseValue(spec.kind, text);
      if ('value' in parsed) store(name, parsed.value, word);
      else problems.push(`${command}: '${text}' is not a valid value for --${name}: ${parsed.error}.`);
    } else if (bareAssignment) {
      const [, key, value] = bareAssignment as unknown as [string, string, string];
      const spec = all[key];
      if (spec && spec.kind !== 'flag' && spec.kind !== 'assignment') {
        const parsed = parseValue(spec.kind, value);
        if ('value' in parsed) store(key, parsed.value, word);
        else problems.push(`${command}: '${value}' is not a valid value for ${key}: ${parsed.error}.`);
      } else if (assignmentName) {
        const form = declared[assignmentName]!.placeholder ?? 'NAME=VALUE';
        if (!/^[A-Za-z_][\w.]*$/.test(key)) {
          const why = `'${key}' is not a setting name (letters, digits and underscores)`;
          problems.push(`${command}: '${word}' is not a valid ${form}: ${why}.`);
        } else if (value === '') {
          problems.push(`${command}: '${word}' gives ${key} no value; write ${key}=VALUE.`);
        } else {
          store(assignmentName, { name: key, value }, word);
        }
      } else {
        unknown(word, `--${key}`);
      }
    } else if (word === '=' || word.startsWith('=')) {
      const form = assignmentName ? ` Write ${declared[assignmentName]!.placeholder ?? 'NAME=VALUE'}.` : '';
      problems.push(`${command}: '${word}' has no name before '='.${form} ${accepted}`);
    } else {
      unknown(word, word.startsWith('-') ? `--${word.replace(/^-+/, '')}` : `--${word}`);
    }
  }

  const conflicting = new Set<string>();
  for (const name of given) {
    for (const other of all[name]!.conflicts ?? []) {
      if (given.has(other))
        conflicting.add(
          [name, other]
            .sort()
            .map((n) => `--${n}`)
            .join(' and '),
        );
    }
  }
  for (const pair of conflicting) problems.push(`${command}: ${pair} cannot be given together; choose one.`);
  for (const [name, spec] of Object.entries(declared)) {
    if (!given.has(name)) values[name] = spec.kind === 'flag' ? false : spec.default;
  }
  const json = values['json'] === true;
  const help = values['help'] === true;
  delete values['json'];
  delete values['help'];
  given.delete('json');
  given.delete('help');
  return { options: new CommandOptions(values, given), json, help, problems };
}

/** Stricter than the config's closest(): short argument names are all near each other (--soon, --json). */
function likelyMeant(typed: string, candidates: string[]): string | undefined {
  const hint = closest(typed, candidates);
  const stem = (word: string) => word.replace(/^-+/, '');
  if (!hint) return undefined;
  const distance = editDistance(stem(typed).toLowerCase(), stem(hint).toLowerCase());
  return distance <= Math.max(1, Math.floor(stem(typed).length / 3)) ? hint : undefined;
}

function example(spec: ArgumentDescriptor): string {
  return spec.kind === 'seconds' ? '30' : spec.kind === 'string' ? 'VALUE' : '1';
}
