// Limits and the shared token, against real processes: the upload server serves pieces of held tasks
// by id only; connections, header and body sizes and upload slots are capped; with a token every
// request but /healthy needs it, and the components pass it to each other.
import * as net from "node:net"
import * as path from "node:path"
import { Effect } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { Host } from "../core/domain.ts"
import { makeHttpPieceTransfer } from "../runtime/http-piece-transfer.ts"
import { startCluster } from "../runtime/testing/cluster.ts"
import {
  assertSound,
  damselfly,
  getJson,
  type Origin,
  type Proc,
  rawRequest,
  sha256File,
  startDaemon,
  startScheduler
} from "../runtime/testing/harness.ts"
import { useWorkspace } from "./fixtures/workspace.ts"

const MiB = 1024 * 1024
const ws = useWorkspace("damselfly-hard-")
const newOrigin = (size: number) => ws.origin(size)

/** A daemon with no scheduler that has downloaded `origin` (so it holds a task), with extra flags. */
const daemonHolding = async (name: string, origin: Origin, extra: Array<string> = []) => {
  const { url, port, proc } = await startDaemon(name, { dir: ws.dir, args: extra })
  const get = damselfly(`get-${name}`, ["get", origin.url, "-O", path.join(ws.dir, `${name}.bin`), "--daemon", url, "--digest", `sha256:${origin.sha256}`, "--piece-length", String(MiB)])
  expect(await get.exited, get.stderr()).toBe(0)
  return { url, port, proc }
}

describe("upload server: pieces of held tasks, by id, never files by path", () => {
  let d: { url: string; proc: Proc }
  let origin: Origin
  beforeAll(async () => {
    origin = await newOrigin(4 * MiB)
    d = await daemonHolding("paths", origin)
  }, 60_000)

  it("serves a held piece and its digest", async () => {
    const r = await rawRequest(d.url, { path: `/v1/tasks/${origin.sha256}/pieces/0` })
    expect(r.status).toBe(200)
    expect(r.headers["x-piece-digest"]).toMatch(/^[0-9a-f]{64}$/)
  })

  it("refuses every path-shaped or out-of-range request with a 4xx", async () => {
    const id = origin.sha256
    const attempts = [
      `/v1/tasks/../../../../etc/passwd`,
      `/v1/tasks/..%2f..%2f..%2fetc%2fpasswd/pieces/0`,
      `/v1/tasks/%2e%2e/pieces/0`,
      `/v1/tasks/${id}/pieces/..%2fmeta.json`,
      `/v1/tasks/${id}/pieces/%2e%2e%2f%2e%2e%2fdata`,
      `/v1/tasks/${id}/../../meta.json`,
      `/v1/tasks/${id}/pieces/4`,
      `/v1/tasks/${id}/pieces/999999999`,
      `/v1/tasks/${id}/pieces/-1`,
      `/v1/tasks/${id}/pieces/0x1`,
      `/v1/tasks/${id.toUpperCase()}/pieces/0`,
      `/v1/tasks/%2fetc%2fpasswd/pieces/0`,
      `/etc/passwd`,
      `//etc/passwd`,
      `/v1/tasks/${"b".repeat(64)}/pieces/0`,
      `/v1/tasks/${id}/content`,
      `/v1/tasks/${id}/data`
    ]
    for (const p of attempts) {
      const r = await rawRequest(d.url, { path: p })
      expect(r.status, `${p} → ${r.status} ${r.text.slice(0, 200)}`).toBeGreaterThanOrEqual(400)
      expect(r.status, p).toBeLessThan(500)
      expect(r.text).not.toMatch(/root:|"contentLength"/)
    }
    assertSound(d.proc)
  })
})

describe("limits", () => {
  let scheduler: { url: string; proc: Proc }
  beforeAll(async () => {
    scheduler = await startScheduler("scheduler-limits", ["--max-connections", "8"])
  })

  it("a body over 1 MiB gets 413, a header block over 16 KiB gets 431, and the server keeps serving", async () => {
    const big = await rawRequest(scheduler.url, { method: "POST", path: "/v1/report", headers: { "content-type": "application/json" }, body: JSON.stringify({ _tag: "LeavePeer", pad: "x".repeat(2 * MiB) }) })
    expect(big.status).toBe(413)
    expect(big.json.error).toMatch(/limit/)
    const header = await rawRequest(scheduler.url, { path: "/healthy", headers: { "x-big": "y".repeat(20_000) } })
    expect(header.status).toBe(431)
    expect((await getJson(`${scheduler.url}/healthy`)).status).toBe(200)
    assertSound(scheduler.proc)
  })

  it("connections beyond --max-connections are closed at once; the server recovers when they go", async () => {
    const sockets: Array<net.Socket> = []
    const closed: Array<Promise<void>> = []
    for (let i = 0; i < 16; i++) {
      const s = net.connect(Number(new URL(scheduler.url).port), "127.0.0.1")
      sockets.push(s)
      s.on("error", () => {})
      closed.push(new Promise((r) => s.on("close", () => r())))
    }
    // The ones over the limit are dropped by the server; the first 8 stay open.
    await Promise.race([Promise.all(closed.slice(8)), new Promise((r) => setTimeout(r, 3_000))])
    const dropped = sockets.filter((s) => s.destroyed || s.readyState !== "open").length
    expect(dropped).toBeGreaterThanOrEqual(8)
    for (const s of sockets) s.destroy()
    await new Promise((r) => setTimeout(r, 200))
    expect((await getJson(`${scheduler.url}/healthy`)).status).toBe(200)
  })

  it("a busy parent answers 503 once its upload slots stay full, and a child counts that as temporary", async () => {
    const origin = await newOrigin(4 * MiB)
    // One slot, 1 MiB/s, queue at most 300 ms: the second concurrent request cannot get a slot in time.
    const d = await daemonHolding("busy", origin, ["--upload-slots", "1", "--upload-bandwidth", String(MiB), "--upload-queue-millis", "300"])
    const replies = await Promise.all([0, 1, 2, 3].map((i) => rawRequest(d.url, { path: `/v1/tasks/${origin.sha256}/pieces/${i}` })))
    const statuses = replies.map((r) => r.status)
    expect(statuses).toContain(200)
    expect(statuses).toContain(503)
    const busy = replies.find((r) => r.status === 503)!
    expect(busy.json.error).toMatch(/busy/)
    expect(busy.headers["retry-after"]).toBe("1")

    // The child's transfer layer, facing the same busy parent: a temporary TransferFailed.
    const parent = {
      peerId: "busy/x",
      host: new Host({ id: "busy", ip: "127.0.0.1", port: Number(new URL(d.url).port), idc: "", location: "", type: "normal", uploadBandwidth: MiB, downloadBandwidth: MiB, uploadSlots: 1 })
    }
    const transfer = makeHttpPieceTransfer()
    const results = await Promise.all([0, 1, 2].map((i) => Effect.runPromise(Effect.result(transfer.fetchPiece(parent, origin.sha256, i)))))
    const failures = results.filter((r) => r._tag === "Failure").map((r) => (r as { failure: { temporary: boolean; message: string } }).failure)
    expect(failures.length).toBeGreaterThan(0)
    for (const f of failures) {
      expect(f.message).toMatch(/503/)
      expect(f.temporary).toBe(true)
    }
    assertSound(d.proc)
  }, 60_000)
})

describe("shared token", () => {
  const TOKEN = "s3cret-token"
  it("with a token: 401 without it (except /healthy), and a full p2p download works with it", async () => {
    const cluster = await startCluster({ dir: path.join(ws.dir, "token"), daemons: 2, env: { DAMSELFLY_TOKEN: TOKEN } })
    const origin = await newOrigin(8 * MiB)
    const auth = { authorization: `Bearer ${TOKEN}` }
    // Without (or with a wrong) token: 401 naming the problem; /healthy stays open for probes.
    for (const base of [cluster.scheduler.url, cluster.daemons[0].url]) {
      expect((await rawRequest(base, { path: "/healthy" })).status).toBe(200)
    }
    const noToken = await rawRequest(cluster.scheduler.url, { method: "POST", path: "/v1/schedule", body: "{}" })
    expect(noToken.status).toBe(401)
    expect(noToken.json.error).toMatch(/Authorization/)
    const wrong = await rawRequest(cluster.scheduler.url, { method: "POST", path: "/v1/report", body: "{}", headers: { authorization: "Bearer nope" } })
    expect(wrong.status).toBe(401)
    expect(wrong.json.error).toMatch(/wrong token/)
    expect((await rawRequest(cluster.daemons[0].url, { path: `/v1/tasks/${origin.sha256}/pieces/0` })).status).toBe(401)
    expect((await rawRequest(cluster.daemons[0].url, { method: "POST", path: "/v1/seed", body: "{}" })).status).toBe(401)
    expect((await rawRequest(cluster.daemons[0].url, { method: "POST", path: "/v1/download", body: "{}" })).status).toBe(401)
    // With it, the request reaches the handler (and is judged on its content).
    expect((await rawRequest(cluster.scheduler.url, { method: "POST", path: "/v1/report", body: "{}", headers: auth })).status).toBe(400)
    // get without the token is refused by the daemon, clearly, and writes nothing.
    const refused = damselfly("get-no-token", ["get", origin.url, "-O", path.join(ws.dir, "tok-refused.bin"), "--daemon", cluster.daemons[0].url])
    expect(await refused.exited).not.toBe(0)
    expect(refused.stderr()).toMatch(/401/)
    // Every component sends the token: seed trigger, scheduler channel, piece transfer, get → daemon.
    const gets = cluster.daemons.map((d, i) =>
      damselfly(`get-token-${i}`, ["get", origin.url, "-O", path.join(ws.dir, `tok-${i}.bin`), "--daemon", d.url, "--digest", `sha256:${origin.sha256}`, "--piece-length", String(MiB), "--token", TOKEN]))
    for (const [i, g] of gets.entries()) {
      expect(await g.exited, g.stderr()).toBe(0)
      expect(await sha256File(path.join(ws.dir, `tok-${i}.bin`))).toBe(origin.sha256)
      expect(JSON.parse(g.stdout()).via).toBe("daemon")
    }
    const copies = origin.bytesSent() / (8 * MiB)
    expect(copies).toBeLessThanOrEqual(1.5) // the seed was triggered (with the token) and served the peers
    expect(cluster.scheduler.proc.stderr()).toMatch(/seed triggered/)
    // Only the requests this test sent without the token were refused (2 here, 4 at daemon-0).
    const refusals = (p: Proc) => p.stderr().split("\n").filter((l) => l.includes('"http.status":401')).length
    expect(refusals(cluster.scheduler.proc)).toBe(2)
    expect(refusals(cluster.daemons[0].proc)).toBe(4)
    expect(refusals(cluster.seed.proc)).toBe(0)
    expect(refusals(cluster.daemons[1].proc)).toBe(0)
  }, 90_000)

  it("without a token configured, requests need none", async () => {
    const { url } = await startScheduler("scheduler-open", [], { env: { DAMSELFLY_TOKEN: "" } })
    expect((await rawRequest(url, { method: "POST", path: "/v1/report", body: "{}" })).status).toBe(400)
  })
})
