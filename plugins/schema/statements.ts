// schema.apply's reading of a SQL file: split into statements (quotes, dollar quotes and comments
// respected), then each statement classified by what it does to the replicated tables, which decides
// on which side it runs first (docs/commands/schema.md, "The order") or why it is refused. Pure: no
// database; names are resolved against the primary's catalog by apply.ts.

/** A column an ALTER TABLE adds, its parts as written. */
export interface AddedColumn {
  name: string;
  type: string;
  /** The DEFAULT expression's text. */
  default?: string;
  /** GENERATED ... AS IDENTITY: numbered from a sequence on each side. */
  identity: boolean;
}

/** A name as written: schema undefined when unqualified. */
export interface WrittenName {
  schema?: string;
  name: string;
}

export type StatementKind =
  /** Makes the secondary accept more: run there first (ADD COLUMN, a wider type, DROP NOT NULL...). */
  | 'widen'
  /** Makes the primary accept less: run there first (DROP COLUMN, SET NOT NULL, ADD CONSTRAINT). */
  | 'narrow'
  /** A new table: created on both sides (secondary first), then added to the job when in scope. */
  | 'create table'
  /** A dropped table: removed from the job's sync first, then dropped on the primary, then the secondary. */
  | 'drop table'
  /** Rows (INSERT, UPDATE, DELETE, TRUNCATE, COPY): the primary only; Bucardo or the copy carries them. */
  | 'data'
  /** Anything else (an index, a view, a function, a comment, a grant): both sides, secondary first. */
  | 'other';

export interface Statement {
  /** 1-based, in the file. */
  number: number;
  sql: string;
  kind: StatementKind;
  /** The table it changes, when it changes one. */
  table?: WrittenName;
  /** A column it adds or drops or changes. */
  column?: string;
  /** ALTER COLUMN ... TYPE: the new type, as written (checked against the current one by apply). */
  newType?: string;
  /**
   * ADD COLUMN: each added column's type and default as written, which apply.ts has the primary read
   * to refuse a default that is not immutable on a table with rows.
   */
  addedColumns?: AddedColumn[];
  /** DROP CONSTRAINT: the constraint's name (a primary key is refused once resolved). */
  droppedConstraint?: string;
  /** Why Bucardo cannot follow it, and the safe sequence of steps instead. */
  refused?: string;
}

/** Splits SQL text into statements at top-level semicolons; comments and blank statements dropped. */
export function splitStatements(text: string): string[] {
  const statements: string[] = [];
  let current = '';
  let i = 0;
  const push = () => {
    const sql = current.trim();
    if (sql) statements.push(sql);
    current = '';
  };
  while (i < text.length) {
    const c = text[i]!;
    const next = text[i + 1];
    if (c === '-' && next === '-') {
      const end = text.indexOf('\n', i);
      i = end === -1 ? text.length : end + 1;
      current += ' ';
      continue;
    }
    if (c === '/' && next === '*') {
      let depth = 1;
      i += 2;
      while (i < text.length && depth > 0) {
        const pair = text.slice(i, i + 2);
        depth += pair === '/*' ? 1 : pair === '*/' ? -1 : 0;
        i += pair === '/*' || pair === '*/' ? 2 : 1;
      }
      if (depth > 0) throw new SyntaxError('a /* comment is not closed');
      current += ' ';
      continue;
    }
    if (c === "'" || c === '"') {
      const end = closingQuote(text, i, c);
      current += text.slice(i, end + 1);
      i = end + 1;
      continue;
    }
    if (c === '$') {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(text.slice(i));
      if (tag && !/[A-Za-z0-9_]/.test(text[i - 1] ?? '')) {
        const end = text.indexOf(tag[0], i + tag[0].length);
        if (end === -1) throw new SyntaxError(`a ${tag[0]} quote is not closed`);
        current += text.slice(i, end + tag[0].length);
        i = end + tag[0].length;
        continue;
      }
    }
    if (c === ';') {
      push();
      i += 1;
      continue;
    }
    current += c;
    i += 1;
  }
  push();
  return statements;
}

function closingQuote(text: string, start: number, quote: string): number {
  let i = start + 1;
  for (;;) {
    const at = text.indexOf(quote, i);
    if (at === -1) throw new SyntaxError(`a ${quote} quote is not closed`);
    if (text[at + 1] === quote) {
      i = at + 2;
      continue;
    }
    return at;
  }
}

/** Words and quoted identifiers of a statement, lowercased unless quoted, with punctuation as tokens. */
export function tokens(sql: string): Token[] {
  const found: Token[] = [];
  const pattern =
    /"((?:[^"]|"")*)"|'(?:[^']|'')*'|(\$[A-Za-z_0-9]*\$)[\s\S]*?\2|([A-Za-z_][A-Za-z0-9_$]*)|(\d+(?:\.\d+)?)|(\S)/g;
  for (const match of sql.matchAll(pattern)) {
    const at = { start: match.index!, end: match.index! + match[0].length };
    if (match[1] !== undefined) found.push({ text: match[1].replace(/""/g, '"'), quoted: true, ...at });
    else if (match[3] !== undefined) found.push({ text: match[3].toLowerCase(), quoted: false, ...at });
    else found.push({ text: match[0], quoted: false, ...at });
  }
  return found;
}

/** A word or quoted identifier, with where it stands in the statement's text. */
type Token = { text: string; quoted: boolean; start: number; end: number };

/** Reads `name` or `schema.name` at position `at`; returns the name and the position after it. */
function readName(list: Token[], at: number): { name: WrittenName; next: number } | undefined {
  const first = list[at];
  if (!first || (!first.quoted && !/^[a-z_]/.test(first.text))) return undefined;
  if (list[at + 1]?.text === '.' && !list[at + 1]!.quoted && list[at + 2]) {
    return { name: { schema: first.text, name: list[at + 2]!.text }, next: at + 3 };
  }
  return { name: { name: first.text }, next: at + 1 };
}

const word = (token: Token | undefined, ...words: string[]) =>
  token !== undefined && !token.quoted && words.includes(token.text);

/** The actions of an ALTER TABLE, split at top-level commas. */
function actions(list: Token[], from: number): Token[][] {
  const result: Token[][] = [[]];
  let depth = 0;
  for (const token of list.slice(from)) {
    if (!token.quoted && token.text === '(') depth += 1;
    if (!token.quoted && token.text === ')') depth -= 1;
    if (!token.quoted && token.text === ',' && depth === 0) result.push([]);
    else result.at(-1)!.push(token);
  }
  return result.filter((a) => a.length > 0);
}

const RENAME_COLUMN =
  'Bucardo copies rows by column name, and a renamed column is a dropped column plus a new one to it: rows changed in between would lose the values. The safe sequence: add the new column (schema.apply), have the application write both columns, copy the old values over in batches on the primary (Bucardo carries them), switch the readers, then drop the old column (schema.apply)';
const RENAME_TABLE =
  'Bucardo knows the table by its name: a renamed table is a table dropped from the sync and a new one it does not carry. The safe sequence: keep the old name until the cutover and rename on the new primary after cutover.finish; or create the new table (schema.apply, which adds it to the job with its rows), move the application to it, then drop the old one (schema.apply)';
const CHANGED_KEY =
  "Bucardo deletes and copies rows by primary key, and it keeps the key's columns from when it loaded the sync: a changed key would delete the wrong rows on the secondary. The safe sequence: exclude the table (bucardo.replication_objects.table_exclude), change the key on both sides, then include it again and run schema.add_tables (its rows are copied again)";
const TRANSACTION =
  'schema.apply runs the statements of each side in one transaction of its own, so a file must not open, end or split transactions: remove BEGIN, COMMIT, ROLLBACK and SAVEPOINT';
const CONCURRENTLY =
  'a CONCURRENTLY statement cannot run inside the one transaction schema.apply gives each side: run it on each side yourself (it takes no lock that stops writes, and an index does not change what Bucardo copies), then schema.diff';

/** What one statement does, by its first words (refusals that need the catalog are left to apply.ts). */
export function classify(sql: string, number: number): Statement {
  const list = tokens(sql);
  const base = { number, sql };
  const [w0, w1] = [list[0], list[1]];
  if (
    word(w0, 'begin', 'commit', 'rollback', 'savepoint', 'release', 'end', 'abort') ||
    (word(w1, 'transaction') && word(w0, 'start'))
  )
    return { ...base, kind: 'other', refused: TRANSACTION };
  if (list.some((t) => word(t, 'concurrently')) && word(w0, 'create', 'drop', 'reindex'))
    return { ...base, kind: 'other', refused: CONCURRENTLY };
  if (word(w0, 'insert', 'update', 'delete', 'truncate', 'copy', 'merge', 'with'))
    return { ...base, kind: 'data' };
  if (word(w0, 'create')) {
    let at = 1;
    while (word(list[at], 'unlogged', 'temp', 'temporary', 'global', 'local')) at += 1;
    if (word(list[at], 'table')) {
      at += 1;
      if (word(list[at], 'if') && word(list[at + 1], 'not') && word(list[at + 2], 'exists')) at += 3;
      const name = readName(list, at);
      if (word(list[1], 'temp', 'temporary')) return { ...base, kind: 'other' };
      return { ...base, kind: 'create table', ...(name ? { table: name.name } : {}) };
    }
    return { ...base, kind: 'other' };
  }
  if (word(w0, 'drop') && word(w1, 'table')) {
    let at = 2;
    if (word(list[at], 'if') && word(list[at + 1], 'exists')) at += 2;
    const name = readName(list, at);
    if (name && list[name.next]?.text === ',')
      return {
        ...base,
        kind: 'drop table',
        refused: 'drop one table per statement, so each can be removed from the sync before it goes',
      };
    return { ...base, kind: 'drop table', ...(name ? { table: name.name } : {}) };
  }
  if (word(w0, 'alter') && word(w1, 'table')) return alterTable(list, base);
  return { ...base, kind: 'other' };
}

function alterTable(list: Token[], base: { number: number; sql: string }): Statement {
  let at = 2;
  if (word(list[at], 'if') && word(list[at + 1], 'exists')) at += 2;
  if (word(list[at], 'only')) at += 1;
  const name = readName(list, at);
  if (!name) return { ...base, kind: 'other' };
  const table = name.name;
  let next = name.next;
  if (list[next]?.text === '*') next += 1;
  const parts = actions(list, next);
  const results = parts.map((action) => alterAction(action, base.sql));
  const refused = results.find((r) => r.refused);
  if (refused) return { ...base, table, ...refused, kind: refused.kind };
  const kinds = new Set(results.map((r) => r.kind));
  if (kinds.has('widen') && kinds.has('narrow'))
    return {
      ...base,
      table,
      kind: 'other',
      refused:
        'this ALTER TABLE both widens (adds a column, loosens a constraint) and narrows (drops a column, adds a constraint): the two run on different sides first. Split it into two statements',
    };
  const added = results.flatMap((r) => (r.added ? [r.added] : []));
  const first = results[0]!;
  delete first.added;
  return {
    ...base,
    table,
    ...first,
    ...(added.length ? { addedColumns: added } : {}),
    kind: kinds.has('narrow') ? 'narrow' : kinds.has('widen') ? 'widen' : 'other',
  };
}

function alterAction(
  action: Token[],
  sql: string,
): Omit<Statement, 'number' | 'sql'> & { added?: AddedColumn } {
  const [a0, a1] = action;
  if (word(a0, 'rename')) {
    if (word(a1, 'to')) return { kind: 'other', refused: RENAME_TABLE };
    if (word(a1, 'constraint')) return { kind: 'other' };
    return { kind: 'other', refused: RENAME_COLUMN };
  }
  if (word(a0, 'set') && word(a1, 'schema')) return { kind: 'other', refused: RENAME_TABLE };
  if (word(a0, 'add')) {
    if (action.some((t) => word(t, 'primary'))) return { kind: 'other', refused: CHANGED_KEY };
    if (word(a1, 'constraint', 'unique', 'check', 'foreign', 'exclude')) return { kind: 'narrow' };
    const at = word(a1, 'column') ? 2 : 1;
    const column = word(action[at], 'if') ? action[at + 3] : action[at];
    if (!column) return { kind: 'widen' };
    return {
      kind: 'widen',
      column: column.text,
      added: addedColumn(action.slice(action.indexOf(column)), sql),
    };
  }
  if (word(a0, 'drop')) {
    if (word(a1, 'constraint')) {
      const at = word(action[2], 'if') ? 4 : 2;
      // Loosens the secondary unless it is the primary key (apply.ts refuses that one).
      return { kind: 'widen', ...(action[at] ? { droppedConstraint: action[at]!.text } : {}) };
    }
    const at = word(a1, 'column') ? 2 : 1;
    const column = word(action[at], 'if') ? action[at + 2] : action[at];
    return { kind: 'narrow', ...(column ? { column: column.text } : {}) };
  }
  if (word(a0, 'alter')) {
    const at = word(a1, 'column') ? 2 : 1;
    const column = action[at]?.text;
    const rest = action.slice(at + 1);
    const withColumn = column ? { column } : {};
    if (word(rest[0], 'type') || (word(rest[0], 'set') && word(rest[1], 'data') && word(rest[2], 'type'))) {
      const from = word(rest[0], 'type') ? 1 : 3;
      const using = rest.findIndex((t) => word(t, 'using', 'collate'));
      if (using !== -1 && word(rest[using], 'using'))
        return {
          kind: 'widen',
          ...withColumn,
          refused:
            "a type change with USING rewrites the values: their text form changes, and rows Bucardo copies between the two sides' steps would fail or change. The safe sequence: add a new column of the new type, fill it on the primary in batches, then drop the old one (each with schema.apply)",
        };
      const type = rest
        .slice(from, using === -1 ? undefined : using)
        .map((t) => t.text)
        .join(' ');
      return {
        kind: 'widen',
        ...withColumn,
        newType: type.replace(/ \( /g, '(').replace(/ \)/g, ')').replace(/ , /g, ','),
      };
    }
    if (word(rest[0], 'drop')) return { kind: 'widen', ...withColumn };
    if (word(rest[0], 'set') && word(rest[1], 'not')) return { kind: 'narrow', ...withColumn };
    return { kind: 'widen', ...withColumn };
  }
  return { kind: 'other' };
}

/** Words that end a column's type or its DEFAULT expression (PostgreSQL's b_expr takes none bare). */
const CONSTRAINT_WORDS = [
  'default',
  'not',
  'null',
  'check',
  'references',
  'unique',
  'primary',
  'constraint',
  'collate',
  'generated',
  'deferrable',
  'initially',
];

/** An ADD COLUMN's name, type and DEFAULT expression, cut from the text at top-level keywords. */
function addedColumn(definition: Token[], sql: string): AddedColumn {
  const [name, ...rest] = definition;
  const stops: number[] = [];
  let depth = 0;
  rest.forEach((token, i) => {
    if (!token.quoted && token.text === '(') depth += 1;
    if (!token.quoted && token.text === ')') depth -= 1;
    if (depth === 0 && word(token, ...CONSTRAINT_WORDS)) stops.push(i);
  });
  const text = (from: number, to: number) =>
    from < to ? sql.slice(rest[from]!.start, rest[to - 1]!.end) : '';
  const typeEnd = stops[0] ?? rest.length;
  const at = rest.findIndex((t, i) => stops.includes(i) && word(t, 'default'));
  let expressionEnd = rest.length;
  if (at !== -1) {
    // DEFAULT NULL: the NULL is the expression, not a constraint.
    const from = word(rest[at + 1], 'null') ? at + 2 : at + 1;
    expressionEnd = stops.find((i) => i >= from) ?? rest.length;
  }
  return {
    name: name!.text,
    type: text(0, typeEnd),
    ...(at !== -1 ? { default: text(at + 1, expressionEnd) } : {}),
    identity: rest.some((t) => word(t, 'identity')),
  };
}

/** Normalised type words for comparing: "character varying(20)" and "varchar(20)" alike. */
function typeParts(type: string): { family: string; size?: number[] } {
  const text = type.toLowerCase().replace(/\s+/g, ' ').trim();
  const size = /\(([\d ,]+)\)/
    .exec(text)?.[1]
    ?.split(',')
    .map((n) => Number(n.trim()));
  const name = text.replace(/\(.*\)/, '').trim();
  const aliases: Record<string, string> = {
    int2: 'smallint',
    int: 'integer',
    int4: 'integer',
    int8: 'bigint',
    varchar: 'character varying',
    decimal: 'numeric',
    bpchar: 'character',
    char: 'character',
  };
  return { family: aliases[name] ?? name, ...(size ? { size } : {}) };
}

const INTEGER_WIDTH: Record<string, number> = { smallint: 2, integer: 4, bigint: 8 };

/**
 * Whether a column's type can change from `current` (format_type on the primary) to `wanted` while
 * rows keep flowing: every value of the old type must read as the same value of the new one in text
 * form (Bucardo copies in text). A wider integer, a longer varchar, varchar to text, a numeric with
 * more digits and the same scale. Anything else is refused.
 */
export function keepsTextForm(current: string, wanted: string): boolean {
  const from = typeParts(current);
  const to = typeParts(wanted);
  if (from.family === to.family && JSON.stringify(from.size) === JSON.stringify(to.size)) return true;
  if (INTEGER_WIDTH[from.family] && INTEGER_WIDTH[to.family])
    return INTEGER_WIDTH[to.family]! >= INTEGER_WIDTH[from.family]!;
  if (INTEGER_WIDTH[from.family] && to.family === 'numeric') return !to.size || (to.size[1] ?? 0) === 0;
  if (from.family === 'character varying' && to.family === 'text') return true;
  if (from.family === 'character varying' && to.family === 'character varying')
    return !to.size || (!!from.size && to.size[0]! >= from.size[0]!);
  if (from.family === 'numeric' && to.family === 'numeric') {
    if (!to.size) return !from.size || (from.size[1] ?? 0) === 0;
    if (!from.size) return false;
    const [p1, s1 = 0] = from.size;
    const [p2, s2 = 0] = to.size;
    return s1 === s2 && p2! >= p1!;
  }
  return false;
}
