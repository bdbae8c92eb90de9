// The order in which events were recorded, across aggregates, so that a Unit
// of Work publishes the events of several aggregates (and its explicit ones)
// in the order they happened. A WeakMap keeps it off the event objects.

const order = new WeakMap<object, number>();
let last = 0;

/** Gives `event` the next number, unless it already has one. */
export function stampRecordOrder(event: object): void {
  if (!order.has(event)) order.set(event, ++last);
}

/** The number `event` was given, or `Infinity` when it has none. */
export function recordOrderOf(event: object): number {
  return order.get(event) ?? Infinity;
}
