import { createHash } from "node:crypto"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { fixed3, Trace } from "../sim/trace.ts"

// A line: plain text, or parts (text and integers) written straight into the trace's buffer.
const part = fc.oneof(fc.string({ maxLength: 90, unit: "binary" }), fc.string({ maxLength: 20 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.constantFrom(-1, 1.5, 1e21, -0, NaN))
const line = fc.record({ time: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1e7, noNaN: true })), parts: fc.array(part, { maxLength: 6 }), whole: fc.boolean() })

describe("Trace", () => {
  it("hashes exactly the UTF-8 of `${time.toFixed(3)} ${line}\\n` per line, whether a line is recorded whole or in parts", () => {
    fc.assert(
      fc.property(fc.array(line, { maxLength: 300 }), (lines) => {
        const seen: Array<string> = []
        const trace = new Trace((l) => seen.push(l))
        let expected = ""
        for (const l of lines) {
          const text = l.parts.map((p) => (typeof p === "number" ? `${p}` : p)).join("")
          expected += `${l.time.toFixed(3)} ${text}\n`
          if (l.whole) trace.record(l.time, text)
          else {
            const t = trace.begin(l.time, l.parts.reduce<number>((n, p) => n + (typeof p === "number" ? 24 : p.length), 0))
            for (const p of l.parts) typeof p === "number" ? t.int(p) : t.text(p)
            t.end()
          }
        }
        expect(seen.join("")).toBe(expected)
        expect(trace.lines).toBe(lines.length)
        expect(trace.finish()).toBe(createHash("sha256").update(expected).digest("hex"))
      }),
      { seed: 11, numRuns: 200, verbose: 1 }
    )
  })

  it("formats times exactly as `${time.toFixed(3)} ` (fixed3), near ties and at the ends of its fast path too", () => {
    const out = new Uint8Array(32)
    const text = (x: number) => String.fromCharCode(...out.subarray(0, fixed3(x, out)))
    // The doubles next to x (its neighbours in the binary format).
    const view = new DataView(new ArrayBuffer(8))
    const step = (x: number, by: number) => {
      view.setFloat64(0, x)
      view.setBigInt64(0, view.getBigInt64(0) + BigInt(by))
      return view.getFloat64(0)
    }
    const near = (x: number) => [-2, -1, 0, 1, 2].map((d) => step(x, d)).filter((v) => v > 0)
    const special = [0, -0, -1, -0.0004, 0.0005, 0.0625, 0.1875, 1.0005, 2.5e-4, 62.5, 1e21, 9.99e20, NaN, Infinity, -Infinity, 2 ** 40 / 1000, 2 ** 31, Number.MAX_SAFE_INTEGER, 5e-324]
    // Exact ties (x·1000 = n + 1/2 exactly: dyadic thousandths such as 0.0625) and their neighbours.
    const ties = Array.from({ length: 200 }, (_, k) => (125 * (2 * k + 1)) / 2000 * 2 ** (k % 20))
    const cases = [...special, ...special.flatMap((x) => (x > 0 && Number.isFinite(x) ? near(x) : [])), ...ties.flatMap(near)]
    for (const x of cases) expect([x, text(x)]).toEqual([x, `${x.toFixed(3)} `])
    fc.assert(
      fc.property(fc.oneof(fc.double({ min: 0, max: 1e7, noNaN: true }), fc.double({ min: 0, max: 2e9, noNaN: true }), fc.integer({ min: 0, max: 10_000_000 }).map((n) => n / 1000), fc.integer({ min: 0, max: 10_000_000 }).map((n) => (n + 0.5) / 1000)), (x) => {
        for (const v of near(x).concat([x])) expect([v, text(v)]).toEqual([v, `${v.toFixed(3)} `])
      }),
      { seed: 12, numRuns: 2000 }
    )
  })

  it("writes integers as String(n) around every power of ten and the int32 limit", () => {
    const trace = new Trace()
    let expected = ""
    const values = [0, 1, 9, 2 ** 31 - 1, 2 ** 31, 2 ** 32, Number.MAX_SAFE_INTEGER]
    for (let p = 1; p <= 15; p++) values.push(10 ** p - 1, 10 ** p, 10 ** p + 1)
    for (const v of values) {
      trace.begin(1, 24).int(v).end()
      expected += `1.000 ${v}\n`
    }
    expect(trace.finish()).toBe(createHash("sha256").update(expected).digest("hex"))
  })

  it("takes lines longer than its buffer", () => {
    const trace = new Trace()
    const long = "x".repeat(3 << 20)
    trace.record(1, "a")
    trace.record(2, long)
    expect(trace.finish()).toBe(createHash("sha256").update(`1.000 a\n2.000 ${long}\n`).digest("hex"))
  })
})
