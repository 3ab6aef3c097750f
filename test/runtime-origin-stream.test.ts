// The origin streamed: pieces asked for in order come from one ranged GET (runtime/origin-stream.ts through
// runtime/http-origin.ts), byte-exact, with nothing fetched past the run; a piece out of order opens a new
// stream; an origin that does not answer the range exactly is asked per piece; a stalled one fails the read.
import { createHash, randomBytes } from "node:crypto"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Origin } from "../core/services/piece-transfer.ts"
import { httpOrigin } from "../runtime/http-origin.ts"

const PIECE = 256 * 1024
const PIECES = 12
const content = randomBytes(PIECE * PIECES)
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

/** A range-serving origin that counts GETs and body bytes; `mode` changes how it answers. */
let mode: "ranges" | "whole" | "stall" = "ranges"
let gets = 0
let sent = 0
const server = http.createServer((req, res) => {
  gets++
  const m = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers.range ?? ""))
  if (mode === "whole" || m === null) {
    res.writeHead(200, { "content-length": content.length })
    sent += content.length
    return res.end(content)
  }
  const start = Number(m[1])
  const end = Math.min(Number(m[2]), content.length - 1)
  const body = content.subarray(start, end + 1)
  res.writeHead(206, { "content-range": `bytes ${start}-${end}/${content.length}`, "content-length": body.length })
  if (mode === "stall") {
    // Half a piece, then silence (the socket stays open).
    const half = body.subarray(0, PIECE / 2)
    sent += half.length
    res.write(half)
    return
  }
  // Count what the socket took, as it takes it: a stream closed early must not be counted whole.
  let off = 0
  const pump = () => {
    while (off < body.length) {
      const chunk = body.subarray(off, off + 16 * 1024)
      off += chunk.length
      sent += chunk.length
      if (!res.write(chunk)) return res.once("drain", pump)
    }
    res.end()
  }
  pump()
})
let url = ""

beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/blob`
})
afterAll(() => {
  server.closeAllConnections()
  server.close()
})

const run = <A, E>(e: Effect.Effect<A, E, Origin>) => Effect.runPromise(Effect.provide(e, httpOrigin(1_000)))
const fetchPiece = (i: number, runEnd?: number) =>
  Origin.use((o) => o.fetchRange({ url, headers: {} }, i * PIECE, PIECE, runEnd))
const reset = (m: typeof mode) => {
  mode = m
  gets = 0
  sent = 0
}

describe("origin streams", () => {
  it("serves pieces asked for in order, two at a time, from one GET, and fetches nothing past the run", async () => {
    reset("ranges")
    const runEnd = 10 * PIECE
    const pieces = await run(Effect.gen(function*() {
      const out: Array<Uint8Array> = []
      // Like a seed with two origin pieces in flight: each next piece is asked for as one arrives.
      for (let i = 0; i < 10; i += 2) {
        const [a, b] = yield* Effect.all([fetchPiece(i, runEnd), fetchPiece(i + 1, runEnd)], { concurrency: 2 })
        out.push(a, b)
      }
      return out
    }))
    expect(pieces.map(sha)).toEqual(Array.from({ length: 10 }, (_, i) => sha(content.subarray(i * PIECE, (i + 1) * PIECE))))
    expect(gets).toBe(1)
    expect(sent).toBe(runEnd)
  })

  it("opens another stream for a piece out of order, and each piece is still exact", async () => {
    reset("ranges")
    const [a, b, c] = await run(Effect.gen(function*() {
      const a = yield* fetchPiece(0, PIECES * PIECE)
      const b = yield* fetchPiece(7, PIECES * PIECE)
      const c = yield* fetchPiece(1, PIECES * PIECE)
      return [a, b, c]
    }))
    expect(sha(a)).toBe(sha(content.subarray(0, PIECE)))
    expect(sha(b)).toBe(sha(content.subarray(7 * PIECE, 8 * PIECE)))
    expect(sha(c)).toBe(sha(content.subarray(PIECE, 2 * PIECE)))
    expect(gets).toBe(2)
  })

  it("asks per piece when the origin answers a range with the whole file, and refuses a piece past the first", async () => {
    reset("whole")
    const first = await run(fetchPiece(0, PIECES * PIECE).pipe(Effect.result))
    // The stream's GET (a 200, refused before its body is read), then piece 0 alone: a 200 of exactly that length only at offset 0 would do, and this is the whole file.
    expect(first._tag).toBe("Failure")
    if (first._tag === "Failure") expect(first.failure.message).toMatch(/does not cover exactly the range/)
    const later = await run(fetchPiece(3, PIECES * PIECE).pipe(Effect.result))
    expect(later._tag).toBe("Failure")
  })

  it("fails the read when the origin stalls mid-piece, within the idle timeout", async () => {
    reset("stall")
    const started = Date.now()
    const r = await run(fetchPiece(0, 4 * PIECE).pipe(Effect.result))
    expect(r._tag).toBe("Failure")
    if (r._tag === "Failure") expect(r.failure.message).toMatch(/no data for 1000 ms/)
    expect(Date.now() - started).toBeLessThan(5_000)
  })

  it("without a run (a peer with parents), asks for the piece alone", async () => {
    reset("ranges")
    const p = await run(fetchPiece(5))
    expect(sha(p)).toBe(sha(content.subarray(5 * PIECE, 6 * PIECE)))
    expect(gets).toBe(1)
    expect(sent).toBe(PIECE)
  })
})
