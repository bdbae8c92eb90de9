// A reason the dev server cannot start that the user can fix: main.ts prints
// its message as one line (no stack trace) and exits 1.

/** A start-up problem the user can fix; its message says what to do. */
export class StartupError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StartupError";
  }
}
