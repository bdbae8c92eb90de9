/**
 * The in-process event bus.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { DebugGate } from "./_debug_gate.ts";
import { loggableError } from "./_loggable_error.ts";
import { collectHandlerRecords } from "./_handler_metadata.ts";
import { describe, isConstructor, typeName } from "./_describe.ts";
import { Subscription } from "./subscription.ts";
import type { EventClass, EventHandler, HandlerInfo } from "./types.ts";

const logger = getLogger(["aftercommit", "bus"]);
const debugGate = new DebugGate(logger);

let registerMethodImpl: (
  bus: EventBus,
  type: EventClass,
  method: EventHandler,
  target: object,
  name: string,
) => Subscription;

/**
 * Registers `method` bound to `target` (for static `@On` methods, bound to
 * their class). Internal: not exported from `mod.ts`.
 */
export function registerMethod(
  bus: EventBus,
  type: EventClass,
  method: EventHandler,
  target: object,
  name: string,
): Subscription {
  return registerMethodImpl(bus, type, method, target, name);
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

/** Options of {@linkcode EventBus.register}. */
export interface RegisterOptions {
  /**
   * The handler's name in logs and errors.
   *
   * @default {the function's name, or "(anonymous)"}
   */
  readonly name?: string;
}

interface Entry extends HandlerInfo {
  // The function to call: bound to its target once, at registration, so
  // publishing allocates nothing per handler.
  readonly call: (event: object) => unknown;
  // Logs an asynchronous failure and rethrows it (made once, for the same
  // reason).
  readonly fail: (error: unknown) => never;
}

/**
 * An event bus with its own registry of handlers.
 *
 * Handlers are found by the event's exact class (`event.constructor`), run
 * one after another, each awaited, in registration order. Most applications
 * use {@linkcode defaultBus}; create buses for isolation (tests, modules).
 *
 * @example Register, publish, unsubscribe
 * ```ts
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
 * console.log(seen); // ["u1"]
 * ```
 */
export class EventBus {
  readonly #handlers = new Map<EventClass, readonly Entry[]>();
  readonly #errorPolicy: ErrorPolicy;

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
  }

  /** The policy this bus applies when a handler throws. */
  get errorPolicy(): ErrorPolicy {
    return this.#errorPolicy;
  }

  /**
   * Registers a function to run for every event of exactly `type`.
   *
   * @typeParam E The event type.
   * @param type The event class.
   * @param handler The function to run; it may be async.
   * @param options The handler's name for logs.
   * @returns A subscription that removes the handler.
   * @throws {TypeError} When `type` is not a class, `handler` is not a
   * function, or `handler` is already registered for `type` on this bus.
   *
   * @example Register a handler
   * ```ts
   * import { EventBus } from "@aftercommit/core";
   *
   * class Ping {}
   * const bus = new EventBus();
   * bus.register(Ping, function onPing() {});
   * console.log(bus.handlersFor(Ping)[0]?.name); // "onPing"
   * ```
   */
  register<E extends object>(
    type: EventClass<E>,
    handler: EventHandler<E>,
    options: RegisterOptions = {},
  ): Subscription {
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
    return this.#registerOne(type, handler as EventHandler, undefined, name);
  }

  static {
    registerMethodImpl = (bus, type, method, target, name) =>
      bus.#registerOne(type, method, target, name);
  }

  #registerOne(
    type: EventClass,
    handler: EventHandler,
    target: object | undefined,
    name: string,
  ): Subscription {
    const entry = this.#entry(type, handler, target, name);
    this.#assertNew(type, entry);
    this.#add(type, entry);
    return new Subscription(() => this.#remove(type, entry));
  }

  /**
   * Registers the `@On` methods of `target`: for an instance, its `@On`
   * instance methods (inherited ones included), bound to it; for a class,
   * its `@On` static methods.
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
   * console.log(counter.count); // 1
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
    const added: [EventClass, Entry][] = [];
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
      );
      this.#assertNew(record.type, entry);
      added.push([record.type, entry]);
    }
    for (const [type, entry] of added) this.#add(type, entry);
    return new Subscription(() => {
      for (const [type, entry] of added) this.#remove(type, entry);
    });
  }

  /**
   * Runs the handlers of `event`'s exact class, one after another, each
   * awaited, in registration order. An event with no handlers is a no-op.
   *
   * @param event The event: any class instance.
   * @returns A promise that settles when every handler has finished.
   * @throws {TypeError} When `event` is not an object.
   * @throws The handler's own error, under the `"fail-fast"` policy.
   * @throws {AggregateError} Of every handler error, under the `"collect"` policy.
   *
   * @example Publish an event
   * ```ts
   * import { EventBus } from "@aftercommit/core";
   *
   * class Ping {}
   * const bus = new EventBus();
   * const order: number[] = [];
   * bus.register(Ping, async () => { order.push(1); });
   * bus.register(Ping, () => { order.push(2); });
   * await bus.publish(new Ping());
   * console.log(order); // [1, 2]
   * ```
   */
  publish(event: object): Promise<void> {
    // Not an async function: an event without handlers, or with one
    // handler, costs no extra promise beyond the handler's own.
    if (event === null || typeof event !== "object") {
      return Promise.reject(eventError(event, "publish"));
    }
    const entries = this.#handlers.get(event.constructor as EventClass);
    if (entries === undefined) return RESOLVED;
    if (this.#errorPolicy === "fail-fast") {
      return dispatchFailFast(entries, event);
    }
    return publishCollect(entries, event);
  }

  /**
   * Publishes events one by one, in order: every handler of the first event
   * finishes before the second event's first handler starts. All events are
   * checked before any handler runs.
   *
   * @param events The events, for example those an aggregate recorded.
   * @returns A promise that settles when every handler has finished.
   * @throws {TypeError} When `events` is not iterable or holds a non-object;
   * then no handler runs.
   * @throws The handler's own error, under the `"fail-fast"` policy; later
   * events are not published.
   * @throws {AggregateError} Of every handler error of every event, under the
   * `"collect"` policy.
   *
   * @example Publish several events
   * ```ts
   * import { EventBus } from "@aftercommit/core";
   *
   * class A {}
   * class B {}
   * const bus = new EventBus();
   * const order: string[] = [];
   * bus.register(A, () => { order.push("A"); });
   * bus.register(B, () => { order.push("B"); });
   * await bus.publishAll([new B(), new A()]);
   * console.log(order); // ["B", "A"]
   * ```
   */
  async publishAll(events: Iterable<object>): Promise<void> {
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
    if (this.#errorPolicy === "fail-fast") {
      for (let i = 0; i < list.length; i++) {
        const event = list[i] as object;
        const entries = this.#handlers.get(event.constructor as EventClass);
        if (entries !== undefined) await dispatchFailFast(entries, event);
      }
      return;
    }
    let errors: unknown[] | undefined;
    for (let i = 0; i < list.length; i++) {
      const event = list[i] as object;
      const entries = this.#handlers.get(event.constructor as EventClass);
      if (entries !== undefined) {
        errors = await dispatchCollect(entries, event, errors);
      }
    }
    if (errors !== undefined) {
      throw aggregate(errors, `${list.length} events`);
    }
  }

  /**
   * The handlers registered for exactly `type`, in the order they run.
   *
   * @param type The event class.
   * @returns A snapshot: later registrations do not change it.
   * @throws {TypeError} When `type` is not a class.
   *
   * @example List handlers
   * ```ts
   * import { EventBus } from "@aftercommit/core";
   *
   * class Ping {}
   * const bus = new EventBus();
   * bus.register(Ping, function first() {});
   * bus.register(Ping, function second() {});
   * console.log(bus.handlersFor(Ping).map((h) => h.name)); // ["first", "second"]
   * ```
   */
  handlersFor(type: EventClass): readonly HandlerInfo[] {
    assertEventClass(type, "list handlers");
    const entries = this.#handlers.get(type) ?? [];
    return entries.map(({ name, handler, target }) => ({
      name,
      handler,
      target,
    }));
  }

  /**
   * Removes every handler of every type from this bus. Unsubscribing a
   * subscription made before then does nothing.
   */
  clearHandlers(): void {
    const count = this.#handlers.size;
    this.#handlers.clear();
    logger.debug("Cleared the handlers of {typeCount} event types", {
      typeCount: count,
    });
  }

  #entry(
    type: EventClass,
    handler: EventHandler,
    target: object | undefined,
    name: string,
  ): Entry {
    const eventType = typeName(type);
    return {
      name,
      handler: handler as HandlerInfo["handler"],
      target,
      call: target === undefined ? handler : handler.bind(target),
      fail: (error: unknown): never => {
        logFailureOf(eventType, name, error);
        throw error;
      },
    };
  }

  #assertNew(type: EventClass, entry: Entry): void {
    const existing = this.#handlers.get(type);
    if (existing === undefined) return;
    for (const e of existing) {
      if (e.handler === entry.handler && e.target === entry.target) {
        throw new TypeError(
          `Cannot register handler ${entry.name} for ${
            typeName(type)
          }: it is already registered on this bus, and registering it twice would run its side effects twice; unsubscribe the first registration or register a different function`,
        );
      }
    }
  }

  // Copy-on-write: a publish in progress keeps iterating the array it read.
  #add(type: EventClass, entry: Entry): void {
    const existing = this.#handlers.get(type);
    this.#handlers.set(type, existing ? [...existing, entry] : [entry]);
    logger.debug("Registered handler {handler} for {eventType}", {
      eventType: typeName(type),
      handler: entry.name,
    });
  }

  #remove(type: EventClass, entry: Entry): void {
    const existing = this.#handlers.get(type);
    if (existing === undefined || !existing.includes(entry)) return;
    const rest = existing.filter((e) => e !== entry);
    if (rest.length === 0) this.#handlers.delete(type);
    else this.#handlers.set(type, rest);
    logger.debug("Unregistered handler {handler} for {eventType}", {
      eventType: typeName(type),
      handler: entry.name,
    });
  }
}

const RESOLVED: Promise<void> = Promise.resolve();
const NOOP = (): void => {};

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null &&
    (typeof value === "object" || typeof value === "function") &&
    typeof (value as { then?: unknown }).then === "function";
}

function dispatchFailFast(
  entries: readonly Entry[],
  event: object,
): Promise<void> {
  const debug = debugGate.enabled;
  if (entries.length !== 1 || debug) {
    return dispatchEachFailFast(entries, event, debug);
  }
  // The common case of one handler, with debug logging off.
  const entry = entries[0]!;
  let result: unknown;
  try {
    result = entry.call(event);
  } catch (error) {
    logFailure(entry, event, error);
    return Promise.reject(error);
  }
  return isThenable(result)
    ? Promise.resolve(result).then(NOOP, entry.fail)
    : RESOLVED;
}

async function dispatchEachFailFast(
  entries: readonly Entry[],
  event: object,
  debug: boolean,
): Promise<void> {
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    if (debug) logHandling(entry, event);
    try {
      await entry.call(event);
    } catch (error) {
      logFailure(entry, event, error);
      throw error;
    }
  }
}

async function publishCollect(
  entries: readonly Entry[],
  event: object,
): Promise<void> {
  const errors = await dispatchCollect(entries, event, undefined);
  if (errors !== undefined) {
    throw aggregate(errors, typeName(event.constructor));
  }
}

// Runs every handler; returns the failures so far (`errors`, created on the
// first failure), or `undefined` when there was none.
async function dispatchCollect(
  entries: readonly Entry[],
  event: object,
  errors: unknown[] | undefined,
): Promise<unknown[] | undefined> {
  const debug = debugGate.enabled;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    if (debug) logHandling(entry, event);
    try {
      await entry.call(event);
    } catch (error) {
      logFailure(entry, event, error);
      (errors ??= []).push(error);
    }
  }
  return errors;
}

function logHandling(entry: Entry, event: object): void {
  logger.debug("Handling {eventType} with {handler}", {
    eventType: typeName(event.constructor),
    handler: entry.name,
  });
}

function logFailure(entry: Entry, event: object, error: unknown): void {
  logFailureOf(typeName(event.constructor), entry.name, error);
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
 * Registers `handler` for events of exactly `type` on {@linkcode defaultBus}.
 *
 * @typeParam E The event type.
 * @param type The event class.
 * @param handler The function to run; it may be async.
 * @param options The handler's name for logs.
 * @returns A subscription that removes the handler.
 * @throws {TypeError} As {@linkcode EventBus.register}.
 *
 * @example Register on the default bus
 * ```ts
 * import { publish, register } from "@aftercommit/core";
 *
 * class Ping {}
 * using _sub = register(Ping, () => console.log("ping"));
 * await publish(new Ping()); // logs "ping"
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
export function publish(event: object): Promise<void> {
  return defaultBus.publish(event);
}

/**
 * Publishes events in order on {@linkcode defaultBus}.
 *
 * @param events The events.
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
export function publishAll(events: Iterable<object>): Promise<void> {
  return defaultBus.publishAll(events);
}

/**
 * Removes every handler from {@linkcode defaultBus}, static `@On` methods
 * included (tests call it between cases).
 *
 * @example Clear the default bus
 * ```ts
 * import { clearHandlers, defaultBus, register } from "@aftercommit/core";
 *
 * class Ping {}
 * register(Ping, () => {});
 * clearHandlers();
 * console.log(defaultBus.handlersFor(Ping).length); // 0
 * ```
 */
export function clearHandlers(): void {
  defaultBus.clearHandlers();
}
