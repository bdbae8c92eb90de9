// A cheap "is debug on?" for hot paths: `logger.isEnabledFor` walks the
// logger tree each call, but the answer changes only with a new global config
// (unless `contextLocalStorage` allows per-context ones: then ask each time).
import { getConfig, type Logger } from "@logtape/logtape";

/** Answers `logger.isEnabledFor("debug")`, cached per global configuration. */
export class DebugGate {
  #config: unknown = undefined;
  #enabled = false;

  constructor(readonly logger: Logger) {}

  get enabled(): boolean {
    const config = getConfig();
    if (config?.contextLocalStorage !== undefined) {
      return this.logger.isEnabledFor("debug");
    }
    if (config !== this.#config) {
      this.#config = config;
      this.#enabled = this.logger.isEnabledFor("debug");
    }
    return this.#enabled;
  }
}
