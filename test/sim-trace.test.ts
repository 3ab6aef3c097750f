import { createHash } from "node:crypto"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { Trace } from "../sim/trace.ts"

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

  it("takes lines longer than its buffer", () => {
    const trace = new Trace()
    const long = "x".repeat(3 << 20)
    trace.record(1, "a")
    trace.record(2, long)
    expect(trace.finish()).toBe(createHash("sha256").update(`1.000 a\n2.000 ${long}\n`).digest("hex"))
  })
})
