// storage-gc's eviction plan as a pure function, checked on random stores (fast-check, fixed seed; a
// failure prints its seed and counterexample): tasks in use are never chosen, TTL takes exactly the idle
// ones, watermark evictions go least recently used first and stop as soon as both low watermarks hold
// (or nothing evictable is left). The bandwidth token bucket, on an injected clock.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { tokenBucket } from "../runtime/bandwidth.ts"
import { type GcOptions, planEvictions } from "../runtime/storage-gc.ts"

const NOW = 1_000_000

const task = fc.record({
  bytes: fc.integer({ min: 0, max: 100 }),
  age: fc.integer({ min: 0, max: 1000 }),
  inUse: fc.boolean(),
  complete: fc.boolean()
})

const options = fc.record({
  ttl: fc.option(fc.integer({ min: 1, max: 1000 }), { nil: undefined }),
  quota: fc.option(fc.integer({ min: 1, max: 2000 }), { nil: undefined }),
  high: fc.double({ min: 0, max: 1, noNaN: true }),
  lowShare: fc.double({ min: 0, max: 1, noNaN: true }),
  disk: fc.option(fc.record({ total: fc.integer({ min: 1, max: 5000 }), other: fc.integer({ min: 0, max: 3000 }), high: fc.double({ min: 0, max: 1, noNaN: true }), lowShare: fc.double({ min: 0, max: 1, noNaN: true }) }), { nil: undefined })
})

describe("planEvictions", () => {
  it("never evicts a task in use; TTL exactly; LRU first; stops once under the low watermarks", () => {
    fc.assert(
      fc.property(fc.array(task, { maxLength: 12 }), options, (raw, o) => {
        const tasks = raw.map((t, i) => ({ taskId: `t${String(i).padStart(2, "0")}`, bytes: t.bytes, lastAccess: NOW - t.age, inUse: t.inUse, complete: t.complete }))
        const gc: GcOptions = {
          intervalMillis: 1000,
          ttlMillis: o.ttl,
          quotaBytes: o.quota,
          highWatermark: o.high,
          lowWatermark: o.high * o.lowShare,
          diskHighWatermark: o.disk?.high,
          diskLowWatermark: o.disk === undefined ? undefined : o.disk.high * o.disk.lowShare
        }
        const storeBytes = tasks.reduce((s, t) => s + t.bytes, 0)
        const disk = o.disk === undefined ? undefined : { usedBytes: storeBytes + o.disk.other, totalBytes: Math.max(o.disk.total, storeBytes + o.disk.other) }
        const plan = planEvictions(tasks, NOW, gc, disk)
        const byId = new Map(tasks.map((t) => [t.taskId, t]))
        const evicted = new Set(plan.map((e) => e.taskId))
        expect(evicted.size).toBe(plan.length) // each at most once
        for (const e of plan) expect(byId.get(e.taskId)!.inUse).toBe(false)
        // TTL: exactly the idle tasks not in use.
        const idle = tasks.filter((t) => !t.inUse && gc.ttlMillis !== undefined && NOW - t.lastAccess > gc.ttlMillis).map((t) => t.taskId)
        expect(plan.filter((e) => e.reason === "ttl").map((e) => e.taskId).sort()).toEqual(idle.sort())
        // Watermark evictions: least recently used first among what TTL left.
        const wm = plan.filter((e) => e.reason === "watermark").map((e) => byId.get(e.taskId)!)
        for (let i = 1; i < wm.length; i++) expect(wm[i - 1].lastAccess).toBeLessThanOrEqual(wm[i].lastAccess)
        const keptEvictable = tasks.filter((t) => !t.inUse && !evicted.has(t.taskId))
        if (wm.length > 0) for (const k of keptEvictable) expect(k.lastAccess).toBeGreaterThanOrEqual(wm[wm.length - 1].lastAccess)
        // After the plan: under both low watermarks, or nothing evictable left; and not one eviction more than needed.
        const freed = plan.reduce((s, e) => s + e.bytes, 0)
        const underLow = (extra: number) =>
          (gc.quotaBytes === undefined || storeBytes - freed + extra <= gc.lowWatermark * gc.quotaBytes || storeBytes - plan.filter((e) => e.reason === "ttl").reduce((s, e) => s + e.bytes, 0) <= gc.highWatermark * gc.quotaBytes) &&
          (disk === undefined || gc.diskHighWatermark === undefined || disk.usedBytes - freed + extra <= gc.diskLowWatermark! * disk.totalBytes || disk.usedBytes - plan.filter((e) => e.reason === "ttl").reduce((s, e) => s + e.bytes, 0) <= gc.diskHighWatermark * disk.totalBytes)
        if (keptEvictable.length > 0) expect(underLow(0)).toBe(true)
        if (wm.length > 0) expect(underLow(wm[wm.length - 1].bytes)).toBe(false)
      }),
      { seed: 4242, numRuns: 2000, verbose: 1 }
    )
  })
})

describe("tokenBucket", () => {
  it("admits the burst at once, then exactly `rate` bytes per second, in call order; refills while idle up to the burst", () => {
    let t = 0
    const bucket = tokenBucket(1000, 100, () => t)
    expect(bucket.reserve(0)).toBe(0)
    t = 1000 // idle for a second: the bucket holds its burst (100), not 1000
    expect(bucket.reserve(100)).toBe(0)
    expect(bucket.reserve(500)).toBe(500) // in debt: 500 bytes at 1000 B/s
    expect(bucket.reserve(500)).toBe(1000) // queued behind the first
    t = 1500
    expect(bucket.reserve(250)).toBe(750)
    // Over any long stretch the admitted bytes never exceed rate × time + burst.
    fc.assert(
      fc.property(fc.array(fc.record({ gap: fc.integer({ min: 0, max: 2000 }), bytes: fc.integer({ min: 1, max: 5000 }) }), { minLength: 1, maxLength: 50 }), (steps) => {
        let now = 0
        const b = tokenBucket(1000, 100, () => now)
        let lastSent = 0
        let total = 0
        for (const s of steps) {
          now += s.gap
          const wait = b.reserve(s.bytes)
          lastSent = Math.max(lastSent, now + wait)
          total += s.bytes
        }
        // All the bytes are sent by lastSent; the bucket cannot have paid for more than this.
        expect(total).toBeLessThanOrEqual(1000 * (lastSent / 1000) + 100 + 1e-6)
      }),
      { seed: 7, numRuns: 500, verbose: 1 }
    )
  })
})
