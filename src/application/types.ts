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
 * The second argument of every handler: what the publisher passes along with
 * the event.
 */
export interface HandlerContext {
  /**
   * Aborts when the publisher gives up on this dispatch (for example the
   * outbox relay's deadline). Pass it on to `fetch`, database queries and
   * timers so the work stops too. Without a `signal` in the publish options
   * it is a shared signal that never aborts: remove any listener you add.
   */
  readonly signal: AbortSignal;
}

/**
 * A function that handles one event. It may be synchronous or return a promise;
 * the bus awaits it either way before running the next handler.
 *
 * @typeParam E The type of the event handled.
 */
export type EventHandler<E extends object = object> = (
  event: E,
  context: HandlerContext,
) => unknown;

/** What the bus knows about one registered handler, as listed by `handlersFor`. */
export interface HandlerInfo {
  /** The name used in logs and errors: `Class.method`, or the function's name. */
  readonly name: string;
  /** The function as registered (unbound). */
  readonly handler: (...args: never[]) => unknown;
  /** The instance or class the handler runs on, or `undefined` for a plain function. */
  readonly target: object | undefined;
  /**
   * The class the handler was registered for, or `undefined` for a
   * catch-all (`onAny`, `@OnAny`).
   */
  readonly eventType: EventClass | undefined;
  /** Whether the handler also receives instances of subclasses of `eventType`. */
  readonly subclasses: boolean;
  /** Its `order`: lower runs first. */
  readonly order: number;
}
