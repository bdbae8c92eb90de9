// Marks dispatched outbox rows done off the request path: `run` returns
// once its events are dispatched, and the ids that arrive while one UPDATE
// is in flight go out together in the next. A crash before the UPDATE
// leaves rows the relay dispatches again, as a crash before an awaited one
// did; their lease keeps the relay off them meanwhile.
export class DoneMarks {
  #ids: string[] = [];
  #writing: Promise<void> | undefined;

  constructor(readonly write: (ids: string[]) => Promise<unknown>) {}

  /** Queues `ids`; the write starts now unless one is in flight. */
  add(ids: readonly string[]): void {
    if (ids.length === 0) return;
    this.#ids.push(...ids);
    this.#writing ??= this.#drain();
  }

  /** Resolves when every id queued before the call is written (or failed). */
  flush(): Promise<void> {
    return this.#writing ?? Promise.resolve();
  }

  async #drain(): Promise<void> {
    try {
      while (this.#ids.length > 0) {
        const ids = this.#ids;
        this.#ids = [];
        await this.write(ids); // logs its own failure, never rejects
      }
    } finally {
      this.#writing = undefined;
    }
  }
}
