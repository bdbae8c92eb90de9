/**
 * The `@On` method decorator (TC39 standard decorators).
 *
 * @module
 */
import { addHandlerRecord } from "./_handler_metadata.ts";
import { describe, isConstructor, typeName } from "./_describe.ts";
import { defaultBus, registerMethod } from "./event_bus.ts";
import type { EventClass } from "./types.ts";

/**
 * The decorator that {@linkcode On} returns. It accepts only methods whose
 * first parameter accepts an `E`, so `@On(UserRegistered)` on a method that
 * takes another event type is a compile error.
 *
 * @typeParam E The event type.
 */
export type OnDecorator<E extends object> = <
  This,
  M extends (this: This, event: E) => unknown,
>(
  method: M,
  context: ClassMethodDecoratorContext<This, M>,
) => void;

/**
 * Marks a method as a handler of events of exactly `type`.
 *
 * - On a **static** method, it registers the method on
 *   {@linkcode defaultBus} when the class is defined.
 * - On an **instance** method, it records the method in the class's
 *   decorator metadata; `bus.subscribe(instance)` registers it, bound to the
 *   instance. Subclasses inherit their parents' handlers.
 *
 * A method may carry several `@On`, one per event type.
 *
 * @typeParam E The event type.
 * @param type The event class.
 * @returns A standard (TC39) method decorator.
 * @throws {TypeError} When `type` is not a class (at the `On(…)` call), or
 * when the decorator is put on something other than a method (when the class
 * is defined).
 *
 * @example Static and instance handlers
 * ```ts
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
 * console.log(Audit.seen, welcome.sent); // ["u1"] ["u1"]
 * ```
 */
export function On<E extends object>(type: EventClass<E>): OnDecorator<E> {
  if (!isConstructor(type)) {
    throw new TypeError(
      `Cannot create @On decorator: expected an event class, received ${
        describe(type)
      }; pass the class itself, for example @On(UserRegistered)`,
    );
  }
  const eventName = typeName(type);
  return function onDecorator(method, context): void {
    if (
      context === null || typeof context !== "object" ||
      typeof (context as { kind?: unknown }).kind !== "string"
    ) {
      throw new TypeError(
        `@On(${eventName}) was called as a legacy decorator: aftercommit uses standard TC39 decorators; remove "experimentalDecorators" from your compiler options`,
      );
    }
    const kind = (context as { kind: string }).kind;
    const declared = (context as { name?: unknown }).name;
    if (kind !== "method") {
      const what = kind === "class"
        ? `class ${String(declared)}`
        : `${kind} ${String(declared)}`;
      throw new TypeError(
        `@On(${eventName}) cannot decorate ${what}: it applies to methods only; put it on a method that takes a ${eventName}`,
      );
    }
    if (typeof method !== "function") {
      throw new TypeError(
        `@On(${eventName}) cannot decorate ${
          String(declared)
        }: expected a method, received ${describe(method)}`,
      );
    }
    const name = context.name;
    addHandlerRecord(context.metadata, {
      type,
      name: context.name,
      isStatic: context.static,
      isPrivate: context.private,
      // Public methods are looked up on the target, so an override in a
      // subclass runs in place of the decorated method (virtual dispatch).
      get: context.private
        ? (target) => context.access.get(target as never)
        : (target) => (target as Record<string | symbol, unknown>)[name],
    });
    if (context.static) {
      context.addInitializer(function (this: unknown): void {
        const klass = this as object;
        registerMethod(
          defaultBus,
          type,
          method as unknown as (event: object) => unknown,
          klass,
          `${typeName(klass)}.${String(context.name)}`,
        );
      });
    }
  };
}
