// The one place that turns names and values into SQL text. Every identifier the tool sends to
// PostgreSQL goes through quoteIdent, so mixed case, quotes and reserved words are always safe.

/** Quotes an identifier the way PostgreSQL's quote_ident does, but always (never relying on case folding). */
export function quoteIdent(name: string): string {
  if (name.includes('\u0000')) throw new Error(`identifier contains a NUL byte: ${JSON.stringify(name)}`);
  return `"${name.replace(/"/g, '""')}"`;
}

/** schema.table, both parts quoted. */
export function quoteQualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/** A string literal for the rare places where a bind parameter cannot be used (DDL, SET). */
export function quoteLiteral(value: string): string {
  if (value.includes('\u0000')) throw new Error('literal contains a NUL byte');
  // standard_conforming_strings is on in every supported PostgreSQL, so only quotes need doubling.
  return `'${value.replace(/'/g, "''")}'`;
}

/** The `schema.table` form Bucardo's CLI expects: unquoted, case preserved (docs/how-bucardo-behaves.md §4). */
export function bucardoRelationName(schema: string, name: string): string {
  return `${schema}.${name}`;
}
