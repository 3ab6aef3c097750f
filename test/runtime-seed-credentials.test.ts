// A daemon that proved access to a private blob sends its origin credentials with its registration so the
// scheduler can hand them to the seed it triggers (runtime/blob-access.ts). They ride every download
// registration of that task — the scheduler may trigger or re-trigger the seed on any of them, also after
// a restart — and nothing else: no announcement, no metadata-only registration, no other task. A
// recording relay in front of a real scheduler process sees every request.
// (Sending them only on the first registration per scheduler incarnation was tried and lost the seed its
// credentials under load: registry-swarm's token case went from 1.00 to 1.59 registry copies.)
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { Effect } from "effect"
import { afterAll, expect, it } from "vitest"
import { Host } from "../core/domain.ts"
import { AnnounceHost, RegisterPeer, RescheduleParents } from "../core/protocol.ts"
import { SEED_AUTHORIZATION_HEADER } from "../runtime/blob-access.ts"
import { makeRingSchedulerChannel } from "../runtime/http-scheduler-channel.ts"
import { killAll, startScheduler } from "../runtime/testing/harness.ts"

afterAll(killAll)

const TOKEN = "seed-credentials-test-token"
const TASK = "5".repeat(64)
const CREDENTIALS = "Basic dXNlcjpwYXNz"

/** Forwards every request to `target()` and records, per request, its body's `_tag` and the seed header. */
const recordingRelay = async (target: () => string) => {
  const seen: Array<{ tag: string; seedHeader: string | undefined }> = []
  const server = http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const body = Buffer.concat(chunks)
      const tag = body.length > 0 ? String(JSON.parse(body.toString("utf8"))._tag) : req.url ?? ""
      const header = req.headers[SEED_AUTHORIZATION_HEADER]
      seen.push({ tag, seedHeader: Array.isArray(header) ? header[0] : header })
      const upstream = http.request(`${target()}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      })
      upstream.on("error", () => { res.writeHead(502); res.end() })
      upstream.end(body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, close: () => server.close() }
}

it("seed credentials ride every download registration of the task and nothing else, across scheduler restarts", async () => {
  let scheduler = await startScheduler("seed-creds-scheduler-1", [], { env: { DAMSELFLY_TOKEN: TOKEN } })
  const relay = await recordingRelay(() => scheduler.url)
  try {
    const host = new Host({ id: "creds-host", ip: "127.0.0.1", port: 1, idc: "a", location: "a", type: "normal", uploadBandwidth: 1e8, downloadBandwidth: 1e8, uploadSlots: 4 })
    const register = new RegisterPeer({
      peerId: "creds-peer", taskId: TASK, url: "http://registry.invalid/v2/x/blobs/sha256:5", host,
      contentLength: 1024, pieceLength: 4 * 1024 * 1024, finishedPieces: [], metadataOnly: false
    })
    const ring = await Effect.runPromise(makeRingSchedulerChannel([relay.url], TOKEN, 5_000, (taskId): Record<string, string> =>
      taskId === TASK ? { [SEED_AUTHORIZATION_HEADER]: CREDENTIALS } : {}))
    const registrations = () => relay.seen.filter((s) => s.tag === "RegisterPeer")

    const other = new RegisterPeer({ ...register, taskId: "6".repeat(64) })
    const metadata = new RegisterPeer({ ...register, metadataOnly: true })
    await Effect.runPromise(ring.channel.request(new AnnounceHost({ host })))
    await Effect.runPromise(ring.channel.request(register))
    await Effect.runPromise(ring.channel.request(register))
    await Effect.runPromise(ring.channel.request(metadata))
    await Effect.runPromise(ring.channel.request(other))
    expect(registrations().map((r) => r.seedHeader)).toEqual([CREDENTIALS, CREDENTIALS, undefined, undefined])
    // Announcements never carry them.
    expect(relay.seen.filter((s) => s.tag === "AnnounceHost").every((s) => s.seedHeader === undefined)).toBe(true)

    // A new scheduler incarnation knows nothing of the task: the registrations there carry them too.
    scheduler.proc.child.kill("SIGTERM")
    scheduler = await startScheduler("seed-creds-scheduler-2", [], { env: { DAMSELFLY_TOKEN: TOKEN } })
    const answer = await Effect.runPromise(ring.channel.request(new RescheduleParents({ peerId: "creds-peer", taskId: TASK, blockedParents: [], reason: "test" })))
    expect(answer._tag).toBe("NeedRegister")
    await Effect.runPromise(ring.channel.request(register))
    expect(registrations().map((r) => r.seedHeader).slice(4)).toEqual([CREDENTIALS])
  } finally {
    relay.close()
  }
}, 120_000)
