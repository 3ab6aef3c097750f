// Per-chunk pacing (runtime/bandwidth.ts) in virtual time: the upload path's `pacedBody` streams wait on
// a virtual clock's timers, the bucket reading the same clock, so the figures are exact and the test
// cannot be slowed or sped up by a loaded machine. Real sockets: test/runtime-limits.test.ts.
import { describe, expect, it } from "vitest"
import { chunkFor, pacedBody, readPacer, type Schedule, tokenBucket } from "../runtime/bandwidth.ts"
import { busiestWindow } from "../runtime/testing/harness.ts"

const MiB = 1024 * 1024
const RATE = 8 * MiB
const SIZE = 32 * MiB
const PIECE = 4 * MiB

/** Most bytes sent within any window of `millis` (sends in time order). */
const maxInWindow = (sends: ReadonlyArray<{ readonly at: number; readonly bytes: number }>, millis: number) =>
  busiestWindow([...sends].sort((a, b) => a.at - b.at), millis)

/** Timers in virtual time: `schedule` queues, `run` fires them in time order (letting streams settle between). */
const virtualClock = () => {
  let now = 0
  let seq = 0
  const timers: Array<{ at: number; seq: number; f: () => void; live: boolean }> = []
  const schedule: Schedule = (f, millis) => {
    const t = { at: now + millis, seq: seq++, f, live: true }
    timers.push(t)
    return () => void (t.live = false)
  }
  const settle = () => new Promise<void>((r) => setImmediate(r))
  const run = async (done: () => boolean) => {
    for (;;) {
      await settle()
      const live = timers.filter((t) => t.live)
      if (live.length === 0) break
      const next = live.reduce((a, b) => (a.at < b.at || (a.at === b.at && a.seq < b.seq) ? a : b))
      next.live = false
      timers.splice(timers.indexOf(next), 1)
      now = next.at
      next.f()
    }
    expect(done(), "every paced body ended").toBe(true)
  }
  return { now: () => now, schedule, run, pending: () => timers.filter((t) => t.live).length }
}

/** `pieces` uploads of PIECE bytes at once through one limiter; when each chunk went out. */
const uploadAtOnce = async (pieces: number) => {
  const clock = virtualClock()
  const limiter = tokenBucket(RATE, undefined, clock.now)
  const sends: Array<{ at: number; bytes: number }> = []
  let ended = 0
  for (let i = 0; i < pieces; i++) {
    const body = pacedBody(limiter, new Uint8Array(PIECE), clock.schedule)
    body.on("data", (c: Buffer) => sends.push({ at: clock.now(), bytes: c.length }))
    body.on("end", () => ended++)
  }
  await clock.run(() => ended === pieces)
  return { sends, chunk: limiter.chunk }
}

describe("per-chunk pacing", () => {
  it("32 MiB uploaded as 8 pieces at once at 8 MiB/s: 4 s ± 15%, no 1-s window over the limit by more than one chunk", async () => {
    const { sends, chunk } = await uploadAtOnce(SIZE / PIECE)
    expect(chunk).toBe(chunkFor(RATE))
    expect(sends.reduce((a, s) => a + s.bytes, 0)).toBe(SIZE)
    for (const s of sends) expect(s.bytes).toBeLessThanOrEqual(chunk)
    const seconds = Math.max(...sends.map((s) => s.at)) / 1000
    const worst = maxInWindow(sends, 1000)
    console.log(`[pacing] virtual time: 32 MiB at 8 MiB/s in ${seconds.toFixed(3)} s; busiest 1-s window ${worst} bytes (limit ${RATE} + chunk ${chunk})`)
    expect(seconds).toBeGreaterThanOrEqual(4 * 0.85)
    expect(seconds).toBeLessThanOrEqual(4 * 1.15)
    expect(worst).toBeLessThanOrEqual(RATE + chunk)
    // Smooth below a second too: any 100 ms carries about a tenth of the rate (plus one chunk).
    expect(maxInWindow(sends, 100)).toBeLessThanOrEqual(RATE / 10 + chunk)
  })

  it("a whole piece is not sent at once: the first 100 ms of a 4 MiB upload carry at most 100 ms of the rate plus a chunk", async () => {
    const { sends, chunk } = await uploadAtOnce(1)
    const early = sends.filter((s) => s.at < 100).reduce((a, s) => a + s.bytes, 0)
    expect(early).toBeLessThanOrEqual(RATE / 10 + chunk)
    expect(early).toBeGreaterThan(0)
  })

  it("a paced body destroyed mid-way (the child went away) sends nothing more and leaves no timer behind", async () => {
    const clock = virtualClock()
    const limiter = tokenBucket(RATE, undefined, clock.now)
    const body = pacedBody(limiter, new Uint8Array(PIECE), clock.schedule)
    const got: Array<number> = []
    let closed = false
    let pendingAtClose = -1
    body.on("close", () => {
      closed = true
      pendingAtClose = clock.pending()
    })
    body.on("data", (c: Buffer) => {
      got.push(c.length)
      // Once the next chunk is reserved and waiting for its time.
      if (got.length === 3) setImmediate(() => body.destroy())
    })
    await clock.run(() => closed)
    expect(got.length).toBe(3)
    expect(pendingAtClose, "timers still pending once the body closed").toBe(0)
    expect(got.reduce((a, b) => a + b, 0)).toBeLessThan(PIECE)
  })

  it("readPacer: a reader told to pause after each chunk reads at the rate over any window (chunks of any size, in order)", () => {
    let now = 0
    const limiter = tokenBucket(RATE, undefined, () => now)
    const pace = readPacer(limiter)
    const reads: Array<{ at: number; bytes: number }> = []
    // Node hands a reader chunks of varying size (up to 64 KiB); a fixed pseudo-random sequence.
    let x = 7
    let total = 0
    while (total < SIZE) {
      x = (x * 48271) % 2147483647
      const bytes = Math.min(SIZE - total, 1024 + (x % (64 * 1024)))
      reads.push({ at: now, bytes })
      total += bytes
      now += pace(bytes) // paused this long, then the next chunk is read
    }
    const seconds = now / 1000
    expect(seconds).toBeGreaterThanOrEqual(4 * 0.85)
    expect(seconds).toBeLessThanOrEqual(4 * 1.15)
    expect(maxInWindow(reads, 1000)).toBeLessThanOrEqual(RATE + 64 * 1024 + limiter.chunk)
  })
})
