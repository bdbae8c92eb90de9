/** A class whose instances are events: any class, abstract or not. */
export type EventClass<E extends object = object> = abstract new (
  // deno-lint-ignore no-explicit-any
  ...args: any[]
) => E;

/** What the publisher passes to every handler along with the event. */
export interface HandlerContext {
  /**
   * Aborts when the publisher gives up (the outbox relay's deadline, say):
   * pass it on to I/O. Without a publish `signal` it is shared and never
   * aborts, so remove any listener you add.
   */
  readonly signal: AbortSignal;
}

/** Handles one event; the bus awaits it before the next handler runs. */
export type EventHandler<E extends object = object> = (
  event: E,
  context: HandlerContext,
) => unknown;

/** A registered handler, as `handlersFor` lists it. */
export interface HandlerInfo {
  /** The name in logs and errors: `Class.method`, or the function's name. */
  readonly name: string;
  /** The function as registered (unbound). */
  readonly handler: (...args: never[]) => unknown;
  /** The instance or class it runs on; `undefined` for a plain function. */
  readonly target: object | undefined;
  /** The class it was registered for; `undefined` for a catch-all. */
  readonly eventType: EventClass | undefined;
  /** Whether it also receives instances of subclasses of `eventType`. */
  readonly subclasses: boolean;
  /** Lower runs first. */
  readonly order: number;
}
