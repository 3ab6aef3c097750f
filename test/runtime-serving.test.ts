// Serving content from a daemon with real processes: Range requests answered from the pieces, bytes
// streamed to the client while the download is still under way, the direct path for small content
// (no scheduler), a download failing mid-stream aborting the answer, and prefetch after a range.
import { createHash } from "node:crypto"
import { readFile } from "node:fs/promises"
import * as http from "node:http"
import * as path from "node:path"
import fc from "fast-check"
import { beforeAll, describe, expect, it } from "vitest"
import { resolveRange } from "../runtime/byte-range.ts"
import { assertSound, damselfly, getJson, type Proc, rawRequest, startDaemon, startScheduler, waitFor } from "../runtime/testing/harness.ts"
import { useWorkspace } from "./fixtures/workspace.ts"

const MiB = 1024 * 1024

interface Fetched {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: Buffer
  /** The body ended cleanly (false: the connection was cut mid-body). */
  readonly complete: boolean
  readonly error: string | undefined
  /** What `onFirstBytes` returned when the first body bytes arrived. */
  readonly atFirstBytes: unknown
}

/** GET /v1/object through a daemon, recording what `onFirstBytes` saw when the first bytes came in. */
const fetchObject = (
  daemon: string,
  url: string,
  o: { range?: string; digest?: string; pieceLength?: number; originHeaders?: string; onFirstBytes?: () => unknown } = {}
): Promise<Fetched> =>
  new Promise((resolve, reject) => {
    const q = new URLSearchParams({
      url,
      ...(o.digest === undefined ? {} : { digest: o.digest }),
      ...(o.pieceLength === undefined ? {} : { pieceLength: String(o.pieceLength) })
    })
    const headers: Record<string, string> = {}
    if (o.range !== undefined) headers.range = o.range
    if (o.originHeaders !== undefined) headers["x-damselfly-origin-headers"] = o.originHeaders
    const req = http.get(`${daemon}/v1/object?${q}`, { headers, agent: false }, (res) => {
      const chunks: Array<Buffer> = []
      let atFirstBytes: unknown
      let first = true
      let error: string | undefined
      res.on("data", (c: Buffer) => {
        if (first && c.length > 0) {
          first = false
          atFirstBytes = o.onFirstBytes?.()
        }
        chunks.push(c)
      })
      const done = () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete: res.complete, error, atFirstBytes })
      res.on("error", (e) => {
        error = e.message
      })
      res.on("close", done)
    })
    req.setTimeout(120_000, () => req.destroy(new Error("timed out")))
    req.on("error", reject)
  })

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex")

const ws = useWorkspace("damselfly-serving-")
let schedulerUrl: string
const procs = new Map<string, { url: string; proc: Proc }>()

const startServingDaemon = async (name: string, extra: ReadonlyArray<string> = []) => {
  const d = await startDaemon(name, { dir: ws.dir, schedulers: schedulerUrl, args: extra })
  procs.set(name, d)
  return d.url
}

const newOrigin = (size: number, bytesPerSecond?: number) => ws.origin(size, bytesPerSecond === undefined ? {} : { bytesPerSecond })

const statTask = async (daemon: string, taskId: string) => (await getJson(`${daemon}/v1/cache/tasks/${taskId}`)).body

describe("byte ranges", () => {
  it("resolve the three forms against the size, refuse several ranges and bad syntax", () => {
    expect(resolveRange(undefined, 10)).toEqual({ _tag: "Whole" })
    expect(resolveRange("bytes=0-0", 10)).toEqual({ _tag: "Span", start: 0, end: 0 })
    expect(resolveRange("bytes=3-", 10)).toEqual({ _tag: "Span", start: 3, end: 9 })
    expect(resolveRange("bytes=3-100", 10)).toEqual({ _tag: "Span", start: 3, end: 9 })
    expect(resolveRange("bytes=-4", 10)).toEqual({ _tag: "Span", start: 6, end: 9 })
    expect(resolveRange("bytes=-40", 10)).toEqual({ _tag: "Span", start: 0, end: 9 })
    expect(resolveRange("bytes=10-", 10)).toEqual({ _tag: "Unsatisfiable" })
    expect(resolveRange("bytes=-0", 10)).toEqual({ _tag: "Unsatisfiable" })
    expect(resolveRange("bytes=0-", 0)).toEqual({ _tag: "Unsatisfiable" })
    expect(resolveRange({ start: 2, end: 4 }, 10)).toEqual({ _tag: "Span", start: 2, end: 4 })
    expect(resolveRange("bytes=0-1,4-5", 10)).toMatchObject({ _tag: "Invalid", message: expect.stringMatching(/only one range/) })
    expect(resolveRange("bytes=5-2", 10)).toMatchObject({ _tag: "Invalid" })
    expect(resolveRange("items=0-1", 10)).toMatchObject({ _tag: "Invalid", message: expect.stringMatching(/^Range:/) })
    expect(resolveRange("bytes=-", 10)).toMatchObject({ _tag: "Invalid" })
  })
})

describe("daemon serving content (real processes)", () => {
  beforeAll(async () => {
    const scheduler = await startScheduler()
    schedulerUrl = scheduler.url
    procs.set("scheduler", scheduler)
    await startServingDaemon("a", ["--concurrent-pieces", "2", "--origin-outage", "2", "--origin-timeout", "5"])
    await startServingDaemon("b")
    await startServingDaemon("noprefetch", ["--no-prefetch", "--concurrent-pieces", "2"])
  }, 120_000)

  it("a range on a task not held is answered from its pieces (206), then prefetch completes the whole task", async () => {
    const a = procs.get("a")!.url
    const origin = await newOrigin(24 * MiB)
    const content = await readFile(origin.file)
    const r = await fetchObject(a, origin.url, { range: "bytes=5000000-5000999" })
    expect(r.status, r.body.toString()).toBe(206)
    expect(r.headers["content-range"]).toBe(`bytes 5000000-5000999/${origin.size}`)
    expect(r.headers["content-length"]).toBe("1000")
    expect(r.headers["x-damselfly-via"]).toBe("p2p")
    expect(r.body.equals(content.subarray(5000000, 5001000))).toBe(true)
    const taskId = String(r.headers["x-damselfly-task-id"])
    // Prefetch: the whole task arrives although only 1000 bytes were asked for.
    await waitFor("prefetch to complete the task", async () => (await statTask(a, taskId)).complete === true, 60_000)
    expect(await statTask(a, taskId)).toMatchObject({ complete: true, contentLength: origin.size })
    // The scheduler registered this (large) task: the direct path is for small content only.
    expect((await getJson(`${schedulerUrl}/v1/tasks/${taskId}`)).status).toBe(200)
  }, 120_000)

  it("a range in the middle of a task not held is answered before the pieces ahead of it are fetched", async () => {
    const a = procs.get("a")!.url
    // 32 MiB in 1 MiB pieces at 4 MiB/s per origin reply, 2 pieces at once: about 4 s for the whole.
    const origin = await newOrigin(32 * MiB, 4 * MiB)
    const content = await readFile(origin.file)
    const at = 24 * MiB + 5
    const started = Date.now()
    const r = await fetchObject(a, origin.url, { range: `bytes=${at}-${at + 99}`, pieceLength: MiB, onFirstBytes: () => origin.bytesSent() })
    console.log(`[serving] cold 100-byte range at 24 MiB of 32 MiB answered in ${Date.now() - started} ms, origin had sent ${((r.atFirstBytes as number) / MiB).toFixed(1)} MiB`)
    expect(r.status).toBe(206)
    expect(r.body.equals(content.subarray(at, at + 100))).toBe(true)
    // Fetched in order from the reader's piece, not from piece 0: far less than the 24 MiB before it.
    expect(r.atFirstBytes as number).toBeLessThan(8 * MiB)
  }, 120_000)

  it("several ranges of a held task equal the origin's slices; 416 outside; several ranges refused", async () => {
    const a = procs.get("a")!.url
    const origin = await newOrigin(9 * MiB + 123)
    const content = await readFile(origin.file)
    const full = await fetchObject(a, origin.url)
    expect(full.status).toBe(200)
    expect(sha256(full.body)).toBe(origin.sha256)
    const size = origin.size
    const cases: Array<[string, number, number]> = [
      ["bytes=0-0", 0, 0],
      [`bytes=${size - 1}-${size - 1}`, size - 1, size - 1],
      [`bytes=${size - 1}-`, size - 1, size - 1],
      ["bytes=-1000", size - 1000, size - 1],
      [`bytes=${4 * MiB - 10}-${8 * MiB + 10}`, 4 * MiB - 10, 8 * MiB + 10], // spans three pieces
      [`bytes=${MiB}-`, MiB, size - 1],
      [`bytes=0-${size + 5000}`, 0, size - 1]
    ]
    for (const [range, start, end] of cases) {
      const r = await fetchObject(a, origin.url, { range })
      expect(r.status, `${range}: ${r.body.subarray(0, 200)}`).toBe(206)
      expect(r.headers["content-range"], range).toBe(`bytes ${start}-${end}/${size}`)
      expect(Number(r.headers["content-length"]), range).toBe(end - start + 1)
      expect(r.body.equals(content.subarray(start, end + 1)), range).toBe(true)
      expect(r.complete).toBe(true)
    }
    const outside = await fetchObject(a, origin.url, { range: `bytes=${size}-` })
    expect(outside.status).toBe(416)
    expect(outside.headers["content-range"]).toBe(`bytes */${size}`)
    // HEAD answers the same status and lengths without a body.
    const q = `/v1/object?${new URLSearchParams({ url: origin.url })}`
    const head = await rawRequest(a, { method: "HEAD", path: q, headers: { range: "bytes=-1000" } })
    expect(head.status).toBe(206)
    expect(head.headers["content-length"]).toBe("1000")
    expect(head.headers["content-range"]).toBe(`bytes ${size - 1000}-${size - 1}/${size}`)
    const headWhole = await rawRequest(a, { method: "HEAD", path: q })
    expect(headWhole.status).toBe(200)
    expect(headWhole.headers["content-length"]).toBe(String(size))
    const multi = await fetchObject(a, origin.url, { range: "bytes=0-1,5-6" })
    expect(multi.status).toBe(400)
    expect(JSON.parse(multi.body.toString()).error).toMatch(/only one range/)
  }, 120_000)

  it("a range on another daemon comes from the peer holding the task, not the origin", async () => {
    const a = procs.get("a")!.url
    const b = procs.get("b")!.url
    const origin = await newOrigin(12 * MiB)
    const content = await readFile(origin.file)
    expect((await fetchObject(a, origin.url)).status).toBe(200)
    const sent = origin.bytesSent()
    const r = await fetchObject(b, origin.url, { range: `bytes=${6 * MiB}-${6 * MiB + 99}` })
    expect(r.status).toBe(206)
    expect(r.body.equals(content.subarray(6 * MiB, 6 * MiB + 100))).toBe(true)
    const taskId = String(r.headers["x-damselfly-task-id"])
    await waitFor("b to prefetch the task", async () => (await statTask(b, taskId)).complete === true, 60_000)
    expect(origin.bytesSent(), "b fetched from daemon a, not from the origin").toBe(sent)
  }, 120_000)

  it("streams bytes while the download is under way; the whole body's sha256 matches", async () => {
    const a = procs.get("a")!.url
    // 16 MiB in 1 MiB pieces at 4 MiB/s per origin reply, 2 pieces at once on daemon a: about 2 s.
    const origin = await newOrigin(16 * MiB, 4 * MiB)
    const started = Date.now()
    const r = await fetchObject(a, origin.url, { pieceLength: MiB, onFirstBytes: () => ({ originSent: origin.bytesSent(), millis: Date.now() - started }) })
    const seconds = (Date.now() - started) / 1000
    const first = r.atFirstBytes as { originSent: number; millis: number }
    expect(r.status).toBe(200)
    expect(r.complete).toBe(true)
    expect(r.body.length).toBe(origin.size)
    expect(sha256(r.body)).toBe(origin.sha256)
    console.log(`[serving] 16 MiB streamed in ${seconds.toFixed(2)} s; first bytes after ${first.millis} ms, when the origin had sent ${(first.originSent / MiB).toFixed(1)} MiB`)
    // The first bytes reached the client before the daemon could have had the whole content.
    expect(first.originSent).toBeLessThan(origin.size / 4)
  }, 120_000)

  it("small content takes the direct path: the scheduler never hears of the task; a wrong digest is refused", async () => {
    const a = procs.get("a")!.url
    const origin = await newOrigin(MiB + 17)
    const r = await fetchObject(a, origin.url, { digest: `sha256:${origin.sha256}` })
    expect(r.status).toBe(200)
    expect(r.headers["x-damselfly-via"]).toBe("direct")
    expect(sha256(r.body)).toBe(origin.sha256)
    const taskId = String(r.headers["x-damselfly-task-id"])
    expect(taskId).toBe(origin.sha256) // a digest names the task
    expect((await getJson(`${schedulerUrl}/v1/tasks/${taskId}`)).status).toBe(404)
    expect(await statTask(a, taskId)).toMatchObject({ complete: true, contentLength: origin.size })
    // Served again from the store, ranged.
    const again = await fetchObject(a, origin.url, { digest: `sha256:${origin.sha256}`, range: "bytes=-10" })
    expect(again.headers["x-damselfly-via"]).toBe("held")
    expect(again.body.equals((await readFile(origin.file)).subarray(origin.size - 10))).toBe(true)

    const other = await newOrigin(2 * MiB)
    const bad = await fetchObject(a, other.url, { digest: `sha256:${"0".repeat(64)}` })
    expect(bad.status).toBe(502)
    expect(JSON.parse(bad.body.toString()).error).toMatch(/digest mismatch/)
    expect((await getJson(`${schedulerUrl}/v1/tasks/${"0".repeat(64)}`)).status).toBe(404)
  }, 60_000)

  it("the origin's client errors come back before any body, with the upstream status", async () => {
    const a = procs.get("a")!.url
    const origin = await newOrigin(MiB)
    const missing = await fetchObject(a, `${origin.url}-missing`)
    expect(missing.status).toBe(404)
    expect(missing.headers["x-damselfly-upstream-status"]).toBe("404")
    const badHeaders = await fetchObject(a, origin.url, { originHeaders: "{not json" })
    expect(badHeaders.status).toBe(400)
    expect(JSON.parse(badHeaders.body.toString()).error).toMatch(/x-damselfly-origin-headers/)
    const withHeaders = await fetchObject(a, origin.url, { originHeaders: JSON.stringify({ "X-Trace": "a, b" }) })
    expect(withHeaders.status).toBe(200)
    expect(sha256(withHeaders.body)).toBe(origin.sha256)
  }, 60_000)

  it("fuzzed query parameters, Range and origin headers: a 4xx naming the problem, never a 5xx", async () => {
    const a = procs.get("a")!.url
    const origin = await newOrigin(MiB)
    expect((await fetchObject(a, origin.url)).status).toBe(200)
    const garbage = fc.oneof(
      fc.constantFrom("", " ", "..", "%00", "-1", "0", "1e3", "0x10", "bytes=", "bytes=-", "bytes=1-0", "bytes=0-1,2-3", "items=0-1", "{", "[]", "null", "{\"a\":1}", "ftp://x/y", "sha256:", "sha256:" + "A".repeat(64), "a".repeat(63), "9".repeat(17)),
      fc.stringMatching(/^[ -~]{0,40}$/)
    )
    const field = fc.constantFrom("url", "digest", "taskId", "pieceLength", "range", "originHeaders")
    await fc.assert(fc.asyncProperty(field, garbage, async (name, value) => {
      const valid: Record<string, (v: string) => boolean> = {
        url: (v) => /^https?:\/\/\S+$/.test(v),
        digest: (v) => /^sha256:[0-9a-f]{64}$/.test(v),
        taskId: (v) => /^[0-9a-f]{64}$/.test(v),
        pieceLength: (v) => /^[1-9][0-9]*$/.test(v) && Number(v) >= 65536 && Number(v) <= 64 * MiB,
        range: (v) => {
          const m = /^bytes=(\d*)-(\d*)$/.exec(v.trim())
          return m !== null && (m[1] !== "" || m[2] !== "") && (m[1] === "" || m[2] === "" || Number(m[1]) <= Number(m[2]))
        },
        originHeaders: (v) => {
          try {
            const j = JSON.parse(v)
            return typeof j === "object" && j !== null && !Array.isArray(j) && Object.values(j).every((x) => typeof x === "string")
          } catch {
            return false
          }
        }
      }
      if (valid[name](value)) return // only invalid input: valid input would start real work
      const q = new URLSearchParams({ url: origin.url })
      const headers: Record<string, string> = {}
      if (name === "range") headers.range = value
      else if (name === "originHeaders") headers["x-damselfly-origin-headers"] = value
      else q.set(name, value)
      const r = await rawRequest(a, { path: `/v1/object?${q}`, headers })
      const what = `${name}=${JSON.stringify(value)} → ${r.status} ${r.text.slice(0, 200)}`
      expect(r.status, what).toBeGreaterThanOrEqual(400)
      expect(r.status, what).toBeLessThan(500)
      expect(typeof r.json?.error, what).toBe("string")
    }), { seed: 424242, numRuns: 150 })
    assertSound(procs.get("a")!.proc)
  }, 120_000)

  it("an origin failing mid-stream aborts the answer: the client sees a cut body, not a short 200", async () => {
    const a = procs.get("a")!.url
    const origin = await newOrigin(24 * MiB, 4 * MiB)
    const r = await fetchObject(a, origin.url, {
      onFirstBytes: () => {
        origin.setMode("error500")
        return origin.bytesSent()
      }
    })
    expect(r.status).toBe(200)
    expect(r.complete, "the body must not end cleanly").toBe(false)
    expect(r.body.length).toBeLessThan(origin.size)
    expect(Number(r.headers["content-length"])).toBe(origin.size)
    const p = procs.get("a")!
    if (process.env.SERVING_DEBUG) console.log(p.proc.stderr().slice(-3000))
    assertSound(p.proc)
    expect((await getJson(`${a}/healthy`)).status).toBe(200)
  }, 120_000)

  it("with --no-prefetch a range request does not download the whole task", async () => {
    const d = procs.get("noprefetch")!.url
    const origin = await newOrigin(32 * MiB, 4 * MiB)
    const content = await readFile(origin.file)
    const r = await fetchObject(d, origin.url, { range: "bytes=100-199" })
    expect(r.status).toBe(206)
    expect(r.body.equals(content.subarray(100, 200))).toBe(true)
    const taskId = String(r.headers["x-damselfly-task-id"])
    await waitFor("the download to stop", async () => (await getJson(`${d}/healthy`)).body.downloading === 0, 10_000)
    const held = await statTask(d, taskId)
    expect(held.complete).toBe(false)
    expect(held.held).toBeLessThan(held.pieces)
    expect(origin.bytesSent()).toBeLessThan(origin.size / 2)
  }, 60_000)
})
