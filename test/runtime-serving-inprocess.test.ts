// `openTask` called in-process, as the registry mirror does from inside the daemon: a real disk store,
// the real HTTP origin layer against an origin that demands a token, the direct path for small content.
// The origin's refusal (401 without the header, 404) comes back as OriginRefused with its status before
// any stream exists; with the header the bytes come through and are then held (served with no origin).
import { createHash, randomBytes } from "node:crypto"
import { mkdtemp, rm } from "node:fs/promises"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { Effect, Fiber, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { DownloadError } from "../core/errors.ts"
import type { DownloadResult } from "../core/peer/conductor.ts"
import { Origin } from "../core/services/piece-transfer.ts"
import { fetchDirect } from "../runtime/direct-fetch.ts"
import { DiskStore } from "../runtime/disk-store.ts"
import { httpOrigin } from "../runtime/http-origin.ts"
import { makeTaskStreams, type TaskJob } from "../runtime/task-stream.ts"
import { rangeOf, writeRangeHead } from "../runtime/testing/range.ts"

const TOKEN = "Bearer s3cret"
const content = randomBytes(3 * 1024 * 1024 + 11)
const digest = `sha256:${createHash("sha256").update(content).digest("hex")}`
let dir: string
let server: http.Server
let base: string
let requests = 0

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "damselfly-taskstream-"))
  server = http.createServer((req, res) => {
    requests++
    if (req.headers.authorization !== TOKEN) return void res.writeHead(401).end("who are you")
    if (req.url !== "/blob") return void res.writeHead(404).end()
    const span = writeRangeHead(res, rangeOf(req.headers.range, content.length), content.length)
    if (span === undefined) return
    res.end(req.method === "HEAD" ? undefined : content.subarray(span.start, span.end + 1))
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  server?.closeAllConnections()
  server?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

/** The daemon's part, reduced to the direct path: one fiber per task, joined by later callers. */
const makeTasks = async () => {
  const store = new DiskStore(dir)
  await store.loadExisting()
  const origin = await Effect.runPromise(Origin.use(Effect.succeed).pipe(Effect.provide(httpOrigin())))
  const running = new Map<string, Fiber.Fiber<DownloadResult, DownloadError>>()
  const start = (job: TaskJob) =>
    Effect.gen(function*() {
      const had = running.get(job.taskId)
      if (had !== undefined) return had
      if (job.direct === undefined) return yield* Effect.die(new Error("only the direct path in this test"))
      const fiber = yield* fetchDirect(store, { ...job, ...job.direct }).pipe(
        Effect.provideService(Origin, origin),
        Effect.ensuring(Effect.sync(() => running.delete(job.taskId))),
        Effect.forkDetach
      )
      running.set(job.taskId, fiber)
      return fiber
    })
  return Object.assign(makeTaskStreams({ store, origin, start, running: (id) => running.get(id), prefetch: true, smallContentMax: 4 * 1024 * 1024 }), { store })
}

const collect = (s: Stream.Stream<Uint8Array, unknown>) =>
  Effect.runPromise(Stream.runCollect(s)).then((chunks) => Buffer.concat([...chunks]))

describe("openTask in-process", () => {
  it("the origin's 401 and 404 come back as OriginRefused with the status, before any stream", async () => {
    const tasks = await makeTasks()
    const noAuth = await Effect.runPromise(Effect.flip(tasks.openTask({ url: `${base}/blob`, digest })))
    expect(noAuth).toMatchObject({ _tag: "OriginRefused", status: 401 })
    const missing = await Effect.runPromise(Effect.flip(tasks.openTask({ url: `${base}/nope`, headers: { authorization: TOKEN } })))
    expect(missing).toMatchObject({ _tag: "OriginRefused", status: 404 })
  })

  it("with the origin's header: the content, verified against its digest; then held under the caller's task id", async () => {
    const tasks = await makeTasks()
    const taskId = "c".repeat(64)
    const opened = await Effect.runPromise(tasks.openTask({ url: `${base}/blob`, headers: { authorization: TOKEN }, digest, taskId }))
    expect(opened).toMatchObject({ taskId, size: content.length, status: 200, length: content.length, via: "direct" })
    // Pinned while the stream is open: storage GC cannot evict it under the reader.
    expect(tasks.reading(taskId)).toBe(true)
    expect(tasks.store.pinned(taskId)).toBe(true)
    expect(await tasks.store.evict(taskId)).toBe(false)
    expect((await collect(opened.stream)).equals(content)).toBe(true)
    expect(tasks.reading(taskId)).toBe(false)
    await new Promise((r) => setTimeout(r, 10))
    expect(tasks.store.pinned(taskId)).toBe(false)

    // Held now: a range by task id is served without asking the origin at all (no token needed).
    const before = requests
    const ranged = await Effect.runPromise(tasks.openTask({ url: `${base}/blob`, taskId, range: { start: 1_000_000, end: 1_000_009 } }))
    expect(ranged).toMatchObject({ status: 206, length: 10, via: "held", contentRange: `bytes 1000000-1000009/${content.length}` })
    expect((await collect(ranged.stream)).equals(content.subarray(1_000_000, 1_000_010))).toBe(true)
    expect(requests).toBe(before)

    const outside = await Effect.runPromise(Effect.flip(tasks.openTask({ url: `${base}/blob`, taskId, range: `bytes=${content.length}-` })))
    expect(outside).toMatchObject({ _tag: "RangeNotSatisfiable", size: content.length })
  })

  it("a wrong digest fails before the first byte and stores nothing", async () => {
    const tasks = await makeTasks()
    const wrong = `sha256:${"d".repeat(64)}`
    const e = await Effect.runPromise(Effect.flip(tasks.openTask({ url: `${base}/blob`, headers: { authorization: TOKEN }, digest: wrong })))
    expect(e).toMatchObject({ _tag: "TaskFailed", message: expect.stringMatching(/digest mismatch/) })
    const store = new DiskStore(dir)
    await store.loadExisting()
    expect(await store.ledgerOf("d".repeat(64))).toBeUndefined()
  })
})
