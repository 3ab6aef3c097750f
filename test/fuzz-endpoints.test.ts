// Every HTTP endpoint of the scheduler and the daemon, fuzzed over real sockets (fast-check, fixed
// seed): wrong fields, garbage bodies, oversized bodies, bad task ids, indices and ranges, traversal
// paths. Each gets a 4xx whose message names the problem — never a 5xx — and both processes keep
// serving and never report an unhandled failure.
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { Exit, Schema } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { PeerReport, PeerReportBatch, ScheduleRequest } from "../core/protocol.ts"
import { DownloadBody, SeedRequestBody } from "../runtime/daemon.ts"
import { MAX_BODY_BYTES } from "../runtime/http-json.ts"
import { assertSound, damselfly, freePort, getJson, killAll, type Origin, type Proc, rawRequest, startOrigin, waitHealthy } from "../runtime/testing/harness.ts"
import { downloadBody, FUZZ, mutated, peerReports, scheduleRequests, seedBody } from "./fuzz-fixtures.ts"

let dir: string
let origin: Origin
let scheduler: { url: string; proc: Proc }
let daemon: { url: string; proc: Proc }

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "damselfly-fuzz-"))
  origin = await startOrigin(dir, 4 * 1024 * 1024)
  const sp = await freePort()
  const dp = await freePort()
  scheduler = { url: `http://127.0.0.1:${sp}`, proc: damselfly("scheduler", ["scheduler", "--port", String(sp)]) }
  // A seed: only seeds take POST /v1/seed at all, so the fuzzed seed requests reach its decoder.
  daemon = { url: `http://127.0.0.1:${dp}`, proc: damselfly("daemon", ["daemon", "--port", String(dp), "--data", path.join(dir, "d"), "--scheduler", scheduler.url, "--host-id", "fuzz", "--seed"]) }
  await waitHealthy(scheduler.url, scheduler.proc)
  await waitHealthy(daemon.url, daemon.proc)
  // The daemon holds one task, so piece requests can also be wrong about a task that exists.
  const get = damselfly("get", ["get", origin.url, "-O", path.join(dir, "held.bin"), "--daemon", daemon.url, "--digest", `sha256:${origin.sha256}`, "--piece-length", String(1024 * 1024)])
  expect(await get.exited, get.stderr()).toBe(0)
}, 60_000)

afterAll(async () => {
  await killAll()
  await origin?.close()
  await rm(dir, { recursive: true, force: true })
})

const post = (base: string, p: string, body: string | Buffer) =>
  rawRequest(base, { method: "POST", path: p, headers: { "content-type": "application/json" }, body })

const isValid = (schema: Schema.Top, v: unknown) => Exit.isSuccess(Schema.decodeUnknownExit(schema as any)(v))

/** A clear refusal: 4xx with a JSON error message, and certainly not a server failure. */
const expectRefused = (r: { status: number; json: any; text: string }, what: string, mentions?: string) => {
  expect(r.status, `${what} → ${r.status} ${r.text.slice(0, 300)}`).toBeGreaterThanOrEqual(400)
  expect(r.status, what).toBeLessThan(500)
  expect(typeof r.json?.error, `${what}: ${r.text.slice(0, 300)}`).toBe("string")
  if (mentions !== undefined) expect(r.json.error, what).toContain(mentions)
}

const bodyEndpoints: Array<[string, () => string, string, Schema.Top, ReadonlyArray<Record<string, unknown>>]> = [
  ["scheduler /v1/schedule", () => scheduler.url, "/v1/schedule", ScheduleRequest, scheduleRequests],
  ["scheduler /v1/report", () => scheduler.url, "/v1/report", PeerReport, peerReports],
  ["scheduler /v1/reports", () => scheduler.url, "/v1/reports", PeerReportBatch, [{ reports: peerReports }]],
  ["daemon /v1/seed", () => daemon.url, "/v1/seed", SeedRequestBody, [seedBody]],
  ["daemon /v1/download", () => daemon.url, "/v1/download", DownloadBody, [downloadBody]]
]

describe.each(bodyEndpoints)("%s", (name, base, route, schema, samples) => {
  it("a message with one wrong or missing field: 400 naming the field", async () => {
    await fc.assert(fc.asyncProperty(mutated(samples), async ({ message, key }) => {
      if (isValid(schema, message)) return // only invalid messages: valid ones would start real work
      expectRefused(await post(base(), route, JSON.stringify(message)), `${name} ${JSON.stringify(message).slice(0, 200)}`, key)
    }), { ...FUZZ, numRuns: 120 })
  })

  it("garbage bodies (not JSON, wrong JSON, unknown tags, binary): 400", async () => {
    const garbage = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
      fc.constantFrom("", "{", "null", "[]", "{\"_tag\":\"Nope\"}", "{\"_tag\":null}", "\u0000", "{\"__proto__\":{\"x\":1}}")
    )
    await fc.assert(fc.asyncProperty(garbage, async (body) => {
      let parsed: unknown
      try {
        parsed = JSON.parse(body.toString())
      } catch {}
      if (isValid(schema, parsed)) return
      const r = await post(base(), route, body)
      expectRefused(r, `${name} ${JSON.stringify(body.toString().slice(0, 100))}`)
      expect(r.status).toBe(400)
    }), { ...FUZZ, numRuns: 120 })
  })

  it("bodies over the limit: 413", async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: MAX_BODY_BYTES + 1, max: 3 * MAX_BODY_BYTES }), async (size) => {
      const r = await post(base(), route, Buffer.alloc(size, 0x20))
      expect(r.status).toBe(413)
      expect(r.json.error).toMatch(/limit/)
    }), { ...FUZZ, numRuns: 4 })
  })
})

// Path segments a client might send: hex of the wrong length or case, numbers of every shape,
// traversal in plain, encoded and double-encoded forms, absolute paths, and random text.
const segment = fc.oneof(
  fc.constantFrom("..", "%2e%2e", "%252e%252e", "..%2f..%2fetc%2fpasswd", "%2fetc%2fpasswd", ".", "", "-1", "1.5", "1e3", "0x10", "00", "999999999999", "4294967296", "NaN", "%00", "a".repeat(63), "A".repeat(64), "g".repeat(64), "a".repeat(65)),
  fc.stringMatching(/^[0-9a-f]{1,70}$/),
  fc.stringMatching(/^-?[0-9]{1,12}$/),
  fc.string({ maxLength: 40 }).map(encodeURIComponent)
)

describe("daemon piece and availability endpoints", () => {
  it("bad task ids and indices: 400 or 404 naming the problem, never a file", async () => {
    await fc.assert(fc.asyncProperty(fc.boolean(), segment, segment, async (heldTask, id, index) => {
      const taskId = heldTask ? origin.sha256 : id
      const r = await rawRequest(daemon.url, { path: `/v1/tasks/${taskId}/pieces/${index}` })
      if (heldTask && /^(0|[1-3])$/.test(index)) expect(r.status).toBe(200) // a real piece
      else expectRefused(r, `piece ${taskId}/${index}`)
    }), { ...FUZZ, numRuns: 250 })
  })

  it("bad since values and task ids on availability: 400 or 404", async () => {
    await fc.assert(fc.asyncProperty(fc.boolean(), segment, segment, async (heldTask, id, since) => {
      const taskId = heldTask ? origin.sha256 : id
      const r = await rawRequest(daemon.url, { path: `/v1/tasks/${taskId}/availability?since=${since}` })
      if (heldTask && /^(0|[1-9][0-9]{0,8})$/.test(since)) expect(r.status).toBe(200) // complete task: answered at once
      else expectRefused(r, `availability ${taskId}?since=${since}`)
    }), { ...FUZZ, numRuns: 250 })
  })

  it("arbitrary paths and methods on both servers: never a 5xx, never a file's bytes", async () => {
    const method = fc.constantFrom("GET", "POST", "PUT", "DELETE", "HEAD", "PATCH")
    await fc.assert(fc.asyncProperty(fc.boolean(), method, fc.array(segment, { minLength: 1, maxLength: 6 }), async (toDaemon, m, segs) => {
      const p = `/${segs.join("/")}`
      const r = await rawRequest(toDaemon ? daemon.url : scheduler.url, { method: m, path: p })
      expect(r.status, `${m} ${p} → ${r.status} ${r.text.slice(0, 200)}`).toBeLessThan(500)
      // Every refusal explains itself (HEAD answers carry no body by definition).
      if (r.status >= 400 && m !== "HEAD") expect(typeof r.json?.error, `${m} ${p}: ${r.text.slice(0, 200)}`).toBe("string")
      expect(r.text).not.toMatch(/root:x:0:0/)
    }), { ...FUZZ, numRuns: 250 })
  })
})

describe("scheduler task view", () => {
  it("bad task ids: 400; unknown ones: 404", async () => {
    await fc.assert(fc.asyncProperty(segment, async (id) => {
      const r = await rawRequest(scheduler.url, { path: `/v1/tasks/${id}` })
      if (r.status !== 200) expectRefused(r, `/v1/tasks/${id}`)
    }), { ...FUZZ, numRuns: 100 })
  })
})

describe("afterwards", () => {
  it("both processes are alive, healthy, and never logged an unhandled failure", async () => {
    expect((await getJson(`${scheduler.url}/healthy`)).body.ok).toBe(true)
    expect((await getJson(`${daemon.url}/healthy`)).body.ok).toBe(true)
    assertSound(scheduler.proc)
    assertSound(daemon.proc)
  })
})
