import { stampRecordOrder } from "./record_order.ts";

/**
 * An aggregate root: it records the domain events its changes cause, which a
 * Unit of Work pulls with {@linkcode AggregateRoot.pullEvents}.
 *
 * @example Record and pull events
 * ```ts
 * import assert from "node:assert/strict";
 * import { AggregateRoot } from "@aftercommit/core";
 *
 * class Renamed {
 *   constructor(readonly name: string) {}
 * }
 * class User extends AggregateRoot {
 *   rename(name: string): void {
 *     this.recordEvent(new Renamed(name));
 *   }
 * }
 * const user = new User();
 * user.rename("Ada");
 * assert.deepEqual(user.pullEvents(), [new Renamed("Ada")]);
 * assert.deepEqual(user.pullEvents(), []); // handed over once
 * ```
 */
export abstract class AggregateRoot {
  #events: object[] = [];

  /** Records `event` (an object) to publish after the commit. */
  protected recordEvent(event: object): void {
    if (event === null || typeof event !== "object") {
      const received = event === null ? "null" : typeof event;
      throw new TypeError(
        `Cannot record event: expected an object, received ${received}`,
      );
    }
    stampRecordOrder(event);
    this.#events.push(event);
  }

  /** A copy of the events recorded and not yet pulled, oldest first. */
  peekEvents(): readonly object[] {
    return this.#events.slice();
  }

  /** Hands over the events recorded since the last call, oldest first. */
  pullEvents(): object[] {
    const events = this.#events;
    this.#events = [];
    return events;
  }
}
