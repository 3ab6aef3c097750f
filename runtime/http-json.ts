// Server-side JSON at the process boundary: decode a body with a Schema (a 400 that names the wrong
// field on bad input, never a 500), encode answers with the same Schemas the other side decodes with.
import { ByteSize, Effect, Schema } from "effect"
import { HttpIncomingMessage, HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"

/** A client mistake: becomes a 400 with this message. */
export class BadRequest extends Schema.TaggedError<BadRequest>()("BadRequest", {
  message: Schema.String
}) {}

export const badRequest = (message: string) => Effect.fail(new BadRequest({ message }))

/** A body over the limit: becomes a 413. */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  message: Schema.String
}) {}

/** Every JSON body here is a small message (a few KiB); anything near this is abuse or a bug. */
export const MAX_BODY_BYTES = 1024 * 1024

/**
 * Reads the request body as JSON and decodes it. `tags` lists the accepted `_tag`s of a tagged union,
 * so an unknown tag is reported as such rather than as a wall of union alternatives.
 */
export const decodeBody = <S extends Schema.Decoder<unknown>>(
  schema: S,
  tags?: ReadonlyArray<string>
): Effect.Effect<S["Type"], BadRequest | PayloadTooLarge, HttpServerRequest.HttpServerRequest | S["DecodingServices"]> =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const tooLarge = (size: string) =>
      new PayloadTooLarge({ message: `body: ${size} bytes, the limit is ${MAX_BODY_BYTES}` })
    // Refuse by the declared length before reading a byte; a chunked body is cut off at the limit.
    const declared = Number(request.headers["content-length"] ?? "0")
    if (declared > MAX_BODY_BYTES) return yield* Effect.fail(tooLarge(String(declared)))
    const text = yield* request.text.pipe(
      Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(MAX_BODY_BYTES)),
      Effect.mapError((e) =>
        /maxBytes exceeded|MaxBytesError/.test(`${e.message} ${String((e as { cause?: unknown }).cause)}`)
          ? tooLarge("more than")
          : new BadRequest({ message: `body: ${e.message}` })
      )
    )
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (e) {
      return yield* badRequest(`body: not valid JSON (${(e as Error).message})`)
    }
    if (tags !== undefined) {
      const tag = typeof json === "object" && json !== null ? (json as { _tag?: unknown })._tag : undefined
      if (typeof tag !== "string" || !tags.includes(tag)) {
        return yield* badRequest(`_tag: expected one of ${tags.join(", ")}, got ${JSON.stringify(tag ?? null)}`)
      }
    }
    return yield* Effect.mapError(
      Schema.decodeUnknownEffect(schema)(json),
      (e) => new BadRequest({ message: e.message })
    )
  })

/** JSON of a value as its Schema encodes it. */
export const encoded = <S extends Schema.Encoder<unknown>>(schema: S, value: S["Type"], status = 200) =>
  HttpServerResponse.text(JSON.stringify(Schema.encodeSync(schema as any)(value)), { status, contentType: "application/json" })

export const jsonResponse = (value: unknown, status = 200) =>
  HttpServerResponse.text(JSON.stringify(value), { status, contentType: "application/json" })

export const errorResponse = (status: number, message: string) => jsonResponse({ error: message }, status)

/** Turns a handler's BadRequest into the 400 answer (PayloadTooLarge: 413); other failures stay failures. */
export const orBadRequest = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A | HttpServerResponse.HttpServerResponse, Exclude<E, BadRequest | PayloadTooLarge>, R> =>
  Effect.catchIf(
    effect,
    (e): e is Extract<E, BadRequest | PayloadTooLarge> => e instanceof BadRequest || e instanceof PayloadTooLarge,
    (e) => Effect.succeed(errorResponse(e instanceof PayloadTooLarge ? 413 : 400, (e as BadRequest).message))
  ) as any

/** Last resort for any method and path no route matched: a 404 that says so, rather than an empty body. */
export const notFoundRoute = HttpRouter.route("*", "*", (request) =>
  Effect.succeed(errorResponse(404, `no such endpoint: ${request.method} ${request.url.split("?")[0].slice(0, 200)}`)))
