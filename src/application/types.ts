/**
 * Types shared by the bus, the decorators and the Unit of Work.
 *
 * @module
 */

/**
 * A class whose instances are events. Any class works, abstract or not; events
 * need not extend {@linkcode DomainEvent}.
 *
 * @typeParam E The type of the events the class creates.
 */
export type EventClass<E extends object = object> = abstract new (
  // deno-lint-ignore no-explicit-any
  ...args: any[]
) => E;

/**
 * A function that handles one event. It may be synchronous or return a promise;
 * the bus awaits it either way before running the next handler.
 *
 * @typeParam E The type of the event handled.
 */
export type EventHandler<E extends object = object> = (event: E) => unknown;

/** What the bus knows about one registered handler, as listed by `handlersFor`. */
export interface HandlerInfo {
  /** The name used in logs and errors: `Class.method`, or the function's name. */
  readonly name: string;
  /** The function as registered (unbound). */
  readonly handler: (...args: never[]) => unknown;
  /** The instance or class the handler runs on, or `undefined` for a plain function. */
  readonly target: object | undefined;
}
