// node:url's fileURLToPath, kept here so tests need no JSR package.
import { fileURLToPath } from "node:url";

/** Converts a file URL to a path. */
export function fromFileUrl(url: URL): string {
  return fileURLToPath(url);
}
