// Pooled piece buffers (runtime/piece-buffer-pool.ts): a buffer comes back only from whoever took it, once,
// and only once nothing reads it any more — the disk store gives a piece's buffer back only after its bytes
// are in the file — and a reused buffer never carries the digest remembered for its previous content, so a
// corrupt piece received into a recycled buffer is still caught.
import { createHash, randomBytes } from "node:crypto"
import { closeSync, openSync, readSync } from "node:fs"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import * as path from "node:path"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Host } from "../core/domain.ts"
import { DiskStore } from "../runtime/disk-store.ts"
import { makeHttpPieceTransfer } from "../runtime/http-piece-transfer.ts"
import { pieceSha256Hex, rememberDigest, sha256Hex } from "../runtime/node-sha256.ts"
import { PieceBufferPool, pieceBuffers } from "../runtime/piece-buffer-pool.ts"

describe("PieceBufferPool", () => {
  it("takes back only its own buffers, each once, up to its byte cap", () => {
    const pool = new PieceBufferPool(3 * 1024)
    const a = pool.take(1024)
    expect(a.length).toBe(1024)
    expect(pool.give(Buffer.allocUnsafe(1024))).toBe(false) // not from this pool
    expect(pool.give(a.subarray(0, 512))).toBe(false) // a view of one of its buffers
    expect(pool.give(new PieceBufferPool(1 << 20).take(1024))).toBe(false) // another pool's
    expect(pool.give(a)).toBe(true)
    expect(pool.give(a)).toBe(false) // a second give would hand it to two owners
    expect(pool.freeBytes).toBe(1024)
    const again = pool.take(1024)
    expect(again).toBe(a)
    expect(pool.take(1024)).not.toBe(a) // it is out now: a fresh one
    expect(pool.take(2048)).not.toBe(a) // another length never gets it
    const [b, c, d] = [pool.take(1024), pool.take(1024), pool.take(1024)]
    expect([pool.give(b), pool.give(c), pool.give(d), pool.give(a)]).toEqual([true, true, true, false]) // 3 KiB cap
    pool.trim()
    expect(pool.freeBytes).toBe(0)
    expect(pool.give(b)).toBe(true) // still its own after a trim
  })

  it("forgets the digest remembered for a buffer's previous content when it is taken again", () => {
    const pool = new PieceBufferPool(1 << 20)
    const b = pool.take(4096)
    b.fill(1)
    rememberDigest(b, sha256Hex(b))
    expect(pool.give(b)).toBe(true)
    const again = pool.take(4096)
    expect(again).toBe(b)
    again.fill(2)
    expect(pieceSha256Hex(again)).toBe(sha256Hex(Buffer.alloc(4096, 2)))
  })
})

describe("disk store and pooled buffers", () => {
  it("gives a piece's buffer back only once its bytes are in the file, and keeps no reference to it", async () => {
    const root = await mkdtemp(path.join(tmpdir(), "damselfly-pool-"))
    try {
      const pieceLength = 256 * 1024
      const count = 24 // more than the store's 8 writes in flight
      const content = randomBytes(pieceLength * count)
      const task = { taskId: "d".repeat(64), url: "http://x/y", contentLength: content.length, pieceLength }
      const given: Array<{ offset: number; onDisk: boolean }> = []
      let store: DiskStore
      // Checks, at the very moment of each give, that the file already holds exactly these bytes.
      class CheckingPool extends PieceBufferPool {
        override give(b: Uint8Array): boolean {
          const offset = content.indexOf(b.subarray(0, 64))
          const fd = openSync(path.join(store.taskDir(task.taskId), "data"), "r")
          const onDisk = Buffer.allocUnsafe(b.length)
          readSync(fd, onDisk, 0, b.length, offset)
          closeSync(fd)
          given.push({ offset, onDisk: Buffer.compare(onDisk, b) === 0 })
          return super.give(b)
        }
      }
      const pool = new CheckingPool(64 * 1024 * 1024)
      store = new DiskStore(root, pool)
      await store.openAsync(task)
      const taken: Array<Buffer> = []
      for (const i of [...Array(count).keys()].reverse()) {
        const b = pool.take(pieceLength)
        content.copy(b, 0, i * pieceLength, (i + 1) * pieceLength)
        taken.push(b)
        await store.writeAsync(task.taskId, i, b, sha256Hex(b))
      }
      // A duplicate of a held piece is not needed: its buffer comes back at once.
      const dup = pool.take(pieceLength)
      content.copy(dup, 0, 0, pieceLength)
      await store.writeAsync(task.taskId, 0, dup, sha256Hex(dup))
      await store.commitAsync(task.taskId)
      expect(given.length).toBe(count + 1)
      expect(given.every((g) => g.onDisk)).toBe(true)
      // Every buffer is back (buffers given back early were already taken again in the loop).
      const distinct = new Set([...taken, dup])
      expect(distinct.size).toBeLessThan(count + 1)
      expect(pool.freeBytes).toBe(distinct.size * pieceLength)
      // The buffers are the pool's again: scribbling on them changes nothing the store holds.
      for (const b of taken) b.fill(0xee)
      expect(sha256Hex(await readFile(store.contentPath(task.taskId)))).toBe(sha256Hex(content))
      expect(Buffer.compare(await store.readAsync(task.taskId, 3), content.subarray(3 * pieceLength, 4 * pieceLength))).toBe(0)
      // A caller's own buffer (not the pool's) is never taken into the pool.
      const own = new DiskStore(root, pool)
      const other = { ...task, taskId: "e".repeat(64) }
      await own.openAsync(other)
      const before = pool.freeBytes
      await own.writeAsync(other.taskId, 0, Buffer.from(content.subarray(0, pieceLength)), sha256Hex(content.subarray(0, pieceLength)))
      await own.writeAsync(other.taskId, 1, Buffer.from(content.subarray(pieceLength, 2 * pieceLength)), sha256Hex(content.subarray(pieceLength, 2 * pieceLength)))
      await Promise.all([own.readAsync(other.taskId, 0), own.readAsync(other.taskId, 1)])
      expect(pool.freeBytes).toBe(before)
    } finally {
      await rm(root, { recursive: true, force: true })
    }
  })
})

describe("a recycled buffer and a corrupt piece", () => {
  const piece = randomBytes(1024 * 1024 + 7)
  const trueDigest = createHash("sha256").update(piece).digest("hex")
  let server: http.Server
  let port: number
  beforeAll(async () => {
    // Piece 0 true; piece 1 the same bytes with one flipped, still claiming the true digest.
    server = http.createServer((req, res) => {
      const body = Buffer.from(piece)
      if (req.url!.endsWith("/1")) body[777] ^= 0xff
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length, "x-piece-digest": trueDigest })
      res.end(body)
    })
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
    port = (server.address() as AddressInfo).port
  })
  afterAll(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))))

  it("is hashed afresh: the corrupt piece's digest is its own, though the buffer last held the true piece", async () => {
    const root = await mkdtemp(path.join(tmpdir(), "damselfly-pool-corrupt-"))
    try {
      const parent = {
        peerId: "parent/x",
        host: new Host({ id: "parent", ip: "127.0.0.1", port, idc: "", location: "", type: "seed", uploadBandwidth: 1e9, downloadBandwidth: 1e9, uploadSlots: 4 })
      }
      const transfer = makeHttpPieceTransfer()
      const taskId = "f".repeat(64)
      const store = new DiskStore(root) // the daemon's shared pool, as the piece client uses
      await store.openAsync({ taskId, url: "http://x/z", contentLength: piece.length * 2, pieceLength: piece.length })
      pieceBuffers.trim() // no spare buffer of this length: the second fetch must get the first one's
      const good = await Effect.runPromise(transfer.fetchPiece(parent, taskId, 0))
      expect(pieceSha256Hex(good)).toBe(trueDigest)
      await store.writeAsync(taskId, 0, good, trueDigest)
      await store.readAsync(taskId, 0) // waits for the write: the buffer is back in the pool now
      const bad = await Effect.runPromise(transfer.fetchPiece(parent, taskId, 1))
      expect(bad).toBe(good) // the very same buffer, recycled
      expect(pieceSha256Hex(bad)).toBe(sha256Hex(bad))
      expect(pieceSha256Hex(bad)).not.toBe(trueDigest)
      // And the stored piece is untouched by the buffer's reuse.
      expect(Buffer.compare(await store.readAsync(taskId, 0), piece)).toBe(0)
    } finally {
      await rm(root, { recursive: true, force: true })
    }
  })
})

describe("staging a piece's bytes in the file as they arrive (DiskStore.stage)", () => {
  const pieceLength = 64 * 1024
  const content = randomBytes(pieceLength * 4)
  const pieceOf = (i: number) => content.subarray(i * pieceLength, (i + 1) * pieceLength)
  const onDisk = (store: DiskStore, taskId: string, i: number) => {
    const fd = openSync(path.join(store.taskDir(taskId), "data"), "r")
    const b = Buffer.alloc(pieceLength)
    readSync(fd, b, 0, pieceLength, i * pieceLength)
    closeSync(fd)
    return b
  }
  /** Receives `bytes` into `buffer` in 3 chunks through `sink`, as the piece client does. */
  const receive = (sink: { write(c: Uint8Array): boolean }, buffer: Buffer, bytes: Uint8Array, upTo = bytes.length) => {
    const cuts = [0, 1000, 40_000, upTo].filter((x) => x <= upTo)
    let accepted = true
    for (let k = 1; k < cuts.length; k++) {
      buffer.set(bytes.subarray(cuts[k - 1], cuts[k]), cuts[k - 1])
      accepted = sink.write(buffer.subarray(cuts[k - 1], cuts[k])) && accepted
    }
    return accepted
  }

  it("counts a staged piece only once written with its verified buffer; junk staged for a corrupt piece is never held, read or logged", async () => {
    const root = await mkdtemp(path.join(tmpdir(), "damselfly-stage-"))
    try {
      const task = { taskId: "1".repeat(64), url: "http://x/s", contentLength: content.length, pieceLength }
      const store = new DiskStore(root)
      await store.openAsync(task)
      // Piece 0, true bytes: on disk before `write`, held after it.
      const b0 = Buffer.alloc(pieceLength)
      const sink0 = store.stage(task.taskId, 0, b0)!
      expect(sink0).toBeDefined()
      expect(store.stage(task.taskId, 0, Buffer.alloc(pieceLength))).toBeUndefined() // one staging per piece
      expect(receive(sink0, b0, pieceOf(0))).toBe(true)
      sink0.complete()
      expect(Buffer.compare(onDisk(store, task.taskId, 0), pieceOf(0))).toBe(0)
      expect((await store.ledgerOf(task.taskId))!.has(0)).toBe(false) // staged is not held
      await store.writeAsync(task.taskId, 0, b0, sha256Hex(pieceOf(0)))
      expect(Buffer.compare(await store.readAsync(task.taskId, 0), pieceOf(0))).toBe(0)
      expect(store.stage(task.taskId, 0, Buffer.alloc(pieceLength))).toBeUndefined() // held: never staged again

      // Piece 1, corrupt bytes staged: the conductor drops them (no `write`), nothing counts them.
      const junk = Buffer.from(pieceOf(1))
      junk[5] ^= 0xff
      const b1 = Buffer.alloc(pieceLength)
      const sink1 = store.stage(task.taskId, 1, b1)!
      receive(sink1, b1, junk)
      sink1.complete()
      await expect(store.readAsync(task.taskId, 1)).rejects.toThrow(/not held/)
      // Then the true piece from elsewhere (another buffer): it replaces the junk.
      await store.writeAsync(task.taskId, 1, Buffer.from(pieceOf(1)), sha256Hex(pieceOf(1)))
      expect(Buffer.compare(await store.readAsync(task.taskId, 1), pieceOf(1))).toBe(0)

      // Piece 2: staging cut off half-way (a failed fetch) leaves junk that a restart does not count.
      const b2 = Buffer.alloc(pieceLength)
      const sink2 = store.stage(task.taskId, 2, b2)!
      receive(sink2, b2, pieceOf(2), 40_000)
      sink2.abandon()
      // Piece 3: the wrong length is refused.
      expect(store.stage(task.taskId, 3, Buffer.alloc(pieceLength - 1))).toBeUndefined()
      expect(store.stage("9".repeat(64), 0, Buffer.alloc(pieceLength))).toBeUndefined() // not open

      await store.readAsync(task.taskId, 1) // every write landed
      const reopened = new DiskStore(root)
      await reopened.loadExisting()
      const ledger = (await reopened.ledgerOf(task.taskId))!
      expect([0, 1, 2, 3].map((i) => ledger.has(i))).toEqual([true, true, false, false])
    } finally {
      await rm(root, { recursive: true, force: true })
    }
  })

  it("a staged piece that is then dropped (failed verification) does not keep its buffer alive", async () => {
    setFlagsFromString("--expose-gc")
    const gc = runInNewContext("gc") as () => void
    const root = await mkdtemp(path.join(tmpdir(), "damselfly-stage-gc-"))
    try {
      const task = { taskId: "3".repeat(64), url: "http://x/g", contentLength: content.length, pieceLength }
      const store = new DiskStore(root)
      await store.openAsync(task)
      // In a function of its own, so no local of this test holds the buffer or its sink afterwards.
      const stageJunk = (): WeakRef<Buffer> => {
        const junk = Buffer.alloc(pieceLength, 0xcd)
        const b = Buffer.alloc(pieceLength)
        const sink = store.stage(task.taskId, 1, b)!
        receive(sink, b, junk)
        sink.complete()
        return new WeakRef(b)
      }
      const ref = stageJunk()
      for (let i = 0; i < 5 && ref.deref() !== undefined; i++) {
        await new Promise((r) => setImmediate(r))
        gc()
      }
      expect(ref.deref(), "the dropped piece's buffer is still reachable").toBeUndefined()
      // The piece can still be staged and written afterwards.
      const b = Buffer.alloc(pieceLength)
      const sink = store.stage(task.taskId, 1, b)!
      expect(receive(sink, b, pieceOf(1))).toBe(true)
      sink.complete()
      await store.writeAsync(task.taskId, 1, b, sha256Hex(pieceOf(1)))
      expect(Buffer.compare(await store.readAsync(task.taskId, 1), pieceOf(1))).toBe(0)
    } finally {
      await rm(root, { recursive: true, force: true })
    }
  })

  it("a write of the piece from another buffer stops its staging first: late staged bytes never reach the held piece", async () => {
    const root = await mkdtemp(path.join(tmpdir(), "damselfly-stage-race-"))
    try {
      const task = { taskId: "2".repeat(64), url: "http://x/r", contentLength: content.length, pieceLength }
      const store = new DiskStore(root)
      await store.openAsync(task)
      // An endgame race: fetch A (corrupt, staged) is half-way when fetch B's verified bytes are written.
      const junk = Buffer.alloc(pieceLength, 0xab)
      const a = Buffer.alloc(pieceLength)
      const sinkA = store.stage(task.taskId, 2, a)!
      receive(sinkA, a, junk, 40_000)
      await store.writeAsync(task.taskId, 2, Buffer.from(pieceOf(2)), sha256Hex(pieceOf(2)))
      // A's remaining bytes arrive: refused, not written.
      a.set(junk.subarray(40_000), 40_000)
      expect(sinkA.write(a.subarray(40_000))).toBe(false)
      sinkA.complete()
      expect(Buffer.compare(await store.readAsync(task.taskId, 2), pieceOf(2))).toBe(0)
      expect(Buffer.compare(onDisk(store, task.taskId, 2), pieceOf(2))).toBe(0)
      // And a write of A's buffer itself (were it ever verified) is a duplicate of a held piece: ignored.
      await store.writeAsync(task.taskId, 2, a, sha256Hex(a))
      expect(Buffer.compare(onDisk(store, task.taskId, 2), pieceOf(2))).toBe(0)
    } finally {
      await rm(root, { recursive: true, force: true })
    }
  })

  it("through the piece client: a fetched piece is staged, a corrupt one is caught by its digest and never held", async () => {
    const piece = randomBytes(pieceLength)
    const server = http.createServer((req, res) => {
      const body = Buffer.from(piece)
      if (req.url!.endsWith("/1")) body[100] ^= 0xff
      res.writeHead(200, { "content-length": body.length })
      res.end(body)
    })
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
    const root = await mkdtemp(path.join(tmpdir(), "damselfly-stage-client-"))
    try {
      const port = (server.address() as AddressInfo).port
      const parent = {
        peerId: "parent/x",
        host: new Host({ id: "parent", ip: "127.0.0.1", port, idc: "", location: "", type: "seed", uploadBandwidth: 1e9, downloadBandwidth: 1e9, uploadSlots: 4 })
      }
      const task = { taskId: "3".repeat(64), url: "http://x/c", contentLength: pieceLength * 2, pieceLength }
      const store = new DiskStore(root)
      await store.openAsync(task)
      const transfer = makeHttpPieceTransfer(undefined, undefined, (taskId, index, body) => store.stage(taskId, index, body))
      const good = await Effect.runPromise(transfer.fetchPiece(parent, task.taskId, 0))
      expect(Buffer.compare(onDisk(store, task.taskId, 0), piece)).toBe(0) // staged while it arrived
      const digest = sha256Hex(piece)
      expect(pieceSha256Hex(good)).toBe(digest)
      await store.writeAsync(task.taskId, 0, good, digest)
      const bad = await Effect.runPromise(transfer.fetchPiece(parent, task.taskId, 1))
      expect(pieceSha256Hex(bad)).not.toBe(digest) // the conductor drops it: no write
      await expect(store.readAsync(task.taskId, 1)).rejects.toThrow(/not held/)
      await store.commitAsync(task.taskId).then(() => expect.fail("committed with piece 1 missing"), (e: Error) => expect(e.message).toMatch(/cannot commit/))
      expect(Buffer.compare(await store.readAsync(task.taskId, 0), piece)).toBe(0)
    } finally {
      server.closeAllConnections()
      await new Promise<void>((r) => server.close(() => r()))
      await rm(root, { recursive: true, force: true })
    }
  })
})
