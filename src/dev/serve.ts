// Serves a fetch-style handler over node:http. Deno.serve cannot close a
// connection whose request body has not fully arrived (it waits for the rest
// of the body however long that takes), so a client that never sends its
// body would hold the connection for ever; node:http lets the server drop
// the socket once the answer is sent.
import {
  createServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import { Readable } from "node:stream";
import type { AddressInfo, Socket } from "node:net";

/** A running server. */
export interface NodeServer {
  /** The port it listens on. */
  readonly port: number;
  /**
   * Stops accepting connections and waits for the running requests (at
   * most 5 s, then closes every connection).
   */
  shutdown(): Promise<void>;
}

/** Options of {@linkcode serve}. */
export interface ServeOptions {
  readonly hostname: string;
  readonly port: number;
  /**
   * How long a connection may go without a complete request head (a new
   * connection, or an idle one between requests) before it is closed.
   * node:http's own headersTimeout is not enforced under Deno.
   */
  readonly headersTimeoutMs?: number;
}

function toRequest(
  req: IncomingMessage,
  hostname: string,
  signal: AbortSignal,
): Request {
  const headers = new Headers();
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  }
  const method = req.method ?? "GET";
  const hasBody = method !== "GET" && method !== "HEAD";
  const host = headers.get("host") ?? hostname;
  return new Request(new URL(req.url ?? "/", `http://${host}`), {
    method,
    headers,
    body: hasBody
      ? Readable.toWeb(req) as unknown as ReadableStream<Uint8Array>
      : null,
    signal,
    // @ts-ignore: a streaming request body needs duplex: "half".
    duplex: "half",
  });
}

async function send(response: Response, res: ServerResponse): Promise<void> {
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    headers[name] = value;
  });
  const close = headers.connection === "close";
  const done = () => {
    // The rest of the request body is not wanted: drop the connection
    // instead of waiting for it.
    if (close) res.socket?.destroy();
  };
  if (response.body === null) {
    res.writeHead(response.status, headers);
    res.end(done);
    return;
  }
  if (headers["content-type"]?.startsWith("text/event-stream")) {
    // A stream that does not end: send each chunk as it comes.
    res.writeHead(response.status, headers);
    for await (const chunk of response.body) {
      if (res.destroyed) break;
      if (!res.write(chunk)) {
        await new Promise((resolve) => res.once("drain", resolve));
      }
    }
    res.end(done);
    return;
  }
  const body = new Uint8Array(await response.arrayBuffer());
  headers["content-length"] = String(body.length);
  res.writeHead(response.status, headers);
  res.end(body, done);
}

/**
 * Listens on `options.hostname:options.port` and answers every request with
 * `handler`.
 *
 * @returns The server, once it listens.
 */
export function serve(
  options: ServeOptions,
  handler: (request: Request) => Promise<Response>,
): Promise<NodeServer> {
  const server = createServer((req, res) => {
    // Aborted when the client goes away before the answer is sent.
    const aborted = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) aborted.abort();
    });
    let request: Request;
    try {
      request = toRequest(req, options.hostname, aborted.signal);
    } catch {
      res.writeHead(400, {
        "content-type": "application/json; charset=utf-8",
        connection: "close",
      });
      res.end(
        '{"error":"the request line or headers are malformed"}',
        () => res.socket?.destroy(),
      );
      return;
    }
    handler(request).then((response) => send(response, res)).catch(() => {
      res.socket?.destroy();
    });
  });
  // A connection that sends no complete request head in time is closed:
  // the timer runs while the connection waits for one, not during requests.
  const headersMs = options.headersTimeoutMs ?? 10_000;
  const idle = new WeakMap<object, ReturnType<typeof setTimeout>>();
  const wait = (socket: Socket) =>
    idle.set(socket, setTimeout(() => socket.destroy(), headersMs));
  server.on("connection", (socket: Socket) => {
    wait(socket);
    socket.once("close", () => clearTimeout(idle.get(socket)));
  });
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    clearTimeout(idle.get(socket));
    res.once("finish", () => {
      if (!socket.destroyed) wait(socket);
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.hostname, () => {
      server.off("error", reject);
      resolve({
        port: (server.address() as AddressInfo).port,
        shutdown: () =>
          new Promise<void>((done) => {
            // Requests under way get 5 s to finish; then every connection
            // is closed (a stream that never ends would hold the stop).
            const timer = setTimeout(() => server.closeAllConnections(), 5000);
            server.close(() => {
              clearTimeout(timer);
              done();
            });
            server.closeIdleConnections();
          }),
      });
    });
  });
}
