#!/usr/bin/env node
// Operator console for online PostgreSQL migrations with Bucardo. See README.md.
import { existsSync } from 'node:fs';

const entry = new URL('./dist/src/shell/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('bucardo-console is not built yet: run `npm install` (it compiles the TypeScript), or `npm run setup`.\n');
  process.exit(2);
}
const { main } = await import(entry.href);
main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (error) => { process.stderr.write(`${error?.stack ?? error}\n`); process.exitCode = 1; },
);
