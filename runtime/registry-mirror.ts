// The registry mirror: the OCI distribution pull API in front of an upstream registry, so containerd,
// Docker, CRI-O or skopeo pull through the local daemon. Only blob GETs go peer to peer; `/v2/`,
// manifests (by tag or digest), blob HEADs and anything else pass through to the upstream with the
// client's headers, so the upstream's answers — 401 with its WWW-Authenticate challenge, 404, redirects
// to a token service — reach the client as the upstream gave them.
//
// A blob GET: HEAD the blob upstream with the client's own headers (the upstream decides access, and
// says the size); a redirect to storage → the storage URL is the origin (without the credentials);
// anything else but 200 → pass the GET through. Then the bytes come from the BlobSource
// (task id = digest, content verified against it); if that fails for any reason before the first byte,
// the GET goes to the upstream. A pull never fails because of Damselfly.
import type * as http from "node:http"
import type { BlobSource, ByteSpan } from "./registry-blob-source.ts"
import { endToEndHeaders, headUpstream, passThrough, requestUpstream, upstreamUnreachable } from "./proxy-pass.ts"
import { chooseUpstream, REGISTRY_HEADER, routeOf, SHA256_DIGEST, UpstreamChoiceError, upstreamUrlOf } from "./registry-upstream.ts"

export type MirrorLog = (level: "info" | "warning", message: string, fields: Record<string, unknown>) => void

/**
 * Called when a blob request carries Authorization and the upstream's HEAD with it succeeded: the
 * requester has proved access to this blob. The seam for private-blob capabilities (runtime/blob-access.ts).
 */
export type AuthorizedBlobHook = (proof: { readonly digest: string; readonly url: string; readonly authorization: string }) => Promise<void> | void

export interface BlobServing {
  readonly blobs: BlobSource
  readonly log: MirrorLog
  readonly onAuthorizedBlob?: AuthorizedBlobHook | undefined
}

export interface MirrorOptions extends BlobServing {
  /** Configured upstreams; the first is the default, the others give `?ns=` hosts their scheme. */
  readonly upstreams: ReadonlyArray<URL>
}

/** Marks replies whose body came through Damselfly's P2P path (tests and operators can tell). */
export const SOURCE_HEADER = "x-damselfly-source"
const AGENT = "damselfly-mirror/0.1"

/** The one satisfiable span of a `Range: bytes=…` header; undefined for none, "unsupported" for anything else. */
export const spanOf = (range: string | undefined, size: number): ByteSpan | undefined | "unsupported" => {
  if (range === undefined) return undefined
  const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim())
  if (m === null || (m[1] === "" && m[2] === "")) return "unsupported"
  if (m[1] === "") {
    const n = Number(m[2])
    return n === 0 || size === 0 ? "unsupported" : { start: Math.max(0, size - n), end: size - 1 }
  }
  const start = Number(m[1])
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1)
  return start > end || start >= size ? "unsupported" : { start, end }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308])

/**
 * Size of a blob in redirect storage: HEAD, or — as signed URLs are often valid for GET only — the
 * total of a one-byte ranged GET. Returns headers with `content-length` set to the whole size.
 */
const storageHead = async (url: URL): Promise<http.IncomingHttpHeaders> => {
  const head = await headUpstream(url, { "user-agent": AGENT })
  if (head.status === 200 && head.headers["content-length"] !== undefined) return head.headers
  const probe = await requestUpstream(url, { method: "GET", headers: { "user-agent": AGENT, range: "bytes=0-0" } })
  probe.body.resume()
  const total = /\/(\d+)\s*$/.exec(String(probe.headers["content-range"] ?? ""))
  if (probe.status !== 206 || total === null) throw new Error(`${url.host} answered HEAD ${head.status} and a one-byte GET ${probe.status} without a size`)
  return { ...probe.headers, "content-length": total[1] }
}

const registryError = (res: http.ServerResponse, status: number, code: string, message: string) =>
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify({ errors: [{ code, message }] }))

/**
 * Serves one blob GET peer to peer, falling back to the upstream. `url` is the blob's upstream URL;
 * `digest` names the content when known (registry blobs), else the task is named by the URL.
 */
export const serveBlob = async (
  o: BlobServing,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  url: URL,
  digest: string | undefined
): Promise<void> => {
  const fallback = (reason: string) => {
    o.log("warning", "blob served by the upstream directly", { url: url.href, reason })
    return passThrough(req, res, url, [REGISTRY_HEADER])
  }
  let head: { status: number; headers: http.IncomingHttpHeaders }
  try {
    head = await headUpstream(url, endToEndHeaders(req.headers, ["host", REGISTRY_HEADER, "range", "if-range", "accept-encoding"]))
  } catch (e) {
    return upstreamUnreachable(res, url, e)
  }
  // The blob lives in storage the registry redirects to (S3, a CDN): fetch it there, without the registry's
  // credentials (the signed URL is the authorisation), and take its size from there.
  let origin = url
  let sizeHeaders = head.headers
  const location = head.headers.location
  if (REDIRECTS.has(head.status) && location !== undefined) {
    try {
      origin = new URL(location, url)
      sizeHeaders = await storageHead(origin)
    } catch (e) {
      return fallback(`redirect to storage: ${e instanceof Error ? e.message : String(e)}`)
    }
  } else if (head.status !== 200) {
    // Not ours to interpret (401 challenge, 403, 404): the client gets the upstream's own answer.
    return passThrough(req, res, url, [REGISTRY_HEADER])
  }
  const size = Number(sizeHeaders["content-length"])
  if (sizeHeaders["content-length"] === undefined || !Number.isSafeInteger(size) || size < 0) return fallback("upstream HEAD gave no content length")
  const announced = head.headers["docker-content-digest"]
  if (digest !== undefined && announced !== undefined && announced !== digest) return fallback(`upstream says the blob is ${String(announced)}`)
  const authorization = req.headers.authorization
  if (authorization !== undefined && digest !== undefined && o.onAuthorizedBlob !== undefined) {
    try {
      await o.onAuthorizedBlob({ digest, url: url.href, authorization })
    } catch (e) {
      o.log("warning", "authorized-blob hook failed", { url: url.href, error: String(e) })
    }
  }
  const span = spanOf(req.headers.range, size)
  if (span === "unsupported") return fallback(`range ${String(req.headers.range)} not served from P2P`)
  const headers: Record<string, string> = { "user-agent": AGENT }
  if (authorization !== undefined && origin === url) headers.authorization = authorization
  let opened
  try {
    opened = await o.blobs.open({ url: origin.href, headers, digest, size }, span)
  } catch (e) {
    return fallback(`P2P: ${e instanceof Error ? e.message : String(e)}`)
  }
  if (req.destroyed) return void opened.stream.destroy()
  const length = span === undefined ? opened.size : span.end - span.start + 1
  res.writeHead(span === undefined ? 200 : 206, {
    "content-type": origin === url ? String(head.headers["content-type"] ?? "application/octet-stream") : "application/octet-stream",
    "content-length": String(length),
    "accept-ranges": "bytes",
    ...(digest === undefined ? {} : { "docker-content-digest": digest, etag: `"${digest}"` }),
    ...(span === undefined ? {} : { "content-range": `bytes ${span.start}-${span.end}/${opened.size}` }),
    [SOURCE_HEADER]: "p2p"
  })
  opened.stream.pipe(res)
  opened.stream.on("error", () => res.destroy())
  res.on("close", () => opened.stream.destroy())
}

/** The request handler for the mirror's port. */
export const mirrorHandler = (o: MirrorOptions) => (req: http.IncomingMessage, res: http.ServerResponse): void => {
  void (async () => {
    let requestUrl: URL
    try {
      requestUrl = new URL(req.url ?? "/", "http://mirror.invalid")
    } catch {
      return registryError(res, 400, "UNSUPPORTED", "request target: expected an origin-form path such as /v2/")
    }
    if (!requestUrl.pathname.startsWith("/v2")) return registryError(res, 404, "NOT_FOUND", `${requestUrl.pathname}: this is a registry mirror; only /v2/ paths are served`)
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD")
      return registryError(res, 405, "UNSUPPORTED", `${req.method}: the mirror serves pulls only (GET, HEAD)`)
    }
    let upstream: URL
    try {
      upstream = chooseUpstream(req.headers[REGISTRY_HEADER], requestUrl.searchParams.get("ns"), o.upstreams)
    } catch (e) {
      if (e instanceof UpstreamChoiceError) return registryError(res, 400, "UNSUPPORTED", e.message)
      throw e
    }
    const target = upstreamUrlOf(upstream, requestUrl.pathname, requestUrl.searchParams)
    const route = routeOf(requestUrl.pathname)
    if (route.kind === "blob" && req.method === "GET" && SHA256_DIGEST.test(route.digest)) {
      return serveBlob(o, req, res, target, route.digest)
    }
    return passThrough(req, res, target, [REGISTRY_HEADER])
  })().catch((e) => {
    o.log("warning", "mirror request failed", { url: req.url, error: String(e) })
    if (!res.headersSent) registryError(res, 500, "UNKNOWN", String(e))
    else res.destroy()
  })
}
