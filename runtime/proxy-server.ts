// The generic HTTP proxy (`--proxy-port`): clients that set HTTP_PROXY send absolute-URI requests;
// GETs whose URL matches one of the rules go peer to peer (registry blobs by default, named by their
// digest), everything else passes through. CONNECT opens a plain TCP tunnel, so HTTPS works through
// the proxy, untouched (and not P2P: the proxy cannot see inside TLS).
import type * as http from "node:http"
import * as net from "node:net"
import type { Duplex } from "node:stream"
import { passThrough } from "./proxy-pass.ts"
import { type BlobServing, serveBlob } from "./registry-mirror.ts"

/** Dragonfly's default rule: registry blobs go P2P. */
export const DEFAULT_PROXY_RULES = ["blobs/sha256.*"]

export interface ProxyOptions extends BlobServing {
  /** Regular expressions tested against the full URL of each GET. */
  readonly rules: ReadonlyArray<RegExp>
}

export const parseProxyRules = (raw: ReadonlyArray<string>): ReadonlyArray<RegExp> =>
  (raw.length === 0 ? DEFAULT_PROXY_RULES : raw).map((r) => {
    try {
      return new RegExp(r)
    } catch (e) {
      throw new Error(`--proxy-rule: expected a regular expression, got ${JSON.stringify(r)} (${e instanceof Error ? e.message : String(e)})`)
    }
  })

const BLOB_DIGEST = /\/blobs\/(sha256:[0-9a-f]{64})(?:$|\?)/

const badRequest = (res: http.ServerResponse, message: string) =>
  res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ error: message }))

export const proxyHandler = (o: ProxyOptions) => (req: http.IncomingMessage, res: http.ServerResponse): void => {
  void (async () => {
    let url: URL
    try {
      url = new URL(req.url ?? "")
    } catch {
      return badRequest(res, `request target: a proxy expects an absolute http URL (absolute-form), got ${JSON.stringify(req.url)}`)
    }
    if (url.protocol !== "http:") return badRequest(res, `request target: only http URLs are proxied (use CONNECT for https), got ${url.protocol}`)
    if (req.method === "GET" && o.rules.some((r) => r.test(url.href))) {
      return serveBlob(o, req, res, url, BLOB_DIGEST.exec(url.pathname + url.search)?.[1])
    }
    return passThrough(req, res, url)
  })().catch((e) => {
    o.log("warning", "proxy request failed", { url: req.url, error: String(e) })
    if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ error: String(e) }))
    else res.destroy()
  })
}

/** CONNECT host:port → a TCP tunnel. */
export const connectHandler = (req: http.IncomingMessage, client: Duplex, head: Buffer): void => {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(req.url ?? "")
  if (m === null) {
    client.end("HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\n\r\nCONNECT target: expected host:port\n")
    return
  }
  const upstream = net.connect(Number(m[2]), m[1].replace(/^\[|\]$/g, ""))
  let connected = false
  upstream.once("connect", () => {
    connected = true
    client.write("HTTP/1.1 200 Connection Established\r\n\r\n")
    if (head.length > 0) upstream.write(head)
    upstream.pipe(client)
    client.pipe(upstream)
  })
  upstream.on("error", (e) => {
    if (!connected && client.writable) client.end(`HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\n\r\n${req.url}: ${e.message}\n`)
    else client.destroy()
  })
  client.on("error", () => upstream.destroy())
  client.on("close", () => upstream.destroy())
}
