/**
 * The base class of aggregates that record domain events.
 *
 * @module
 */
import { stampRecordOrder } from "./record_order.ts";

/**
 * An aggregate root: the consistency boundary that records the domain events
 * its changes cause. A Unit of Work collects the events with
 * {@linkcode AggregateRoot.pullEvents} after the transaction commits.
 *
 * @example Record and pull events
 * ```ts
 * import assert from "node:assert/strict";
 * import { AggregateRoot } from "@aftercommit/core";
 *
 * class UserRegistered {
 *   constructor(readonly userId: string) {}
 * }
 *
 * class User extends AggregateRoot {
 *   private constructor(readonly id: string) {
 *     super();
 *   }
 *   static register(id: string): User {
 *     const user = new User(id);
 *     user.recordEvent(new UserRegistered(id));
 *     return user;
 *   }
 * }
 *
 * const user = User.register("u1");
 * assert.equal(user.pullEvents().length, 1);
 * assert.equal(user.pullEvents().length, 0); // handed over once
 * ```
 */
export abstract class AggregateRoot {
  #events: object[] = [];

  /**
   * Records an event, to be published after the transaction commits.
   *
   * @param event The event: any class instance.
   * @throws {TypeError} When `event` is not an object.
   */
  protected recordEvent(event: object): void {
    if (event === null || typeof event !== "object") {
      throw new TypeError(
        `Cannot record event: expected an object, received ${
          event === null ? "null" : typeof event
        }`,
      );
    }
    stampRecordOrder(event);
    this.#events.push(event);
  }

  /**
   * The events recorded and not yet pulled, oldest first, without removing them.
   *
   * @returns A copy of the pending events.
   */
  peekEvents(): readonly object[] {
    return this.#events.slice();
  }

  /**
   * Hands over the recorded events, oldest first, and forgets them.
   *
   * @returns The events recorded since the last call.
   */
  pullEvents(): object[] {
    const events = this.#events;
    this.#events = [];
    return events;
  }
}
