// A unit of work without a database, for unit tests of what the base class
// does around a run: its transaction just runs the body, and the context is
// the base class's own.
import { UnitOfWork, type UnitOfWorkContext } from "../../mod.ts";

/** A unit of work whose transaction runs the body, with no database. */
export class NoTransaction extends UnitOfWork<null, UnitOfWorkContext> {
  protected override transaction<T>(body: (h: null) => Promise<T>): Promise<T> {
    return body(null);
  }
  protected override createContext(
    _handle: null,
    context: UnitOfWorkContext,
  ): UnitOfWorkContext {
    return context;
  }
}
