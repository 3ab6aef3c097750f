// Passing one client request through to an upstream unchanged, streaming both ways: what the registry
// mirror does for manifests, tags, token flows and every fallback, and what the HTTP proxy does for
// URLs that do not go peer to peer. Hop-by-hop headers stay on their hop (RFC 9110 §7.6.1).
import * as http from "node:http"
import * as https from "node:https"

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade"
])

// Upstream connections are reused across clients; a registry pull is many small requests.
const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 256 })
const httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 256 })

/** The headers a request or reply may carry to the next hop: hop-by-hop ones and those `Connection` names removed. */
export const endToEndHeaders = (headers: http.IncomingHttpHeaders | http.OutgoingHttpHeaders, drop: ReadonlyArray<string> = []): http.OutgoingHttpHeaders => {
  const named = String(headers["connection"] ?? "").toLowerCase().split(",").map((s) => s.trim()).filter((s) => s !== "")
  const out: http.OutgoingHttpHeaders = {}
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase()
    if (value === undefined || HOP_BY_HOP.has(lower) || named.includes(lower) || drop.includes(lower)) continue
    out[lower] = value
  }
  return out
}

export interface UpstreamReply {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: http.IncomingMessage
}

/** Sends one request upstream and resolves with the reply's head (the body is left to the caller). */
export const requestUpstream = (
  url: URL,
  o: { readonly method: string; readonly headers: http.OutgoingHttpHeaders; readonly body?: NodeJS.ReadableStream; readonly timeoutMillis?: number }
): Promise<UpstreamReply> =>
  new Promise((resolve, reject) => {
    const secure = url.protocol === "https:"
    if (!secure && url.protocol !== "http:") return reject(new Error(`upstream ${url.href}: only http and https are supported`))
    const headers = { ...o.headers, host: url.host }
    const req = (secure ? https : http).request(url, { method: o.method, headers, agent: secure ? httpsAgent : httpAgent })
    req.setTimeout(o.timeoutMillis ?? 60_000, () => req.destroy(new Error(`upstream ${url.host}: no answer within ${o.timeoutMillis ?? 60_000} ms`)))
    req.on("error", reject)
    req.on("response", (res) => {
      req.setTimeout(0)
      resolve({ status: res.statusCode ?? 502, headers: res.headers, body: res })
    })
    if (o.body === undefined) req.end()
    else o.body.pipe(req)
  })

/** HEAD (or any bodiless request) upstream: status and headers only. */
export const headUpstream = async (url: URL, headers: http.OutgoingHttpHeaders): Promise<{ status: number; headers: http.IncomingHttpHeaders }> => {
  const reply = await requestUpstream(url, { method: "HEAD", headers })
  reply.body.resume()
  return { status: reply.status, headers: reply.headers }
}

/** Writes an upstream reply to the client as it arrives. */
export const relayReply = (reply: UpstreamReply, res: http.ServerResponse) => {
  res.writeHead(reply.status, endToEndHeaders(reply.headers))
  reply.body.pipe(res)
  reply.body.on("error", () => res.destroy())
  res.on("close", () => reply.body.destroy())
}

/** The whole passthrough: the client's request to `url` (method, end-to-end headers, body), the reply back. */
export const passThrough = async (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  url: URL,
  dropHeaders: ReadonlyArray<string> = []
): Promise<void> => {
  try {
    const hasBody = req.method !== "GET" && req.method !== "HEAD"
    const reply = await requestUpstream(url, {
      method: req.method ?? "GET",
      headers: endToEndHeaders(req.headers, ["host", ...dropHeaders]),
      ...(hasBody ? { body: req } : {})
    })
    relayReply(reply, res)
  } catch (e) {
    upstreamUnreachable(res, url, e)
  }
}

/** The upstream could not be reached: a 502 naming it (the only error of the mirror's own making). */
export const upstreamUnreachable = (res: http.ServerResponse, url: URL, e: unknown) => {
  if (res.headersSent) return void res.destroy()
  const message = `upstream ${url.host} unreachable: ${e instanceof Error ? e.message : String(e)}`
  res.writeHead(502, { "content-type": "application/json" }).end(JSON.stringify({ errors: [{ code: "UNAVAILABLE", message }] }))
}
