// `--seed-token`: a second secret only seed peers hold. With it, the scheduler takes a host as a seed only
// when its announcement carries that secret — the cluster token alone no longer makes a host a seed
// (a seed is sent to the origin and may be handed a daemon's origin credentials). Real processes.
import { createHash } from "node:crypto"
import * as path from "node:path"
import { Effect } from "effect"
import { expect, it } from "vitest"
import { pieceLengthFor } from "../core/piece-layout.ts"
import { Sha256 } from "../core/services/sha256.ts"
import { taskIdOf } from "../core/task-id.ts"
import { damselfly, getJson, rawRequest, sha256File, spawnDaemon, startScheduler, waitFor, waitHealthy } from "../runtime/testing/harness.ts"
import { useWorkspace } from "./fixtures/workspace.ts"

const ws = useWorkspace("damselfly-seed-token-")
const TOKEN = "cluster-token-for-seed-token-test"
const SEED_TOKEN = "seed-only-secret-for-seed-token-test"

const sha = Sha256.of({ hex: (d) => createHash("sha256").update(d).digest("hex") })

const announce = (type: "seed" | "normal", id: string) => JSON.stringify({
  _tag: "AnnounceHost",
  host: { id, ip: "127.0.0.1", port: 9, idc: "", location: "", type, uploadBandwidth: 1e8, downloadBandwidth: 1e8, uploadSlots: 4 }
})

it("only holders of the seed token are taken as seeds; the cluster keeps working", async () => {
  const scheduler = await startScheduler("scheduler", ["--token", TOKEN, "--seed-token", SEED_TOKEN])
  const post = (body: string, token: string | undefined, seedToken?: string) =>
    rawRequest(scheduler.url, {
      method: "POST", path: "/v1/schedule", body,
      headers: { "content-type": "application/json", ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...(seedToken === undefined ? {} : { "x-damselfly-seed-token": seedToken }) }
    })

  // The cluster token admits an ordinary host but not a seed (the seed token does: the seed daemon below).
  expect((await post(announce("normal", "plain-host"), TOKEN)).status).toBe(200)
  const refused = await post(announce("seed", "would-be-seed"), TOKEN)
  expect(refused.status).toBe(403)
  expect((refused.json as { error: string }).error).toContain("host.type: \"seed\" requires the seed token")
  expect((await post(announce("seed", "would-be-seed"), undefined)).status).toBe(401)
  expect((await post(announce("seed", "would-be-seed"), TOKEN, "a-wrong-seed-token")).status).toBe(403)
  // The seed token is no cluster credential: without the cluster token it opens nothing.
  expect((await post(announce("seed", "would-be-seed"), SEED_TOKEN, SEED_TOKEN)).status).toBe(401)
  expect((await getJson(`${scheduler.url}/healthy`)).body.seeds).toEqual([])

  // Daemons: a seed given only the cluster token is refused as a seed; one given the seed token is one,
  // and a download through an ordinary daemon is seeded by it.
  const origin = await ws.origin(6 * 1024 * 1024)
  const common = { dir: ws.dir, schedulers: scheduler.url }
  const impostor = await spawnDaemon("impostor", { ...common, seed: true, hostId: "impostor", args: ["--token", TOKEN] })
  const seed = await spawnDaemon("seed", { ...common, seed: true, hostId: "seed-0", args: ["--token", TOKEN, "--seed-token", SEED_TOKEN] })
  const peer = await spawnDaemon("peer", { ...common, hostId: "peer-0", args: ["--token", TOKEN] })
  for (const n of [impostor, seed, peer]) await waitHealthy(n.url, n.proc, 120_000)
  await waitFor("the seed daemon announced", async () => (await getJson(`${scheduler.url}/healthy`)).body.seeds?.includes("seed-0"))
  await waitFor("the impostor to have tried", async () => /seed token/.test(impostor.proc.stdout() + impostor.proc.stderr()), 30_000)
  expect((await getJson(`${scheduler.url}/healthy`)).body.seeds).not.toContain("impostor")
  expect((await rawRequest(impostor.url, { path: "/healthy" })).json).toMatchObject({ announced: false })
  // Nor can a holder of the cluster token take over a known seed's (public) id as a normal host.
  const takeover = await post(announce("normal", "seed-0"), TOKEN)
  expect(takeover.status).toBe(403)
  expect((takeover.json as { error: string }).error).toContain("is a seed here")
  expect((await getJson(`${scheduler.url}/healthy`)).body.seeds).toContain("seed-0")

  const out = path.join(ws.dir, "out.bin")
  const get = damselfly("get", ["get", origin.url, "-O", out, "--daemon", peer.url, "--token", TOKEN, "--no-progress"])
  expect(await get.exited, get.stderr()).toBe(0)
  expect(await sha256File(out)).toBe(origin.sha256)
  // The scheduler triggered the real seed for the task, never the impostor.
  const taskId = Effect.runSync(Effect.provideService(taskIdOf({ url: origin.url, pieceLength: pieceLengthFor(origin.size) }), Sha256, sha))
  const task = await rawRequest(scheduler.url, { path: `/v1/tasks/${taskId}`, headers: { authorization: `Bearer ${TOKEN}` } })
  expect(task.status, task.text).toBe(200)
  const hosts = (task.json as { peers: ReadonlyArray<{ hostId: string }> }).peers.map((p: { hostId: string }) => p.hostId)
  expect(hosts).toContain("seed-0")
  expect(hosts).not.toContain("impostor")
}, 300_000)

it("a seed daemon with a seed token works with a scheduler that has none", async () => {
  const scheduler = await startScheduler("plain-scheduler", ["--token", TOKEN])
  const seed = await spawnDaemon("plain-seed", { dir: ws.dir, schedulers: scheduler.url, seed: true, hostId: "seed-plain", args: ["--token", TOKEN, "--seed-token", SEED_TOKEN] })
  await waitHealthy(seed.url, seed.proc, 120_000)
  await waitFor("the seed announced", async () => (await getJson(`${scheduler.url}/healthy`)).body.seeds?.includes("seed-plain"))
}, 300_000)
