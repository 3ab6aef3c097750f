// How every server process serves its routes. Effect's default middleware logs a JSON line for every
// response and opens a trace span for every request; a swarm's scheduler and daemons answer hundreds of
// small requests a second (reports, parent refreshes, piece GETs), and in the swarm benchmark that line
// and span were a sixth of the scheduler's CPU. Nothing here exports traces, so spans are off, and only
// answers worth an operator's attention are logged (status 400 and up, failed handlers).
import { Cause, Effect, Layer, References } from "effect"
import { HttpMiddleware, HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"

/** The client went away (Effect's 499 for an aborted request: a long-poll its child stopped watching). */
const clientGone = (cause: Cause.Cause<unknown>): boolean => {
  const e = Cause.squash(cause)
  if (HttpServerResponse.isHttpServerResponse(e) && e.status === 499) return true
  // A streamed body (the availability feed, a paced piece) cut off by the client: the interrupt, plus
  // the response that was being written when it came.
  return Cause.hasInterrupts(cause) &&
    cause.reasons.every((r) => r._tag === "Interrupt" || (r._tag === "Die" && HttpServerResponse.isHttpServerResponse(r.defect)))
}

/**
 * Logs what Effect's logger would for an answer an operator may care about — a client or server error
 * (status 400 and up: a refused token, a bad body, a missing task) or a failed handler, with its cause —
 * and nothing for the flood of successful answers, nor for requests the client gave up on (an
 * abandoned long-poll interrupts its handler).
 */
const errorLogger = HttpMiddleware.make((app) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    return yield* Effect.onExit(app, (exit) => {
      if (exit._tag === "Success" ? exit.value.status < 400 : Cause.hasInterruptsOnly(exit.cause) || clientGone(exit.cause)) return Effect.void
      const annotations = {
        "http.method": request.method,
        "http.url": request.url.split("?")[0],
        ...(exit._tag === "Success" ? { "http.status": exit.value.status } : {})
      }
      return Effect.log(exit._tag === "Success" ? "Sent HTTP response" : exit.cause).pipe(Effect.annotateLogs(annotations))
    })
  }))

/** `HttpRouter.serve` without per-request logging and tracing (see above); the listen address is still logged. */
export const serveRoutes = <E, R>(routes: Layer.Layer<never, E, R>) =>
  HttpRouter.serve(routes, { disableLogger: true, middleware: errorLogger }).pipe(
    Layer.provide(Layer.succeed(References.TracerEnabled, false))
  )
