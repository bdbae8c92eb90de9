// A cheap "is debug on?" for hot paths. `logger.isEnabledFor` walks the
// logger tree on every call (about 25 ns here, a third of publishing to one
// handler); the answer only changes when LogTape is configured again, which
// replaces the global config object. With `contextLocalStorage` configured,
// scoped configurations (`withConfig`) can change the answer per async
// context, so then every call asks LogTape.
import { getConfig, type Logger } from "@logtape/logtape";

/** Answers `logger.isEnabledFor("debug")`, cached per global configuration. */
export class DebugGate {
  readonly #logger: Logger;
  #config: unknown = undefined;
  #enabled = false;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  get enabled(): boolean {
    const config = getConfig();
    if (config !== null && config.contextLocalStorage !== undefined) {
      return this.#logger.isEnabledFor("debug");
    }
    if (config !== this.#config) {
      this.#config = config;
      this.#enabled = this.#logger.isEnabledFor("debug");
    }
    return this.#enabled;
  }
}
