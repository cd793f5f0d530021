// PgBouncer's ini file as the switch sees it: the [databases] entries the application uses, read and
// pointed at another server, with every other line (other sections, other entries, comments, blank
// lines, the order of an entry's settings) kept byte for byte. Pure: pooler.ts reads and writes the file.

/** Where a pooler database entry points (the libpq keywords PgBouncer reads in its connection string). */
export interface PoolerTarget {
  host: string;
  port: number;
  dbname: string;
}

export interface DatabaseEntry {
  name: string;
  /** Index of its line in the file. */
  line: number;
  /** Its connection string's settings, in the file's order. */
  settings: { key: string; value: string }[];
}

/** The entry a database name resolves to, as PgBouncer reads it: host, port, dbname (dbname defaults to the name). */
export function entryTarget(entry: DatabaseEntry): { host?: string; port?: number; dbname: string } {
  const get = (key: string) => entry.settings.find((s) => s.key === key)?.value;
  const port = get('port');
  return {
    ...(get('host') !== undefined ? { host: get('host')! } : {}),
    ...(port !== undefined ? { port: Number(port) } : {}),
    dbname: get('dbname') ?? entry.name,
  };
}

const SECTION = /^\s*\[\s*([^\]]+?)\s*\]\s*$/;
const COMMENT = /^\s*([;#]|$)/;

/** The [databases] entries of an ini text, by name (a quoted name unquoted). */
export function databaseEntries(text: string): Map<string, DatabaseEntry> {
  const entries = new Map<string, DatabaseEntry>();
  let section = '';
  text.split('\n').forEach((raw, line) => {
    const content = raw.replace(/\r$/, '');
    const header = SECTION.exec(content);
    if (header) {
      section = header[1]!.toLowerCase();
      return;
    }
    if (section !== 'databases' || COMMENT.test(content)) return;
    const match = /^\s*("(?:[^"]|"")*"|[^=\s]+)\s*=\s*(.*?)\s*$/.exec(content);
    if (!match) return;
    const name = match[1]!.startsWith('"') ? match[1]!.slice(1, -1).replace(/""/g, '"') : match[1]!;
    entries.set(name, { name, line, settings: parseConnectionString(match[2]!) });
  });
  return entries;
}

/** key=value pairs separated by spaces; a value may be single-quoted with \\ escapes, as in libpq. */
export function parseConnectionString(text: string): { key: string; value: string }[] {
  const settings: { key: string; value: string }[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (i >= text.length) break;
    const keyStart = i;
    while (i < text.length && text[i] !== '=' && !/\s/.test(text[i]!)) i++;
    const key = text.slice(keyStart, i);
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (text[i] !== '=') throw new Error(`"${key}" has no value (expected key=value)`);
    i++;
    while (i < text.length && /\s/.test(text[i]!)) i++;
    let value = '';
    if (text[i] === "'") {
      i++;
      while (i < text.length && text[i] !== "'") {
        if (text[i] === '\\' && i + 1 < text.length) i++;
        value += text[i++];
      }
      if (text[i] !== "'") throw new Error(`the value of "${key}" has no closing quote`);
      i++;
    } else {
      while (i < text.length && !/\s/.test(text[i]!)) value += text[i++];
    }
    settings.push({ key, value });
  }
  return settings;
}

function formatValue(value: string): string {
  return /^[^\s'\\]+$/.test(value) ? value : `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/**
 * The text with each named entry pointed at the target: host, port and dbname replaced where the entry
 * has them, appended where it has not; every other setting (user, pool_size, auth_user...) and every
 * other line kept as it was. Throws, naming them, when entries are missing.
 */
export function pointEntries(text: string, names: string[], target: PoolerTarget): string {
  const entries = databaseEntries(text);
  const missing = names.filter((name) => !entries.has(name));
  if (missing.length) throw new Error(`no [databases] entry for ${missing.join(', ')}`);
  const lines = text.split('\n');
  for (const name of names) {
    const entry = entries.get(name)!;
    const wanted: Record<string, string> = {
      host: target.host,
      port: String(target.port),
      dbname: target.dbname,
    };
    const settings = entry.settings.map((s) => (s.key in wanted ? { key: s.key, value: wanted[s.key]! } : s));
    for (const key of Object.keys(wanted))
      if (!settings.some((s) => s.key === key)) settings.push({ key, value: wanted[key]! });
    const original = lines[entry.line]!;
    const carriageReturn = original.endsWith('\r') ? '\r' : '';
    const prefix = /^(\s*(?:"(?:[^"]|"")*"|[^=\s]+)\s*=\s*)/.exec(original)![1]!;
    lines[entry.line] =
      `${prefix}${settings.map((s) => `${s.key}=${formatValue(s.value)}`).join(' ')}${carriageReturn}`;
  }
  return lines.join('\n');
}
