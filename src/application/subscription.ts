/**
 * The handle that undoes a registration.
 *
 * @module
 */
/**
 * A registration of one or more handlers on a bus. Unsubscribing removes
 * exactly those handlers; it is idempotent. It is `Disposable`, so a
 * registration can be scoped with `using`.
 *
 * @example Scope a handler to a block
 * ```ts
 * import assert from "node:assert/strict";
 * import { EventBus } from "@aftercommit/core";
 *
 * class Ping {}
 * const bus = new EventBus();
 * {
 *   using _sub = bus.register(Ping, () => {});
 *   assert.equal(bus.handlersFor(Ping).length, 1);
 * }
 * assert.equal(bus.handlersFor(Ping).length, 0);
 * ```
 */
export class Subscription implements Disposable {
  #undo: (() => void) | undefined;

  /**
   * Wraps the function that removes the handlers (buses create these).
   *
   * @param undo Removes the handlers; called at most once.
   */
  constructor(undo: () => void) {
    this.#undo = undo;
  }

  /** Whether the handlers are still registered. */
  get active(): boolean {
    return this.#undo !== undefined;
  }

  /** Removes the handlers of this registration. Calling it again does nothing. */
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
