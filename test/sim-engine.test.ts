import { Clock, Effect, Exit, Random } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { SimEngine } from "../sim/engine.ts"
import { EventQueue } from "../sim/event-queue.ts"

const check = <T>(prop: fc.IProperty<T>, numRuns = 100) => {
  const out = fc.check(prop, { seed: 42, numRuns })
  if (out.failed) console.error(`fast-check failed: seed ${out.seed}, path ${out.counterexamplePath}, counterexample ${fc.stringify(out.counterexample)}`)
  fc.assert(prop, { seed: 42, numRuns })
}

describe("EventQueue", () => {
  it("pops in (time, sequence) order", () => {
    check(fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 300 }), (times) => {
      const q = new EventQueue()
      times.forEach((t) => q.push(t, () => {}))
      const popped: Array<[number, number]> = []
      for (let ev = q.pop(); ev !== undefined; ev = q.pop()) popped.push([ev.time, ev.seq])
      const expected = times.map((t, i) => [t, i] as [number, number]).sort((a, b) => a[0] - b[0] || a[1] - b[1])
      expect(popped).toEqual(expected)
    }))
  })

  it("pops in (time, sequence) order through pushes, cancels, moves and pops interleaved", () => {
    // Against a sorted list as the model: a moved event takes a new sequence number, a cancelled or
    // popped one is gone (a stale id is ignored).
    const op = fc.oneof(
      fc.record({ kind: fc.constant("push" as const), time: fc.integer({ min: 0, max: 30 }) }),
      fc.record({ kind: fc.constant("cancel" as const), pick: fc.nat() }),
      fc.record({ kind: fc.constant("move" as const), pick: fc.nat(), time: fc.integer({ min: 0, max: 30 }) }),
      fc.record({ kind: fc.constant("pop" as const) })
    )
    check(fc.property(fc.array(op, { maxLength: 400 }), (ops) => {
      const q = new EventQueue()
      const ids: Array<number> = []
      let model: Array<{ time: number; seq: number; id: number }> = []
      let seq = 0
      const byKey = (a: { time: number; seq: number }, b: { time: number; seq: number }) => a.time - b.time || a.seq - b.seq
      for (const o of ops) {
        if (o.kind === "push") {
          const id = q.push(o.time, () => {})
          ids.push(id)
          model.push({ time: o.time, seq: seq++, id })
        } else if (o.kind === "cancel" || o.kind === "move") {
          if (ids.length === 0) continue
          const id = ids[o.pick % ids.length]
          const live = model.find((e) => e.id === id)
          if (o.kind === "cancel") {
            q.cancel(id)
            model = model.filter((e) => e.id !== id)
          } else {
            expect(q.move(id, o.time)).toBe(live !== undefined)
            if (live !== undefined) {
              live.time = o.time
              live.seq = seq++
            }
          }
        } else {
          const ev = q.pop()
          model.sort(byKey)
          const want = model.shift()
          expect(ev === undefined ? undefined : [ev.time, ev.seq]).toEqual(want === undefined ? undefined : [want.time, want.seq])
        }
        expect(q.size).toBe(model.length)
      }
      model.sort(byKey)
      for (const want of model) {
        const ev = q.pop()
        expect(ev === undefined ? undefined : [ev.time, ev.seq]).toEqual([want.time, want.seq])
      }
      expect(q.pop()).toBeUndefined()
    }), 200)
  })
})

describe("SimEngine", () => {
  it("runs fixed-delay lanes and agenda events together in (time, scheduling order)", () => {
    check(fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 5 })), { maxLength: 200 }), (ops) => {
      const engine = new SimEngine(1)
      const ran: Array<[number, number]> = []
      const expected: Array<[number, number, number]> = []
      // Scheduled from events at increasing times, as a run does (lanes need nondecreasing now).
      ops.forEach(([fixed, delay, startAt], k) => {
        engine.at(startAt, () => {
          const label = k
          expected.push([engine.now + delay * 2, expected.length, label])
          if (fixed) engine.afterFixed(delay * 2, (l: number) => ran.push([engine.now, l]), label)
          else engine.after(delay * 2, () => ran.push([engine.now, label]))
        })
      })
      engine.run()
      const order = expected.sort((a, b) => a[0] - b[0] || a[1] - b[1]).map(([t, , l]) => [t, l])
      expect(ran).toEqual(order)
    }))
  })

  it("wakes virtual sleeps in order of (wake time, sleep order) and reads virtual time", () => {
    check(fc.property(fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 1, maxLength: 40 }), (delays) => {
      const engine = new SimEngine(1)
      const woke: Array<[number, number]> = []
      delays.forEach((d, i) =>
        engine.fork(Effect.gen(function*() {
          yield* Effect.sleep(d)
          woke.push([i, yield* Clock.currentTimeMillis])
        })))
      engine.run()
      // A sleep of 0 only yields, so those fibers wake first, in fork order; then by wake time.
      const expected = delays.map((d, i) => [i, d] as [number, number]).sort((a, b) => a[1] - b[1] || a[0] - b[0])
      expect(woke).toEqual(expected)
      expect(engine.now).toBe(Math.max(...delays))
    }), 50)
  })

  it("runs Effect.timeout in virtual time", () => {
    const engine = new SimEngine(1)
    const slow = engine.fork(Effect.sleep(1000).pipe(Effect.timeout(50), Effect.exit, Effect.zip(Clock.currentTimeMillis)))
    const fast = engine.fork(Effect.sleep(20).pipe(Effect.as("done"), Effect.timeout(50), Effect.zip(Clock.currentTimeMillis)))
    engine.run()
    const value = <A>(exit: Exit.Exit<A, unknown> | undefined): A => {
      if (exit === undefined || !Exit.isSuccess(exit)) throw new Error(`fiber did not succeed: ${String(exit)}`)
      return exit.value
    }
    const [slowExit, slowAt] = value(slow.pollUnsafe())
    expect(Exit.isFailure(slowExit)).toBe(true)
    expect(slowAt).toBe(50)
    expect(value(fast.pollUnsafe())).toEqual(["done", 20])
    // The cancelled 1000 ms sleep left no work behind that moves time on.
    expect(engine.now).toBe(50)
  })

  it("many fibers sleeping in loops finish at the expected virtual time", () => {
    const engine = new SimEngine(1)
    let total = 0
    for (let f = 0; f < 50; f++) {
      engine.fork(Effect.gen(function*() {
        for (let i = 0; i < 100; i++) {
          yield* Effect.sleep(f + 1)
          total++
        }
      }))
    }
    engine.run()
    expect(total).toBe(5000)
    expect(engine.now).toBe(5000)
    expect(engine.events).toBe(5000)
  })

  it("draws the same random stream for the same seed, another for another seed", () => {
    const draw = (seed: number) => {
      const engine = new SimEngine(seed)
      const out: Array<number> = []
      engine.fork(Effect.gen(function*() {
        for (let i = 0; i < 5; i++) {
          yield* Effect.sleep(1)
          out.push(yield* Random.nextInt)
        }
      }))
      engine.run()
      return out
    }
    expect(draw(7)).toEqual(draw(7))
    expect(draw(7)).not.toEqual(draw(8))
  })

  it("stops at a time limit and resumes where it stopped", () => {
    const engine = new SimEngine(1)
    const seen: Array<number> = []
    for (const t of [10, 20, 30]) engine.at(t, () => seen.push(engine.now))
    engine.run({ untilMillis: 15 })
    expect(seen).toEqual([10])
    expect(engine.now).toBe(15)
    engine.run()
    expect(seen).toEqual([10, 20, 30])
  })
})
