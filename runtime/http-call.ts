// One small HTTP client over node:http for every runtime service. Plain node:http because the undici
// client crashes on Node 20, and because piece bodies must stay Buffers end to end (no per-byte work,
// no base64): chunks are collected and concatenated once.
import * as http from "node:http"
import * as https from "node:https"
import { Effect, Schema } from "effect"

export class HttpCallError extends Schema.TaggedError<HttpCallError>()("HttpCallError", {
  message: Schema.String,
  /** The peer could not be reached at all (refused, reset, DNS): callers may fall back. */
  unreachable: Schema.Boolean,
  timedOut: Schema.Boolean
}) {}

export interface HttpReply {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: Buffer
}

export interface CallOptions {
  readonly method?: string
  readonly headers?: Readonly<Record<string, string>>
  readonly body?: string | Uint8Array
  /** Whole-exchange timeout; long-polls pass their own cap plus slack. */
  readonly timeoutMillis?: number
  /** Give up when the socket is silent this long (a stalled peer), however long the exchange may take. */
  readonly idleTimeoutMillis?: number
  /**
   * Receive-side rate limit (runtime/bandwidth.ts's `readPacer`): called with each chunk's size as it is
   * read, answers how many ms to pause reading; TCP then holds the sender back.
   */
  readonly pace?: ((bytes: number) => number) | undefined
  /** Inspect status and headers before the body arrives; a string rejects the reply with that reason. */
  readonly accept?: (res: http.IncomingMessage) => string | undefined
}

// Keep-alive: a child fetches many pieces from the same parent, so reuse its sockets.
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 })
// Origins may be https (a registry); peers and schedulers speak plain HTTP.
const secureAgent = new https.Agent({ keepAlive: true, maxSockets: 256 })

const UNREACHABLE = new Set(["ECONNREFUSED", "ECONNRESET", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "EPIPE"])

export const callPromise = (url: string, options: CallOptions, signal?: AbortSignal): Promise<HttpReply> =>
  new Promise<HttpReply>((resolve, reject) => {
    const fail = (message: string, unreachable: boolean, timedOut = false) =>
      reject(new HttpCallError({ message: `${options.method ?? "GET"} ${url}: ${message}`, unreachable, timedOut }))
    let req: http.ClientRequest
    try {
      const secure = url.startsWith("https:")
      req = (secure ? https : http).request(url, { method: options.method ?? "GET", headers: options.headers, agent: secure ? secureAgent : agent, signal })
    } catch (e) {
      return fail(String(e), true)
    }
    let timer: NodeJS.Timeout | undefined
    if (options.timeoutMillis !== undefined) {
      timer = setTimeout(() => {
        fail(`timed out after ${options.timeoutMillis} ms`, false, true)
        req.destroy()
      }, options.timeoutMillis)
    }
    const done = () => timer !== undefined && clearTimeout(timer)
    if (options.idleTimeoutMillis !== undefined) {
      req.setTimeout(options.idleTimeoutMillis, () => {
        done()
        fail(`no data for ${options.idleTimeoutMillis} ms`, false, true)
        req.destroy()
      })
    }
    req.on("error", (e: NodeJS.ErrnoException) => {
      done()
      fail(e.code ?? e.message, e.code !== undefined && UNREACHABLE.has(e.code))
    })
    req.on("response", (res) => {
      const rejected = options.accept?.(res)
      if (rejected !== undefined) {
        done()
        res.destroy()
        return fail(rejected, false)
      }
      const chunks: Array<Buffer> = []
      let size = 0
      res.on("data", (c: Buffer) => {
        chunks.push(c)
        size += c.length
        const wait = options.pace?.(c.length) ?? 0
        if (wait > 0) {
          res.pause()
          setTimeout(() => res.resume(), wait)
        }
      })
      res.on("error", (e) => {
        done()
        fail(`response: ${e.message}`, false)
      })
      res.on("end", () => {
        done()
        if (!res.complete) return fail("connection closed mid-body", false)
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks, size) })
      })
    })
    req.end(options.body)
  })

/** The Effect form: interruption aborts the request (a long-poll given up leaves no socket behind). */
export const call = (url: string, options: CallOptions = {}): Effect.Effect<HttpReply, HttpCallError> =>
  Effect.tryPromise({
    try: (signal) => callPromise(url, options, signal),
    catch: (e) => e instanceof HttpCallError ? e : new HttpCallError({ message: String(e), unreachable: false, timedOut: false })
  })

export const postJson = (
  url: string,
  body: unknown,
  timeoutMillis?: number,
  headers: Readonly<Record<string, string>> = {}
): Effect.Effect<HttpReply, HttpCallError> =>
  call(url, {
    method: "POST",
    headers: { ...headers, "content-type": "application/json" },
    body: JSON.stringify(body),
    ...(timeoutMillis === undefined ? {} : { timeoutMillis })
  })

/** The body of a non-2xx reply, trimmed, for error messages. */
export const describe = (reply: HttpReply): string =>
  `HTTP ${reply.status}${reply.body.length > 0 ? `: ${reply.body.subarray(0, 300).toString("utf8")}` : ""}`
