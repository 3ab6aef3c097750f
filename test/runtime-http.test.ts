// Process boundaries reject bad input with a 400 that names the field, and keep serving afterwards.
import { mkdtemp, readdir, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect } from "effect"
import { DiskStore, diskPieceStore } from "../runtime/disk-store.ts"
import { sha256Hex } from "../runtime/node-sha256.ts"
import { damselfly, freePort, getJson, killAll, postRaw, waitFor, waitHealthy } from "../runtime/testing/harness.ts"

const HEX = "a".repeat(64)
let dir: string
let scheduler: string
let daemon: string

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "damselfly-http-"))
  scheduler = `http://127.0.0.1:${await freePort()}`
  daemon = `http://127.0.0.1:${await freePort()}`
  const s = damselfly("scheduler", ["scheduler", "--port", new URL(scheduler).port])
  const d = damselfly("daemon", ["daemon", "--port", new URL(daemon).port, "--data", path.join(dir, "d"), "--scheduler", scheduler, "--host-id", "h1"])
  await waitHealthy(scheduler, s)
  await waitHealthy(daemon, d)
}, 60_000)

afterAll(async () => {
  await killAll()
  await rm(dir, { recursive: true, force: true })
})

describe("scheduler endpoints", () => {
  it("answers 400 naming the field, then keeps serving", async () => {
    const bad = await postRaw(`${scheduler}/v1/schedule`, JSON.stringify({ _tag: "RegisterPeer", peerId: "p", taskId: "nope" }))
    expect(bad.status).toBe(400)
    expect(bad.body.error).toMatch(/taskId/)
    const tag = await postRaw(`${scheduler}/v1/report`, JSON.stringify({ _tag: "Bogus" }))
    expect(tag.status).toBe(400)
    expect(tag.body.error).toMatch(/_tag/)
    const json = await postRaw(`${scheduler}/v1/report`, "{not json")
    expect(json.status).toBe(400)
    expect(json.body.error).toMatch(/body/)
    const field = await postRaw(`${scheduler}/v1/report`, JSON.stringify({ _tag: "PieceFinished", peerId: "p", taskId: HEX, index: -1, parentId: null, digest: HEX, length: 1, costMillis: 1 }))
    expect(field.status).toBe(400)
    expect(field.body.error).toMatch(/index/)
    expect((await getJson(`${scheduler}/healthy`)).status).toBe(200)
    await waitFor("the daemon's announce", async () => (await getJson(`${scheduler}/healthy`)).body.hosts >= 1)
  })
})

describe("daemon endpoints", () => {
  it("validates piece and availability paths", async () => {
    const badId = await getJson(`${daemon}/v1/tasks/../../etc/pieces/0`)
    expect([400, 404]).toContain(badId.status)
    const shortId = await getJson(`${daemon}/v1/tasks/abc/pieces/0`)
    expect(shortId.status).toBe(400)
    expect(shortId.body.error).toMatch(/taskId/)
    const badIndex = await getJson(`${daemon}/v1/tasks/${HEX}/pieces/1.5`)
    expect(badIndex.status).toBe(400)
    expect(badIndex.body.error).toMatch(/index/)
    const since = await getJson(`${daemon}/v1/tasks/${HEX}/availability?since=x`)
    expect(since.status).toBe(400)
    expect(since.body.error).toMatch(/since/)
    expect((await getJson(`${daemon}/v1/tasks/${HEX}/pieces/0`)).status).toBe(404)
    expect((await getJson(`${daemon}/v1/tasks/${HEX}/availability`)).status).toBe(404)
  })

  it("rejects bad download and seed requests by field, then keeps serving", async () => {
    const relative = await postRaw(`${daemon}/v1/download`, JSON.stringify({ url: "http://127.0.0.1:1/x", output: "rel/out" }))
    expect(relative.status).toBe(400)
    expect(relative.body.error).toMatch(/output/)
    const url = await postRaw(`${daemon}/v1/download`, JSON.stringify({ url: "ftp://x", output: "/tmp/x" }))
    expect(url.status).toBe(400)
    expect(url.body.error).toMatch(/url/)
    const digest = await postRaw(`${daemon}/v1/download`, JSON.stringify({ url: "http://127.0.0.1:1/x", output: "/tmp/x", digest: "md5:1", pieceLength: 1024 }))
    expect(digest.status).toBe(400)
    expect(digest.body.error).toMatch(/digest/)
    // Not a seed: refused before the body is even read (the seed route's fields are fuzzed on a seed in fuzz-endpoints).
    const seed = await postRaw(`${daemon}/v1/seed`, JSON.stringify({ taskId: HEX, url: "http://127.0.0.1:1/x", pieceLength: 1024, headers: {} }))
    expect(seed.status).toBe(403)
    expect(seed.body.error).toMatch(/not a seed peer/)
    expect((await getJson(`${daemon}/healthy`)).body.ok).toBe(true)
  })
})

describe("disk store", () => {
  it("counts only completed pieces, survives a restart and commits the content", async () => {
    const root = path.join(dir, "store")
    const task = { taskId: "b".repeat(64), url: "http://x/y", contentLength: 10, pieceLength: 4 }
    const pieces = [Buffer.from("0123"), Buffer.from("4567"), Buffer.from("89")]
    const store = new DiskStore(root)
    const ps = diskPieceStore(store)
    const ledger = await Effect.runPromise(ps.open(task))
    await Effect.runPromise(ps.write(task.taskId, 2, pieces[2], sha256Hex(pieces[2])))
    await Effect.runPromise(ps.write(task.taskId, 0, pieces[0], sha256Hex(pieces[0])))
    expect(ledger.held()).toEqual([2, 0])
    await expect(Effect.runPromise(ps.write(task.taskId, 1, Buffer.from("45"), "x".repeat(64)))).rejects.toThrow(/expected 4/)
    await expect(Effect.runPromise(ps.commit(task.taskId))).rejects.toThrow(/cannot commit/)
    await expect(Effect.runPromise(ps.read(task.taskId, 1))).rejects.toThrow(/not held/)

    // A restart: the ledger is rebuilt from disk, re-verified.
    const again = diskPieceStore(new DiskStore(root))
    const ledger2 = await Effect.runPromise(again.open(task))
    expect(ledger2.held().sort()).toEqual([0, 2])
    expect(Buffer.from(await Effect.runPromise(again.read(task.taskId, 2))).toString()).toBe("89")
    await Effect.runPromise(again.write(task.taskId, 1, pieces[1], sha256Hex(pieces[1])))
    await Effect.runPromise(again.commit(task.taskId))
    const { readFile } = await import("node:fs/promises")
    expect((await readFile(path.join(root, "tasks", task.taskId, "content"))).toString()).toBe("0123456789")
    expect((await readdir(path.join(root, "tasks", task.taskId))).filter((f) => f.endsWith(".tmp"))).toEqual([])
  })
})
