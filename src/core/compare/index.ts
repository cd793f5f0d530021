// The comparison primitives as one entry point, for a command that uses several of them (cutover.repair):
// a table's shape on each side (shape.ts), its statements (sql.ts), key ranges compared on both sides
// (ranges.ts), rows in flight told from real differences (in-flight.ts), keys re-queued through
// Bucardo (requeue.ts). Each file stays importable on its own for the engine's narrower needs.
export * from './in-flight.js';
export * from './ranges.js';
export * from './requeue.js';
export * from './shape.js';
export * from './sql.js';
