// Piece-sized buffers reused from one piece to the next, on both sides of a transfer: the piece client
// receives a body into one (runtime/piece-client.ts; shared memory, so the piece hash thread reads it
// in place), the disk store gives it back once the piece is on
// disk (runtime/disk-store.ts), and the upload server reads a piece into one and gives it back once
// Node has finished writing the response (runtime/upload-server.ts).
//
// Why: a fresh 4 MiB buffer per piece is external memory that makes V8 run a full GC every few pieces
// (each one marking the daemon's whole heap), and every fresh buffer's pages are faulted in anew; in
// the throughput bench (runtime/testing/bench-throughput.ts) that was most of the downloading daemon's
// CPU — the kernel's copy out of a fresh buffer into the page cache alone cost several times more than
// out of a reused one.
//
// Ownership is the whole contract: whoever holds a buffer taken here gives it back only when nothing can
// read or fill it any more, or drops it (the GC then frees it — always safe). The pool refuses what it
// did not hand out and what it already holds, so a view, a caller's own buffer, or a second give of
// the same buffer can never end up with two owners.
import { forgetDigest } from "./node-sha256.ts"

/** Free buffers are dropped after this long without a `take`, so an idle daemon holds no spare memory. */
const IDLE_TRIM_MILLIS = 30_000

export class PieceBufferPool {
  private readonly free = new Map<number, Array<Buffer>>()
  /** Every buffer this pool handed out (so only those come back) … */
  private readonly issued = new WeakSet<Buffer>()
  /** … and those sitting in `free` now (so none is given back twice). */
  private readonly idle = new WeakSet<Buffer>()
  private keptBytes = 0
  private trimTimer: NodeJS.Timeout | undefined

  /** `maxBytes`: free buffers kept at most; buffers larger than this are never kept. */
  constructor(readonly maxBytes: number) {}

  /** A buffer of exactly `length` bytes, with arbitrary content; the caller owns it. */
  take(length: number): Buffer {
    const b = this.free.get(length)?.pop()
    this.scheduleTrim()
    if (b === undefined) {
      // Its own memory (never a slice of Node's shared pool), so it can be kept; shared, so the piece
      // hash thread (runtime/piece-hash-thread.ts) reads a body where it arrived, without a copy.
      const fresh = Buffer.from(new SharedArrayBuffer(length))
      this.issued.add(fresh)
      return fresh
    }
    this.idle.delete(b)
    this.keptBytes -= b.length
    // A digest remembered for its previous content must never answer for the next (runtime/node-sha256.ts).
    forgetDigest(b)
    return b
  }

  /** Gives back a buffer from `take` that nothing reads or fills any more; false if not kept. */
  give(b: Uint8Array): boolean {
    if (!Buffer.isBuffer(b) || !this.issued.has(b) || this.idle.has(b)) return false
    if (this.keptBytes + b.length > this.maxBytes) return false
    const list = this.free.get(b.length)
    if (list === undefined) this.free.set(b.length, [b])
    else list.push(b)
    this.idle.add(b)
    this.keptBytes += b.length
    return true
  }

  /** Bytes of free buffers held now. */
  get freeBytes(): number {
    return this.keptBytes
  }

  private scheduleTrim() {
    if (this.trimTimer !== undefined) this.trimTimer.refresh()
    else {
      this.trimTimer = setTimeout(() => this.trim(), IDLE_TRIM_MILLIS)
      this.trimTimer.unref()
    }
  }

  /** Drops every free buffer (the GC reclaims them). */
  trim() {
    for (const list of this.free.values()) for (const b of list) this.idle.delete(b)
    this.free.clear()
    this.keptBytes = 0
  }
}

/**
 * The daemon's one pool: a piece received from a parent is given back by the disk store, and the same
 * buffers serve uploads. 16 pieces of the default 4 MiB: the default 8 fetches in flight plus the disk
 * store's 8 pending writes.
 */
export const pieceBuffers = new PieceBufferPool(64 * 1024 * 1024)
