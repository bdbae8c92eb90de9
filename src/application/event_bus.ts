import { getLogger } from "@logtape/logtape";
import { DebugGate } from "./_debug_gate.ts";
import { errorType, loggableError } from "../internal/loggable_error.ts";
import {
  chainOf,
  collectHandlerRecords,
  distanceOf,
  type HandlerRecord,
  hasUnsubscribed,
  noteSubscribed,
  unsubscribedClassesFor,
} from "./_handler_metadata.ts";
import { describe, isConstructor, typeName } from "../internal/describe.ts";
import { assertEventClass, expected, fail, finite } from "../internal/rules.ts";
import {
  inSpan,
  MESSAGING_SYSTEM,
  meters,
  recordError,
  type Span,
  tracing,
} from "../internal/telemetry.ts";
import { Subscription } from "./subscription.ts";
import type {
  EventClass,
  EventHandler,
  HandlerContext,
  HandlerInfo,
} from "./types.ts";

const logger = getLogger(["aftercommit", "bus"]);
const debugGate = new DebugGate(logger);

/**
 * When a handler throws, `"fail-fast"` rethrows and runs nothing after it;
 * `"collect"` runs everything, then throws an `AggregateError` of failures.
 */
export type ErrorPolicy = "fail-fast" | "collect";

/** Options of {@linkcode EventBus}. */
export interface EventBusOptions {
  /**
   * What to do when a handler throws.
   * @default {"fail-fast"}
   */
  readonly errorPolicy?: ErrorPolicy;
}

/** Options of {@linkcode EventBus.onAny}. */
export interface OnAnyOptions {
  /**
   * The handler's name in logs and errors.
   * @default {the function's name, or "(anonymous)"}
   */
  readonly name?: string;
  /**
   * Lower runs first; registration order among equals.
   * @default {0}
   */
  readonly order?: number;
}

/** Options of {@linkcode EventBus.register}. */
export interface RegisterOptions extends OnAnyOptions {
  /**
   * Whether the handler also receives instances of subclasses of its class.
   * @default {false}
   */
  readonly subclasses?: boolean;
}

/** Options of {@linkcode EventBus.publish} and {@linkcode EventBus.publishAll}. */
export interface PublishOptions {
  /**
   * Handed to handlers as `context.signal`; once it aborts, no handler
   * starts and the publish rejects with its reason, without waiting.
   * @default {a signal that never aborts}
   */
  readonly signal?: AbortSignal | undefined;
}

/** `order` and `subclasses` of a handler, checked. */
export type HandlerOptions = Required<
  Pick<RegisterOptions, "order" | "subclasses">
>;

/** Checks the options of `@On`, `@OnAny`, `register()` and `onAny()`. */
export function handlerOptions(
  options: unknown,
  type: unknown,
  action: string,
  catchAll = false,
): HandlerOptions {
  if (options === null || typeof options !== "object") {
    const hint = "pass { order, subclasses } or leave it out";
    expected(action, "an options object", options, hint);
  }
  const given = options as { order?: unknown; subclasses?: unknown };
  const hint =
    "pass a number such as -10 or 10 (lower runs first, 0 by default)";
  const order = finite(0, hint)(given.order, "order", action);
  const { subclasses = false } = given;
  const problem = catchAll && given.subclasses !== undefined
    ? "the subclasses option does not apply to a catch-all, which receives every event; remove it"
    : typeof subclasses !== "boolean"
    ? `subclasses must be true or false, received ${describe(subclasses)}`
    : subclasses && !isConstructor(type)
    ? `subclasses: true needs a base class, received ${
      describe(type)
    }; pass the base class itself (for example DomainEvent), or use onAny() to receive every event`
    : undefined;
  if (problem !== undefined) fail(action, problem);
  return { order, subclasses: subclasses as boolean };
}

/** How a static `@On` method registers itself (`mod.ts` does not export it). */
export const registerRecord: unique symbol = Symbol("aftercommit.register");

interface Entry extends HandlerInfo {
  readonly call: (event: object, context: HandlerContext) => unknown; // bound
}

// Resolved for one event class: every failure is logged through `log`.
interface Resolved extends Entry {
  readonly log: (error: unknown) => void;
}

// One publish: what its handlers get, and the failures collected so far.
interface Run {
  readonly context: HandlerContext;
  readonly signal: AbortSignal | undefined;
  readonly failFast: boolean;
  errors: unknown[] | undefined;
}

const NO_SIGNAL: HandlerContext = Object.freeze({
  signal: new AbortController().signal,
});
// Fail-fast with no signal: shared, as it never collects.
const PLAIN: Run = Object.freeze({
  context: NO_SIGNAL,
  signal: undefined,
  failFast: true,
  errors: undefined,
});
const RESOLVED: Promise<void> = Promise.resolve();
const PLAIN_OBJECT = Symbol("plain object"); // in `#warned`

/**
 * An event bus with its own handlers. An event's handlers run one at a time,
 * each awaited, by `order`; among equals its own class's first, then base
 * classes' nearest first, then catch-alls, each in registration order.
 *
 * @example Register, publish, unsubscribe
 * ```ts
 * import assert from "node:assert/strict";
 * import { EventBus } from "@aftercommit/core";
 *
 * class Ping {
 *   constructor(readonly id: string) {}
 * }
 * const bus = new EventBus();
 * const seen: string[] = [];
 * const sub = bus.register(Ping, (e) => void seen.push(e.id));
 * await bus.publish(new Ping("a"));
 * sub.unsubscribe();
 * await bus.publish(new Ping("b"));
 * assert.deepEqual(seen, ["a"]);
 * ```
 */
export class EventBus {
  #entries: Entry[] = [];
  // `event.constructor` → the handlers that run, until the next change.
  readonly #resolved = new Map<unknown, readonly Resolved[]>();
  readonly #warned = new Set<unknown>();
  readonly #failFast: boolean;
  // Whether a tracer provider is registered, as publish() and publishAll()
  // last read it: one field read on the hot path.
  #tracing = false;

  /** Creates a bus with no handlers; a `TypeError` for an unknown policy. */
  constructor(options: EventBusOptions = {}) {
    const policy = options.errorPolicy ?? "fail-fast";
    if (policy !== "fail-fast" && policy !== "collect") {
      const detail = `unknown errorPolicy ${JSON.stringify(policy)}`;
      fail("create event bus", `${detail}, expected "fail-fast" or "collect"`);
    }
    this.#failFast = policy === "fail-fast";
  }

  /** The policy this bus applies when a handler throws. */
  get errorPolicy(): ErrorPolicy {
    return this.#failFast ? "fail-fast" : "collect";
  }

  /**
   * Registers `handler` for the events of exactly `type` (and of its
   * subclasses with `{ subclasses: true }`).
   *
   * @throws {TypeError} On a bad argument or one registered twice.
   */
  register<E extends object>(
    type: EventClass<E>,
    handler: EventHandler<E>,
    options: RegisterOptions = {},
  ): Subscription {
    const action = isConstructor(type)
      ? `register handler for ${typeName(type)}`
      : "register handler";
    const checked = handlerOptions(options, type, action);
    assertEventClass(type, action);
    const hint = "pass a function or use @On on a method";
    if (typeof handler !== "function") {
      expected(action, "a function", handler, hint);
    }
    return this.#add([
      entry(type, handler as EventHandler, checked, options.name),
    ]);
  }

  /**
   * Registers a catch-all that runs for every event (audit, metrics).
   *
   * @throws {TypeError} On a bad argument or one registered twice.
   */
  onAny(handler: EventHandler, options: OnAnyOptions = {}): Subscription {
    const action = "register catch-all handler";
    const hint =
      "pass a function such as (event) => audit(event), or use @OnAny() on a method";
    if (typeof handler !== "function") {
      expected(action, "a function", handler, hint);
    }
    const checked = handlerOptions(options, undefined, action, true);
    return this.#add([entry(null, handler, checked, options.name)]);
  }

  /**
   * Registers the `@On` and `@OnAny` methods of `target`, bound to it: an
   * instance's (inherited ones included), or a class's static ones.
   *
   * @throws {TypeError} When it has none, or one is already registered.
   */
  subscribe(target: object): Subscription {
    const isClass = typeof target === "function";
    if (!isClass && (target === null || typeof target !== "object")) {
      expected("subscribe", "an instance or a class with @On methods", target);
    }
    const owner: object | undefined = isClass
      ? target
      : Object.getPrototypeOf(target)?.constructor;
    const records = owner === undefined
      ? []
      : collectHandlerRecords(owner, isClass);
    if (records.length === 0) {
      fail(
        isClass
          ? `subscribe class ${typeName(owner)}`
          : `subscribe ${describe(target)}`,
        isClass
          ? "it has no static @On methods; subscribe an instance to register its instance @On methods"
          : "its class has no @On instance methods; decorate a method with @On(EventClass) or use register()",
      );
    }
    const subscription = this.#add(
      records.map((record) => recordEntry(record, target, owner)),
    );
    if (!isClass && owner !== undefined) noteSubscribed(owner);
    return subscription;
  }

  /** @ignore */
  [registerRecord](record: HandlerRecord, klass: object): void {
    this.#add([recordEntry(record, klass, klass)]);
  }

  /**
   * Runs the handlers of `event` one after another, each awaited.
   *
   * @throws {TypeError} On a bad argument; else the handler's error, an
   * `AggregateError` (`"collect"`), or the signal's reason once it aborted.
   */
  publish(event: object, options?: PublishOptions): Promise<void> {
    this.#tracing = tracing(); // a provider registered since the last call?
    if (options === undefined && this.#failFast && isObject(event)) {
      return this.#handle(event, PLAIN);
    }
    return this.#publish([event], options, true);
  }

  /**
   * Publishes `events` in order, each as {@linkcode EventBus.publish} does;
   * a bad event rejects before any handler runs.
   */
  publishAll(
    events: Iterable<object>,
    options?: PublishOptions,
  ): Promise<void> {
    this.#tracing = tracing();
    // One event, no options: the same promise as publish(event).
    if (
      options === undefined && this.#failFast && Array.isArray(events) &&
      events.length === 1 && isObject(events[0])
    ) return this.#handle(events[0], PLAIN);
    return this.#publish(events, options, false);
  }

  /** The handlers that run for an event of class `type`, in order. */
  handlersFor(type: EventClass): readonly HandlerInfo[] {
    assertEventClass(type, "list handlers");
    const entries = this.#resolved.get(type) ?? this.#resolve(type);
    return entries.map(({ call: _call, log: _log, ...info }) => info);
  }

  /** Removes every handler from this bus, catch-alls included. */
  clearHandlers(): void {
    const typeCount = new Set(this.#entries.map((e) => e.eventType)).size;
    this.#entries = [];
    this.#resolved.clear();
    this.#warned.clear();
    logger.debug("Cleared the handlers of {typeCount} event types", {
      typeCount,
    });
  }

  // Checks run before the first await, so they throw before any handler runs.
  async #publish(
    events: unknown,
    options: PublishOptions | undefined,
    single: boolean,
  ): Promise<void> {
    const action = single ? "publish" : "publish events";
    const iterable = events as Partial<Iterable<unknown>> | null;
    if (typeof iterable?.[Symbol.iterator] !== "function") {
      expected(action, "an iterable of events (an array, for example)", events);
    }
    const list = Array.isArray(events) ? events : Array.from(events as []);
    list.forEach((event, i) => {
      const at = single ? action : `publish event at index ${i}`;
      if (!isObject(event)) {
        expected(at, "an event object (a class instance)", event);
      }
    });
    if (options !== undefined && !isObject(options)) {
      expected(action, "an options object such as { signal }", options);
    }
    const signal = options?.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      const hint =
        "pass controller.signal or AbortSignal.timeout(ms), or leave it out";
      fail(
        action,
        `options.signal must be an AbortSignal, received ${
          describe(signal)
        }; ${hint}`,
      );
    }
    const run: Run = signal === undefined && this.#failFast ? PLAIN : {
      context: signal === undefined ? NO_SIGNAL : Object.freeze({ signal }),
      signal,
      failFast: this.#failFast,
      errors: undefined,
    };
    for (let i = 0; i < list.length; i++) {
      signal?.throwIfAborted();
      await this.#handle(list[i], run);
    }
    const { errors } = run;
    if (errors === undefined) return;
    const what = single ? eventTypeOf(list[0]) : `${list.length} events`;
    const handlers = errors.length === 1 ? "handler" : "handlers";
    throw new AggregateError(
      errors,
      `${errors.length} ${handlers} failed for ${what}`,
    );
  }

  // Not an async function: one handler costs no promise beyond its own.
  #handle(event: object, run: Run): Promise<void> {
    const type = classOf(event);
    const entries = this.#resolved.get(type) ?? this.#resolve(type);
    if (entries.length === 0) {
      this.#warnNoHandler(type);
      return RESOLVED;
    }
    if (this.#tracing) return traced(entries, event, run);
    if (entries.length === 1 && run === PLAIN && !debugGate.enabled) {
      return callOne(entries[0]!, event);
    }
    return dispatch(entries, event, run);
  }

  // Adds every entry of `added`, or none when one is already registered.
  #add(added: Entry[]): Subscription {
    const twice = added.find((a) =>
      this.#entries.some((e) =>
        e.handler === a.handler && e.target === a.target &&
        e.eventType === a.eventType
      )
    );
    if (twice !== undefined) {
      const type = twice.eventType ? typeName(twice.eventType) : "every event";
      fail(
        `register handler ${twice.name} for ${type}`,
        "it is already registered on this bus, and registering it twice would run its side effects twice; unsubscribe the first registration or register a different function",
      );
    }
    this.#entries.push(...added);
    this.#resolved.clear();
    for (const entry of added) logRegistration("Registered", entry);
    return new Subscription(() => {
      const before = this.#entries.length;
      this.#entries = this.#entries.filter((e) => !added.includes(e));
      if (this.#entries.length === before) return; // cleared since
      this.#resolved.clear();
      for (const entry of added) logRegistration("Unregistered", entry);
    });
  }

  // `type` is a class, or undefined for an event whose `constructor` is no
  // class: such events match catch-alls only and share one cached list.
  #resolve(type: unknown): readonly Resolved[] {
    const chain = chainOf(type);
    const found = this.#entries.map((e) =>
      [e, distanceOf(chain, e.eventType, e.subclasses)] as const
    ).filter(([, distance]) => distance >= 0);
    // A stable sort keeps registration order among equals (`#entries` is in
    // that order); Infinity - Infinity is NaN, which sorts as equal.
    found.sort(([a, da], [b, db]) => a.order - b.order || da - db);
    const eventType = typeName(type);
    const entries = found.map(([entry]): Resolved => ({
      ...entry,
      log: (error) => logFailure(eventType, entry.name, error),
    }));
    this.#resolved.set(type, entries);
    return entries;
  }

  // The usual reasons an event finds no handler: an instance never
  // subscribed, or a plain object published (as to a string-keyed emitter).
  #warnNoHandler(type: unknown): void {
    if (this.#warned.has(type)) return;
    const names = hasUnsubscribed()
      ? [...unsubscribedClassesFor(type)].map(typeName).sort()
      : [];
    if (names.length > 0) {
      this.#warned.add(type);
      logger.warn(
        names.length === 1
          ? "No handler for {eventType} on this bus, but {classes} has @On instance methods for it and no instance was ever subscribed; call bus.subscribe(instance)"
          : "No handler for {eventType} on this bus, but {classes} have @On instance methods for it and no instance of them was ever subscribed; call bus.subscribe(instance)",
        { eventType: typeName(type), classes: names.join(", ") },
      );
    } else if (
      (type === undefined || type === Object) &&
      !this.#warned.has(PLAIN_OBJECT)
    ) {
      this.#warned.add(PLAIN_OBJECT); // once per bus, whatever `constructor` holds
      logger.warn(
        "No handler for a plain object on this bus: handlers are found by the event's class (event.constructor); publish an instance of an event class, such as new UserRegistered(…)",
      );
    }
  }
}

function entry(
  type: EventClass | null,
  handler: EventHandler,
  checked: HandlerOptions,
  name: string | undefined,
  target?: object,
): Entry {
  return {
    name: name ?? (handler.name || "(anonymous)"),
    handler: handler as HandlerInfo["handler"],
    target,
    eventType: type ?? undefined,
    subclasses: checked.subclasses,
    order: checked.order,
    call: target === undefined ? handler : handler.bind(target),
  };
}

function recordEntry(
  record: HandlerRecord,
  target: object,
  owner: unknown,
): Entry {
  const fn = record.get(target);
  if (typeof fn !== "function") {
    fail(
      `subscribe ${typeName(owner)}`,
      `${String(record.name)} is no longer a method (it is ${describe(fn)})`,
    );
  }
  const name = `${typeName(owner)}.${String(record.name)}`;
  return entry(record.type, fn as EventHandler, record, name, target);
}

// The fast path: one handler, fail-fast, no signal, tracing or debug log. The
// failure is logged by a reaction added first, so before the caller sees it.
function callOne(entry: Resolved, event: object): Promise<void> {
  let result: unknown;
  try {
    result = entry.call(event, NO_SIGNAL);
  } catch (error) {
    entry.log(error);
    return Promise.reject(error);
  }
  if (!(result instanceof Promise)) {
    if (!isThenable(result)) return RESOLVED;
    result = Promise.resolve(result);
  }
  (result as Promise<void>).then(undefined, entry.log);
  return result as Promise<void>;
}

// The one dispatch loop: the handlers of one event, one after another, each
// awaited. Small on purpose: each await saves and restores the variables
// live across it (an `entry` local or a signal branch here cost 3-5%).
async function dispatch(
  entries: readonly Resolved[],
  event: object,
  run: Run,
): Promise<void> {
  const debug = debugGate.enabled;
  for (let i = 0; i < entries.length; i++) {
    if (run.signal?.aborted) {
      logAt(
        "warn",
        "Stopped dispatching {eventType} before handler {handler}: the signal aborted",
        entries[i]!,
        event,
      );
      throw run.signal.reason;
    }
    if (debug) {
      logAt("debug", "Handling {eventType} with {handler}", entries[i]!, event);
    }
    try {
      await call(entries[i]!, event, run);
    } catch (error) {
      failed(entries[i]!, event, run, error);
    }
  }
}

function call(entry: Resolved, event: object, run: Run): unknown {
  return run.signal === undefined
    ? entry.call(event, run.context)
    : untilSettledOrAborted(entry, event, run.context);
}

// Runs the handler; settles with it, or rejects with the signal's reason as
// soon as it aborts (a failure the handler reports after that is logged).
function untilSettledOrAborted(
  entry: Resolved,
  event: object,
  context: HandlerContext,
): unknown {
  const { signal } = context;
  const result = entry.call(event, context);
  if (!isThenable(result)) return result;
  return new Promise<void>((resolve, reject) => {
    let abandoned = false;
    const onAbort = (): void => {
      abandoned = true;
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    result.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, (error: unknown) => {
      signal.removeEventListener("abort", onAbort);
      if (!abandoned) reject(error);
      else if (error !== signal.reason) entry.log(error);
    });
  });
}

// Rethrows `error` under fail-fast and for an abort; else collects it.
function failed(
  entry: Resolved,
  event: object,
  run: Run,
  error: unknown,
): void {
  if (run.signal?.aborted && error === run.signal.reason) {
    logAt(
      "warn",
      "Stopped waiting for handler {handler} of {eventType}: the signal aborted",
      entry,
      event,
    );
    throw error;
  }
  entry.log(error);
  if (run.failFast) throw error;
  (run.errors ??= []).push(error);
}

// The event's dispatch in a `publish` span, each handler in a `process` span.
function traced(
  entries: readonly Resolved[],
  event: object,
  run: Run,
): Promise<void> {
  const eventType = eventTypeOf(event);
  // `aftercommit.outcome` is set once: Deno's built-in OTel appends a key
  // set twice.
  const span = (
    send: boolean,
    more: Record<string, string | number>,
    body: (span: Span) => Promise<boolean>,
  ) =>
    inSpan(`${send ? "publish" : "process"} ${eventType}`, {
      attributes: {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.destination.name": eventType,
        "aftercommit.event.type": eventType,
        "messaging.operation.type": send ? "send" : "process",
        "messaging.operation.name": send ? "publish" : "handle",
        ...more,
      },
    }, async (span) => {
      let ok = false;
      try {
        ok = await body(span);
      } finally {
        span.setAttribute("aftercommit.outcome", ok ? "ok" : "error");
      }
    });
  const spanned = entries.map((entry): Resolved => ({
    ...entry,
    call: (event, context) =>
      span(false, { "aftercommit.handler": entry.name }, async () => {
        await entry.call(event, context);
        return true;
      }),
  }));
  const before = run.errors?.length ?? 0;
  const count = { "aftercommit.handler.count": entries.length };
  return span(true, count, async (span) => {
    await dispatch(spanned, event, run);
    if ((run.errors?.length ?? 0) === before) return true;
    recordError(span, run.errors![before]);
    return false;
  });
}

// An event's class, or undefined when its `constructor` is no class: it may
// be data (JSON with such a field), never shown nor used as a cache key.
function classOf(event: object): unknown {
  const type = event.constructor;
  return typeof type === "function" ? type : undefined;
}

// An event's type name for logs and errors.
function eventTypeOf(event: object): string {
  return typeName(classOf(event));
}

function isObject(value: unknown): value is object {
  return value !== null && typeof value === "object";
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null &&
    (typeof value === "object" || typeof value === "function") &&
    typeof (value as { then?: unknown }).then === "function";
}

// Every failure of a handler is logged (and counted) here, once.
function logFailure(eventType: string, handler: string, error: unknown): void {
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

function logAt(
  level: "debug" | "warn",
  message: string,
  { name: handler }: Entry,
  event: object,
): void {
  logger[level](message, { eventType: eventTypeOf(event), handler });
}

function logRegistration(what: string, { eventType, name }: Entry): void {
  const type = eventType === undefined ? "(any)" : typeName(eventType);
  logger.debug(`${what} handler {handler} for {eventType}`, {
    eventType: type,
    handler: name,
  });
}

/** The bus of static `@On` methods and of the functions below. */
export const defaultBus: EventBus = new EventBus();

/** {@linkcode EventBus.register} on {@linkcode defaultBus}. */
export function register<E extends object>(
  type: EventClass<E>,
  handler: EventHandler<E>,
  options?: RegisterOptions,
): Subscription {
  return defaultBus.register(type, handler, options);
}

/** {@linkcode EventBus.publish} on {@linkcode defaultBus}. */
export function publish(
  event: object,
  options?: PublishOptions,
): Promise<void> {
  return defaultBus.publish(event, options);
}

/** {@linkcode EventBus.publishAll} on {@linkcode defaultBus}. */
export function publishAll(
  events: Iterable<object>,
  options?: PublishOptions,
): Promise<void> {
  return defaultBus.publishAll(events, options);
}

/** {@linkcode EventBus.clearHandlers} on {@linkcode defaultBus}. */
export function clearHandlers(): void {
  defaultBus.clearHandlers();
}
