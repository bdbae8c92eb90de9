// The checks of the options that @On, @OnAny, register() and onAny() share,
// in one place so every entry point words them the same way.
import { describe, isConstructor } from "../internal/describe.ts";

/** `order` and `subclasses` after checking, with their defaults. */
export interface CheckedOptions {
  readonly order: number;
  readonly subclasses: boolean;
}

const DEFAULTS: CheckedOptions = Object.freeze({ order: 0, subclasses: false });

/**
 * Checks `options.order` (a finite number) and `options.subclasses` (a
 * boolean, and only for a class; a catch-all takes no `subclasses`). `action` starts the message: "Cannot register handler
 * for X".
 */
export function checkHandlerOptions(
  options: { readonly order?: unknown; readonly subclasses?: unknown },
  type: unknown,
  action: string,
  catchAll = false,
): CheckedOptions {
  if (options === null || typeof options !== "object") {
    throw new TypeError(
      `${action}: expected an options object, received ${
        describe(options)
      }; pass { order, subclasses } or leave it out`,
    );
  }
  const { order = 0, subclasses = false } = options;
  if (typeof order !== "number") {
    throw new TypeError(
      `${action}: order must be a finite number, received ${
        describe(order)
      }; pass a number such as -10 or 10 (lower runs first, 0 by default)`,
    );
  }
  if (!Number.isFinite(order)) {
    throw new RangeError(
      `${action}: order must be a finite number, received ${order}; pass a number such as -10 or 10 (lower runs first, 0 by default)`,
    );
  }
  if (catchAll && options.subclasses !== undefined) {
    throw new TypeError(
      `${action}: the subclasses option does not apply to a catch-all, which receives every event; remove it`,
    );
  }
  if (typeof subclasses !== "boolean") {
    throw new TypeError(
      `${action}: subclasses must be true or false, received ${
        describe(subclasses)
      }`,
    );
  }
  if (subclasses && !isConstructor(type)) {
    throw new TypeError(
      `${action}: subclasses: true needs a base class, received ${
        describe(type)
      }; pass the base class itself (for example DomainEvent), or use onAny() to receive every event`,
    );
  }
  return order === 0 && !subclasses ? DEFAULTS : { order, subclasses };
}
