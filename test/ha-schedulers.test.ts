// Schedulers without a single point of failure, with real processes on loopback: three schedulers, one
// seed, four daemons that list all three. Tasks are placed by consistent hashing of the task id; the
// scheduler owning a task is SIGKILLed mid-download (the next one on the ring takes the task over,
// rebuilt from the peers' re-registrations) and restarted (the task moves back to it); then every
// scheduler is killed (downloads under way go on from their parents, a new one from the origin).
// The three cases share one cluster and run in order.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Cluster, kill9, piecesHeld, startCluster } from "../runtime/testing/cluster.ts"
import { getJson, killAll, type Origin, postRaw, sha256File, startOrigin, waitFor } from "../runtime/testing/harness.ts"
import { SchedulerRing } from "../runtime/scheduler-ring.ts"

const MiB = 1024 * 1024
const PIECE = MiB
const DAEMONS = 4
const BIG = 64 * MiB
/** Per origin reply; the seed runs 8 at once, so ~4 MiB/s: a 64 MiB download takes ~16 s. */
const ORIGIN_RATE = 512 * 1024

let dir: string
let cluster: Cluster
let ring: SchedulerRing
const origins: Array<Origin> = []

const byUrl = (url: string) => cluster.schedulers.find((s) => s.url === url)!

/** Every daemon downloads `o` through its own API; resolves to each answer and the elapsed seconds. */
const downloadEverywhere = (o: Origin, tag: string) => {
  const started = Date.now()
  return Promise.all(cluster.daemons.map(async (d, i) => {
    const output = path.join(dir, `${tag}-${i}.bin`)
    const r = await postRaw(`${d.url}/v1/download`, JSON.stringify({ url: o.url, output, digest: `sha256:${o.sha256}`, pieceLength: PIECE }))
    return { ...r, output, seconds: (Date.now() - started) / 1000 }
  }))
}

const expectDelivered = async (results: Awaited<ReturnType<typeof downloadEverywhere>>, o: Origin) => {
  for (const [i, r] of results.entries()) {
    expect(r.status, `daemon-${i}: ${JSON.stringify(r.body)}\n${cluster.daemons[i].proc.stderr().slice(-1500)}`).toBe(200)
    expect(await sha256File(r.output)).toBe(o.sha256)
  }
}

const everyDaemonHasAPiece = (taskId: string) =>
  waitFor("every daemon to hold a piece", async () =>
    (await Promise.all(cluster.daemons.map((n) => piecesHeld(n, taskId)))).every((v) => v >= 1), 60_000)

const taskAt = async (url: string, taskId: string) => {
  const r = await getJson(`${url}/v1/tasks/${taskId}`)
  return r.status === 200 ? (r.body as { peers: Array<{ hostId: string; state: string }> }) : undefined
}

const ALL_HOSTS = ["peer-0", "peer-1", "peer-2", "peer-3", "seed-0"]
const hostsOf = (t: { peers: Array<{ hostId: string }> } | undefined) => [...new Set(t?.peers.map((p) => p.hostId) ?? [])].sort()

describe("HA schedulers: consistent hashing and failover", () => {
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "damselfly-ha-"))
    cluster = await startCluster({ dir, daemons: DAEMONS, schedulers: 3, daemonArgs: ["--scheduler-down-seconds", "5"], seedArgs: ["--scheduler-down-seconds", "5"] })
    ring = new SchedulerRing(cluster.schedulers.map((s) => s.url))
  }, 240_000)

  afterAll(async () => {
    const logs = process.env.DAMSELFLY_TEST_LOGS
    if (logs !== undefined && cluster !== undefined) {
      await mkdir(logs, { recursive: true })
      for (const n of [...cluster.schedulers, cluster.seed, ...cluster.daemons]) await writeFile(path.join(logs, `${n.name}.log`), n.proc.stderr())
    }
    await killAll()
    for (const o of origins) await o.close()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  it("(a) tasks of different URLs spread over the schedulers; each task lives on its ring owner only", async () => {
    // Content is random, so task ids (content digests) are too: add files until two schedulers own some
    // (six files land on one scheduler with probability 3/3^6; the loop makes the test certain).
    const small: Array<Origin> = []
    while (small.length < 6 || new Set(small.map((o) => ring.owner(o.sha256))).size < 2) {
      const o = await startOrigin(await mkdtemp(path.join(dir, "small-")), 4 * MiB)
      origins.push(o)
      small.push(o)
    }
    const started = Date.now()
    const results = await Promise.all(small.map((o, k) => downloadEverywhere(o, `small-${k}`)))
    for (const [k, r] of results.entries()) await expectDelivered(r, small[k])
    const seconds = (Date.now() - started) / 1000
    const placement = new Map<string, number>()
    for (const o of small) {
      const owner = ring.owner(o.sha256)
      placement.set(owner, (placement.get(owner) ?? 0) + 1)
      for (const s of cluster.schedulers) {
        const t = await taskAt(s.url, o.sha256)
        if (s.url === owner) expect(hostsOf(t), `task ${o.sha256.slice(0, 8)} at its owner ${s.name}`).toEqual(ALL_HOSTS)
        else expect(t, `task ${o.sha256.slice(0, 8)} must not be known at ${s.name}`).toBeUndefined()
      }
    }
    const copies = small.reduce((n, o) => n + o.bytesSent() / o.size, 0) / small.length
    console.log(`[ha] ${small.length} tasks × ${DAEMONS} daemons (4 MiB each) in ${seconds.toFixed(1)} s; placement ${cluster.schedulers.map((s) => `${s.name}:${placement.get(s.url) ?? 0}`).join(" ")}; origin ${copies.toFixed(2)} copies per task`)
    expect(placement.size).toBeGreaterThan(1)
  }, 120_000)

  it("(b) the task's scheduler SIGKILLed mid-download: all finish, the next scheduler on the ring gets the peers; back when restarted", async () => {
    const o = await startOrigin(await mkdtemp(path.join(dir, "big-")), BIG, { bytesPerSecond: ORIGIN_RATE })
    origins.push(o)
    const taskId = o.sha256
    const [ownerUrl, nextUrl] = ring.preference(taskId)
    const owner = byUrl(ownerUrl)
    const next = byUrl(nextUrl)
    const started = Date.now()
    const pending = downloadEverywhere(o, "b")
    await everyDaemonHasAPiece(taskId)
    expect(hostsOf(await taskAt(owner.url, taskId))).toEqual(ALL_HOSTS)
    const atKill = o.bytesSent() / BIG
    const killedAt = (Date.now() - started) / 1000
    await kill9(owner)
    const results = await pending
    await expectDelivered(results, o)
    const seconds = (Date.now() - started) / 1000
    const copies = o.bytesSent() / BIG
    // Every peer re-registered with the next scheduler on the ring (the seed too), which saw them finish.
    await waitFor(`${next.name} to hold the task's peers`, async () => {
      const t = await taskAt(next.url, taskId)
      return hostsOf(t).join() === ALL_HOSTS.join() && t!.peers.every((p) => p.state === "succeeded")
    }, 20_000).catch(async (e) => {
      throw new Error(`${(e as Error).message}; ${next.name} has ${JSON.stringify(await taskAt(next.url, taskId))}`)
    })
    const takenOver = (Date.now() - started) / 1000
    console.log(`[ha] owner ${owner.name} SIGKILLed at ${killedAt.toFixed(1)} s (${atKill.toFixed(2)} copies out of the origin): ${DAEMONS} downloads of 64 MiB done in ${results.map((r) => r.seconds.toFixed(1)).join("/")} s; origin sent ${copies.toFixed(2)} copies; ${next.name} had all ${ALL_HOSTS.length} peers, succeeded, at ${takenOver.toFixed(1)} s`)
    expect(copies).toBeLessThanOrEqual(1.5)
    expect(seconds).toBeLessThan(90)
    // The third scheduler never heard of the task.
    const third = cluster.schedulers.find((s) => s !== owner && s !== next)!
    expect(await taskAt(third.url, taskId)).toBeUndefined()

    // The owner comes back (a new process, empty state): once the daemons' down marks expire (5 s) their
    // probe finds it, the task moves back, and every peer re-registers there with what it holds.
    const restartedAt = Date.now()
    await cluster.restartScheduler(cluster.schedulers.indexOf(owner))
    await waitFor(`${owner.name} (restarted) to get the task's peers back`, async () => {
      const t = await taskAt(owner.url, taskId)
      return hostsOf(t).join() === ALL_HOSTS.join() && t!.peers.every((p) => p.state === "succeeded")
    }, 30_000)
    console.log(`[ha] restarted ${owner.name} had the task's ${ALL_HOSTS.length} peers back ${((Date.now() - restartedAt) / 1000).toFixed(1)} s after restart`)
    for (const d of cluster.daemons) {
      const h = await getJson(`${d.url}/healthy`)
      expect(h.body.schedulers.every((s: { downUntil: number | null }) => s.downUntil === null)).toBe(true)
    }
  }, 180_000)

  it("(c) every scheduler killed: downloads under way finish from their parents, a new one from the origin", async () => {
    const o = await startOrigin(await mkdtemp(path.join(dir, "big-")), BIG, { bytesPerSecond: ORIGIN_RATE })
    origins.push(o)
    const started = Date.now()
    const pending = downloadEverywhere(o, "c")
    await everyDaemonHasAPiece(o.sha256)
    const killedAt = (Date.now() - started) / 1000
    await Promise.all(cluster.schedulers.map((s) => kill9(s)))
    const results = await pending
    await expectDelivered(results, o)
    const copies = o.bytesSent() / BIG
    console.log(`[ha] all 3 schedulers SIGKILLed at ${killedAt.toFixed(1)} s: ${DAEMONS} downloads of 64 MiB done in ${results.map((r) => r.seconds.toFixed(1)).join("/")} s; origin sent ${copies.toFixed(2)} copies; from peers ${results.map((r) => (r.body.bytesFromPeers / MiB).toFixed(0)).join("/")} MiB`)
    // With no scheduler to vouch for digests a child takes a piece from a seed peer (trusted: it fetched
    // the piece from the origin) or when two parents claim the same digest; the origin serves about once.
    expect(copies).toBeLessThanOrEqual(1.5)

    // A task no peer knows, with no scheduler anywhere: straight to the origin.
    const fresh = await startOrigin(await mkdtemp(path.join(dir, "fresh-")), 8 * MiB)
    origins.push(fresh)
    const t0 = Date.now()
    const output = path.join(dir, "fresh.bin")
    const r = await postRaw(`${cluster.daemons[0].url}/v1/download`, JSON.stringify({ url: fresh.url, output, digest: `sha256:${fresh.sha256}`, pieceLength: PIECE }))
    expect(r.status, JSON.stringify(r.body)).toBe(200)
    expect(await sha256File(output)).toBe(fresh.sha256)
    expect(r.body.backToSource).toBe(true)
    expect(r.body.bytesFromOrigin).toBe(8 * MiB)
    console.log(`[ha] no scheduler: a new 8 MiB task went to the origin and finished in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
  }, 180_000)
})
