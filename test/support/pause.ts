// For signal handlers, which exit right after and so cannot await.

/** Blocks the whole process for ms. */
export function pauseSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
