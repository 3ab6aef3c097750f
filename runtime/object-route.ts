// `GET /v1/object?url=ENCODED[&digest=sha256:…][&taskId=…][&pieceLength=N]`: content through this
// daemon, streamed while its pieces land (runtime/task-stream.ts), like Dragonfly's dfdaemon proxy.
// `Range` is honoured (one range: 206 + Content-Range, 416 outside the content). Headers for the origin
// travel as one JSON object in `X-Damselfly-Origin-Headers` (e.g. {"Authorization":"Bearer …"}): JSON
// keeps values with commas intact, which repeated headers folded by Node would not.
import { Effect, Schema, Stream } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { errorResponse } from "./http-json.ts"
import type { OpenTaskError, OpenTaskRequest, TaskStreams } from "./task-stream.ts"

export const OBJECT_PATH = "/v1/object"
export const ORIGIN_HEADERS_HEADER = "x-damselfly-origin-headers"
export const UPSTREAM_STATUS_HEADER = "x-damselfly-upstream-status"
export const TASK_ID_HEADER = "x-damselfly-task-id"

const OriginHeaders = Schema.Record(Schema.String, Schema.String)
const decodeHeaders = Schema.decodeUnknownResult(OriginHeaders)

const INTEGER = /^[1-9][0-9]{0,15}$/

/** The task request an HTTP request makes, or the 400 answer it deserves. */
const requestOf = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const query = new URL(request.url, "http://local").searchParams
  const url = query.get("url")
  if (url === null) return errorResponse(400, "url: required query parameter (the origin URL, percent-encoded)")
  const rawPieceLength = query.get("pieceLength")
  if (rawPieceLength !== null && !INTEGER.test(rawPieceLength)) {
    return errorResponse(400, `pieceLength: expected a positive integer, got ${JSON.stringify(rawPieceLength.slice(0, 50))}`)
  }
  let headers: Record<string, string> = {}
  const rawHeaders = request.headers[ORIGIN_HEADERS_HEADER]
  if (rawHeaders !== undefined) {
    let json: unknown
    try {
      json = JSON.parse(rawHeaders)
    } catch (e) {
      return errorResponse(400, `${ORIGIN_HEADERS_HEADER}: expected a JSON object of header names to values (${(e as Error).message})`)
    }
    const decoded = decodeHeaders(json)
    if (decoded._tag === "Failure") return errorResponse(400, `${ORIGIN_HEADERS_HEADER}: expected a JSON object of header names to string values: ${decoded.failure.message}`)
    headers = { ...decoded.success }
  }
  return {
    url,
    headers,
    digest: query.get("digest") ?? undefined,
    taskId: query.get("taskId") ?? undefined,
    pieceLength: rawPieceLength === null ? undefined : Number(rawPieceLength),
    range: request.headers["range"]
  } satisfies OpenTaskRequest
})

const failureResponse = (e: OpenTaskError) => {
  switch (e._tag) {
    case "InvalidTaskRequest":
      return errorResponse(400, e.message)
    case "RangeNotSatisfiable":
      return HttpServerResponse.setHeader(errorResponse(416, e.message), "content-range", `bytes */${e.size}`)
    case "OriginRefused":
      // The origin's own client error, passed on: 404 stays 404, 401/403 tell the client to authenticate.
      return HttpServerResponse.setHeader(errorResponse(e.status, e.message), UPSTREAM_STATUS_HEADER, String(e.status))
    case "TaskFailed":
      return errorResponse(502, e.message)
  }
}

const headersOf = (t: { readonly taskId: string; readonly contentRange?: string | undefined }, via?: string) => ({
  "accept-ranges": "bytes",
  [TASK_ID_HEADER]: t.taskId,
  ...(via === undefined ? {} : { "x-damselfly-via": via }),
  ...(t.contentRange === undefined ? {} : { "content-range": t.contentRange })
})

export const objectRoutes = (tasks: TaskStreams) => [
  HttpRouter.route("GET", OBJECT_PATH, Effect.gen(function*() {
    const req = yield* requestOf
    if (HttpServerResponse.isHttpServerResponse(req)) return req
    const opened = yield* Effect.result(tasks.openTask(req))
    if (opened._tag === "Failure") return failureResponse(opened.failure)
    const t = opened.success
    // Headers are out by now: a failure can only cut the body short, which the server does (never a clean end).
    const body = t.stream.pipe(Stream.tapError((e) =>
      Effect.logWarning(`aborting ${OBJECT_PATH} answer: ${e.message}`).pipe(Effect.annotateLogs({ taskId: t.taskId }))))
    return HttpServerResponse.stream(body, {
      status: t.status,
      contentType: "application/octet-stream",
      contentLength: t.length,
      headers: headersOf(t, t.via)
    })
  })),
  // HEAD: the same status and headers, from the held task or the origin's probe; nothing is downloaded.
  HttpRouter.route("HEAD", OBJECT_PATH, Effect.gen(function*() {
    const req = yield* requestOf
    if (HttpServerResponse.isHttpServerResponse(req)) return req
    const head = yield* Effect.result(tasks.headTask(req))
    if (head._tag === "Failure") return failureResponse(head.failure)
    const t = head.success
    return HttpServerResponse.empty({ status: t.status }).pipe(
      HttpServerResponse.setHeaders({ ...headersOf(t), "content-type": "application/octet-stream", "content-length": String(t.length) })
    )
  }))
]
