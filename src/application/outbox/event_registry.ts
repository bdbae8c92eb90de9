/**
 * The event class registry: stable type names for event classes, so an event
 * written to the outbox can be rebuilt, in another process or after a
 * restart, as an instance of the same class.
 *
 * @module
 */
import { describe, typeName } from "../../internal/describe.ts";
import {
  assertDecorates,
  assertEventClass,
  expected,
  fail,
} from "../../internal/rules.ts";
import type { EventClass } from "../types.ts";
import { decode, encode, EncodeError, setField } from "./_event_codec.ts";

const NAME = /^[A-Za-z0-9_.:/-]{1,200}$/;

/** Options of {@linkcode EventRegistry.register} and {@linkcode EventType}. */
export interface EventTypeOptions {
  /**
   * Former type names of the class: events stored under them are rebuilt as
   * this class. New events are always stored under the main name.
   *
   * @default {[]}
   */
  readonly aliases?: readonly string[];
}

/** An event as the outbox stores it. */
export interface SerializedEvent {
  /** The stable type name of the event's class. */
  readonly type: string;
  /** The event's `eventId`. */
  readonly eventId: string;
  /**
   * The event's fields as JSON text. Dates are written as
   * `{"$date": "<ISO 8601>"}` and come back as `Date`s.
   */
  readonly payload: string;
}

/**
 * A stored event names a type that no class is registered for in this
 * process (the class was never registered here, or its name changed without
 * an alias). The outbox relay records it on the event's row as a failed
 * attempt; the row is kept.
 *
 * @example Recognise the error
 * ```ts
 * import assert from "node:assert/strict";
 * import { EventRegistry, UnknownEventTypeError } from "@aftercommit/core";
 *
 * assert.throws(
 *   () => new EventRegistry().deserialize("user.registered", "{}"),
 *   UnknownEventTypeError,
 * );
 * ```
 */
export class UnknownEventTypeError extends Error {
  /** The type name that no class is registered for. */
  readonly typeName: string;

  /**
   * Creates the error.
   *
   * @param typeName The unknown type name.
   */
  constructor(typeName: string) {
    super(
      `Cannot rebuild event: no event class is registered for type name ${
        JSON.stringify(typeName)
      }; register the class under this name (or as an alias) in every process that runs the outbox relay`,
    );
    this.name = "UnknownEventTypeError";
    this.typeName = typeName;
  }
}

/**
 * Maps stable type names (such as `"user.registered"`) to event classes and
 * back, and turns events into JSON and back into instances of their class.
 * The outbox stores the type name, so a class can be renamed in code; a type
 * name that must change keeps the old one as an alias.
 *
 * Serializing writes the event's own enumerable fields (or its `toJSON()`);
 * Dates, nested ones included, survive the round trip. Values JSON cannot
 * carry faithfully (a `Map`, a class instance other than a `Date`, a bigint,
 * `NaN`, a cycle) are refused with a `TypeError` naming the field.
 * Rebuilding creates an object with the class's prototype and the stored
 * fields, without running the constructor; a class whose state is not in
 * its public fields defines `static fromJSON(data)`, called instead.
 *
 * @example Register, serialize, rebuild
 * ```ts
 * import assert from "node:assert/strict";
 * import { DomainEvent, EventRegistry } from "@aftercommit/core";
 *
 * class UserRegistered extends DomainEvent {
 *   constructor(readonly userId: string, readonly at: Date) {
 *     super();
 *   }
 * }
 *
 * const registry = new EventRegistry();
 * registry.register("user.registered", UserRegistered);
 * const event = new UserRegistered("u1", new Date("2024-05-01T12:00:00Z"));
 * const stored = registry.serialize(event);
 * assert.equal(stored.type, "user.registered");
 * const copy = registry.deserialize(stored.type, stored.payload);
 * assert.deepEqual(copy, event);
 * assert.ok(copy instanceof UserRegistered);
 * ```
 */
export class EventRegistry {
  readonly #classes = new Map<string, EventClass>();
  readonly #names = new Map<EventClass, string>();

  /**
   * Registers `type` under the stable type `name` (and its former names).
   * Registering the same class under the same name again does nothing.
   *
   * @typeParam E The event type.
   * @param name The type name: 1 to 200 letters, digits and `_ . : / -`,
   * for example `"user.registered"`.
   * @param type The event class.
   * @param options Former type names to accept when rebuilding.
   * @throws {TypeError} When `name` or an alias is not a valid type name,
   * `type` is not a class, the name is taken by another class, or the class
   * already has another name.
   */
  register<E extends object>(
    name: string,
    type: EventClass<E>,
    options: EventTypeOptions = {},
  ): void {
    assertName(name, "register event type");
    const action = `register event type ${JSON.stringify(name)}`;
    assertEventClass(type, action);
    if (options === null || typeof options !== "object") {
      fail(action, `options must be an object, received ${describe(options)}`);
    }
    const aliases = options.aliases ?? [];
    if (!Array.isArray(aliases)) {
      fail(
        action,
        `options.aliases must be an array of type names, received ${
          describe(aliases)
        }`,
      );
    }
    for (const alias of aliases) assertName(alias, "register event type alias");
    const as = `register ${typeName(type)} as`;
    const known = this.#names.get(type);
    if (known !== undefined && known !== name) {
      fail(
        `${as} ${JSON.stringify(name)}`,
        `it is already registered as ${
          JSON.stringify(known)
        }; give a class one type name, and former names as aliases`,
      );
    }
    for (const each of [name, ...aliases]) {
      const owner = this.#classes.get(each);
      if (owner !== undefined && owner !== type) {
        fail(
          `${as} ${JSON.stringify(each)}`,
          `that type name belongs to ${
            typeName(owner)
          }; every type name must name one class`,
        );
      }
    }
    this.#names.set(type, name);
    for (const each of [name, ...aliases]) this.#classes.set(each, type);
  }

  /**
   * The type name `type` is stored under, or `undefined` when unregistered.
   *
   * @param type An event class.
   * @returns Its type name, or `undefined`.
   */
  nameOf(type: EventClass): string | undefined {
    return this.#names.get(type);
  }

  /**
   * The class registered under `name` (a main name or an alias).
   *
   * @param name A type name.
   * @returns The class, or `undefined` when none is registered under it.
   */
  classOf(name: string): EventClass | undefined {
    return this.#classes.get(name);
  }

  /**
   * Turns an event into its stored form: its class's type name, its
   * `eventId`, and its fields as JSON.
   *
   * @param event An instance of a registered class with a non-empty string
   * `eventId` (every {@linkcode DomainEvent} has one).
   * @returns The type name, the id and the JSON payload.
   * @throws {TypeError} When `event` is not an object, its class is not
   * registered, it has no `eventId`, or a field holds a value JSON cannot
   * carry (the message names the field, never its value).
   */
  serialize(event: object): SerializedEvent {
    if (event === null || typeof event !== "object") {
      expected("serialize event", "an event object", event);
    }
    const type = event.constructor as EventClass;
    const className = typeName(type);
    const name = this.#names.get(type);
    const action = `serialize event ${className}`;
    if (name === undefined) {
      fail(
        action,
        `its class has no registered type name; decorate it with @EventType("some.name") or call registry.register("some.name", ${className})`,
      );
    }
    const eventId = (event as { eventId?: unknown }).eventId;
    if (typeof eventId !== "string" || eventId === "") {
      fail(
        action,
        "it has no eventId (a non-empty string) to identify it across redelivery; extend DomainEvent, or give the class a readonly eventId field",
      );
    }
    const toJSON = (event as { toJSON?: unknown }).toJSON;
    let fields: unknown;
    if (typeof toJSON === "function") {
      fields = toJSON.call(event);
    } else {
      const own: Record<string, unknown> = {};
      for (const key of Object.keys(event)) {
        setField(own, key, (event as Record<string, unknown>)[key]);
      }
      fields = own;
    }
    let payload: string;
    try {
      payload = JSON.stringify(encode(fields, className));
    } catch (error) {
      if (error instanceof EncodeError) fail(action, error.message);
      throw error;
    }
    return { type: name, eventId, payload };
  }

  /**
   * Rebuilds an event from its stored form, as an instance of the class
   * registered under `type`: with the class's `static fromJSON(data)` when
   * it has one, else an object with the class's prototype and the stored
   * fields (the constructor does not run).
   *
   * @param type The stored type name.
   * @param payload The stored JSON payload.
   * @returns The event, an instance of exactly the registered class.
   * @throws {UnknownEventTypeError} When no class is registered under `type`.
   * @throws {TypeError} When the payload is not a JSON object, or the class's
   * `fromJSON` returns something other than an instance of the class.
   *
   * @example Rebuild with a custom fromJSON
   * ```ts
   * import assert from "node:assert/strict";
   * import { EventRegistry } from "@aftercommit/core";
   *
   * class Moved {
   *   readonly eventId = crypto.randomUUID();
   *   constructor(readonly to: string) {}
   *   static fromJSON(data: { to: string }): Moved {
   *     return new Moved(data.to.toUpperCase());
   *   }
   * }
   * const registry = new EventRegistry();
   * registry.register("moved", Moved);
   * const stored = registry.serialize(new Moved("Paris"));
   * const copy = registry.deserialize(stored.type, stored.payload) as Moved;
   * assert.equal(copy.to, "PARIS");
   * ```
   */
  deserialize(type: string, payload: string): object {
    if (typeof type !== "string") {
      expected("rebuild event", "a type name", type);
    }
    const klass = this.#classes.get(type);
    if (klass === undefined) throw new UnknownEventTypeError(type);
    const action = `rebuild event ${JSON.stringify(type)}`;
    if (typeof payload !== "string") {
      expected(action, "the payload as JSON text", payload);
    }
    let data: unknown;
    try {
      data = decode(JSON.parse(payload));
    } catch (cause) {
      throw new TypeError(
        `Cannot ${action}: the payload is not JSON that serialize() wrote`,
        { cause },
      );
    }
    const fromJSON = (klass as { fromJSON?: unknown }).fromJSON;
    if (typeof fromJSON === "function") {
      const event: unknown = fromJSON.call(klass, data);
      if (
        event === null || typeof event !== "object" ||
        event.constructor !== klass
      ) {
        fail(
          action,
          `${typeName(klass)}.fromJSON returned ${
            describe(event)
          }, expected an instance of ${typeName(klass)}`,
        );
      }
      return event;
    }
    if (data === null || typeof data !== "object" || Array.isArray(data)) {
      expected(
        action,
        "the payload to be a JSON object of fields",
        data,
        `give ${typeName(klass)} a static fromJSON to rebuild it`,
      );
    }
    const event = Object.create(klass.prototype) as object;
    for (const key of Object.keys(data)) {
      setField(event, key, (data as Record<string, unknown>)[key]);
    }
    return event;
  }
}

/**
 * The registry that {@linkcode EventType} registers into, and that the
 * outbox uses unless it is given another one.
 */
export const defaultEventRegistry: EventRegistry = new EventRegistry();

/**
 * A class decorator that registers the event class under a stable type name
 * in {@linkcode defaultEventRegistry} when the class is defined.
 *
 * @param name The type name: 1 to 200 letters, digits and `_ . : / -`.
 * @param options Former type names to accept when rebuilding.
 * @returns A standard (TC39) class decorator.
 * @throws {TypeError} When `name` is not a valid type name (at the
 * `EventType(…)` call), or, when the class is defined: the decorator is put on
 * something other than a class, or the name or the class is already taken.
 *
 * @example Name an event class
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultEventRegistry, DomainEvent, EventType } from "@aftercommit/core";
 *
 * @EventType("example.user-registered")
 * class UserRegistered extends DomainEvent {
 *   constructor(readonly userId: string) {
 *     super();
 *   }
 * }
 * assert.equal(
 *   defaultEventRegistry.nameOf(UserRegistered),
 *   "example.user-registered",
 * );
 * ```
 */
export function EventType(
  name: string,
  options: EventTypeOptions = {},
): <C extends EventClass>(type: C, context: ClassDecoratorContext<C>) => void {
  assertName(name, "create @EventType decorator");
  return function eventTypeDecorator(type, context): void {
    const label = `@EventType(${JSON.stringify(name)})`;
    assertDecorates(context, "class", label, "event classes only");
    defaultEventRegistry.register(name, type, options);
  };
}

function assertName(name: unknown, action: string): asserts name is string {
  if (typeof name !== "string" || !NAME.test(name)) {
    fail(
      action,
      `expected a type name of 1 to 200 letters, digits and "_.:/-", such as "user.registered", received ${
        typeof name === "string" ? JSON.stringify(name) : describe(name)
      }`,
    );
  }
}
