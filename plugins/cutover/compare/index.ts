// The cutover's comparison engine, as the plugin's commands use it: verify (engine.ts), the keys changed
// since a verify and the purge hold that keeps them (capture.ts), the final check inside the write pause
// (final-check.ts) and the pre-check before it (pre-check.ts), sequences, the secondary's indexes and
// views, repair's narrowing, the sessions they share (pool.ts) and the report they fill (report.ts). Its
// primitives, shared with the kicker's safety net, are in src/core/compare/. format.ts, loaded with the
// menu, imports report.ts alone: this entry point loads all of the engine.
export {
  holdAndTakeHorizon,
  holdInPlace,
  holdIntact,
  holdKey,
  holdTarget,
  releaseHold,
  takeHorizon,
  truncatedSince,
  type ChangeHorizon,
} from './capture.js';
export {
  explainedGap,
  explainedGapOutside,
  replicationState,
  runVerify,
  type VerifyOptions,
} from './engine.js';
export { runFinalCheck, type FinalCheck, type FinalCheckOptions, type FinalTable } from './final-check.js';
export { runPreCheck, type PreCheck, type PreCheckOptions, type PreCheckTable } from './pre-check.js';
export { narrow, newBudget, mergeAdjacent, type NarrowBudget, type Narrowed } from './narrow.js';
export { closeSides, openSides, runTasks, TaskQueue, type Task } from './pool.js';
export {
  describeKey,
  failingTables,
  summarise,
  type DifferingRange,
  type ListedKey,
  type RepairedTable,
  type RepairReport,
  type RowDifference,
  type Summary,
  type TableReport,
  type TableStatus,
  type VerifyReport,
} from './report.js';
export { indexGap, materializedViewGap, type IndexGap, type ViewGap } from './secondary-state.js';
export {
  advanceSequences,
  compareSequences,
  type SequenceChange,
  type SequenceReport,
  type SequenceStatus,
} from './sequences.js';
