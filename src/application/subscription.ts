/**
 * A registration of handlers on a bus. Unsubscribing removes exactly those
 * handlers and is idempotent; as a `Disposable` it can be scoped with `using`.
 */
export class Subscription implements Disposable {
  #undo: (() => void) | undefined;

  /** Wraps the function that removes the handlers (buses create these). */
  constructor(undo: () => void) {
    this.#undo = undo;
  }

  /** Whether the handlers are still registered. */
  get active(): boolean {
    return this.#undo !== undefined;
  }

  /** Removes the handlers; calling it again does nothing. */
  unsubscribe(): void {
    const undo = this.#undo;
    this.#undo = undefined;
    undo?.();
  }

  /** Same as {@linkcode Subscription.unsubscribe}, for `using`. */
  [Symbol.dispose](): void {
    this.unsubscribe();
  }
}
