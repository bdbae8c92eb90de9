/**
 * Records the events published on a bus, for tests.
 *
 * @module
 */
import { defaultBus, type EventBus } from "../application/event_bus.ts";
import type { Subscription } from "../application/subscription.ts";
import type { EventClass } from "../application/types.ts";
import { describe } from "../internal/describe.ts";
import { fail } from "../internal/rules.ts";

/**
 * The events published on a bus since the recorder started, in publish
 * order. Its catch-all handler runs before every other one, so an event is
 * recorded even when one of its handlers fails. Iterable, so it can be
 * handed to {@linkcode expectPublished}; `Disposable`, so `using` stops it.
 *
 * @example Record what a bus published
 * ```ts
 * import assert from "node:assert/strict";
 * import { EventBus } from "@aftercommit/core";
 * import { EventRecorder } from "@aftercommit/core/testing";
 *
 * class UserRegistered {
 *   constructor(readonly userId: string) {}
 * }
 * const bus = new EventBus();
 * using recorder = new EventRecorder(bus);
 * await bus.publish(new UserRegistered("u1"));
 * assert.deepEqual(recorder.events, [new UserRegistered("u1")]);
 * assert.equal(recorder.ofType(UserRegistered)[0]?.userId, "u1");
 * ```
 */
export class EventRecorder implements Disposable, Iterable<object> {
  readonly #events: object[] = [];
  readonly #subscription: Subscription;

  /**
   * Starts recording.
   *
   * @param bus The bus to listen to.
   * @throws {TypeError} When `bus` is not an {@linkcode EventBus}.
   */
  constructor(bus: EventBus = defaultBus) {
    if (typeof (bus as Partial<EventBus> | null)?.onAny !== "function") {
      fail(
        "record events",
        `expected an EventBus, received ${
          describe(bus)
        }; pass the bus your code publishes on, or nothing for defaultBus`,
      );
    }
    this.#subscription = bus.onAny((event) => {
      this.#events.push(event);
    }, { name: "EventRecorder", order: -Number.MAX_VALUE });
  }

  /** A copy of the events recorded so far, in publish order. */
  get events(): readonly object[] {
    return [...this.#events];
  }

  /** Whether the recorder is still listening. */
  get recording(): boolean {
    return this.#subscription.active;
  }

  /**
   * The recorded events of exactly class `type` (not of its subclasses).
   *
   * @typeParam E The event type.
   * @param type The event class.
   * @returns The events, in publish order.
   */
  ofType<E extends object>(type: EventClass<E>): E[] {
    return this.#events.filter((e) => e.constructor === type) as E[];
  }

  /** Forgets the events recorded so far; recording goes on. */
  clear(): void {
    this.#events.length = 0;
  }

  /** Stops recording; the events recorded so far stay readable. */
  stop(): void {
    this.#subscription.unsubscribe();
  }

  /** Same as {@linkcode EventRecorder.stop}, for `using`. */
  [Symbol.dispose](): void {
    this.stop();
  }

  /** The recorded events, in publish order (a snapshot). */
  [Symbol.iterator](): Iterator<object> {
    return this.events[Symbol.iterator]();
  }
}

/**
 * Starts recording the events published on `bus` (the default bus when
 * left out): shorthand for `new EventRecorder(bus)`.
 *
 * @param bus The bus to listen to.
 * @returns The recorder; stop it with `stop()` or `using`.
 * @throws {TypeError} When `bus` is not an {@linkcode EventBus}.
 */
export function recordEvents(bus: EventBus = defaultBus): EventRecorder {
  return new EventRecorder(bus);
}
