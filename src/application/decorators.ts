// The `@On` and `@OnAny` method decorators (TC39 standard decorators).
import {
  addHandlerRecord,
  type HandlerRecord,
  noteConstructed,
} from "./_handler_metadata.ts";
import { typeName } from "../internal/describe.ts";
import { assertDecorates, assertEventClass } from "../internal/rules.ts";
import {
  defaultBus,
  type HandlerOptions,
  handlerOptions,
  type RegisterOptions,
  registerRecord,
} from "./event_bus.ts";
import type { EventClass, HandlerContext } from "./types.ts";

/**
 * What {@linkcode On} returns: on a method whose first parameter cannot take
 * an `E`, a compile error.
 */
export type OnDecorator<E extends object> = <
  This,
  M extends (this: This, event: E, context: HandlerContext) => unknown,
>(method: M, context: ClassMethodDecoratorContext<This, M>) => void;

/** Options of {@linkcode On}; {@linkcode OnAny} takes `order` only. */
export type OnOptions = Pick<RegisterOptions, "order" | "subclasses">;

/**
 * Marks a method as a handler of events of exactly `type` (and of its
 * subclasses with `{ subclasses: true }`). A static method registers on
 * {@linkcode defaultBus} when its class is defined; an instance method when
 * `bus.subscribe(instance)` binds it.
 *
 * @throws {TypeError} When `type` is not a class or an option is invalid,
 * or (when the class is defined) on something other than a method.
 *
 * @example Static and instance handlers
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultBus, On, publish } from "@aftercommit/core";
 *
 * class Ping {}
 * class Audit {
 *   static seen = 0;
 *   @On(Ping) // on defaultBus once the class is defined
 *   static record(): void {
 *     Audit.seen++;
 *   }
 * }
 * class Welcome {
 *   sent = 0;
 *   @On(Ping) // registered by subscribe(instance)
 *   send(): void {
 *     this.sent++;
 *   }
 * }
 * const welcome = new Welcome();
 * using _sub = defaultBus.subscribe(welcome);
 * await publish(new Ping());
 * assert.deepEqual([Audit.seen, welcome.sent], [1, 1]);
 * ```
 */
export function On<E extends object>(
  type: EventClass<E>,
  options: OnOptions = {},
): OnDecorator<E> {
  const hint = "pass the class itself, for example @On(UserRegistered)";
  assertEventClass(type, "create @On decorator", hint);
  const name = typeName(type);
  const action = `create @On(${name}) decorator`;
  const checked = handlerOptions(options, type, action);
  return handlerDecorator(type, checked, `@On(${name})`, name);
}

/**
 * Marks a method as a catch-all ({@linkcode EventBus.onAny}), registered as
 * {@linkcode On} registers its methods.
 *
 * @throws {TypeError} When `options` is invalid, or (when the class is
 * defined) on something other than a method.
 */
export function OnAny(
  options: Pick<OnOptions, "order"> = {},
): OnDecorator<object> {
  const action = "create @OnAny decorator";
  const checked = handlerOptions(options, undefined, action, true);
  return handlerDecorator(null, checked, "@OnAny()", "events");
}

function handlerDecorator<E extends object>(
  type: EventClass<E> | null,
  options: HandlerOptions,
  label: string,
  receives: string,
): OnDecorator<E> {
  return function onDecorator(_method, context): void {
    assertDecorates(
      context,
      "method",
      label,
      `methods only; put it on a method that receives ${receives}`,
    );
    const { name, static: isStatic, private: isPrivate } = context;
    const record: HandlerRecord = {
      ...options,
      type,
      name,
      isStatic,
      isPrivate,
      // Public methods are looked up on the target: an override runs instead.
      get: isPrivate
        ? (target) => context.access.get(target as never)
        : (target) => (target as Record<string | symbol, unknown>)[name],
    };
    addHandlerRecord(context.metadata, record);
    context.addInitializer(function (this: unknown): void {
      if (isStatic) defaultBus[registerRecord](record, this as object);
      // For the bus's warning about classes never subscribed.
      else noteConstructed(this as object);
    });
  };
}
