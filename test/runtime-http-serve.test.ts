// runtime/http-serve.ts on a real socket: successful answers leave no log line (the swarm's hot path),
// answers with status 400 and up and failed handlers do, with method, path and status.
import { createServer } from "node:net"
import { Readable } from "node:stream"
import { Effect, Fiber, Layer, Logger } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { listenLayer } from "../runtime/http-listen.ts"
import { serveRoutes } from "../runtime/http-serve.ts"

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer()
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })

const lines: Array<string> = []
let base: string
let fiber: Fiber.Fiber<never, unknown>

beforeAll(async () => {
  const port = await freePort()
  base = `http://127.0.0.1:${port}`
  const routes = HttpRouter.addAll([
    HttpRouter.route("GET", "/ok", Effect.succeed(HttpServerResponse.text("fine"))),
    HttpRouter.route("POST", "/ok", Effect.succeed(HttpServerResponse.empty({ status: 204 }))),
    HttpRouter.route("GET", "/refused", Effect.succeed(HttpServerResponse.text("no", { status: 401 }))),
    HttpRouter.route("GET", "/boom", Effect.die(new Error("handler exploded"))),
    HttpRouter.route("GET", "/wait", Effect.never),
    // A body that never ends (as the availability feed's), a line at once.
    HttpRouter.route("GET", "/stream", Effect.sync(() => {
      const body = new Readable({ read() {} })
      body.push("line\n")
      return HttpServerResponse.raw(body, { contentType: "application/x-ndjson" })
    }))
  ])
  const capture = Logger.layer([Logger.map(Logger.formatJson, (line) => void lines.push(line))])
  fiber = Effect.runFork(Layer.launch(serveRoutes(routes).pipe(Layer.provide(listenLayer({ port, listen: "127.0.0.1" })))).pipe(Effect.provide(capture)))
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(`${base}/ok`)
      return
    } catch {
      await new Promise((r) => setTimeout(r, 50))
    }
  }
})

afterAll(async () => {
  if (fiber !== undefined) await Effect.runPromise(Fiber.interrupt(fiber))
})

describe("serveRoutes", () => {
  it("logs 4xx/5xx answers and failed handlers, not successes", async () => {
    lines.length = 0
    for (let i = 0; i < 20; i++) {
      expect((await fetch(`${base}/ok`)).status).toBe(200)
      expect((await fetch(`${base}/ok`, { method: "POST", body: "{}" })).status).toBe(204)
    }
    expect((await fetch(`${base}/refused`)).status).toBe(401)
    expect((await fetch(`${base}/boom`)).status).toBe(500)
    await new Promise((r) => setTimeout(r, 100))
    const logged = lines.map((l) => JSON.parse(l) as { message: unknown; annotations: Record<string, unknown> })
    expect(logged.filter((l) => l.annotations["http.url"] === "/ok")).toEqual([])
    const refused = logged.filter((l) => l.annotations["http.url"] === "/refused")
    expect(refused.map((l) => [l.message, l.annotations["http.method"], l.annotations["http.status"]])).toEqual([["Sent HTTP response", "GET", 401]])
    const boom = logged.filter((l) => l.annotations["http.url"] === "/boom")
    expect(boom).toHaveLength(1)
    expect(JSON.stringify(boom[0])).toMatch(/handler exploded/)
  })

  it("logs nothing for a request the client gave up on (an abandoned long-poll)", async () => {
    lines.length = 0
    const abort = new AbortController()
    const request = fetch(`${base}/wait`, { signal: abort.signal }).then(() => "answered", () => "aborted")
    await new Promise((r) => setTimeout(r, 100))
    abort.abort()
    expect(await request).toBe("aborted")
    await new Promise((r) => setTimeout(r, 200))
    // The server saw the request (the next one still works) and wrote no line for it.
    expect((await fetch(`${base}/refused`)).status).toBe(401)
    await new Promise((r) => setTimeout(r, 100))
    const urls = lines.map((l) => (JSON.parse(l) as { annotations: Record<string, unknown> }).annotations["http.url"])
    expect(urls).toEqual(["/refused"])
  })

  it("logs nothing for a streamed body the client cut off, while a failed one is still logged", async () => {
    lines.length = 0
    const abort = new AbortController()
    const r = await fetch(`${base}/stream`, { signal: abort.signal })
    expect(r.status).toBe(200)
    const reader = r.body!.getReader()
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("line\n")
    abort.abort()
    await new Promise((r) => setTimeout(r, 200))
    expect((await fetch(`${base}/boom`)).status).toBe(500)
    await new Promise((r) => setTimeout(r, 100))
    const urls = lines.map((l) => (JSON.parse(l) as { annotations: Record<string, unknown> }).annotations["http.url"])
    expect(urls).toEqual(["/boom"])
  })
})
