// A small typed reader over untrusted YAML. It never throws on a bad value: every problem is
// collected with its key path so the operator sees all of them at once.

export type Raw = Record<string, unknown>;

export class ConfigReader {
  readonly problems: string[] = [];

  constructor(readonly file: string) {}

  problem(path: string, message: string): void {
    this.problems.push(`${path}: ${message}`);
  }

  /** Returns the mapping at `path`, reporting unknown keys with a did-you-mean. */
  section(value: unknown, path: string, allowedKeys: readonly string[]): Raw {
    if (value === undefined || value === null) return {};
    if (typeof value !== 'object' || Array.isArray(value)) {
      this.problem(path, `expected a mapping of keys, got ${describe(value)}`);
      return {};
    }
    const raw = value as Raw;
    for (const key of Object.keys(raw)) {
      if (!allowedKeys.includes(key)) {
        const hint = closest(key, allowedKeys);
        const where = path ? `${path}.${key}` : key;
        this.problem(
          where,
          `unknown key${hint ? ` (did you mean '${hint}'?)` : ''}; allowed here: ${allowedKeys.join(', ')}`,
        );
      }
    }
    return raw;
  }

  string(raw: Raw, key: string, path: string, fallback: string): string;
  string(raw: Raw, key: string, path: string, fallback?: undefined): string | undefined;
  string(raw: Raw, key: string, path: string, fallback?: string): string | undefined {
    const value = raw[key];
    if (value === undefined || value === null || value === '') return fallback;
    if (typeof value === 'number') return String(value);
    if (typeof value !== 'string') {
      this.problem(`${path}.${key}`, `expected a string, got ${describe(value)}`);
      return fallback;
    }
    return value;
  }

  requiredString(raw: Raw, key: string, path: string): string {
    const value = this.string(raw, key, path);
    if (value === undefined) {
      this.problem(`${path}.${key}`, 'is required');
      return '';
    }
    return value;
  }

  integer(
    raw: Raw,
    key: string,
    path: string,
    fallback: number,
    min = 0,
    max = Number.MAX_SAFE_INTEGER,
  ): number {
    const value = raw[key];
    if (value === undefined || value === null) return fallback;
    const parsed =
      typeof value === 'number'
        ? value
        : typeof value === 'string' && /^-?\d+$/.test(value.trim())
          ? Number(value)
          : NaN;
    if (!Number.isInteger(parsed)) {
      this.problem(`${path}.${key}`, `expected an integer, got ${describe(value)}`);
      return fallback;
    }
    if (parsed < min || parsed > max) {
      this.problem(`${path}.${key}`, `expected an integer between ${min} and ${max}, got ${parsed}`);
      return fallback;
    }
    return parsed;
  }

  number(raw: Raw, key: string, path: string, fallback: number, min = 0): number {
    const value = raw[key];
    if (value === undefined || value === null) return fallback;
    const parsed =
      typeof value === 'number'
        ? value
        : typeof value === 'string' && value.trim() !== ''
          ? Number(value)
          : NaN;
    if (!Number.isFinite(parsed) || parsed < min) {
      this.problem(
        `${path}.${key}`,
        `expected a number${min > 0 ? ` greater than or equal to ${min}` : ''}, got ${describe(value)}`,
      );
      return fallback;
    }
    return parsed;
  }

  boolean(raw: Raw, key: string, path: string, fallback: boolean): boolean {
    const value = raw[key];
    if (value === undefined || value === null) return fallback;
    if (typeof value === 'boolean') return value;
    if (typeof value === 'string' && /^(true|yes|on)$/i.test(value)) return true;
    if (typeof value === 'string' && /^(false|no|off)$/i.test(value)) return false;
    this.problem(`${path}.${key}`, `expected true or false, got ${describe(value)}`);
    return fallback;
  }

  oneOf<T extends string>(raw: Raw, key: string, path: string, choices: readonly T[], fallback: T): T {
    const value = raw[key];
    if (value === undefined || value === null) return fallback;
    const text = typeof value === 'string' ? value.toLowerCase() : value;
    if (typeof text === 'string' && (choices as readonly string[]).includes(text)) return text as T;
    this.problem(`${path}.${key}`, `expected one of ${choices.join(', ')}, got ${describe(value)}`);
    return fallback;
  }

  stringList(raw: Raw, key: string, path: string): string[] {
    const value = raw[key];
    if (value === undefined || value === null) return [];
    if (typeof value === 'string') return [value];
    if (!Array.isArray(value)) {
      this.problem(`${path}.${key}`, `expected a list of names, got ${describe(value)}`);
      return [];
    }
    const names: string[] = [];
    value.forEach((item, index) => {
      if (typeof item === 'string' && item !== '') names.push(item);
      else if (typeof item === 'number') names.push(String(item));
      else this.problem(`${path}.${key}[${index}]`, `expected a name, got ${describe(item)}`);
    });
    return names;
  }
}

export function describe(value: unknown): string {
  if (value === null) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `'${value}'`;
  return `${typeof value} ${String(value)}`;
}

/** Levenshtein distance, for did-you-mean hints on keys and commands. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const limit = Math.max(2, Math.floor(word.length / 3));
  return bestDistance <= limit ? best : undefined;
}
