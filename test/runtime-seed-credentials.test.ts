// A daemon that proved access to a private blob sends its origin credentials with its registration so the
// scheduler can hand them to the seed it triggers (runtime/blob-access.ts). They must ride only the
// registration that can trigger that seed: the first one each scheduler incarnation accepts for the task,
// not every re-registration. A recording relay in front of a real scheduler process sees every request.
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

it("seed credentials ride the first registration per scheduler incarnation, not re-registrations", async () => {
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

    await Effect.runPromise(ring.channel.request(new AnnounceHost({ host })))
    await Effect.runPromise(ring.channel.request(register))
    await Effect.runPromise(ring.channel.request(register))
    await Effect.runPromise(ring.channel.request(register))
    expect(registrations().map((r) => r.seedHeader)).toEqual([CREDENTIALS, undefined, undefined])
    // Announcements never carry them.
    expect(relay.seen.filter((s) => s.tag === "AnnounceHost").every((s) => s.seedHeader === undefined)).toBe(true)

    // A new scheduler incarnation (new epoch) knows nothing of the task: its first registration may
    // trigger a seed again, so it carries the credentials once more.
    scheduler.proc.child.kill("SIGTERM")
    scheduler = await startScheduler("seed-creds-scheduler-2", [], { env: { DAMSELFLY_TOKEN: TOKEN } })
    await Effect.runPromise(ring.channel.request(new AnnounceHost({ host })))
    await Effect.runPromise(ring.channel.request(register))
    await Effect.runPromise(ring.channel.request(register))
    expect(registrations().map((r) => r.seedHeader)).toEqual([CREDENTIALS, undefined, undefined, CREDENTIALS, undefined])

    // Restarted again, and this daemon has not announced since (its view of the epoch is stale): the
    // scheduler's NeedRegister for the task is what says the next registration may trigger a seed.
    scheduler.proc.child.kill("SIGTERM")
    scheduler = await startScheduler("seed-creds-scheduler-3", [], { env: { DAMSELFLY_TOKEN: TOKEN } })
    const answer = await Effect.runPromise(ring.channel.request(new RescheduleParents({ peerId: "creds-peer", taskId: TASK, blockedParents: [], reason: "test" })))
    expect(answer._tag).toBe("NeedRegister")
    await Effect.runPromise(ring.channel.request(register))
    expect(registrations().map((r) => r.seedHeader).slice(5)).toEqual([CREDENTIALS])
  } finally {
    relay.close()
  }
}, 120_000)
