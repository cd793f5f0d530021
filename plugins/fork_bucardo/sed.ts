// sed's `s/pattern/replacement/` (GNU sed, basic regular expressions, no flags) rewritten as a
// JavaScript RegExp plus a replacement template, so the original tool's fork_bucardo configs mean
// what they meant there without running sed: no subprocess, and no way for a config to reach sed's
// `e` or `w` flags, which execute commands and write files. Applied one line at a time, first match
// per line, as sed does. Constructs whose meaning would differ (alternation `\|`, which POSIX
// resolves leftmost-longest and JavaScript leftmost-first; case conversion `\U`...) are refused
// with a message rather than translated approximately. docs/fork_bucardo.md lists what is accepted.

export class SedSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SedSyntaxError';
  }
}

export interface SedSubstitution {
  regex: RegExp;
  /** The replacement as literal text pieces and references: 0 is `&` (the whole match), 1-9 are groups. */
  replacement: (string | number)[];
}

/** Characters that carry meaning in a JavaScript RegExp (outside and inside [...]) and are plain text in sed. */
const JS_SYNTAX = /[\\^$.*+?()[\]{}|/]/g;
const JS_CLASS_SYNTAX = /[\\^[\]/-]/g;
const literal = (char: string): string => char.replace(JS_SYNTAX, '\\$&');
const classLiteral = (char: string): string => char.replace(JS_CLASS_SYNTAX, '\\$&');

/** GNU sed's character escapes, recognised in patterns, bracket expressions and replacements. */
const CHARACTER_ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', f: '\f', v: '\v', a: '\x07' };

// Letters are Unicode letters, as GNU sed reads them in a UTF-8 locale (JavaScript's \w and \b are ASCII only).
const WORD = '[\\p{L}\\p{Nd}_]';

/** GNU sed's regex escapes beyond POSIX, in their JavaScript spelling. */
const CLASS_ESCAPES: Record<string, string> = {
  w: WORD,
  W: '[^\\p{L}\\p{Nd}_]',
  s: '\\s',
  S: '\\S',
  b: `(?:(?<=${WORD})(?!${WORD})|(?<!${WORD})(?=${WORD}))`,
  B: `(?:(?<=${WORD})(?=${WORD})|(?<!${WORD})(?!${WORD}))`,
  '<': `(?<!${WORD})(?=${WORD})`,
  '>': `(?<=${WORD})(?!${WORD})`,
  '`': '^',
  "'": '$',
};

const POSIX_CLASSES: Record<string, string> = {
  alpha: '\\p{L}',
  digit: '0-9',
  alnum: '\\p{L}0-9',
  upper: '\\p{Lu}',
  lower: '\\p{Ll}',
  space: ' \\t\\n\\r\\f\\v',
  blank: ' \\t',
  punct: '!-\\/:-@\\[-`{-~',
  print: ' -~',
  graph: '!-~',
  cntrl: '\\x00-\\x1f\\x7f',
  xdigit: '0-9A-Fa-f',
};

export function compileSubstitution(pattern: string, replacement: string): SedSubstitution {
  const { source, groups } = translatePattern(pattern);
  let regex: RegExp;
  try {
    regex = new RegExp(source, 'u');
  } catch (error) {
    throw new SedSyntaxError(
      `the pattern '${pattern}' is not a valid regular expression: ${(error as Error).message}`,
    );
  }
  return { regex, replacement: translateReplacement(replacement, groups) };
}

/** sed's `s/pattern/replacement/` on every line of `text`; returns the new text and how many lines changed. */
export function substituteLines(
  text: string,
  substitution: SedSubstitution,
): { text: string; matches: number } {
  const lines = text.split('\n');
  // A final newline ends the last line; it does not start an empty one that `^$` could match.
  const lineCount = text === '' ? 0 : text.endsWith('\n') ? lines.length - 1 : lines.length;
  let matches = 0;
  for (let i = 0; i < lineCount; i++) {
    const line = lines[i]!;
    const found = substitution.regex.exec(line);
    if (!found) continue;
    matches++;
    const inserted = substitution.replacement
      .map((piece) => (typeof piece === 'number' ? (found[piece] ?? '') : piece))
      .join('');
    lines[i] = line.slice(0, found.index) + inserted + line.slice(found.index + found[0].length);
  }
  return { text: lines.join('\n'), matches };
}

interface Translation {
  source: string;
  groups: number;
}

function translatePattern(pattern: string): Translation {
  if (pattern === '') {
    throw new SedSyntaxError(
      'the pattern is empty (sed would reuse the previous pattern, which a config has none of)',
    );
  }
  if (pattern.includes('\n')) {
    throw new SedSyntaxError('the pattern contains a line break; sed matches one line at a time');
  }
  let out = '';
  let groups = 0;
  let open = 0;
  // Whether the last thing emitted can take a quantifier, and whether it already has one.
  let atom = false;
  let quantified = false;
  // At the start of the pattern or of a group: where '^' anchors, and where '*' (also after that '^') is plain text.
  let start = true;
  let afterStartAnchor = false;
  const emitAtom = (text: string): void => {
    out += text;
    atom = true;
    quantified = false;
  };
  const quantify = (text: string, what: string): void => {
    if (!atom)
      throw new SedSyntaxError(`'${what}' in the pattern '${pattern}' follows nothing it could repeat`);
    if (quantified) {
      throw new SedSyntaxError(
        `'${what}' in the pattern '${pattern}' repeats a repetition; GNU sed refuses this ` +
          '("Invalid preceding regular expression")',
      );
    }
    out += text;
    quantified = true;
  };
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i]!;
    const atStart = start || afterStartAnchor;
    afterStartAnchor = start && char === '^';
    start = char === '\\' && pattern[i + 1] === '(';
    if (char === '/') {
      throw new SedSyntaxError(
        `the pattern '${pattern}' has an unescaped '/', which ends sed's pattern: ` + "write it as '\\/'",
      );
    }
    if (char === '^' && afterStartAnchor) {
      out += '^';
      atom = false;
      continue;
    }
    if (char === '$' && (i === pattern.length - 1 || pattern.startsWith('\\)', i + 1))) {
      out += '$';
      atom = false;
      continue;
    }
    if (char === '*') {
      // POSIX: a star with nothing before it (start, after `\(` or `^`) is a plain star.
      if (atStart) emitAtom('\\*');
      else quantify('*', '*');
      continue;
    }
    if (char === '.') {
      emitAtom('.');
      continue;
    }
    if (char === '[') {
      const { source, end } = translateBracket(pattern, i);
      emitAtom(source);
      i = end;
      continue;
    }
    if (char !== '\\') {
      emitAtom(literal(char));
      continue;
    }

    const next = pattern[++i];
    if (next === undefined) throw new SedSyntaxError(`the pattern '${pattern}' ends with a lone backslash`);
    if (next === '(') {
      groups++;
      open++;
      out += '(';
      atom = false;
      continue;
    }
    if (next === ')') {
      if (open === 0) throw new SedSyntaxError(`the pattern '${pattern}' has '\\)' without a matching '\\('`);
      open--;
      emitAtom(')');
      continue;
    }
    if (next === '{') {
      const close = pattern.indexOf('\\}', i);
      const bounds = close < 0 ? undefined : /^(\d*)(,(\d*))?$/.exec(pattern.slice(i + 1, close));
      if (!bounds || (bounds[1] === '' && bounds[2] === undefined)) {
        throw new SedSyntaxError(
          `the interval in the pattern '${pattern}' must read \\{n\\}, \\{n,\\}, \\{n,m\\} ` + 'or \\{,m\\}',
        );
      }
      const min = bounds[1] === '' ? '0' : bounds[1]!;
      if (bounds[3] && Number(bounds[3]) < Number(min)) {
        throw new SedSyntaxError(
          `the interval \\{${bounds[1]},${bounds[3]}\\} in the pattern '${pattern}' has its ` +
            'bounds the wrong way round',
        );
      }
      quantify(bounds[2] === undefined ? `{${min}}` : `{${min},${bounds[3] ?? ''}}`, '\\{');
      i = close + 1;
      continue;
    }
    if (next === '+' || next === '?') {
      quantify(next, `\\${next}`);
      continue;
    }
    if (next === '|') {
      throw new SedSyntaxError(
        `the pattern '${pattern}' uses alternation '\\|', which this tool does not translate ` +
          '(sed picks the longest alternative, JavaScript the first); write one change per alternative',
      );
    }
    if (/[1-9]/.test(next)) {
      if (Number(next) > groups) {
        throw new SedSyntaxError(`the pattern '${pattern}' refers to group \\${next} before it exists`);
      }
      emitAtom(`\\${next}`);
      continue;
    }
    if (next in CHARACTER_ESCAPES) {
      emitAtom(literal(CHARACTER_ESCAPES[next]!));
      continue;
    }
    if (next in CLASS_ESCAPES) {
      const anchor = /[bB<>`']/.test(next);
      if (anchor) {
        out += CLASS_ESCAPES[next];
        atom = false;
      } else emitAtom(CLASS_ESCAPES[next]!);
      continue;
    }
    if (/[A-Za-z0-9]/.test(next)) {
      throw new SedSyntaxError(
        `the pattern '${pattern}' uses '\\${next}', which this tool does not translate; ` +
          'docs/fork_bucardo.md lists the escapes it accepts',
      );
    }
    // Any other escaped character stands for itself: \. \* \[ \] \^ \$ \\ \/ ...
    emitAtom(literal(next));
  }
  if (open > 0) throw new SedSyntaxError(`the pattern '${pattern}' has '\\(' without a matching '\\)'`);
  return { source: out, groups };
}

/** A POSIX bracket expression starting at `start` ('['): backslash is plain text inside it, except GNU's \n, \t... */
function translateBracket(pattern: string, start: number): { source: string; end: number } {
  let i = start + 1;
  let negate = false;
  if (pattern[i] === '^') {
    negate = true;
    i++;
  }
  const items: string[] = [];
  let first = true;
  for (; i < pattern.length; i++) {
    const char = pattern[i]!;
    if (char === ']' && !first) {
      if (items.length === 0)
        throw new SedSyntaxError(`the pattern '${pattern}' has an empty bracket expression`);
      return { source: `[${negate ? '^' : ''}${items.join('')}]`, end: i };
    }
    first = false;
    if (char === '[' && (pattern[i + 1] === ':' || pattern[i + 1] === '.' || pattern[i + 1] === '=')) {
      const kind = pattern[i + 1]!;
      const close = pattern.indexOf(`${kind}]`, i + 2);
      if (close < 0) throw new SedSyntaxError(`the pattern '${pattern}' has an unterminated '[${kind}'`);
      const name = pattern.slice(i + 2, close);
      if (kind !== ':' || !(name in POSIX_CLASSES)) {
        throw new SedSyntaxError(
          `the pattern '${pattern}' uses '[${kind}${name}${kind}]', which this tool does not ` +
            'translate; use [:alpha:], [:digit:], [:space:] and the like',
        );
      }
      items.push(POSIX_CLASSES[name]!);
      i = close + 1;
      continue;
    }
    let value = char;
    const escaped = char === '\\' ? pattern[i + 1] : undefined;
    if (escaped !== undefined && escaped in CHARACTER_ESCAPES) {
      value = CHARACTER_ESCAPES[escaped]!;
      i++;
    }
    // A range a-z: '-' between two characters, not first or last in the list.
    if (pattern[i + 1] === '-' && pattern[i + 2] !== undefined && pattern[i + 2] !== ']') {
      const high = pattern[i + 2]!;
      if (high.codePointAt(0)! < value.codePointAt(0)!) {
        throw new SedSyntaxError(`the range '${value}-${high}' in the pattern '${pattern}' runs backwards`);
      }
      items.push(`${classLiteral(value)}-${classLiteral(high)}`);
      i += 2;
      continue;
    }
    items.push(classLiteral(value));
  }
  throw new SedSyntaxError(`the pattern '${pattern}' has '[' without a closing ']'`);
}

function translateReplacement(replacement: string, groups: number): (string | number)[] {
  if (replacement.includes('\n'))
    throw new SedSyntaxError('the replacement contains a line break; write \\n for one');
  const pieces: (string | number)[] = [];
  let text = '';
  const flush = (): void => {
    if (text) pieces.push(text);
    text = '';
  };
  for (let i = 0; i < replacement.length; i++) {
    const char = replacement[i]!;
    if (char === '/') {
      throw new SedSyntaxError(
        `the replacement '${replacement}' has an unescaped '/', which ends sed's replacement: ` +
          "write it as '\\/'",
      );
    }
    if (char === '&') {
      flush();
      pieces.push(0);
      continue;
    }
    if (char !== '\\') {
      text += char;
      continue;
    }
    const next = replacement[++i];
    if (next === undefined)
      throw new SedSyntaxError(`the replacement '${replacement}' ends with a lone backslash`);
    if (/[0-9]/.test(next)) {
      if (Number(next) > groups) {
        throw new SedSyntaxError(
          `the replacement '${replacement}' refers to \\${next}, but the pattern has ${groups} ` + 'group(s)',
        );
      }
      flush();
      pieces.push(Number(next));
      continue;
    }
    if (next in CHARACTER_ESCAPES) {
      text += CHARACTER_ESCAPES[next];
      continue;
    }
    if (/[A-Za-z]/.test(next)) {
      throw new SedSyntaxError(
        `the replacement '${replacement}' uses '\\${next}', which this tool does not translate ` +
          "(GNU sed's case conversions \\U \\L \\u \\l \\E included)",
      );
    }
    text += next;
  }
  flush();
  return pieces;
}
