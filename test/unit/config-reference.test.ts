// docs/configuration.md cannot drift from the code: every key the config loader accepts (asked of the
// loader itself, see test/support/config-keys.ts) has a row in it with a default, no row names a key
// the loader does not know, and each default written there is the value configs/example.yml shows,
// which test/unit/example-config.test.ts compares with the loader's own defaults.
//
// How the reference is read: each `##`/`###` heading names its sections in backticks (`bucardo`,
// `databases.primary`); each table row `| \`key\` | default | meaning |` below it documents that key in
// each of them (a key written with its full path, `databases.primary.cascade`, only there). A heading
// naming a key that is not a section (`plugins`) documents top-level keys; a heading naming none (a
// table of a key's values, such as which copy_data to choose) documents no key.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { allowedKeys, EXAMPLE, REFERENCE, sectionsOf, uncommented } from '../support/config-keys.js';

interface Row {
  path: string;
  defaultCell: string;
  line: number;
}

function documented(markdown: string, sections: Set<string>): { rows: Row[]; headings: Set<string> } {
  const rows: Row[] = [];
  const headings = new Set<string>();
  let current: string[] = [];
  let documentsKeys = true;
  for (const [index, line] of markdown.split('\n').entries()) {
    const heading = /^#{2,3} (.*)$/.exec(line);
    if (heading) {
      current = [...heading[1]!.matchAll(/`([a-z_][a-z0-9_.]*)`/g)].map((m) => m[1]!);
      for (const name of current) headings.add(name);
      documentsKeys = current.length > 0 || index === 0;
      continue;
    }
    const row = /^\| `([a-z_][a-z0-9_.]*)` \| ([^|]*) \|/.exec(line);
    if (!row || !documentsKeys) continue;
    const [, key, defaultCell] = row;
    const bases = current.map((name) => (sections.has(name) ? name : name.split('.').slice(0, -1).join('.')));
    const paths = key!.includes('.')
      ? [key!]
      : [...new Set(bases.length ? bases : [''])].map((base) => (base ? `${base}.${key}` : key!));
    for (const path of paths) rows.push({ path, defaultCell: defaultCell!.trim(), line: index + 1 });
  }
  return { rows, headings };
}

function valueAt(document: Record<string, any>, path: string): unknown {
  return path.split('.').reduce<any>((at, part) => at?.[part], document);
}

test('docs/configuration.md documents every key the loader accepts, with its default, and no other', async () => {
  const { document, commented } = uncommented(readFileSync(EXAMPLE, 'utf8'));
  const sectionList = sectionsOf(document);
  const allowed = await allowedKeys(sectionList);
  const sections = new Set(sectionList);
  const { rows, headings } = documented(readFileSync(REFERENCE, 'utf8'), sections);
  const paths = new Set(rows.map((row) => row.path));

  const undocumented: string[] = [];
  for (const [section, keys] of allowed) {
    for (const key of keys) {
      const path = section ? `${section}.${key}` : key;
      // A key that is a section of its own (databases.primary, a plugin's section) has its heading.
      if (!paths.has(path) && !headings.has(path)) undocumented.push(path);
    }
  }
  assert.deepEqual(undocumented, [], 'keys the loader accepts that docs/configuration.md has no row for');

  const unknown = rows
    .filter((row) => {
      const parent = row.path.split('.').slice(0, -1).join('.');
      const key = row.path.split('.').at(-1)!;
      return !allowed.get(parent)?.includes(key);
    })
    .map((row) => `${row.path} (line ${row.line})`);
  assert.deepEqual(unknown, [], 'keys docs/configuration.md documents that the loader does not accept');

  const noDefault = rows.filter((row) => row.defaultCell === '').map((row) => row.path);
  assert.deepEqual(noDefault, [], 'every documented key says its default (or "required", "none")');

  // The defaults: each scalar configs/example.yml shows is the loader's default (example-config.test.ts);
  // the reference must write the same value, in backticks. `<replication_name>` stands for the name.
  const name = String(document['bucardo']?.['replication_name']);
  const differing = rows
    .filter((row) => !/^required/.test(row.defaultCell) && !commented.has(row.path))
    .flatMap((row) => {
      const value = valueAt(document, row.path);
      if (value === undefined || value === null || typeof value === 'object') return [];
      const cell = row.defaultCell.replace(/<replication_name>/g, name);
      return cell.includes(`\`${String(value)}\``)
        ? []
        : [`${row.path}: the example shows ${String(value)}, the reference says ${row.defaultCell}`];
    });
  assert.deepEqual(differing, [], 'defaults in docs/configuration.md that differ from the code');
});
