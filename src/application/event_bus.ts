/**
 * The in-process event bus.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { DebugGate } from "./_debug_gate.ts";
import { errorType, loggableError } from "../internal/loggable_error.ts";
import {
  collectHandlerRecords,
  hasUnsubscribed,
  noteSubscribed,
  unsubscribedClassesFor,
} from "./_handler_metadata.ts";
import {
  type CheckedOptions,
  checkHandlerOptions,
} from "./_handler_options.ts";
import { describe, isConstructor, typeName } from "../internal/describe.ts";
import {
  inSpan,
  MESSAGING_SYSTEM,
  meters,
  recordError,
  type Span,
  tracing,
} from "./_telemetry.ts";
import { Subscription } from "./subscription.ts";
import type {
  EventClass,
  EventHandler,
  HandlerContext,
  HandlerInfo,
} from "./types.ts";

const logger = getLogger(["aftercommit", "bus"]);
const debugGate = new DebugGate(logger);

let registerMethodImpl: (
  bus: EventBus,
  type: EventClass | null,
  method: EventHandler,
  target: object,
  name: string,
  options: CheckedOptions,
) => Subscription;

/**
 * Registers `method` bound to `target` (for static `@On` methods, bound to
 * their class); `type` null registers a catch-all. Internal: not exported
 * from `mod.ts`.
 */
export function registerMethod(
  bus: EventBus,
  type: EventClass | null,
  method: EventHandler,
  target: object,
  name: string,
  options: CheckedOptions,
): Subscription {
  return registerMethodImpl(bus, type, method, target, name, options);
}

/**
 * What the bus does when a handler throws.
 *
 * - `"fail-fast"`: log the failure, rethrow the original error, run no later
 *   handler (and, in `publishAll`, no later event).
 * - `"collect"`: run every handler of every event, then throw an
 *   `AggregateError` of all failures, in the order they happened.
 */
export type ErrorPolicy = "fail-fast" | "collect";

/** Options of {@linkcode EventBus}. */
export interface EventBusOptions {
  /**
   * What to do when a handler throws.
   *
   * @default {"fail-fast"}
   */
  readonly errorPolicy?: ErrorPolicy;
}

/** Options of {@linkcode EventBus.onAny}. */
export interface OnAnyOptions {
  /**
   * The handler's name in logs and errors.
   *
   * @default {the function's name, or "(anonymous)"}
   */
  readonly name?: string;
  /**
   * Where the handler runs among the handlers of an event: lower runs
   * first, registration order among equals. A finite number.
   *
   * @default {0}
   */
  readonly order?: number;
}

/** Options of {@linkcode EventBus.register}. */
export interface RegisterOptions extends OnAnyOptions {
  /**
   * Whether the handler also receives instances of subclasses of the
   * registered class (`register(DomainEvent, audit, { subclasses: true })`
   * receives every `DomainEvent`). By default a handler receives instances
   * of exactly its class.
   *
   * @default {false}
   */
  readonly subclasses?: boolean;
}

/** Options of {@linkcode EventBus.publish} and {@linkcode EventBus.publishAll}. */
export interface PublishOptions {
  /**
   * Handed to every handler as `context.signal`. Once it aborts, no further
   * handler starts, and the publish rejects with `signal.reason` without
   * waiting for a handler still running (that handler is not stopped: it
   * should watch the signal itself; a failure it reports later is logged).
   *
   * @default {undefined (a shared signal that never aborts)}
   */
  readonly signal?: AbortSignal | undefined;
}

interface Entry extends HandlerInfo {
  // Registration sequence: the tie-breaker among equal orders.
  readonly seq: number;
  // The function to call: bound to its target once, at registration, so
  // publishing allocates nothing per handler.
  readonly call: (event: object, context: HandlerContext) => unknown;
  // Logs an asynchronous failure (made once, for the same reason).
  readonly log: (error: unknown) => void;
}

// What handlers get when the publisher passes no signal: one frozen object,
// so the hot path allocates nothing for it.
const NO_SIGNAL: HandlerContext = Object.freeze({
  signal: new AbortController().signal,
});
const EMPTY: readonly Entry[] = Object.freeze([]);

/**
 * An event bus with its own registry of handlers.
 *
 * By default a handler receives the events of exactly its class
 * (`event.constructor`, one `Map` lookup). Opt in to more with
 * `{ subclasses: true }` (instances of subclasses too) or
 * {@linkcode EventBus.onAny} (every event). The handlers of one event run
 * one after another, each awaited, in this order:
 *
 * 1. by `order`, lower first (default 0);
 * 2. among equal orders: handlers registered for the event's own class,
 *    then `subclasses: true` handlers of its parent, then of the
 *    grandparent, and so on (nearest base first), then catch-alls;
 * 3. then in registration order.
 *
 * The resolved list is cached per event class and rebuilt after any
 * registration change. Most applications use {@linkcode defaultBus}; create
 * buses for isolation (tests, modules).
 *
 * @example Register, publish, unsubscribe
 * ```ts
 * import assert from "node:assert/strict";
 * import { EventBus } from "@aftercommit/core";
 *
 * class UserRegistered {
 *   constructor(readonly userId: string) {}
 * }
 *
 * const bus = new EventBus();
 * const seen: string[] = [];
 * const sub = bus.register(UserRegistered, (e) => {
 *   seen.push(e.userId);
 * });
 * await bus.publish(new UserRegistered("u1"));
 * sub.unsubscribe();
 * await bus.publish(new UserRegistered("u2"));
 * assert.deepEqual(seen, ["u1"]);
 * ```
 */
export class EventBus {
  readonly #exact = new Map<EventClass, readonly Entry[]>();
  readonly #base = new Map<EventClass, readonly Entry[]>();
  #any: readonly Entry[] = EMPTY;
  // Event class (any `event.constructor` value) → the handlers that run.
  readonly #resolved = new Map<unknown, readonly Entry[]>();
  readonly #warned = new Set<unknown>();
  readonly #errorPolicy: ErrorPolicy;
  readonly #failFast: boolean;
  // Whether a tracer provider is registered, as last seen: at construction,
  // when handlers are resolved (after any registration) and by publishAll.
  // One field read on publish's hot path; see _telemetry.ts.
  #tracing = tracing();
  #seq = 0;

  /**
   * Creates a bus with no handlers.
   *
   * @param options The error policy.
   * @throws {TypeError} When `options.errorPolicy` is not a known policy.
   */
  constructor(options: EventBusOptions = {}) {
    const policy = options.errorPolicy ?? "fail-fast";
    if (policy !== "fail-fast" && policy !== "collect") {
      throw new TypeError(
        `Cannot create event bus: unknown errorPolicy ${
          JSON.stringify(policy)
        }, expected "fail-fast" or "collect"`,
      );
    }
    this.#errorPolicy = policy;
    this.#failFast = policy === "fail-fast";
  }

  /** The policy this bus applies when a handler throws. */
  get errorPolicy(): ErrorPolicy {
    return this.#errorPolicy;
  }

  /**
   * Registers a function to run for every event of exactly `type` (and of
   * its subclasses with `{ subclasses: true }`).
   *
   * @typeParam E The event type.
   * @param type The event class.
   * @param handler The function to run, given the event and a
   * {@linkcode HandlerContext}; it may be async.
   * @param options The handler's name for logs, its `order`, `subclasses`.
   * @returns A subscription that removes the handler.
   * @throws {TypeError} When `type` is not a class, `handler` is not a
   * function, `handler` is already registered for `type` on this bus, or an
   * option has the wrong type.
   * @throws {RangeError} When `options.order` is `NaN` or infinite.
   *
   * @example Register a handler, with an order
   * ```ts
   * import assert from "node:assert/strict";
   * import { EventBus } from "@aftercommit/core";
   *
   * class Ping {}
   * const bus = new EventBus();
   * bus.register(Ping, function second() {});
   * bus.register(Ping, function first() {}, { order: -1 });
   * assert.deepEqual(bus.handlersFor(Ping).map((h) => h.name), [
   *   "first",
   *   "second",
   * ]);
   * ```
   *
   * @example A handler for a base class and its subclasses
   * ```ts
   * import assert from "node:assert/strict";
   * import { DomainEvent, EventBus } from "@aftercommit/core";
   *
   * class OrderPlaced extends DomainEvent {}
   * const bus = new EventBus();
   * const seen: string[] = [];
   * bus.register(DomainEvent, (e) => {
   *   seen.push(e.constructor.name);
   * }, { subclasses: true });
   * await bus.publish(new OrderPlaced());
   * assert.deepEqual(seen, ["OrderPlaced"]);
   * ```
   */
  register<E extends object>(
    type: EventClass<E>,
    handler: EventHandler<E>,
    options: RegisterOptions = {},
  ): Subscription {
    const checked = checkHandlerOptions(
      options,
      type,
      isConstructor(type)
        ? `Cannot register handler for ${typeName(type)}`
        : "Cannot register handler",
    );
    assertEventClass(type, "register handler");
    if (typeof handler !== "function") {
      throw new TypeError(
        `Cannot register handler for ${
          typeName(type)
        }: expected a function, received ${
          describe(handler)
        }; pass a function or use @On on a method`,
      );
    }
    const name = options.name ?? (handler.name || "(anonymous)");
    return this.#registerOne(
      type,
      handler as EventHandler,
      undefined,
      name,
      checked,
    );
  }

  /**
   * Registers a catch-all: a function that runs for every event published
   * on this bus, after the handlers of the event's classes among equal
   * orders. For audit trails and metrics.
   *
   * @param handler The function to run, given the event and a
   * {@linkcode HandlerContext}; it may be async.
   * @param options The handler's name for logs and its `order`.
   * @returns A subscription that removes the handler.
   * @throws {TypeError} When `handler` is not a function or is already a
   * catch-all of this bus, or `options.order` is not a number.
   * @throws {RangeError} When `options.order` is `NaN` or infinite.
   *
   * @example Count every event
   * ```ts
   * import assert from "node:assert/strict";
   * import { EventBus } from "@aftercommit/core";
   *
   * class A {}
   * class B {}
   * const bus = new EventBus();
   * const counts = new Map<string, number>();
   * bus.onAny((event) => {
   *   const type = event.constructor.name;
   *   counts.set(type, (counts.get(type) ?? 0) + 1);
   * });
   * await bus.publishAll([new A(), new B(), new A()]);
   * assert.deepEqual([...counts], [["A", 2], ["B", 1]]);
   * ```
   */
  onAny(handler: EventHandler, options: OnAnyOptions = {}): Subscription {
    if (typeof handler !== "function") {
      throw new TypeError(
        `Cannot register catch-all handler: expected a function, received ${
          describe(handler)
        }; pass a function such as (event) => audit(event), or use @OnAny() on a method`,
      );
    }
    const checked = checkHandlerOptions(
      options,
      undefined,
      "Cannot register catch-all handler",
      true,
    );
    const name = options.name ?? (handler.name || "(anonymous)");
    return this.#registerOne(null, handler, undefined, name, checked);
  }

  static {
    registerMethodImpl = (bus, type, method, target, name, options) =>
      bus.#registerOne(type, method, target, name, options);
  }

  #registerOne(
    type: EventClass | null,
    handler: EventHandler,
    target: object | undefined,
    name: string,
    options: CheckedOptions,
  ): Subscription {
    const entry = this.#entry(type, handler, target, name, options);
    this.#assertNew(entry);
    this.#add(entry);
    return new Subscription(() => this.#remove(entry));
  }

  /**
   * Registers the `@On` and `@OnAny` methods of `target`: for an instance,
   * its instance methods (inherited ones included), bound to it; for a
   * class, its static methods.
   *
   * Static `@On` methods already register themselves on
   * {@linkcode defaultBus} when their class is defined; subscribe the class
   * to put them on another bus.
   *
   * @param target An instance of a class with `@On` methods, or such a class.
   * @returns One subscription for all the handlers registered.
   * @throws {TypeError} When `target` is not an object or a class, has no
   * `@On` methods of that kind, or one of them is already registered here.
   *
   * @example Subscribe an instance
   * ```ts
   * import assert from "node:assert/strict";
   * import { EventBus, On } from "@aftercommit/core";
   *
   * class Ping {}
   * class Counter {
   *   count = 0;
   *   @On(Ping)
   *   onPing(_event: Ping): void {
   *     this.count++;
   *   }
   * }
   *
   * const bus = new EventBus();
   * const counter = new Counter();
   * bus.subscribe(counter);
   * await bus.publish(new Ping());
   * assert.equal(counter.count, 1);
   * ```
   */
  subscribe(target: object): Subscription {
    if (
      target === null ||
      (typeof target !== "object" && typeof target !== "function")
    ) {
      throw new TypeError(
        `Cannot subscribe: expected an instance or a class with @On methods, received ${
          describe(target)
        }`,
      );
    }
    const isClass = typeof target === "function";
    const owner = isClass
      ? target
      : (Object.getPrototypeOf(target)?.constructor as object | undefined);
    const ownerName = typeName(owner);
    const records = owner === undefined
      ? []
      : collectHandlerRecords(owner, isClass);
    if (records.length === 0) {
      throw new TypeError(
        isClass
          ? `Cannot subscribe class ${ownerName}: it has no static @On methods; subscribe an instance to register its instance @On methods`
          : `Cannot subscribe ${
            describe(target)
          }: its class has no @On instance methods; decorate a method with @On(EventClass) or use register()`,
      );
    }
    const added: Entry[] = [];
    for (const record of records) {
      const fn = record.get(target);
      if (typeof fn !== "function") {
        throw new TypeError(
          `Cannot subscribe ${ownerName}: ${
            String(record.name)
          } is no longer a method (it is ${describe(fn)})`,
        );
      }
      const entry = this.#entry(
        record.type,
        fn as EventHandler,
        target,
        `${ownerName}.${String(record.name)}`,
        record,
      );
      this.#assertNew(entry);
      added.push(entry);
    }
    for (const entry of added) this.#add(entry);
    if (!isClass && owner !== undefined) noteSubscribed(owner);
    return new Subscription(() => {
      for (const entry of added) this.#remove(entry);
    });
  }

  /**
   * Runs the handlers of `event` one after another, each awaited, in the
   * order described on {@linkcode EventBus}. An event with no handlers is a
   * no-op.
   *
   * @param event The event: any class instance.
   * @param options A `signal` handed to every handler.
   * @returns A promise that settles when every handler has finished.
   * @throws {TypeError} When `event` is not an object or `options.signal` is
   * not an `AbortSignal`.
   * @throws The handler's own error, under the `"fail-fast"` policy.
   * @throws {AggregateError} Of every handler error, under the `"collect"` policy.
   * @throws `options.signal.reason` once the signal has aborted.
   *
   * @example Publish an event
   * ```ts
   * import assert from "node:assert/strict";
   * import { EventBus } from "@aftercommit/core";
   *
   * class Ping {}
   * const bus = new EventBus();
   * const order: number[] = [];
   * bus.register(Ping, async () => { order.push(1); });
   * bus.register(Ping, () => { order.push(2); });
   * await bus.publish(new Ping());
   * assert.deepEqual(order, [1, 2]);
   * ```
   *
   * @example Publish with a deadline
   * ```ts
   * import assert from "node:assert/strict";
   * import { EventBus } from "@aftercommit/core";
   *
   * class Ping {}
   * const bus = new EventBus();
   * bus.register(Ping, (_event, { signal }) =>
   *   new Promise((resolve, reject) => {
   *     const timer = setTimeout(resolve, 10_000);
   *     signal.addEventListener("abort", () => {
   *       clearTimeout(timer);
   *       reject(signal.reason);
   *     });
   *   }));
   * await assert.rejects(
   *   bus.publish(new Ping(), { signal: AbortSignal.timeout(10) }),
   *   { name: "TimeoutError" },
   * );
   * ```
   */
  publish(event: object, options?: PublishOptions): Promise<void> {
    // Not an async function: an event without handlers, or with one
    // handler, costs no extra promise beyond the handler's own.
    if (event === null || typeof event !== "object") {
      return Promise.reject(eventError(event, "publish"));
    }
    if (this.#tracing) return this.#publishTraced(event, options);
    if (options !== undefined) return this.#publishWith(event, options);
    const type = event.constructor;
    const entries = this.#resolved.get(type) ?? this.#resolve(type);
    if (entries.length === 0) return this.#noHandlers(type);
    if (this.#failFast) return dispatchFailFast(entries, event, NO_SIGNAL);
    return publishCollect(entries, event);
  }

  // With a tracer provider registered: a span per event and per handler.
  async #publishTraced(
    event: object,
    options: PublishOptions | undefined,
  ): Promise<void> {
    const signal = options === undefined
      ? undefined
      : checkPublishOptions(options, "publish");
    signal?.throwIfAborted();
    const type = event.constructor;
    const entries = this.#resolved.get(type) ?? this.#resolve(type);
    if (entries.length === 0) return this.#noHandlers(type);
    const errors = await this.#dispatchTraced(
      entries,
      event,
      signal,
      undefined,
    );
    if (errors !== undefined) throw aggregate(errors, typeName(type));
  }

  // Dispatches one event as the untraced paths do, in a `publish` span whose
  // handlers each run in a `process` span. Returns the failures so far
  // under "collect"; throws under "fail-fast".
  #dispatchTraced(
    entries: readonly Entry[],
    event: object,
    signal: AbortSignal | undefined,
    errors: unknown[] | undefined,
  ): Promise<unknown[] | undefined> {
    const eventType = typeName(event.constructor);
    const before = errors?.length ?? 0;
    return inSpan(`publish ${eventType}`, {
      attributes: {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": eventType,
        "aftercommit.event.type": eventType,
        "aftercommit.handler.count": entries.length,
      },
    }, async (span) => {
      const traced = entries.map((entry) => tracedEntry(entry, eventType));
      let result: unknown[] | undefined;
      if (signal !== undefined) {
        result = await dispatchWithSignal(
          traced,
          event,
          Object.freeze({ signal }),
          !this.#failFast,
          errors,
        );
      } else if (this.#failFast) {
        try {
          await dispatchEachFailFast(
            traced,
            event,
            NO_SIGNAL,
            debugGate.enabled,
          );
        } catch (error) {
          span.setAttribute("aftercommit.outcome", "error");
          throw error;
        }
        result = errors;
      } else result = await dispatchCollect(traced, event, NO_SIGNAL, errors);
      const failed = (result?.length ?? 0) - before;
      span.setAttribute("aftercommit.outcome", failed > 0 ? "error" : "ok");
      if (failed > 0) recordError(span, result![before]);
      return result;
    });
  }

  async #publishWith(event: object, options: PublishOptions): Promise<void> {
    const signal = checkPublishOptions(options, "publish");
    if (signal === undefined) return await this.publish(event);
    signal.throwIfAborted();
    const type = event.constructor;
    const entries = this.#resolved.get(type) ?? this.#resolve(type);
    if (entries.length === 0) return this.#noHandlers(type);
    const errors = await dispatchWithSignal(
      entries,
      event,
      Object.freeze({ signal }),
      !this.#failFast,
      undefined,
    );
    if (errors !== undefined) throw aggregate(errors, typeName(type));
  }

  /**
   * Publishes events one by one, in order: every handler of the first event
   * finishes before the second event's first handler starts. All events are
   * checked before any handler runs.
   *
   * @param events The events, for example those an aggregate recorded.
   * @param options A `signal` handed to every handler; once it aborts, no
   * further handler or event starts.
   * @returns A promise that settles when every handler has finished.
   * @throws {TypeError} When `events` is not iterable or holds a non-object,
   * or `options.signal` is not an `AbortSignal`; then no handler runs.
   * @throws The handler's own error, under the `"fail-fast"` policy; later
   * events are not published.
   * @throws {AggregateError} Of every handler error of every event, under the
   * `"collect"` policy.
   * @throws `options.signal.reason` once the signal has aborted.
   *
   * @example Publish several events
   * ```ts
   * import assert from "node:assert/strict";
   * import { EventBus } from "@aftercommit/core";
   *
   * class A {}
   * class B {}
   * const bus = new EventBus();
   * const order: string[] = [];
   * bus.register(A, () => { order.push("A"); });
   * bus.register(B, () => { order.push("B"); });
   * await bus.publishAll([new B(), new A()]);
   * assert.deepEqual(order, ["B", "A"]);
   * ```
   */
  async publishAll(
    events: Iterable<object>,
    options?: PublishOptions,
  ): Promise<void> {
    if (
      events === null || events === undefined ||
      typeof (events as { [Symbol.iterator]?: unknown })[Symbol.iterator] !==
        "function"
    ) {
      throw new TypeError(
        `Cannot publish events: expected an iterable of events (an array, for example), received ${
          describe(events)
        }`,
      );
    }
    const list = Array.isArray(events) ? events : Array.from(events);
    for (let i = 0; i < list.length; i++) {
      assertEvent(list[i], `publish event at index ${i}`);
    }
    const signal = options === undefined
      ? undefined
      : checkPublishOptions(options, "publish events");
    this.#tracing = tracing();
    if (this.#tracing) {
      let errors: unknown[] | undefined;
      for (let i = 0; i < list.length; i++) {
        signal?.throwIfAborted();
        const event = list[i] as object;
        const type = event.constructor;
        const entries = this.#resolved.get(type) ?? this.#resolve(type);
        if (entries.length !== 0) {
          errors = await this.#dispatchTraced(entries, event, signal, errors);
        } else if (hasUnsubscribed()) this.#warnUnsubscribed(type);
      }
      if (errors !== undefined) {
        throw aggregate(errors, `${list.length} events`);
      }
      return;
    }
    if (signal !== undefined) {
      return await this.#publishAllWith(list, signal);
    }
    if (this.#failFast) {
      for (let i = 0; i < list.length; i++) {
        const event = list[i] as object;
        const type = event.constructor;
        const entries = this.#resolved.get(type) ?? this.#resolve(type);
        if (entries.length !== 0) {
          await dispatchFailFast(entries, event, NO_SIGNAL);
        } else if (hasUnsubscribed()) this.#warnUnsubscribed(type);
      }
      return;
    }
    let errors: unknown[] | undefined;
    for (let i = 0; i < list.length; i++) {
      const event = list[i] as object;
      const type = event.constructor;
      const entries = this.#resolved.get(type) ?? this.#resolve(type);
      if (entries.length !== 0) {
        errors = await dispatchCollect(entries, event, NO_SIGNAL, errors);
      } else if (hasUnsubscribed()) this.#warnUnsubscribed(type);
    }
    if (errors !== undefined) {
      throw aggregate(errors, `${list.length} events`);
    }
  }

  async #publishAllWith(
    list: readonly object[],
    signal: AbortSignal,
  ): Promise<void> {
    const context: HandlerContext = Object.freeze({ signal });
    const collect = !this.#failFast;
    let errors: unknown[] | undefined;
    for (let i = 0; i < list.length; i++) {
      signal.throwIfAborted();
      const event = list[i] as object;
      const type = event.constructor;
      const entries = this.#resolved.get(type) ?? this.#resolve(type);
      if (entries.length !== 0) {
        errors = await dispatchWithSignal(
          entries,
          event,
          context,
          collect,
          errors,
        );
      } else if (hasUnsubscribed()) this.#warnUnsubscribed(type);
    }
    if (errors !== undefined) {
      throw aggregate(errors, `${list.length} events`);
    }
  }

  /**
   * The handlers that run for an event of exactly class `type`, in the
   * order they run: its own handlers, `subclasses: true` handlers of its
   * parents, catch-alls (see {@linkcode EventBus} for the order rules).
   *
   * @param type The event class.
   * @returns A snapshot: later registrations do not change it.
   * @throws {TypeError} When `type` is not a class.
   *
   * @example List handlers
   * ```ts
   * import assert from "node:assert/strict";
   * import { DomainEvent, EventBus } from "@aftercommit/core";
   *
   * class Ping extends DomainEvent {}
   * const bus = new EventBus();
   * bus.onAny(function metrics() {});
   * bus.register(DomainEvent, function audit() {}, { subclasses: true });
   * bus.register(Ping, function first() {});
   * bus.register(Ping, function second() {});
   * assert.deepEqual(bus.handlersFor(Ping).map((h) => h.name), [
   *   "first",
   *   "second",
   *   "audit",
   *   "metrics",
   * ]);
   * ```
   */
  handlersFor(type: EventClass): readonly HandlerInfo[] {
    assertEventClass(type, "list handlers");
    const entries = this.#resolved.get(type) ?? this.#resolve(type);
    return entries.map((
      { name, handler, target, eventType, subclasses, order },
    ) => ({ name, handler, target, eventType, subclasses, order }));
  }

  /**
   * Removes every handler of every type, catch-alls included, from this
   * bus. Unsubscribing a subscription made before then does nothing.
   */
  clearHandlers(): void {
    const count = this.#exact.size + this.#base.size;
    this.#exact.clear();
    this.#base.clear();
    this.#any = EMPTY;
    this.#resolved.clear();
    this.#warned.clear();
    logger.debug("Cleared the handlers of {typeCount} event types", {
      typeCount: count,
    });
  }

  // Which handlers run for events whose constructor is `type`, in order;
  // cached until the next registration change.
  #resolve(type: unknown): readonly Entry[] {
    // Off the hot path: notice a tracer provider registered since.
    this.#tracing = tracing();
    const found: [entry: Entry, distance: number][] = [];
    for (const entry of this.#exact.get(type as EventClass) ?? EMPTY) {
      found.push([entry, 0]);
    }
    if (this.#base.size !== 0 && typeof type === "function") {
      let distance = 0;
      for (
        let c: object | null = type;
        c !== null && c !== Function.prototype;
        c = Object.getPrototypeOf(c), distance++
      ) {
        for (const entry of this.#base.get(c as EventClass) ?? EMPTY) {
          found.push([entry, distance]);
        }
      }
    }
    for (const entry of this.#any) found.push([entry, Infinity]);
    let entries = EMPTY;
    if (found.length !== 0) {
      // Infinity - Infinity is NaN, which falls through to `seq`.
      found.sort(([a, da], [b, db]) =>
        a.order - b.order || da - db || a.seq - b.seq
      );
      const eventType = typeName(type);
      entries = found.map(([entry]) =>
        entry.eventType === type
          ? entry
          // Failures are logged with the event's own type.
          : { ...entry, log: failureLogger(eventType, entry.name) }
      );
    }
    this.#resolved.set(type, entries);
    return entries;
  }

  #noHandlers(type: unknown): Promise<void> {
    if (hasUnsubscribed()) this.#warnUnsubscribed(type);
    return RESOLVED;
  }

  // An instance-handler class exists but none of its instances was
  // subscribed: the usual reason why an event finds no handler.
  #warnUnsubscribed(type: unknown): void {
    if (this.#warned.has(type)) return;
    const classes = unsubscribedClassesFor(type);
    if (classes.size === 0) return;
    this.#warned.add(type);
    const names = [...classes].map(typeName).sort();
    logger.warn(
      names.length === 1
        ? "No handler for {eventType} on this bus, but {classes} has @On instance methods for it and no instance was ever subscribed; call bus.subscribe(instance)"
        : "No handler for {eventType} on this bus, but {classes} have @On instance methods for it and no instance of them was ever subscribed; call bus.subscribe(instance)",
      { eventType: typeName(type), classes: names.join(", ") },
    );
  }

  #entry(
    type: EventClass | null,
    handler: EventHandler,
    target: object | undefined,
    name: string,
    options: CheckedOptions,
  ): Entry {
    return {
      name,
      handler: handler as HandlerInfo["handler"],
      target,
      eventType: type ?? undefined,
      subclasses: options.subclasses,
      order: options.order,
      seq: this.#seq++,
      call: target === undefined ? handler : handler.bind(target),
      log: failureLogger(type === null ? "(any)" : typeName(type), name),
    };
  }

  #listOf(entry: Entry): readonly Entry[] {
    if (entry.eventType === undefined) return this.#any;
    return (entry.subclasses ? this.#base : this.#exact).get(
      entry.eventType,
    ) ?? EMPTY;
  }

  #assertNew(entry: Entry): void {
    const lists = entry.eventType === undefined
      ? [this.#any]
      : [this.#exact.get(entry.eventType), this.#base.get(entry.eventType)];
    for (const list of lists) {
      for (const e of list ?? EMPTY) {
        if (e.handler === entry.handler && e.target === entry.target) {
          throw new TypeError(
            `Cannot register handler ${entry.name} for ${
              entry.eventType === undefined
                ? "every event"
                : typeName(entry.eventType)
            }: it is already registered on this bus, and registering it twice would run its side effects twice; unsubscribe the first registration or register a different function`,
          );
        }
      }
    }
  }

  // Copy-on-write: a publish in progress keeps iterating the array it read.
  #setList(entry: Entry, list: readonly Entry[]): void {
    this.#resolved.clear();
    if (entry.eventType === undefined) {
      this.#any = list.length === 0 ? EMPTY : list;
      return;
    }
    const map = entry.subclasses ? this.#base : this.#exact;
    if (list.length === 0) map.delete(entry.eventType);
    else map.set(entry.eventType, list);
  }

  #add(entry: Entry): void {
    this.#setList(entry, [...this.#listOf(entry), entry]);
    logger.debug("Registered handler {handler} for {eventType}", {
      eventType: entry.eventType === undefined
        ? "(any)"
        : typeName(entry.eventType),
      handler: entry.name,
    });
  }

  #remove(entry: Entry): void {
    const existing = this.#listOf(entry);
    if (!existing.includes(entry)) return;
    this.#setList(entry, existing.filter((e) => e !== entry));
    logger.debug("Unregistered handler {handler} for {eventType}", {
      eventType: entry.eventType === undefined
        ? "(any)"
        : typeName(entry.eventType),
      handler: entry.name,
    });
  }
}

const RESOLVED: Promise<void> = Promise.resolve();

// The entry with its call in a `process` span (tracing only).
function tracedEntry(entry: Entry, eventType: string): Entry {
  const call = (event: object, context: HandlerContext): Promise<unknown> =>
    inSpan(`process ${eventType}`, {
      attributes: {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": "process",
        "messaging.operation.name": "handle",
        "messaging.destination.name": eventType,
        "aftercommit.event.type": eventType,
        "aftercommit.handler": entry.name,
      },
    }, async (span: Span) => {
      try {
        const result = await entry.call(event, context);
        span.setAttribute("aftercommit.outcome", "ok");
        return result;
      } catch (error) {
        span.setAttribute("aftercommit.outcome", "error");
        throw error;
      }
    });
  return { ...entry, call };
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null &&
    (typeof value === "object" || typeof value === "function") &&
    typeof (value as { then?: unknown }).then === "function";
}

function dispatchFailFast(
  entries: readonly Entry[],
  event: object,
  context: HandlerContext,
): Promise<void> {
  const debug = debugGate.enabled;
  if (entries.length !== 1 || debug) {
    return dispatchEachFailFast(entries, event, context, debug);
  }
  // The common case of one handler, with debug logging off.
  const entry = entries[0]!;
  let result: unknown;
  try {
    result = entry.call(event, context);
  } catch (error) {
    logFailure(entry, event, error);
    return Promise.reject(error);
  }
  if (result instanceof Promise) {
    // The caller awaits the handler's own promise: no promise of ours in
    // between. The failure is logged by a reaction added first, so it is
    // logged before the caller sees the error.
    result.then(undefined, entry.log);
    return result;
  }
  if (!isThenable(result)) return RESOLVED;
  const promise = Promise.resolve(result);
  promise.then(undefined, entry.log);
  return promise as Promise<void>;
}

async function dispatchEachFailFast(
  entries: readonly Entry[],
  event: object,
  context: HandlerContext,
  debug: boolean,
): Promise<void> {
  let i = 0;
  try {
    for (; i < entries.length; i++) {
      if (debug) logHandling(entries[i]!, event);
      await entries[i]!.call(event, context);
    }
  } catch (error) {
    logFailure(entries[i]!, event, error);
    throw error;
  }
}

async function publishCollect(
  entries: readonly Entry[],
  event: object,
): Promise<void> {
  const errors = await dispatchCollect(entries, event, NO_SIGNAL, undefined);
  if (errors !== undefined) {
    throw aggregate(errors, typeName(event.constructor));
  }
}

// Runs every handler; returns the failures so far (`errors`, created on the
// first failure), or `undefined` when there was none.
async function dispatchCollect(
  entries: readonly Entry[],
  event: object,
  context: HandlerContext,
  errors: unknown[] | undefined,
): Promise<unknown[] | undefined> {
  const debug = debugGate.enabled;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    if (debug) logHandling(entry, event);
    try {
      await entry.call(event, context);
    } catch (error) {
      logFailure(entry, event, error);
      (errors ??= []).push(error);
    }
  }
  return errors;
}

// Both policies, with a signal: no handler starts once it has aborted, and
// a running handler is not waited for past the abort. Returns the failures
// so far under "collect"; throws the first one under "fail-fast", and the
// signal's reason once it aborts.
async function dispatchWithSignal(
  entries: readonly Entry[],
  event: object,
  context: HandlerContext,
  collect: boolean,
  errors: unknown[] | undefined,
): Promise<unknown[] | undefined> {
  const { signal } = context;
  const debug = debugGate.enabled;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    if (signal.aborted) {
      logAborted(entry, event, "before");
      throw signal.reason;
    }
    if (debug) logHandling(entry, event);
    try {
      const result = entry.call(event, context);
      if (isThenable(result)) {
        await untilSettledOrAborted(result, entry, event, signal);
      }
    } catch (error) {
      if (signal.aborted && error === signal.reason) {
        logAborted(entry, event, "during");
        throw error;
      }
      logFailure(entry, event, error);
      if (!collect) throw error;
      (errors ??= []).push(error);
    }
  }
  return errors;
}

// Settles with `result`, or rejects with the signal's reason as soon as it
// aborts; a failure the handler reports after that is logged, not lost.
function untilSettledOrAborted(
  result: PromiseLike<unknown>,
  entry: Entry,
  event: object,
  signal: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let abandoned = false;
    const onAbort = (): void => {
      abandoned = true;
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    Promise.resolve(result).then(
      () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        if (!abandoned) reject(error);
        else if (error !== signal.reason) logFailure(entry, event, error);
      },
    );
  });
}

function logHandling(entry: Entry, event: object): void {
  logger.debug("Handling {eventType} with {handler}", {
    eventType: typeName(event.constructor),
    handler: entry.name,
  });
}

function logAborted(
  entry: Entry,
  event: object,
  when: "before" | "during",
): void {
  logger.warn(
    when === "before"
      ? "Stopped dispatching {eventType} before handler {handler}: the signal aborted"
      : "Stopped waiting for handler {handler} of {eventType}: the signal aborted",
    { eventType: typeName(event.constructor), handler: entry.name },
  );
}

function logFailure(entry: Entry, event: object, error: unknown): void {
  logFailureOf(typeName(event.constructor), entry.name, error);
}

function failureLogger(
  eventType: string,
  handler: string,
): (error: unknown) => void {
  return (error: unknown): void => {
    logFailureOf(eventType, handler, error);
  };
}

function logFailureOf(
  eventType: string,
  handler: string,
  error: unknown,
): void {
  logger.error("Handler {handler} failed for {eventType}: {error}", {
    eventType,
    handler,
    error: loggableError(error),
  });
  meters()?.failures.add(1, {
    "aftercommit.component": "handler",
    "aftercommit.event.type": eventType,
    "aftercommit.handler": handler,
    "error.type": errorType(error),
  });
}

function aggregate(errors: unknown[], what: string): AggregateError {
  return new AggregateError(
    errors,
    `${errors.length} handler${
      errors.length === 1 ? "" : "s"
    } failed for ${what}`,
  );
}

function assertEventClass(type: unknown, action: string): void {
  if (!isConstructor(type)) {
    throw new TypeError(
      `Cannot ${action}: expected an event class, received ${
        describe(type)
      }; pass the class itself, for example UserRegistered`,
    );
  }
}

function assertEvent(event: unknown, action: string): asserts event is object {
  if (event === null || typeof event !== "object") {
    throw eventError(event, action);
  }
}

function eventError(event: unknown, action: string): TypeError {
  return new TypeError(
    `Cannot ${action}: expected an event object (a class instance), received ${
      describe(event)
    }`,
  );
}

function checkPublishOptions(
  options: PublishOptions,
  action: string,
): AbortSignal | undefined {
  if (options === null || typeof options !== "object") {
    throw new TypeError(
      `Cannot ${action}: expected an options object such as { signal }, received ${
        describe(options)
      }`,
    );
  }
  const { signal } = options;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(
      `Cannot ${action}: options.signal must be an AbortSignal, received ${
        describe(signal)
      }; pass controller.signal or AbortSignal.timeout(ms), or leave it out`,
    );
  }
  return signal;
}

/**
 * The bus that `@On` static methods register on, and that the module-level
 * {@linkcode register}, {@linkcode publish}, {@linkcode publishAll} and
 * {@linkcode clearHandlers} act on.
 *
 * @example Subscribe an instance to the default bus
 * ```ts
 * import { defaultBus, On, publish } from "@aftercommit/core";
 *
 * class Ping {}
 * class Pong {
 *   @On(Ping)
 *   reply(_event: Ping): void {}
 * }
 * using _sub = defaultBus.subscribe(new Pong());
 * await publish(new Ping());
 * ```
 */
export const defaultBus: EventBus = new EventBus();

/**
 * Registers `handler` for events of exactly `type` (and of its subclasses
 * with `{ subclasses: true }`) on {@linkcode defaultBus}.
 *
 * @typeParam E The event type.
 * @param type The event class.
 * @param handler The function to run; it may be async.
 * @param options The handler's name for logs, its `order`, `subclasses`.
 * @returns A subscription that removes the handler.
 * @throws {TypeError} As {@linkcode EventBus.register}.
 * @throws {RangeError} As {@linkcode EventBus.register}.
 *
 * @example Register on the default bus
 * ```ts
 * import assert from "node:assert/strict";
 * import { publish, register } from "@aftercommit/core";
 *
 * class Ping {}
 * let pings = 0;
 * using _sub = register(Ping, () => {
 *   pings++;
 * });
 * await publish(new Ping());
 * assert.equal(pings, 1);
 * ```
 */
export function register<E extends object>(
  type: EventClass<E>,
  handler: EventHandler<E>,
  options?: RegisterOptions,
): Subscription {
  return defaultBus.register(type, handler, options);
}

/**
 * Publishes one event on {@linkcode defaultBus}.
 *
 * @param event The event.
 * @param options A `signal` handed to every handler.
 * @returns A promise that settles when every handler has finished.
 * @throws As {@linkcode EventBus.publish}.
 *
 * @example Publish on the default bus
 * ```ts
 * import { publish } from "@aftercommit/core";
 *
 * class NobodyListens {}
 * await publish(new NobodyListens()); // no handlers: a no-op
 * ```
 */
export function publish(
  event: object,
  options?: PublishOptions,
): Promise<void> {
  return defaultBus.publish(event, options);
}

/**
 * Publishes events in order on {@linkcode defaultBus}.
 *
 * @param events The events.
 * @param options A `signal` handed to every handler.
 * @returns A promise that settles when every handler has finished.
 * @throws As {@linkcode EventBus.publishAll}.
 *
 * @example Publish several events on the default bus
 * ```ts
 * import { publishAll } from "@aftercommit/core";
 *
 * class A {}
 * await publishAll([new A(), new A()]);
 * ```
 */
export function publishAll(
  events: Iterable<object>,
  options?: PublishOptions,
): Promise<void> {
  return defaultBus.publishAll(events, options);
}

/**
 * Removes every handler from {@linkcode defaultBus}, static `@On` methods
 * included (tests call it between cases).
 *
 * @example Clear the default bus
 * ```ts
 * import assert from "node:assert/strict";
 * import { clearHandlers, defaultBus, register } from "@aftercommit/core";
 *
 * class Ping {}
 * register(Ping, () => {});
 * clearHandlers();
 * assert.equal(defaultBus.handlersFor(Ping).length, 0);
 * ```
 */
export function clearHandlers(): void {
  defaultBus.clearHandlers();
}
