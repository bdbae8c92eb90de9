// What GET /health answers for one database, without queueing behind user
// work: a real query that succeeded in the last moments is proof enough;
// otherwise one probe runs (shared by concurrent checks) with a deadline.

/** Options of {@linkcode DatabaseHealth}. */
export interface DatabaseHealthOptions {
  /**
   * A success this recent answers "up" without a probe.
   *
   * @default {2000}
   */
  readonly freshMs?: number;
  /**
   * The probe's deadline: no answer by then is "down".
   *
   * @default {2000}
   */
  readonly timeoutMs?: number;
}

/** The health of one database, from real queries and a cheap probe. */
export class DatabaseHealth {
  readonly #probe: () => PromiseLike<unknown>;
  readonly #freshMs: number;
  readonly #timeoutMs: number;
  #okAt = -Infinity;
  #failedAt = -Infinity;
  #probing: Promise<boolean> | undefined;

  constructor(
    probe: () => PromiseLike<unknown>,
    options: DatabaseHealthOptions = {},
  ) {
    this.#probe = probe;
    this.#freshMs = options.freshMs ?? 2000;
    this.#timeoutMs = options.timeoutMs ?? 2000;
  }

  /** Records that a real query on this database just succeeded. */
  succeeded(): void {
    this.#okAt = performance.now();
  }

  /** Records that the database just failed to answer. */
  failed(): void {
    this.#failedAt = performance.now();
  }

  /** Whether the database answers: from a recent result, else one probe. */
  check(): Promise<boolean> {
    const now = performance.now();
    if (this.#okAt > this.#failedAt && now - this.#okAt < this.#freshMs) {
      return Promise.resolve(true);
    }
    // A failure is remembered for a moment too, so /health stays cheap
    // while a database is down.
    if (this.#failedAt >= this.#okAt && now - this.#failedAt < 1000) {
      return Promise.resolve(false);
    }
    this.#probing ??= this.#runProbe().finally(() => {
      this.#probing = undefined;
    });
    return this.#probing;
  }

  async #runProbe(): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const result = await Promise.race([
        Promise.resolve(this.#probe()),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error("timed out")),
            this.#timeoutMs,
          );
        }),
      ]);
      if (result === false) throw new Error("probe answered false");
      this.succeeded();
      return true;
    } catch {
      this.failed();
      return false;
    } finally {
      clearTimeout(timer);
    }
  }
}
