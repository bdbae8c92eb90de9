import { defaultBus, type EventBus } from "../application/event_bus.ts";
import type { Subscription } from "../application/subscription.ts";
import type { EventClass } from "../application/types.ts";
import { expected } from "../internal/rules.ts";

/**
 * The events published on a bus since the recorder started, in publish
 * order, even those whose handlers fail (its catch-all handler runs first).
 * Iterable, for {@linkcode expectPublished}; `using` stops it.
 */
export class EventRecorder implements Disposable, Iterable<object> {
  readonly #events: object[] = [];
  readonly #subscription: Subscription;

  /** Starts recording `bus`; throws a TypeError when it is not an EventBus. */
  constructor(bus: EventBus = defaultBus) {
    if (typeof (bus as Partial<EventBus> | null)?.onAny !== "function") {
      const hint =
        "pass the bus your code publishes on, or nothing for defaultBus";
      expected("record events", "an EventBus", bus, hint);
    }
    const record = (event: object) => void this.#events.push(event);
    const options = { name: "EventRecorder", order: -Number.MAX_VALUE };
    this.#subscription = bus.onAny(record, options);
  }

  /** A copy of the events recorded so far. */
  get events(): readonly object[] {
    return [...this.#events];
  }

  /** Whether the recorder is still listening. */
  get recording(): boolean {
    return this.#subscription.active;
  }

  /** The recorded events of exactly class `type` (not of its subclasses). */
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

  /** The recorded events (a snapshot). */
  [Symbol.iterator](): Iterator<object> {
    return this.events[Symbol.iterator]();
  }
}

/** Shorthand for `new EventRecorder(bus)`: see {@linkcode EventRecorder}. */
export function recordEvents(bus: EventBus = defaultBus): EventRecorder {
  return new EventRecorder(bus);
}
