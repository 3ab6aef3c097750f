// A small HTTP(S) client for registry API calls (manifests, token endpoints, blob HEADs): follows
// redirects (token services and blob stores redirect), caps bodies (manifests are small), and never
// forwards an Authorization header to another host than the one it was meant for.
import * as http from "node:http"
import * as https from "node:https"
import { Effect } from "effect"

export interface RegistryRequest {
  readonly method?: "GET" | "HEAD"
  readonly url: string
  readonly headers?: Readonly<Record<string, string>>
}

export interface RegistryReply {
  readonly status: number
  readonly url: string
  readonly headers: http.IncomingHttpHeaders
  readonly body: Buffer
}

export class RegistryFetchError extends Error {
  readonly _tag = "RegistryFetchError"
}

export type RegistryFetch = (request: RegistryRequest) => Effect.Effect<RegistryReply, RegistryFetchError>

const MAX_BODY = 4 * 1024 * 1024
const MAX_REDIRECTS = 5
const TIMEOUT_MILLIS = 30_000

const once = (method: string, url: string, headers: Record<string, string>, signal: AbortSignal): Promise<RegistryReply> =>
  new Promise((resolve, reject) => {
    const client = url.startsWith("https:") ? https : http
    const req = client.request(url, { method, headers, signal, timeout: TIMEOUT_MILLIS }, (res) => {
      const chunks: Array<Buffer> = []
      let size = 0
      res.on("data", (c: Buffer) => {
        size += c.length
        if (size > MAX_BODY) {
          res.destroy()
          reject(new RegistryFetchError(`${method} ${url}: body larger than ${MAX_BODY} bytes`))
          return
        }
        chunks.push(c)
      })
      res.on("error", (e) => reject(new RegistryFetchError(`${method} ${url}: ${e.message}`)))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, url, headers: res.headers, body: Buffer.concat(chunks) }))
    })
    req.on("timeout", () => req.destroy(new Error(`no answer within ${TIMEOUT_MILLIS} ms`)))
    req.on("error", (e: NodeJS.ErrnoException) => reject(new RegistryFetchError(`${method} ${url}: ${e.code ?? e.message}`)))
    req.end()
  })

/** Why a URL may not be fetched (runtime/origin-allowlist.ts), checked before every hop; undefined: it may. */
export type UrlRefusal = (url: string) => string | undefined

const fetchFollowing = async (request: RegistryRequest, signal: AbortSignal, refuse?: UrlRefusal): Promise<RegistryReply> => {
  const method = request.method ?? "GET"
  let url = request.url
  let headers: Record<string, string> = { ...request.headers }
  const origin = new URL(url).host
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const refused = refuse?.(url)
    if (refused !== undefined) throw new RegistryFetchError(`${method} ${url}: ${refused}`)
    const reply = await once(method, url, headers, signal)
    const location = reply.headers.location
    if (reply.status < 300 || reply.status >= 400 || reply.status === 304 || location === undefined) return reply
    url = new URL(location, url).toString()
    // Credentials are for the registry; a redirect to a blob store carries its own signature.
    if (new URL(url).host !== origin) {
      const { authorization: _dropped, ...rest } = headers
      headers = rest
    }
  }
  throw new RegistryFetchError(`${method} ${request.url}: more than ${MAX_REDIRECTS} redirects`)
}

/** nodeRegistryFetch that refuses, before it is sent, any request or redirect `refuse` names. */
export const nodeRegistryFetchRefusing = (refuse: UrlRefusal): RegistryFetch => (request) =>
  Effect.tryPromise({
    try: (signal) => fetchFollowing(request, signal, refuse),
    catch: (e) => e instanceof RegistryFetchError ? e : new RegistryFetchError(`${request.method ?? "GET"} ${request.url}: ${String(e)}`)
  })

export const nodeRegistryFetch: RegistryFetch = (request) =>
  Effect.tryPromise({
    try: (signal) => fetchFollowing(request, signal),
    catch: (e) => e instanceof RegistryFetchError ? e : new RegistryFetchError(`${request.method ?? "GET"} ${request.url}: ${String(e)}`)
  })
