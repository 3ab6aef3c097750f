// The availability feed (runtime/availability-feed.ts) between a real upload server (runtime/upload-server.ts,
// served as the daemon serves it, on a real socket) and the real HTTP piece transfer: every answer of the
// long-poll, over far fewer requests; coalesced lines; an older parent through the fallback; a parent gone
// mid-stream; refusals; interruption and idle close.
import { createHash } from "node:crypto"
import { mkdtemp, rm } from "node:fs/promises"
import * as http from "node:http"
import type { Socket } from "node:net"
import { createServer as createNetServer } from "node:net"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Exit, Fiber, Layer } from "effect"
import { HttpRouter } from "effect/http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Host } from "../core/domain.ts"
import type { TransferFailed } from "../core/errors.ts"
import type { PieceLedger } from "../core/piece-ledger.ts"
import type { PieceAvailability } from "../core/protocol.ts"
import { availabilityLines, makeAvailabilityFeeds } from "../runtime/availability-feed.ts"
import { DiskStore } from "../runtime/disk-store.ts"
import { makeHttpPieceTransfer } from "../runtime/http-piece-transfer.ts"
import { notFoundRoute } from "../runtime/http-json.ts"
import { makeServer } from "../runtime/http-listen.ts"
import { serveRoutes } from "../runtime/http-serve.ts"
import { type UploadOptions, uploadRoutes } from "../runtime/upload-server.ts"

const PIECE = 16 * 1024
const COUNT = 40
const digestOf = (i: number) => createHash("sha256").update(`piece ${i}`).digest("hex")

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createNetServer()
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

let dir: string
let store: DiskStore

/** A real upload server on 127.0.0.1, counting the requests and the lines it answers. */
const startUpload = async (options: Partial<UploadOptions> = {}, port?: number) => {
  const at = port ?? await freePort()
  const requests: Array<string> = []
  const sockets = new Set<Socket>()
  const lines = { changed: 0, timeout: 0 }
  const server = () => {
    const s = makeServer(undefined)()
    s.on("request", (req: http.IncomingMessage) => requests.push(req.url ?? ""))
    s.on("connection", (socket: Socket) => {
      sockets.add(socket)
      socket.once("close", () => sockets.delete(socket))
    })
    return s
  }
  const routes = Layer.unwrap(Effect.map(
    uploadRoutes(store, {
      uploadSlots: 4,
      uploadBandwidth: undefined,
      downloading: () => false,
      metrics: { uploaded: () => {}, refused: () => {}, availabilityAnswered: (o) => void lines[o]++ },
      ...options
    }),
    (r) => HttpRouter.addAll([...r, notFoundRoute])
  ))
  const fiber = Effect.runFork(Layer.launch(serveRoutes(routes).pipe(Layer.provide(NodeHttpServer.layer(server, { port: at, host: "127.0.0.1" })))))
  for (let i = 0; i < 100; i++) {
    const up = await fetch(`http://127.0.0.1:${at}/healthy`).then(() => true, () => false)
    if (up) break
    await sleep(30)
  }
  requests.length = 0
  return {
    port: at,
    requests,
    lines,
    sockets,
    /** The parent as gone: every connection cut, then the server stopped. */
    kill: async () => {
      for (const s of sockets) s.destroy()
      await Effect.runPromise(Fiber.interrupt(fiber))
    }
  }
}

const parentAt = (port: number) => ({
  peerId: `parent-${port}`,
  host: new Host({ id: `parent-${port}`, ip: "127.0.0.1", port, idc: "", location: "", type: "normal", uploadBandwidth: 1e9, downloadBandwidth: 1e9, uploadSlots: 4 })
})

let taskSeq = 0
/** A fresh task held by the store, with no pieces yet. */
const newTask = async () => {
  const taskId = createHash("sha256").update(`task ${taskSeq++} ${Date.now()}`).digest("hex")
  await store.openAsync({ taskId, url: `http://origin/${taskId}`, contentLength: PIECE * COUNT, pieceLength: PIECE })
  return { taskId, ledger: (await store.ledgerOf(taskId)) as PieceLedger }
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "damselfly-feed-"))
  store = new DiskStore(dir)
})

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

describe("availability feed", () => {
  it("a child watching a growing parent sees every piece in order, over far fewer requests than answers", async () => {
    const up = await startUpload()
    try {
      const { taskId, ledger } = await newTask()
      const transfer = makeHttpPieceTransfer()
      const parent = parentAt(up.port)
      // The parent's pieces land one by one, while the child watches as the conductor does.
      const adding = (async () => {
        for (let i = 0; i < COUNT; i++) {
          await sleep(i % 5 === 0 ? 15 : 2)
          ledger.add(i, digestOf(i))
        }
      })()
      const seen: Array<number> = []
      let since = 0
      let answers = 0
      for (;;) {
        const a: PieceAvailability = await Effect.runPromise(transfer.availability(parent, taskId, since))
        answers++
        expect(a.taskId).toBe(taskId)
        expect(a.version).toBeGreaterThan(since)
        expect(a.pieces.length).toBe(a.version - since)
        for (const p of a.pieces) {
          expect(p.digest).toBe(digestOf(p.index))
          seen.push(p.index)
        }
        since = a.version
        if (a.complete) break
      }
      await adding
      expect(seen).toEqual([...Array(COUNT).keys()])
      expect(answers).toBeGreaterThan(5)
      const availabilityRequests = up.requests.filter((u) => u.includes("/availability"))
      expect(availabilityRequests).toEqual([`/v1/tasks/${taskId}/availability?since=0&stream=1`])
      // Each line the server counted carried news; the child's answers merged lines that came between its calls.
      expect(up.lines.changed).toBeGreaterThanOrEqual(answers)
      expect(up.lines.changed).toBeLessThanOrEqual(COUNT)
    } finally {
      await up.kill()
    }
  })

  it("pieces landing in one tick go out as one line", async () => {
    const up = await startUpload()
    try {
      const { taskId, ledger } = await newTask()
      const raw: Array<string> = []
      const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
        http.get({ host: "127.0.0.1", port: up.port, path: `/v1/tasks/${taskId}/availability?since=0&stream=1`, agent: false }, resolve).on("error", reject))
      expect(res.statusCode).toBe(200)
      expect(res.headers["content-type"]).toMatch(/^application\/x-ndjson/)
      expect(res.headers["content-length"]).toBeUndefined()
      res.setEncoding("utf8")
      let text = ""
      res.on("data", (c: string) => {
        text += c
      })
      await sleep(100)
      for (let i = 0; i < 7; i++) ledger.add(i, digestOf(i)) // one tick
      await sleep(100)
      ledger.add(7, digestOf(7))
      await sleep(100)
      res.destroy()
      raw.push(...text.split("\n").filter((l) => l.length > 0))
      const lines = raw.map((l) => JSON.parse(l) as { version: number; pieces: Array<{ index: number }> })
      // The opening line (nothing past since=0 yet), then the seven in one line, then the eighth.
      expect(lines.map((l) => [l.version, l.pieces.map((p) => p.index)])).toEqual([
        [0, []],
        [7, [0, 1, 2, 3, 4, 5, 6]],
        [8, [7]]
      ])
      expect(up.lines.changed).toBe(2)
      // The child is gone: the server dropped its ledger wait, so a new piece writes (and counts) nothing.
      await sleep(50)
      ledger.add(8, digestOf(8))
      await sleep(50)
      expect(up.lines.changed).toBe(2)
    } finally {
      await up.kill()
    }
  })

  it("ends the stream after the complete line, a delta from since", async () => {
    const up = await startUpload()
    try {
      const { taskId, ledger } = await newTask()
      for (let i = 0; i < COUNT; i++) ledger.add(i, digestOf(i))
      const r = await fetch(`http://127.0.0.1:${up.port}/v1/tasks/${taskId}/availability?since=${COUNT - 2}&stream=1`)
      const body = await r.text() // ends: the ledger is complete
      const lines = body.split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l) as { version: number; complete: boolean; pieces: Array<unknown> })
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatchObject({ version: COUNT, complete: true })
      expect(lines[0].pieces).toHaveLength(2)
    } finally {
      await up.kill()
    }
  })

  it("an older parent (no stream) still answers through the long-poll fallback", async () => {
    const up = await startUpload({ availabilityStream: false, longPollMillis: 300 })
    try {
      const { taskId, ledger } = await newTask()
      const transfer = makeHttpPieceTransfer()
      const parent = parentAt(up.port)
      ledger.add(0, digestOf(0))
      const first = await Effect.runPromise(transfer.availability(parent, taskId, 0))
      expect(first.pieces.map((p) => p.index)).toEqual([0])
      setTimeout(() => ledger.add(1, digestOf(1)), 50)
      const second = await Effect.runPromise(transfer.availability(parent, taskId, 1))
      expect(second.pieces.map((p) => p.index)).toEqual([1])
      // Its time limit: the unchanged state, as ever.
      const quiet = await Effect.runPromise(transfer.availability(parent, taskId, 2))
      expect(quiet).toMatchObject({ version: 2, pieces: [], complete: false })
      const asked = up.requests.filter((u) => u.includes("/availability"))
      // One stream request (ignored), then plain long-polls only.
      expect(asked).toEqual([
        `/v1/tasks/${taskId}/availability?since=0&stream=1`,
        `/v1/tasks/${taskId}/availability?since=1`,
        `/v1/tasks/${taskId}/availability?since=2`
      ])
    } finally {
      await up.kill()
    }
  })

  it("a parent gone mid-stream fails the waiting call with TransferFailed; a later call reconnects", async () => {
    const up = await startUpload()
    const { taskId, ledger } = await newTask()
    const transfer = makeHttpPieceTransfer()
    const parent = parentAt(up.port)
    ledger.add(0, digestOf(0))
    expect((await Effect.runPromise(transfer.availability(parent, taskId, 0))).version).toBe(1)
    const waiting = Effect.runPromise(Effect.exit(transfer.availability(parent, taskId, 1)))
    await sleep(100)
    await up.kill()
    const exit = await waiting
    expect(Exit.isFailure(exit)).toBe(true)
    const failure = Exit.isFailure(exit) ? (exit.cause.reasons[0] as { error?: TransferFailed }).error : undefined
    expect(failure?._tag).toBe("TransferFailed")
    expect(failure?.message).toMatch(/availability from parent-\d+: connection closed mid-stream/)
    expect(failure?.temporary).toBe(false)
    // Nothing listens now: refused, as the long-poll's transport failure was.
    const refused = await Effect.runPromise(Effect.flip(transfer.availability(parent, taskId, 1)))
    expect(refused.message).toMatch(/ECONNREFUSED/)
    // The parent is back on the same port: the next call opens a new feed there.
    const again = await startUpload({}, up.port)
    try {
      ledger.add(1, digestOf(1))
      const a = await Effect.runPromise(transfer.availability(parent, taskId, 1))
      expect(a).toMatchObject({ version: 2, complete: false })
      expect(a.pieces.map((p) => p.index)).toEqual([1])
      expect(again.requests).toEqual([`/v1/tasks/${taskId}/availability?since=1&stream=1`])
    } finally {
      await again.kill()
    }
  })

  it("a stream the parent ended at its cap is reopened transparently for a waiting call", async () => {
    const up = await startUpload({ availabilityStreamMillis: 150 })
    try {
      const { taskId, ledger } = await newTask()
      ledger.add(0, digestOf(0))
      const transfer = makeHttpPieceTransfer()
      const parent = parentAt(up.port)
      expect((await Effect.runPromise(transfer.availability(parent, taskId, 0))).version).toBe(1)
      setTimeout(() => ledger.add(1, digestOf(1)), 400) // after two caps
      const a = await Effect.runPromise(transfer.availability(parent, taskId, 1))
      expect(a).toMatchObject({ version: 2, complete: false })
      expect(a.pieces.map((p) => p.index)).toEqual([1])
      const asked = up.requests.filter((u) => u.includes("/availability"))
      expect(asked[0]).toBe(`/v1/tasks/${taskId}/availability?since=0&stream=1`)
      // Reopened from what the waiting call had: at least twice in 400 ms at a 150 ms cap.
      expect(asked.length).toBeGreaterThanOrEqual(3)
      expect(asked.slice(1).every((u) => u === `/v1/tasks/${taskId}/availability?since=1&stream=1`)).toBe(true)
    } finally {
      await up.kill()
    }
  })

  it("refuses a bad since (400) and an unknown task (404) on the stream route, mapped as the long-poll's", async () => {
    const up = await startUpload()
    try {
      const { taskId } = await newTask()
      const bad = await fetch(`http://127.0.0.1:${up.port}/v1/tasks/${taskId}/availability?since=-1&stream=1`)
      expect(bad.status).toBe(400)
      expect((await bad.json() as { error: string }).error).toBe(`since: expected a non-negative integer, got "-1"`)
      const transfer = makeHttpPieceTransfer()
      const missing = await Effect.runPromise(Effect.flip(transfer.availability(parentAt(up.port), "0".repeat(64), 0)))
      expect(missing.temporary).toBe(true) // 404: the parent may not have opened the task yet
      expect(missing.message).toMatch(/HTTP 404: .*not held here/)
    } finally {
      await up.kill()
    }
  })

  it("an interrupted call leaves no waiter behind, and an idle feed is closed", async () => {
    const up = await startUpload()
    try {
      const { taskId, ledger } = await newTask()
      const feeds = makeAvailabilityFeeds({ longPoll: () => Effect.die("not used"), idleMillis: 300 })
      const parent = parentAt(up.port)
      const socketsBefore = up.sockets.size // the start-up probe's keep-alive socket
      const fiber = Effect.runFork(feeds.availability(parent, taskId, 0, {}))
      await sleep(100)
      expect(feeds.waiting).toBe(1)
      expect(up.sockets.size).toBe(socketsBefore + 1)
      await Effect.runPromise(Fiber.interrupt(fiber))
      expect(feeds.waiting).toBe(0)
      expect(feeds.size).toBe(1) // kept a moment: the core may ask again at once
      ledger.add(0, digestOf(0)) // nobody waits: no answer goes anywhere
      await sleep(600)
      expect(feeds.size).toBe(0)
      await sleep(50)
      expect(up.sockets.size).toBe(socketsBefore) // the feed's socket is closed, and the server saw it go
      // Asked again later: a new feed, answered at once from the parent's state.
      const a = await Effect.runPromise(feeds.availability(parent, taskId, 0, {}))
      expect(a.pieces.map((p) => p.index)).toEqual([0])
      feeds.closeAll()
    } finally {
      await up.kill()
    }
  })

  it("a call with no change answers the unchanged state after its time limit; a silent parent fails the call as timed out", async () => {
    const up = await startUpload()
    try {
      const { taskId, ledger } = await newTask()
      ledger.add(0, digestOf(0))
      const parent = parentAt(up.port)
      const quick = makeAvailabilityFeeds({ longPoll: () => Effect.die("not used"), answerMillis: 200 })
      const started = Date.now()
      const a = await Effect.runPromise(quick.availability(parent, taskId, 1, {}))
      expect(a).toMatchObject({ version: 1, pieces: [], complete: false })
      expect(Date.now() - started).toBeGreaterThanOrEqual(190)
      quick.closeAll()
      // The server's heartbeat is every 10 s: a child that expects bytes within 400 ms takes it as hung.
      const strict = makeAvailabilityFeeds({ longPoll: () => Effect.die("not used"), silenceMillis: 400 })
      const silent = await Effect.runPromise(Effect.flip(strict.availability(parent, taskId, 1, {})))
      expect(silent).toMatchObject({ _tag: "TransferFailed", temporary: true })
      expect(silent.message).toMatch(/timed out/)
      expect(strict.size).toBe(0)
    } finally {
      await up.kill()
    }
  })

  it("a request Node refuses to send (a header with a newline) fails the call with TransferFailed, never leaves it waiting", async () => {
    const feeds = makeAvailabilityFeeds({ longPoll: () => Effect.die("not used"), answerMillis: 60_000, silenceMillis: 60_000 })
    const taskId = "e".repeat(64)
    const failed = await Effect.runPromise(Effect.flip(feeds.availability(parentAt(9), taskId, 0, { "x-bad": "a\nb" })).pipe(Effect.timeout("5 seconds")))
    expect(failed).toMatchObject({ _tag: "TransferFailed", temporary: false })
    expect(failed.message).toMatch(/availability from parent-9/)
    expect(feeds.size).toBe(0)
  })

  it("streams that end leave no ledger waiter behind, though the ledger never grows again", async () => {
    const up = await startUpload({ availabilityStreamMillis: 50 })
    try {
      const { taskId, ledger } = await newTask()
      ledger.add(0, digestOf(0))
      const waiters = () => (ledger as unknown as { waiters: Array<unknown> }).waiters.length
      // Ten streams, each ended by the server's cap (50 ms) while the ledger stays at version 1.
      for (let i = 0; i < 10; i++) {
        const body = await new Promise<string>((resolve, reject) =>
          http.get({ host: "127.0.0.1", port: up.port, path: `/v1/tasks/${taskId}/availability?since=1&stream=1` }, (res) => {
            let text = ""
            res.on("data", (c: Buffer) => (text += c.toString()))
            res.on("end", () => resolve(text))
          }).on("error", reject))
        expect(body.split("\n").filter((l) => l.length > 0)).toHaveLength(1)
      }
      await sleep(50)
      expect(waiters()).toBe(0)
    } finally {
      await up.kill()
    }
  })

  it("writes a heartbeat while the ledger is quiet", async () => {
    const { ledger } = await newTask()
    const lines = availabilityLines(ledger, 0, { heartbeatMillis: 40 })
    let text = ""
    lines.on("data", (c: Buffer) => {
      text += c.toString("utf8")
    })
    await sleep(230)
    lines.destroy()
    const [opening, ...rest] = text.split("\n")
    expect(JSON.parse(opening)).toMatchObject({ version: 0, pieces: [] })
    // Only bare newlines after the opening line: at least four heartbeats in 230 ms at one per 40 ms.
    expect(rest.every((l) => l === "")).toBe(true)
    expect(rest.length).toBeGreaterThanOrEqual(4)
  })

  it("refuses the stream of a private task without a capability (403), like the long-poll", async () => {
    const up = await startUpload({ access: () => Effect.succeed("task is private: no capability") })
    try {
      const { taskId } = await newTask()
      const r = await fetch(`http://127.0.0.1:${up.port}/v1/tasks/${taskId}/availability?since=0&stream=1`)
      expect(r.status).toBe(403)
      const refused = await Effect.runPromise(Effect.flip(makeHttpPieceTransfer().availability(parentAt(up.port), taskId, 0)))
      expect(refused).toMatchObject({ _tag: "TransferFailed", temporary: false })
      expect(refused.message).toMatch(/HTTP 403: .*private/)
    } finally {
      await up.kill()
    }
  })
})
