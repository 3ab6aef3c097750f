// SHA-256 of piece bodies on a worker thread, fed while the body arrives. Why: on the downloading
// daemon's main thread the hash was the largest single cost (~0.6–0.7 CPU-s/GiB of 1.2–1.4, perf: SHA-NI
// `sha256_block_data_order_shaext`), and that thread also receives, stages to disk and runs the
// conductor; moved here it runs on the other core. A 1 GiB loopback receive measured main-thread CPU
// 1.1–1.2 s hashed in place against 0.46–0.50 s hashed here (the worker ~0.6 s); hashing a whole piece
// once it is in cost the worker the same as chunk by chunk, so updates are batched (`BATCH_BYTES`).
//
// The bytes are shared, not copied: piece buffers from runtime/piece-buffer-pool.ts live in
// SharedArrayBuffers, and the worker reads a range only after the socket has filled it; nothing writes
// to a piece buffer again before its digest is in (the piece client hands the body over only then). A
// buffer that is not shared (an unpooled one), or a worker that failed, is hashed in the calling thread.
// The worker's code is plain JavaScript evaluated in place, so it needs no loader and no file path.
import { createHash } from "node:crypto"
import { Worker } from "node:worker_threads"

/** One body's hash, fed in order from byte 0. */
export interface PieceHash {
  /** Bytes [0, to) of the body are final: hash them (at the worker's pace). */
  update(to: number): void
  /** The sha256 hex of bytes [0, length); call once, after the last update. */
  digest(length: number): Promise<string>
  /** The body is abandoned: no digest will be asked for. */
  drop(): void
}

/**
 * Updates are posted at least this many bytes apart (fewer messages; the hash costs the same cold). A
 * body of at most this size (a default 4 MiB piece) is hashed whole at its digest, in one message each
 * way instead of six: every message is a wake-up of the worker (and of this thread for the answer), and
 * on a 2-core machine shared by two daemons those context switches are what costs.
 */
const BATCH_BYTES = 4 * 1024 * 1024

// Messages, as small arrays: [START, id, sab, byteOffset, byteLength], [UPDATE, id, from, to],
// [DIGEST, id, from, to] (answered with [id, hex]), [DROP, id], and for a body never updated before
// its digest (one message instead of two) [WHOLE, id, sab, byteOffset, byteLength] (answered as DIGEST);
// a failing job is answered [id, null, message].
const START = 0
const UPDATE = 1
const DIGEST = 2
const DROP = 3
const WHOLE = 4

const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads")
const { createHash } = require("node:crypto")
const jobs = new Map()
parentPort.on("message", (m) => {
  const id = m[1]
  try {
    if (m[0] === ${START}) return void jobs.set(id, { view: new Uint8Array(m[2], m[3], m[4]), hash: createHash("sha256") })
    if (m[0] === ${WHOLE}) return void parentPort.postMessage([id, createHash("sha256").update(new Uint8Array(m[2], m[3], m[4])).digest("hex")])
    if (m[0] === ${DROP}) return void jobs.delete(id)
    const job = jobs.get(id)
    if (job === undefined) return void (m[0] === ${DIGEST} && parentPort.postMessage([id, null, "unknown job"]))
    if (m[3] > m[2]) job.hash.update(job.view.subarray(m[2], m[3]))
    if (m[0] === ${DIGEST}) {
      jobs.delete(id)
      parentPort.postMessage([id, job.hash.digest("hex")])
    }
  } catch (e) {
    jobs.delete(id)
    if (m[0] === ${DIGEST}) parentPort.postMessage([id, null, String(e)])
  }
})
`

interface Waiter {
  resolve: (hex: string) => void
  reject: (e: Error) => void
}

class HashThread {
  private worker: Worker | undefined
  /** Set once the worker failed: everything is hashed in the calling thread from then on. */
  private failed = false
  private nextId = 0
  private readonly waiting = new Map<number, Waiter>()

  private ensure(): Worker | undefined {
    if (this.failed) return undefined
    if (this.worker !== undefined) return this.worker
    try {
      const w = new Worker(WORKER_SOURCE, { eval: true, name: "piece-sha256" })
      // Keeps the process alive only while a digest is awaited.
      w.unref()
      w.on("message", (m: [number, string | null, string?]) => {
        const waiter = this.waiting.get(m[0])
        this.waiting.delete(m[0])
        if (this.waiting.size === 0) w.unref()
        if (m[1] === null) waiter?.reject(new Error(`sha256 worker: ${m[2]}`))
        else waiter?.resolve(m[1])
      })
      const fail = (why: string) => {
        this.failed = true
        this.worker = undefined
        for (const w of this.waiting.values()) w.reject(new Error(`sha256 worker: ${why}`))
        this.waiting.clear()
      }
      w.on("error", (e) => fail(e.message))
      w.on("exit", (code) => fail(`exited with code ${code}`))
      this.worker = w
      return w
    } catch {
      this.failed = true
      return undefined
    }
  }

  /** Stops the worker as if it had died; waits for its exit to be handled. */
  async stop(): Promise<void> {
    const w = this.worker
    if (w === undefined) return
    const exited = new Promise((r) => w.once("exit", r))
    await w.terminate()
    await exited
  }

  start(body: Uint8Array): PieceHash {
    const w = body.buffer instanceof SharedArrayBuffer ? this.ensure() : undefined
    if (w === undefined) return inThread(body)
    const id = this.nextId++
    /** START is posted with the first update: a body that needs none goes over in one WHOLE message. */
    let started = false
    let posted = 0
    let done = false
    return {
      update: (to) => {
        if (done || to - posted < BATCH_BYTES) return
        // A worker that failed since: its jobs are rejected at `digest`.
        if (!started) this.worker?.postMessage([START, id, body.buffer, body.byteOffset, body.byteLength])
        started = true
        this.worker?.postMessage([UPDATE, id, posted, to])
        posted = to
      },
      digest: (length) => {
        done = true
        const worker = this.worker
        if (worker === undefined) return Promise.reject(new Error("sha256 worker: not running"))
        return new Promise<string>((resolve, reject) => {
          if (this.waiting.size === 0) worker.ref()
          this.waiting.set(id, { resolve, reject })
          if (started) worker.postMessage([DIGEST, id, posted, length])
          else worker.postMessage([WHOLE, id, body.buffer, body.byteOffset, length])
        })
      },
      drop: () => {
        if (done) return
        done = true
        if (started) this.worker?.postMessage([DROP, id])
      }
    }
  }
}

const inThread = (body: Uint8Array): PieceHash => {
  const hash = createHash("sha256")
  let hashed = 0
  return {
    update: (to) => {
      hash.update(body.subarray(hashed, to))
      hashed = to
    },
    digest: (length) => {
      if (length > hashed) hash.update(body.subarray(hashed, length))
      return Promise.resolve(hash.digest("hex"))
    },
    drop: () => {}
  }
}

const thread = new HashThread()

/** Starts hashing `body` (on the worker when it is shared memory, else here), fed with `update`. */
export const startPieceHash = (body: Uint8Array): PieceHash => thread.start(body)

/** TEST ONLY: stops the worker as if it had died (digests awaited then fail; later bodies are hashed here). */
export const stopPieceHashThread = (): Promise<void> => thread.stop()
