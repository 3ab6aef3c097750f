// Real processes on loopback, hurt on purpose: the scheduler SIGKILLed mid-download (and restarted on
// its port), the seed SIGKILLed mid-piece, a seed that serves corrupt pieces. Every `damselfly get`
// must still deliver content whose sha256 matches, and the origin must not be hit once per peer.
import { mkdtemp, readdir, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { type Cluster, kill9, piecesHeld, startCluster } from "../runtime/testing/cluster.ts"
import { damselfly, getJson, killAll, type Origin, sha256File, startOrigin, waitFor } from "../runtime/testing/harness.ts"

const MiB = 1024 * 1024
const PIECE = MiB
const DAEMONS = 3

let dir: string | undefined
let origin: Origin | undefined

afterEach(async () => {
  await killAll()
  await origin?.close()
  origin = undefined
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  dir = undefined
})

const setup = async (size: number, originRate: number | undefined, opts: { seedArgs?: Array<string> } = {}) => {
  dir = await mkdtemp(path.join(tmpdir(), "damselfly-fault-"))
  origin = await startOrigin(dir, size, originRate === undefined ? {} : { bytesPerSecond: originRate })
  const cluster = await startCluster({ dir, daemons: DAEMONS, ...opts })
  return { dir, origin, cluster }
}

const startGets = (cluster: Cluster, o: Origin, d: string) =>
  cluster.daemons.map((daemon, i) =>
    damselfly(`get-${i}`, ["get", o.url, "-O", path.join(d, `out-${i}.bin`), "--daemon", daemon.url, "--digest", `sha256:${o.sha256}`, "--piece-length", String(PIECE)]))

/** Waits until every daemon holds at least one piece of the task (so all are mid-download). */
const everyDaemonHasAPiece = async (cluster: Cluster, taskId: string) => {
  let last: Array<number> = []
  await waitFor("every daemon to hold a piece", async () => {
    last = await Promise.all(cluster.daemons.map((n) => piecesHeld(n, taskId)))
    return last.every((v) => v >= 1)
  }, 45_000).catch((e) => {
    throw new Error(`${(e as Error).message}; pieces held: ${last.join(",")}; ${cluster.daemons.map((n) => n.proc.stderr().slice(-600)).join("\n---\n")}`)
  })
  return last
}

const expectAllDelivered = async (gets: ReturnType<typeof startGets>, o: Origin, d: string) => {
  const codes = await Promise.all(gets.map((g) => g.exited))
  codes.forEach((code, i) => expect(code, `get-${i} failed: ${gets[i].stderr()}`).toBe(0))
  for (let i = 0; i < gets.length; i++) {
    expect(await sha256File(path.join(d, `out-${i}.bin`))).toBe(o.sha256)
    expect(JSON.parse(gets[i].stdout()).via).toBe("daemon")
  }
  expect((await readdir(d)).filter((f) => f.endsWith(".tmp"))).toEqual([])
}

describe("fault: processes killed or lying", () => {
  it("scheduler SIGKILLed mid-download: every get finishes; a new scheduler on the port gets the hosts and tasks back", async () => {
    const SIZE = 48 * MiB
    // 512 KiB/s per origin reply, 8 replies at once at the seed: ~12 s for the seed alone.
    const { dir: d, origin: o, cluster } = await setup(SIZE, 512 * 1024)
    const taskId = o.sha256 // gets pass --digest, which names the task
    const started = Date.now()
    const gets = startGets(cluster, o, d)
    await everyDaemonHasAPiece(cluster, taskId)
    const atKill = o.bytesSent() / SIZE
    await kill9(cluster.scheduler)
    await expectAllDelivered(gets, o, d)
    const seconds = (Date.now() - started) / 1000
    const copies = o.bytesSent() / SIZE
    console.log(`[fault] scheduler SIGKILL after ${atKill.toFixed(2)} copies left the origin: ${DAEMONS} gets of 48 MiB done in ${seconds.toFixed(1)} s; origin sent ${copies.toFixed(2)} copies in all`)
    // Without p2p it would be one copy per daemon plus the seed's; peers kept their parents.
    expect(copies).toBeLessThanOrEqual(2)

    const restartedAt = Date.now()
    await cluster.restartScheduler()
    await waitFor("the restarted scheduler to know every host again", async () =>
      (await getJson(`${cluster.scheduler.url}/healthy`)).body.hosts === DAEMONS + 1, 40_000) // hosts announce every 30 s
    await waitFor("the held task to be re-registered by every host", async () => {
      const r = await getJson(`${cluster.scheduler.url}/v1/tasks/${taskId}`)
      return r.status === 200 && r.body.peers.length === DAEMONS + 1 && r.body.peers.every((p: { state: string }) => p.state === "succeeded")
    }, 40_000)
    console.log(`[fault] restarted scheduler knew all ${DAEMONS + 1} hosts and their finished task after ${((Date.now() - restartedAt) / 1000).toFixed(1)} s`)
  }, 150_000)

  it("seed SIGKILLed mid-piece: children finish from each other and the origin, content intact", async () => {
    const SIZE = 32 * MiB
    // The seed uploads at 4 MiB/s, so children are mid-piece from it when it dies.
    const { dir: d, origin: o, cluster } = await setup(SIZE, 1024 * 1024, { seedArgs: ["--upload-bandwidth", String(4 * MiB)] })
    const taskId = o.sha256 // gets pass --digest, which names the task
    const started = Date.now()
    const gets = startGets(cluster, o, d)
    await everyDaemonHasAPiece(cluster, taskId)
    const seedHad = await piecesHeld(cluster.seed, taskId)
    await kill9(cluster.seed)
    await expectAllDelivered(gets, o, d)
    const copies = o.bytesSent() / SIZE
    console.log(`[fault] seed SIGKILL holding ${seedHad}/32 pieces: ${DAEMONS} gets of 32 MiB done in ${((Date.now() - started) / 1000).toFixed(1)} s; origin sent ${copies.toFixed(2)} copies`)
    expect(copies).toBeLessThanOrEqual(DAEMONS + 1)
  }, 150_000)

  it("a seed serving corrupt pieces is caught by digest, reported and blocklisted; children still finish", async () => {
    const SIZE = 16 * MiB
    const { dir: d, origin: o, cluster } = await setup(SIZE, undefined, { seedArgs: ["--fault", "corrupt-uploads"] })
    const started = Date.now()
    const gets = startGets(cluster, o, d)
    await expectAllDelivered(gets, o, d)
    const copies = o.bytesSent() / SIZE
    // The scheduler logged the children's PieceFailed reports naming the seed and the mismatch.
    const failed = cluster.scheduler.proc.stderr().split("\n").filter((l) => l.includes("piece failed") && l.includes("digest mismatch"))
    const blamed = new Set(failed.map((l) => JSON.parse(l).annotations?.parentId ?? JSON.parse(l).parentId))
    console.log(`[fault] corrupt seed: ${failed.length} PieceFailed(digest mismatch) reports blaming ${[...blamed].join(",")}; ${DAEMONS} gets done in ${((Date.now() - started) / 1000).toFixed(1)} s; origin sent ${copies.toFixed(2)} copies`)
    expect(failed.length).toBeGreaterThan(0)
    expect([...blamed].every((p) => String(p).startsWith("seed-0/"))).toBe(true)
    expect(cluster.seed.proc.stderr()).toMatch(/TEST-ONLY FAULT INJECTION ACTIVE: corrupt-uploads/)
  }, 120_000)
})
