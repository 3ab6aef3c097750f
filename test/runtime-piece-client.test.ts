// The piece fast path (runtime/piece-client.ts + http-piece-transfer.ts) on real sockets: the digest
// the conductor sees is that of the bytes actually received — a parent serving a corrupted piece under
// the true digest is caught — keep-alive sockets are reused (and a socket the parent closed while idle
// is retried transparently), and a malformed or cut-off answer is a clear TransferFailed. And the disk
// store's write-behind: a piece is readable (its own bytes) the moment `write` returns, `commit` waits
// for every write, and what was logged survives a restart.
import { spawn } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as net from "node:net"
import { Effect } from "effect"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DiskStore } from "../runtime/disk-store.ts"
import { Host } from "../core/domain.ts"
import { makeHttpPieceTransfer } from "../runtime/http-piece-transfer.ts"
import { inPlaceReads } from "../runtime/piece-client.ts"
import { pieceSha256Hex, sha256Hex } from "../runtime/node-sha256.ts"

const TASK = "a".repeat(64)
const piece = randomBytes(4 * 1024 * 1024 + 123)
const trueDigest = createHash("sha256").update(piece).digest("hex")

const parentAt = (port: number) => ({
  peerId: `parent-${port}/x`,
  host: new Host({ id: `parent-${port}`, ip: "127.0.0.1", port, idc: "", location: "", type: "seed", uploadBandwidth: 1e9, downloadBandwidth: 1e9, uploadSlots: 4 })
})

const transfer = makeHttpPieceTransfer()
const fetch = (port: number, index: number) => Effect.runPromise(Effect.result(transfer.fetchPiece(parentAt(port), TASK, index)))

/** Piece 0 true, piece 1 with one byte flipped (still claiming the true digest), 2 busy. */
let server: http.Server
let port: number
let connections = 0
beforeAll(async () => {
  server = http.createServer((req, res) => {
    const index = Number(req.url!.split("/").pop())
    if (index === 2) return void res.writeHead(503, { "content-type": "application/json", "retry-after": "1" }).end(JSON.stringify({ error: "busy: all 1 upload slots in use" }))
    const body = Buffer.from(piece)
    if (index === 1) body[12345] ^= 0xff
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length, "x-piece-digest": trueDigest })
    res.end(body)
  })
  server.keepAliveTimeout = 300 // shorter than the client's idle pool: exercises the stale-socket retry
  server.on("connection", () => connections++)
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  port = (server.address() as AddressInfo).port
})
afterAll(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))))

/** A parent that answers every request with `answer` (raw bytes), then does `after`. */
const rawParent = async (answer: Buffer, after: "close" | "keep") => {
  const srv = net.createServer((socket) => {
    socket.once("data", () => {
      socket.write(answer)
      if (after === "close") socket.end()
    })
    socket.on("error", () => {})
  })
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r))
  return { port: (srv.address() as AddressInfo).port, close: () => new Promise<void>((r) => srv.close(() => r())) }
}

describe("piece fast path", () => {
  it("hands over exactly the bytes received, with their own digest: a corrupted piece does not pass as the true one", async () => {
    const good = await fetch(port, 0)
    expect(good._tag).toBe("Success")
    const goodBytes = (good as { success: Uint8Array }).success
    expect(Buffer.compare(Buffer.from(goodBytes), piece)).toBe(0)
    expect(pieceSha256Hex(goodBytes)).toBe(trueDigest)

    const bad = await fetch(port, 1)
    expect(bad._tag).toBe("Success")
    const badBytes = (bad as { success: Uint8Array }).success
    expect(badBytes[12345]).toBe(piece[12345]! ^ 0xff)
    // What the conductor compares with the expected digest: the received bytes' hash, not the claim.
    expect(pieceSha256Hex(badBytes)).toBe(sha256Hex(badBytes))
    expect(pieceSha256Hex(badBytes)).not.toBe(trueDigest)
  })

  it("reuses keep-alive sockets, and retries a socket the parent closed while idle", async () => {
    const before = connections
    for (let i = 0; i < 3; i++) expect((await fetch(port, 0))._tag).toBe("Success")
    expect(connections - before).toBeLessThanOrEqual(1)
    // The server drops idle sockets after 300 ms; the pooled one is dead by now, the fetch still works.
    await new Promise((r) => setTimeout(r, 600))
    const again = await fetch(port, 0)
    expect(again._tag).toBe("Success")
    expect(pieceSha256Hex((again as { success: Uint8Array }).success)).toBe(trueDigest)
  })

  it("on a slow link, gathers a trickle of small segments into larger reads, and the bytes and digest stay exact", async () => {
    // A parent in its own process (so its pacing does not share our event loop) sending a 1.5 MiB body
    // as 1448-byte segments at ~12.5 MB/s (100 Mbit/s), each written on its own.
    const parent = spawn(process.execPath, ["-e", `
      const net = require("node:net"), crypto = require("node:crypto")
      const body = crypto.randomBytes(1536 * 1024)
      const srv = net.createServer((socket) => {
        socket.setNoDelay(true)
        socket.once("data", () => {
          socket.write("HTTP/1.1 200 OK\\r\\ncontent-length: " + body.length + "\\r\\n\\r\\n")
          const t0 = performance.now()
          let sent = 0
          const tick = () => {
            const due = Math.min(body.length, ((performance.now() - t0) / 1000) * 12.5e6)
            while (sent < due) { socket.write(body.subarray(sent, Math.min(body.length, sent + 1448))); sent += 1448 }
            if (sent < body.length) setImmediate(tick)
          }
          tick()
        })
        socket.on("error", () => {})
      })
      srv.listen(0, "127.0.0.1", () => process.stdout.write(JSON.stringify({ port: srv.address().port, sha256: crypto.createHash("sha256").update(body).digest("hex") }) + "\\n"))
    `], { stdio: ["ignore", "pipe", "inherit"] })
    try {
      const hello = JSON.parse(await new Promise<string>((resolve) => parent.stdout!.once("data", (d: Buffer) => resolve(d.toString())))) as { port: number; sha256: string }
      const before = { ...inPlaceReads }
      const r = await fetch(hello.port, 0)
      expect(r._tag).toBe("Success")
      const bytes = (r as { success: Uint8Array }).success
      expect(bytes.length).toBe(1536 * 1024)
      expect(sha256Hex(bytes)).toBe(hello.sha256)
      expect(pieceSha256Hex(bytes)).toBe(hello.sha256)
      // Read one segment at a time, the average is ~1.5–3 KiB; gathered, tens of KiB.
      const reads = inPlaceReads.count - before.count
      const average = (inPlaceReads.bytes - before.bytes) / reads
      expect(average, `${reads} reads`).toBeGreaterThan(8 * 1024)
    } finally {
      parent.kill()
    }
  })

  it("a busy parent is a temporary failure carrying its message", async () => {
    const busy = await fetch(port, 2)
    expect(busy._tag).toBe("Failure")
    const f = (busy as { failure: { message: string; temporary: boolean } }).failure
    // node:http sends this error body chunked: only the status is kept (the upload server frames its by length).
    expect(f.message).toMatch(/HTTP 503/)
    expect(f.temporary).toBe(true)
  })

  it("a cut-off, oversized, unframed or garbled answer fails clearly, and an unreachable parent too", async () => {
    const cases: Array<[Buffer, "close" | "keep", RegExp]> = [
      [Buffer.from("HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nonly a few bytes"), "close", /closed/],
      [Buffer.from("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\ntoo many bytes"), "keep", /more bytes than the content-length 5/],
      [Buffer.from("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), "keep", /transfer-encoding/],
      [Buffer.from("HTTP/1.1 200 OK\r\n\r\nno length"), "keep", /content-length: expected a byte count/],
      [Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${2 * 1024 ** 3}\r\n\r\n`), "keep", /content-length: .* at most/],
      [Buffer.from("SSH-2.0-OpenSSH\r\n\r\n"), "keep", /not an HTTP\/1.x status line/]
    ]
    for (const [answer, after, message] of cases) {
      const p = await rawParent(answer, after)
      try {
        const r = await fetch(p.port, 0)
        expect(r._tag, answer.toString().slice(0, 40)).toBe("Failure")
        const f = (r as { failure: { message: string; temporary: boolean } }).failure
        expect(f.message, answer.toString().slice(0, 40)).toMatch(message)
        expect(f.message).toMatch(/^piece 0 from parent-/)
        expect(f.temporary).toBe(false)
      } finally {
        await p.close()
      }
    }
    const closed = await rawParent(Buffer.alloc(0), "close")
    await closed.close()
    const refused = await fetch(closed.port, 0)
    expect(refused._tag).toBe("Failure")
    expect((refused as { failure: { message: string } }).failure.message).toMatch(/ECONNREFUSED/)
  })
})

describe("disk store write-behind", () => {
  it("reads a piece right after write returns, commits only once all writes landed, and reloads them", async () => {
    const root = await mkdtemp(path.join(tmpdir(), "damselfly-writebehind-"))
    try {
      const pieceLength = 256 * 1024
      const count = 24 // more than the 8 writes allowed in flight: exercises the back-pressure
      const content = randomBytes(pieceLength * count - 1000)
      const task = { taskId: "c".repeat(64), url: "http://x/y", contentLength: content.length, pieceLength }
      const store = new DiskStore(root)
      await store.openAsync(task)
      const pieceOf = (i: number) => content.subarray(i * pieceLength, Math.min(content.length, (i + 1) * pieceLength))
      const order = [...Array(count).keys()].reverse()
      for (const i of order) {
        await store.writeAsync(task.taskId, i, Buffer.from(pieceOf(i)), sha256Hex(pieceOf(i)))
        // Straight away, before the write may have reached the file: the reader waits for it.
        expect(Buffer.compare(await store.readAsync(task.taskId, i), pieceOf(i)), `piece ${i}`).toBe(0)
      }
      await store.commitAsync(task.taskId)
      expect(sha256Hex(await readFile(store.contentPath(task.taskId)))).toBe(sha256Hex(content))
      const reopened = new DiskStore(root)
      expect(await reopened.loadExisting()).toBe(1)
      expect((await reopened.ledgerOf(task.taskId))!.complete).toBe(true)
    } finally {
      await rm(root, { recursive: true, force: true })
    }
  })
})
