// Origin over HTTP: HEAD for the length (falling back to a one-byte range when HEAD is refused), and
// ranged GETs for pieces. A reply that does not carry exactly the asked bytes is an OriginFailed,
// never a short or shifted piece.
import { Effect, Layer } from "effect"
import { OriginFailed } from "../core/errors.ts"
import { Origin, type OriginRequest } from "../core/services/piece-transfer.ts"
import { readPacer, type RateLimiter } from "./bandwidth.ts"
import { call, describe, type HttpReply } from "./http-call.ts"

const PROBE_TIMEOUT_MILLIS = 30_000
const RANGE_TIMEOUT_MILLIS = 300_000
/** An origin silent this long mid-reply is stalled: the piece fails (and is retried) instead of hanging. */
export const DEFAULT_ORIGIN_IDLE_MILLIS = 30_000

const failed = (message: string, status: number | null = null) => new OriginFailed({ message, status })

const totalFromContentRange = (reply: HttpReply): number | undefined => {
  const m = /\/(\d+)\s*$/.exec(String(reply.headers["content-range"] ?? ""))
  return m === null ? undefined : Number(m[1])
}

const probe = (idleTimeoutMillis: number) => (request: OriginRequest): Effect.Effect<{ readonly contentLength: number }, OriginFailed> =>
  call(request.url, { method: "HEAD", headers: request.headers, timeoutMillis: PROBE_TIMEOUT_MILLIS, idleTimeoutMillis }).pipe(
    Effect.mapError((e) => failed(e.message)),
    Effect.flatMap((reply) => {
      const length = Number(reply.headers["content-length"])
      if (reply.status === 200 && reply.headers["content-length"] !== undefined && Number.isSafeInteger(length)) {
        return Effect.succeed({ contentLength: length })
      }
      // Some origins refuse HEAD or omit the length: ask for one byte and read the total.
      return call(request.url, { headers: { ...request.headers, range: "bytes=0-0" }, timeoutMillis: PROBE_TIMEOUT_MILLIS, idleTimeoutMillis }).pipe(
        Effect.mapError((e) => failed(e.message)),
        Effect.flatMap((ranged) => {
          const total = ranged.status === 206 ? totalFromContentRange(ranged) : ranged.status === 200 ? ranged.body.length : undefined
          return total === undefined
            ? Effect.fail(failed(`probe ${request.url}: no content length (${describe(ranged)})`, ranged.status))
            : Effect.succeed({ contentLength: total })
        })
      )
    })
  )

const fetchRange = (idleTimeoutMillis: number, limiter?: RateLimiter) => (request: OriginRequest, offset: number, length: number): Effect.Effect<Uint8Array, OriginFailed> => {
  const range = `bytes=${offset}-${offset + length - 1}`
  return call(request.url, {
    headers: { ...request.headers, range },
    timeoutMillis: RANGE_TIMEOUT_MILLIS,
    idleTimeoutMillis,
    ...(limiter === undefined ? {} : { pace: readPacer(limiter) }),
    // Refuse before the body arrives: a 200 for the whole file must not be downloaded to get a piece.
    accept: (res) => {
      if (res.statusCode === 206) return undefined
      if (res.statusCode === 200 && offset === 0 && Number(res.headers["content-length"]) === length) return undefined
      return `range ${range}: HTTP ${res.statusCode} does not cover exactly the range`
    }
  }).pipe(
    Effect.mapError((e) => failed(`${request.url}: ${e.message}`)),
    Effect.flatMap((reply) => {
      if (reply.status === 206) {
        const m = /^bytes (\d+)-(\d+)\//.exec(String(reply.headers["content-range"] ?? ""))
        if (m !== null && Number(m[1]) !== offset) {
          return Effect.fail(failed(`range ${range}: origin answered ${reply.headers["content-range"]}`, 206))
        }
      }
      return reply.body.length === length
        ? Effect.succeed<Uint8Array>(reply.body)
        : Effect.fail(failed(`range ${range}: got ${reply.body.length} bytes, expected ${length}`, reply.status))
    })
  )
}

/** With a `limiter` (the back-to-source limit), range bodies are read at its rate, chunk by chunk (probes are free). */
export const httpOrigin = (idleTimeoutMillis = DEFAULT_ORIGIN_IDLE_MILLIS, limiter?: RateLimiter) =>
  Layer.succeed(Origin)(Origin.of({ probe: probe(idleTimeoutMillis), fetchRange: fetchRange(idleTimeoutMillis, limiter) }))

export const HttpOrigin = httpOrigin()
