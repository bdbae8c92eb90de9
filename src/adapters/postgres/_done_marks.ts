// Marks dispatched outbox rows done off the request path: the ids of the
// runs that finish within `windowMs` (or while an UPDATE is in flight) go
// out together in one UPDATE. A crash before it leaves rows the relay
// dispatches again, as a crash before an awaited mark would.

// A batch this large goes out at once.
const MAX_IDS = 1_000;

export class DoneMarks {
  #ids: string[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #writing: Promise<void> | undefined;

  constructor(
    readonly write: (ids: string[]) => Promise<unknown>,
    readonly windowMs = 20,
  ) {}

  /** Queues `ids`; they are written within `windowMs` (at once when many). */
  add(ids: readonly string[]): void {
    if (ids.length === 0) return;
    this.#ids.push(...ids);
    if (this.#writing !== undefined) return; // the write loop takes them
    if (this.#ids.length >= MAX_IDS) this.#start();
    else this.#timer ??= setTimeout(() => this.#start(), this.windowMs);
  }

  /** Writes what waits now; resolves when every id queued is written. */
  flush(): Promise<void> {
    if (this.#timer !== undefined) this.#start();
    return this.#writing ?? Promise.resolve();
  }

  #start(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#writing ??= (async () => {
      try {
        while (this.#ids.length > 0) {
          const ids = this.#ids;
          this.#ids = [];
          await this.write(ids); // logs its own failure, never rejects
        }
      } finally {
        this.#writing = undefined;
      }
    })();
  }
}
