/**
 * The `@On` and `@OnAny` method decorators (TC39 standard decorators).
 *
 * @module
 */
import {
  addHandlerRecord,
  type HandlerRecord,
  noteConstructed,
} from "./_handler_metadata.ts";
import { describe, typeName } from "../internal/describe.ts";
import { assertDecorates, assertEventClass } from "../internal/rules.ts";
import {
  defaultBus,
  type HandlerOptions,
  handlerOptions,
  registerRecord,
} from "./event_bus.ts";
import type { EventClass, HandlerContext } from "./types.ts";

/**
 * The decorator that {@linkcode On} returns: `@On(UserRegistered)` on a
 * method whose first parameter does not accept a `UserRegistered` is a
 * compile error.
 *
 * @typeParam E The event type.
 */
export type OnDecorator<E extends object> = <
  This,
  M extends (this: This, event: E, context: HandlerContext) => unknown,
>(
  method: M,
  context: ClassMethodDecoratorContext<This, M>,
) => void;

/** Options of {@linkcode On} and {@linkcode OnAny}. */
export interface OnOptions {
  /**
   * Lower runs first; registration order among equals. A finite number.
   *
   * @default {0}
   */
  readonly order?: number;
  /**
   * Whether the method also receives instances of subclasses of `type`.
   * Not for {@linkcode OnAny}.
   *
   * @default {false}
   */
  readonly subclasses?: boolean;
}

/**
 * Marks a method as a handler of events of exactly `type` (and of its
 * subclasses with `{ subclasses: true }`).
 *
 * A **static** method registers on {@linkcode defaultBus} when its class is
 * defined; an **instance** method is registered, bound to the instance, by
 * `bus.subscribe(instance)` (subclasses inherit their parents' handlers). A
 * method may carry several `@On`, one per event type.
 *
 * @typeParam E The event type.
 * @param type The event class.
 * @param options The method's `order`, and `subclasses`.
 * @returns A standard (TC39) method decorator.
 * @throws {TypeError} When `type` is not a class or an option has the wrong
 * type (at the call), or on something other than a method (at class
 * definition).
 * @throws {RangeError} When `options.order` is `NaN` or infinite.
 *
 * @example Static and instance handlers
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultBus, On, publish } from "@aftercommit/core";
 *
 * class UserRegistered {
 *   constructor(readonly userId: string) {}
 * }
 *
 * class Audit {
 *   static seen: string[] = [];
 *   @On(UserRegistered)
 *   static record(event: UserRegistered): void {
 *     Audit.seen.push(event.userId); // registered when the class is defined
 *   }
 * }
 *
 * class Welcome {
 *   sent: string[] = [];
 *   @On(UserRegistered)
 *   async send(event: UserRegistered): Promise<void> {
 *     this.sent.push(event.userId);
 *   }
 * }
 *
 * const welcome = new Welcome();
 * using _sub = defaultBus.subscribe(welcome); // instance handlers need an instance
 * await publish(new UserRegistered("u1"));
 * assert.deepEqual(Audit.seen, ["u1"]);
 * assert.deepEqual(welcome.sent, ["u1"]);
 * ```
 */
export function On<E extends object>(
  type: EventClass<E>,
  options: OnOptions = {},
): OnDecorator<E> {
  assertEventClass(
    type,
    "create @On decorator",
    "pass the class itself, for example @On(UserRegistered)",
  );
  const name = typeName(type);
  const checked = handlerOptions(
    options,
    type,
    `create @On(${name}) decorator`,
  );
  return handlerDecorator(type, checked, `@On(${name})`, name);
}

/**
 * Marks a method as a catch-all (see {@linkcode EventBus.onAny}), registered
 * as {@linkcode On} registers its methods.
 *
 * @param options The method's `order`.
 * @returns A standard (TC39) method decorator.
 * @throws {TypeError} When `options.order` is not a number, or on
 * something other than a method.
 * @throws {RangeError} When `options.order` is `NaN` or infinite.
 *
 * @example An audit trail of every event
 * ```ts
 * import assert from "node:assert/strict";
 * import { EventBus, OnAny } from "@aftercommit/core";
 *
 * class UserRegistered {}
 * class OrderPlaced {}
 * class AuditTrail {
 *   types: string[] = [];
 *   @OnAny()
 *   record(event: object): void {
 *     this.types.push(event.constructor.name);
 *   }
 * }
 * const bus = new EventBus();
 * const audit = new AuditTrail();
 * bus.subscribe(audit);
 * await bus.publishAll([new UserRegistered(), new OrderPlaced()]);
 * assert.deepEqual(audit.types, ["UserRegistered", "OrderPlaced"]);
 * ```
 */
export function OnAny(
  options: Pick<OnOptions, "order"> = {},
): OnDecorator<object> {
  const checked = handlerOptions(
    options,
    undefined,
    "create @OnAny decorator",
    true,
  );
  return handlerDecorator(null, checked, "@OnAny()", "events");
}

function handlerDecorator<E extends object>(
  type: EventClass<E> | null,
  options: HandlerOptions,
  label: string,
  receives: string,
): OnDecorator<E> {
  return function onDecorator(method, context): void {
    assertDecorates(
      context,
      "method",
      label,
      `methods only; put it on a method that receives ${receives}`,
    );
    if (typeof method !== "function") {
      throw new TypeError(
        `${label} cannot decorate ${
          String(context.name)
        }: expected a method, received ${describe(method)}`,
      );
    }
    const name = context.name;
    const record: HandlerRecord = {
      type,
      order: options.order,
      subclasses: options.subclasses,
      name,
      isStatic: context.static,
      isPrivate: context.private,
      // Public methods are looked up on the target, so an override in a
      // subclass runs in place of the decorated method (virtual dispatch).
      get: context.private
        ? (target) => context.access.get(target as never)
        : (target) => (target as Record<string | symbol, unknown>)[name],
    };
    addHandlerRecord(context.metadata, record);
    context.addInitializer(
      context.static
        ? function (this: unknown): void {
          defaultBus[registerRecord](record, this as object);
        }
        // For each new instance: remembers its class until an instance is
        // subscribed, for the bus's "no handler" warning.
        : function (this: unknown): void {
          noteConstructed(this as object, type, options.subclasses);
        },
    );
  };
}
