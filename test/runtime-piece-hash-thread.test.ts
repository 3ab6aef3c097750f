// The piece hash thread (runtime/piece-hash-thread.ts): whatever the pattern of updates, and however
// many bodies are hashed at once, the digest is node:crypto's sha256 of exactly the body's bytes —
// on the worker for shared (pooled) buffers, in the calling thread for others.
import { createHash, randomFillSync } from "node:crypto"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { PieceBufferPool } from "../runtime/piece-buffer-pool.ts"
import { startPieceHash, stopPieceHashThread } from "../runtime/piece-hash-thread.ts"

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

/** A body of `length` random bytes, in shared memory or not, at a non-zero offset when `offset`. */
const bodyOf = (length: number, shared: boolean, offset: number) => {
  const memory = shared ? new SharedArrayBuffer(length + offset) : new ArrayBuffer(length + offset)
  const body = Buffer.from(memory, offset, length)
  randomFillSync(body)
  return body
}

/** Feeds `body` as a piece client does: bytes arrive in chunks, each `update` after its chunk is final. */
const hashInChunks = (body: Buffer, cuts: ReadonlyArray<number>) => {
  const h = startPieceHash(body)
  for (const cut of [...new Set(cuts.map((c) => c % (body.length + 1)))].sort((a, b) => a - b)) h.update(cut)
  return h.digest(body.length)
}

describe("piece hash thread", () => {
  it("answers the sha256 of exactly the body, for any chunking, shared or not, many bodies at once", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            length: fc.integer({ min: 0, max: 3 * 1024 * 1024 }),
            shared: fc.boolean(),
            offset: fc.integer({ min: 0, max: 64 }),
            cuts: fc.array(fc.integer({ min: 0, max: 4 * 1024 * 1024 }), { maxLength: 40 })
          }),
          { minLength: 1, maxLength: 6 }
        ),
        async (bodies) => {
          const made = bodies.map((b) => ({ ...b, body: bodyOf(b.length, b.shared, b.offset) }))
          // All started before any digest is asked for: the worker interleaves their updates.
          const digests = await Promise.all(made.map((b) => hashInChunks(b.body, b.cuts)))
          made.forEach((b, i) => expect(digests[i], `body ${i} (${b.length} bytes, shared ${b.shared})`).toBe(sha256(b.body)))
        }
      ),
      { seed: 4242, numRuns: 40 }
    )
  })

  it("hashes pooled piece buffers (shared memory) on the worker, and a dropped body leaves the next ones right", async () => {
    const pool = new PieceBufferPool(64 * 1024 * 1024)
    const a = pool.take(4 * 1024 * 1024)
    expect(a.buffer).toBeInstanceOf(SharedArrayBuffer)
    randomFillSync(a)
    const dropped = startPieceHash(a)
    dropped.update(1024 * 1024)
    dropped.drop()
    const b = pool.take(4 * 1024 * 1024)
    randomFillSync(b)
    const h = startPieceHash(b)
    h.update(2 * 1024 * 1024)
    expect(await h.digest(b.length)).toBe(sha256(b))
    // A byte changed after hashing changes nothing already answered, and a new hash sees it.
    b[0]! ^= 0xff
    expect(await hashInChunks(b, [777])).toBe(sha256(b))
  })

  it("bodies longer than one update batch (4 MiB) are hashed as they arrive, interleaved with whole ones and a dropped one", async () => {
    const MiB = 1024 * 1024
    const long = bodyOf(10 * MiB + 5, true, 3)
    const dropped = bodyOf(9 * MiB, true, 0)
    const whole = bodyOf(4 * MiB, true, 0)
    const hLong = startPieceHash(long)
    const hDropped = startPieceHash(dropped)
    const hWhole = startPieceHash(whole)
    hLong.update(1 * MiB)
    hDropped.update(4 * MiB + 1)
    hLong.update(4 * MiB + 17)
    hWhole.update(2 * MiB)
    hDropped.update(8 * MiB)
    hDropped.drop()
    hLong.update(9 * MiB)
    const [a, c] = await Promise.all([hLong.digest(long.length), hWhole.digest(whole.length)])
    expect(a).toBe(sha256(long))
    expect(c).toBe(sha256(whole))
    // A byte of the long body changed: a new hash, fed differently, sees it.
    long[5 * MiB]! ^= 0xff
    expect(await hashInChunks(long, [4 * MiB + 1, 8 * MiB + 2])).toBe(sha256(long))
  })

  // Last: the worker stays stopped for the rest of this file.
  it("when the worker dies, a digest awaited from it fails (never a wrong one), and later bodies are hashed in this thread", async () => {
    const body = bodyOf(3 * 1024 * 1024, true, 0)
    const h = startPieceHash(body)
    h.update(2 * 1024 * 1024)
    await stopPieceHashThread()
    await expect(h.digest(body.length)).rejects.toThrow(/sha256 worker/)
    const again = bodyOf(3 * 1024 * 1024, true, 0)
    expect(await hashInChunks(again, [1, 1024 * 1024 + 3])).toBe(sha256(again))
  })
})
