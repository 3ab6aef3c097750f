// The one place servers are created, so every process gets the same resource limits: a cap on open
// connections (beyond it Node closes new sockets at once, so a flood cannot exhaust file descriptors),
// Node's header size limit (a larger header block gets 431 before any handler runs), and timeouts
// that drop slow-loris clients. Request bodies are capped where they are read (http-json.ts).
import { createServer } from "node:http"
import { NodeHttpServer } from "@effect/platform-node"

export interface ListenOptions {
  readonly port: number
  readonly listen: string
  /** Open connections at most; undefined for the default. */
  readonly maxConnections?: number | undefined
}

export const DEFAULT_MAX_CONNECTIONS = 4096
/** Node's default, stated so tests and docs can rely on it. */
export const MAX_HEADER_BYTES = 16 * 1024
/** Headers must arrive within this; long-polls (20 s) are answered well inside requestTimeout. */
const HEADERS_TIMEOUT_MILLIS = 30_000
const REQUEST_TIMEOUT_MILLIS = 300_000

export const makeServer = (maxConnections: number | undefined) => () => {
  const server = createServer({
    maxHeaderSize: MAX_HEADER_BYTES,
    headersTimeout: HEADERS_TIMEOUT_MILLIS,
    requestTimeout: REQUEST_TIMEOUT_MILLIS
  })
  server.maxConnections = maxConnections ?? DEFAULT_MAX_CONNECTIONS
  // The server listens before the routes are built (a daemon reloads its store and asks the schedulers for
  // their strategy first), and Node drops a request nobody listens for without an answer: the client then
  // hangs (a probe for up to its own timeout). Until a handler is attached, say so and let it retry.
  server.on("request", (_req, res) => {
    if (server.listenerCount("request") > 1) return
    res.writeHead(503, { "content-type": "application/json", "retry-after": "1", connection: "close" })
    res.end(JSON.stringify({ error: "starting: not serving yet, retry shortly" }))
  })
  return server
}

export const listenLayer = (o: ListenOptions) =>
  NodeHttpServer.layer(makeServer(o.maxConnections), { port: o.port, host: o.listen })
