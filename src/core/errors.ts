// Errors an operator can cause or fix. The message is one paragraph naming the cause and the fix;
// the shell prints it as is, without a stack trace.

export class OperatorError extends Error {
  constructor(
    message: string,
    readonly details: string[] = [],
  ) {
    super(message);
    this.name = 'OperatorError';
  }
}

/**
 * A server that could not be reached at all (refused, unresolvable, timed out): unlike a server that
 * answered and refused the login or the database, asking it anything else would fail the same way.
 */
export class UnreachableServerError extends OperatorError {
  constructor(message: string) {
    super(message);
    this.name = 'UnreachableServerError';
  }
}

/** Raised when the operator interrupts a command (Ctrl-C). */
export class InterruptedError extends Error {
  constructor(message = 'interrupted') {
    super(message);
    this.name = 'InterruptedError';
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
