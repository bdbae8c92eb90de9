import { describe, typeName } from "../../internal/describe.ts";
import {
  assertDecorates,
  assertEventClass,
  assertObject,
  expected,
  fail,
} from "../../internal/rules.ts";
import type { EventClass } from "../types.ts";
import { decode, encode } from "./_event_codec.ts";

/** Options of {@linkcode EventRegistry.register} and {@linkcode EventType}. */
export interface EventTypeOptions {
  /** Former type names, rebuilt as this class too. Default: `[]`. */
  readonly aliases?: readonly string[];
}

/** An event as the outbox stores it. */
export interface SerializedEvent {
  /** The stable type name of the event's class. */
  readonly type: string;
  /** The event's `eventId`. */
  readonly eventId: string;
  /** The event's fields as JSON text, Dates as `{"$date": "<ISO 8601>"}`. */
  readonly payload: string;
}

/**
 * A stored event names a type no class is registered for in this process;
 * the outbox relay records a failed attempt and keeps the row.
 */
export class UnknownEventTypeError extends Error {
  /** The type name no class is registered for. */
  readonly typeName: string;

  /** Creates the error for `typeName`, the name no class is registered for. */
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
 * Plain data and Dates survive; anything else (a `Map`, a class instance) is
 * refused unless the class has `toJSON()` and `static fromJSON`. Rebuilding
 * does not run the constructor, and `#private` fields are not own fields: a
 * class with them needs `toJSON()` and `static fromJSON` too.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DomainEvent, EventRegistry } from "@aftercommit/core";
 *
 * class UserRegistered extends DomainEvent {
 *   constructor(readonly at: Date) {
 *     super();
 *   }
 * }
 * const registry = new EventRegistry();
 * registry.register("user.registered", UserRegistered);
 * const event = new UserRegistered(new Date("2024-05-01T12:00:00Z"));
 * const { type, payload } = registry.serialize(event);
 * assert.deepEqual(registry.deserialize(type, payload), event);
 * ```
 */
export class EventRegistry {
  readonly #classes = new Map<string, EventClass>();
  readonly #names = new Map<EventClass, string>();

  /**
   * Registers `type` under the type `name` (1 to 200 letters, digits and
   * `_ . : / -`) and its aliases; the same registration again does nothing.
   * @throws {TypeError} When a name is invalid or taken by another class, or
   * the class already has another name.
   */
  register<E extends object>(
    name: string,
    type: EventClass<E>,
    options: EventTypeOptions = {},
  ): void {
    assertName(name, "register event type");
    const action = `register event type ${JSON.stringify(name)}`;
    assertEventClass(type, action);
    assertObject(options, "options", action);
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
    const names = [name, ...aliases];
    for (const each of names) {
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
    for (const each of names) this.#classes.set(each, type);
  }

  /** The type name `type` is stored under, or `undefined`. */
  nameOf(type: EventClass): string | undefined {
    return this.#names.get(type);
  }

  /** The class registered under `name` (or alias), or `undefined`. */
  classOf(name: string): EventClass | undefined {
    return this.#classes.get(name);
  }

  /**
   * Turns an event into its stored form: its own fields, or its `toJSON()`.
   * @throws {TypeError} When the event's class is not registered, it has no
   * `eventId` string (or, without `fromJSON`, its stored fields would rebuild
   * one without it), or a field holds a value JSON cannot carry (named,
   * never its value).
   */
  serialize(event: object): SerializedEvent {
    if (event === null || typeof event !== "object") {
      expected("serialize event", "an event object", event);
    }
    const className = typeName(event.constructor);
    const name = this.#names.get(event.constructor as EventClass);
    const action = `serialize event ${className}`;
    if (name === undefined) {
      fail(
        action,
        `its class has no registered type name; decorate it with @EventType("some.name") or call registry.register("some.name", ${className})`,
      );
    }
    const { eventId, toJSON } = event as Record<string, unknown>;
    if (typeof eventId !== "string" || eventId === "") {
      fail(
        action,
        "it has no eventId (a non-empty string) to identify it across redelivery; extend DomainEvent, or give the class a readonly eventId field",
      );
    }
    // A spread copies own fields, even one named `__proto__`.
    const fields = typeof toJSON === "function"
      ? toJSON.call(event)
      : { ...event };
    // Without fromJSON, the rebuilt event is these fields on the prototype:
    // it must carry the same eventId (a getter may derive it).
    const { fromJSON } = event.constructor as { fromJSON?: unknown };
    if (
      typeof fromJSON !== "function" &&
      (fields as { eventId?: unknown } | null)?.eventId !== eventId &&
      rebuiltId(Object.getPrototypeOf(event), fields) !== eventId
    ) {
      fail(
        action,
        "the event rebuilt from its stored fields (its toJSON() result) would not have its eventId; keep eventId in toJSON's result, or add a static fromJSON that restores it",
      );
    }
    const payload = JSON.stringify(encode(fields, className, action));
    return { type: name, eventId, payload };
  }

  /**
   * Rebuilds an event from its stored form as an instance of the class
   * registered under `type`: its `static fromJSON`, or the stored fields on
   * the class's prototype.
   * @param eventId The stored id, which the rebuilt event must carry.
   * @throws {UnknownEventTypeError} When no class is registered under `type`.
   * @throws {TypeError} When the payload is not what `serialize` wrote, or
   * `fromJSON` returns something other than an instance of the class, or
   * one without `eventId`.
   */
  deserialize(type: string, payload: string, eventId?: string): object {
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
      if ((event as object | null)?.constructor !== klass) {
        fail(
          action,
          `${typeName(klass)}.fromJSON returned ${
            describe(event)
          }, expected an instance of ${typeName(klass)}`,
        );
      }
      const rebuilt = event as { eventId?: unknown };
      if (eventId !== undefined && rebuilt.eventId !== eventId) {
        fail(
          action,
          `${
            typeName(klass)
          }.fromJSON returned an event without the stored eventId; restore it (pass it to the constructor), or a redelivery gets a new identity`,
        );
      }
      return event as object;
    }
    if (data === null || typeof data !== "object" || Array.isArray(data)) {
      expected(
        action,
        "the payload to be a JSON object of fields",
        data,
        `give ${typeName(klass)} a static fromJSON to rebuild it`,
      );
    }
    // The decoded fields are plain data properties: copy them as they are.
    const event = Object.create(
      klass.prototype,
      Object.getOwnPropertyDescriptors(data),
    ) as object;
    if (eventId !== undefined && idOf(event) !== eventId) {
      fail(
        action,
        "its stored fields rebuild an event without the stored eventId (written before serialize() checked it); give the class a static fromJSON that restores it",
      );
    }
    return event;
  }
}

// The eventId of `fields` rebuilt on `prototype` (a getter may derive it).
function rebuiltId(prototype: object, fields: unknown): unknown {
  if (Object(fields) !== fields) return undefined;
  const descriptors = Object.getOwnPropertyDescriptors(fields);
  return idOf(Object.create(prototype, descriptors));
}

// An event's eventId, or undefined when reading it throws (a getter that
// reads #private fields, which a rebuilt event does not have).
function idOf(event: object): unknown {
  try {
    return (event as { eventId?: unknown }).eventId;
  } catch {
    return undefined;
  }
}

/** The registry {@linkcode EventType} registers into, and the outbox's default. */
export const defaultEventRegistry: EventRegistry = new EventRegistry();

/**
 * A class decorator that registers the class under the type `name` in
 * {@linkcode defaultEventRegistry}, as {@linkcode EventRegistry.register}.
 * @throws {TypeError} When `name` is invalid, or (when the class is
 * defined) not on a class, or the name or the class is taken.
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
  if (typeof name !== "string" || !/^[A-Za-z0-9_.:/-]{1,200}$/.test(name)) {
    fail(
      action,
      `expected a type name of 1 to 200 letters, digits and "_.:/-", such as "user.registered", received ${
        typeof name === "string" ? JSON.stringify(name) : describe(name)
      }`,
    );
  }
}
