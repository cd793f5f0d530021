// Where the project and the test fixture plugins are (kept apart from harness.ts so benchmarks can
// use the pty driver without loading node:test).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const FIXTURE_PLUGINS = path.join(ROOT, 'dist', 'test', 'fixtures', 'plugins');
