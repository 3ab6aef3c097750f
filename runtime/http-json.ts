// Server-side JSON at the process boundary: decode a body with a Schema (a 400 that names the wrong
// field on bad input, never a 500), encode answers with the same Schemas the other side decodes with.
import { Effect, Schema } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"

/** A client mistake: becomes a 400 with this message. */
export class BadRequest extends Schema.TaggedError<BadRequest>()("BadRequest", {
  message: Schema.String
}) {}

export const badRequest = (message: string) => Effect.fail(new BadRequest({ message }))

/**
 * Reads the request body as JSON and decodes it. `tags` lists the accepted `_tag`s of a tagged union,
 * so an unknown tag is reported as such rather than as a wall of union alternatives.
 */
export const decodeBody = <S extends Schema.Decoder<unknown>>(
  schema: S,
  tags?: ReadonlyArray<string>
): Effect.Effect<S["Type"], BadRequest, HttpServerRequest.HttpServerRequest | S["DecodingServices"]> =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const text = yield* Effect.mapError(request.text, (e) => new BadRequest({ message: `body: ${e.message}` }))
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

/** Turns a handler's BadRequest into the 400 answer; other failures stay failures. */
export const orBadRequest = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A | HttpServerResponse.HttpServerResponse, Exclude<E, BadRequest>, R> =>
  Effect.catchIf(
    effect,
    (e): e is Extract<E, BadRequest> => e instanceof BadRequest,
    (e) => Effect.succeed(errorResponse(400, (e as BadRequest).message))
  ) as any
