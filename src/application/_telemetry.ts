// Moved to src/internal/telemetry.ts, where adapters may import it too.
// This re-export keeps the imports of files not yet switched working;
// delete it once nothing imports it.
export * from "../internal/telemetry.ts";
