/**
 * Appends every item to target. `target.push(...items)` passes each item as an argument and
 * overflows the call stack past roughly 100,000 items, which a verify of a big table reaches.
 */
export function appendAll<T>(target: T[], items: readonly T[]): T[] {
  for (const item of items) target.push(item);
  return target;
}
