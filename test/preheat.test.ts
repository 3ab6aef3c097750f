// Preheat end to end with real components: Debian's docker-registry holding images built with umoci and
// pushed with skopeo (a multi-layer image, a multi-arch index, an htpasswd-protected registry), a
// scheduler process with its SQLite job store, two seed daemons and a normal daemon.
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { pieceCountOf, pieceLengthFor } from "../core/piece-layout.ts"
import { damselfly, freePort, getJson, httpJson, killAll, type Proc, rawRequest, waitFor, waitHealthy } from "../runtime/testing/harness.ts"
import { buildImage, getManifest, type Manifest, pushImage, pushIndex, type Registry, startRegistry, startSlowRelay, startTokenServer } from "./oci-registry-fixture.ts"

const dir = mkdtempSync(path.join(tmpdir(), "damselfly-preheat-"))
const CREDS = { username: "puller", password: "s3cret-pass" }

interface Node {
  readonly url: string
  readonly port: number
  proc: Proc
}

let registry: Registry
let authRegistry: Registry
let tokenRegistry: Registry
let tokenServer: Awaited<ReturnType<typeof startTokenServer>>
let scheduler: Node
let schedulerArgs: Array<string>
const seeds: Array<Node> = []
let peer: Node
let image: Manifest
let amd: Manifest
let arm: Manifest
let indexDigest: string

const start = async (name: string, args: (port: number) => Array<string>): Promise<Node> => {
  const port = await freePort()
  return { port, url: `http://127.0.0.1:${port}`, proc: damselfly(name, args(port)) }
}

const submit = (args: Record<string, unknown>) =>
  httpJson(`${scheduler.url}/api/v1/jobs`, { method: "POST", body: JSON.stringify({ type: "preheat", args }) })

const job = async (id: string) => (await getJson(`${scheduler.url}/api/v1/jobs/${id}`)).body

const finished = async (id: string, millis = 90_000) => {
  let last: any
  await waitFor(`job ${id} to finish`, async () => {
    last = await job(id)
    return last.state === "SUCCESS" || last.state === "FAILURE"
  }, millis)
  return last
}

const blobsOf = (m: Manifest) => [m.json.config, ...m.json.layers]

const held = async (node: Node, digest: string) => (await getJson(`${node.url}/v1/cache/tasks/${digest.slice(7)}`)).body

beforeAll(async () => {
  registry = await startRegistry(path.join(dir, "registry"))
  authRegistry = await startRegistry(path.join(dir, "registry-auth"), CREDS)
  // Three layers, one of them over one 4 MiB piece, so a blob is fetched in ranges too.
  await pushImage(buildImage(dir, "multi", [300_000, 6 * 1024 * 1024, 200_000]), registry.host, "app", "v1")
  image = await getManifest(registry.host, "app", "v1")
  await pushImage(buildImage(dir, "amd", [100_000, 120_000], "amd64"), registry.host, "multiarch", "amd64")
  await pushImage(buildImage(dir, "arm", [90_000], "arm64"), registry.host, "multiarch", "arm64")
  amd = await getManifest(registry.host, "multiarch", "amd64")
  arm = await getManifest(registry.host, "multiarch", "arm64")
  indexDigest = await pushIndex(registry.host, "multiarch", "latest", [{ manifest: amd, arch: "amd64" }, { manifest: arm, arch: "arm64" }])
  await pushImage(buildImage(dir, "private", [150_000, 160_000]), authRegistry.host, "secret/app", "v1", CREDS)
  tokenServer = await startTokenServer(path.join(dir, "token"), CREDS)
  tokenRegistry = await startRegistry(path.join(dir, "registry-token"), undefined, tokenServer.auth)
  await pushImage(buildImage(dir, "bearer", [140_000, 130_000]), tokenRegistry.host, "bearer/app", "v1", CREDS)

  const sp = await freePort()
  schedulerArgs = ["scheduler", "--port", String(sp), "--data", path.join(dir, "scheduler")]
  scheduler = { port: sp, url: `http://127.0.0.1:${sp}`, proc: damselfly("scheduler", schedulerArgs) }
  for (let i = 0; i < 2; i++) {
    seeds.push(await start(`seed-${i}`, (port) => ["daemon", "--seed", "--port", String(port), "--data", path.join(dir, `seed-${i}`), "--scheduler", scheduler.url, "--host-id", `seed-${i}`]))
  }
  peer = await start("peer", (port) => ["daemon", "--port", String(port), "--data", path.join(dir, "peer"), "--scheduler", scheduler.url, "--host-id", "peer-0"])
  await waitHealthy(scheduler.url, scheduler.proc, 60_000)
  for (const n of [...seeds, peer]) await waitHealthy(n.url, n.proc, 60_000)
  await waitFor("every host to announce itself", async () => (await getJson(`${scheduler.url}/healthy`)).body.hosts === 3)
}, 180_000)

afterAll(async () => {
  await killAll()
  await registry?.close()
  await authRegistry?.close()
  await tokenRegistry?.close()
  await tokenServer?.close()
  rmSync(dir, { recursive: true, force: true })
})

describe("preheat", () => {
  let firstJob: string

  it("preheats every blob of a multi-layer image on all seed peers; the registry serves each blob once per seed", async () => {
    const before = registry.blobRequests().length
    const created = await submit({ type: "image", url: `http://${registry.host}/v2/app/manifests/v1`, scope: "all_seed_peers" })
    expect(created.status).toBe(201)
    expect(created.body.state).toBe("PENDING")
    firstJob = created.body.id
    const done = await finished(firstJob)
    expect(done.error).toBeUndefined()
    expect(done.state).toBe("SUCCESS")
    expect(done.result.manifestDigest).toBe(image.digest)
    const blobs = blobsOf(image)
    expect(done.result.layers.map((l: any) => l.digest)).toEqual(blobs.map((b) => b.digest))
    for (const l of done.result.layers) {
      expect(l.state).toBe("SUCCESS")
      expect(l.bytesDone).toBe(l.bytesTotal)
      expect(l.bytesTotal).toBe(l.size * 2)
      expect(l.peers.map((p: any) => p.hostId).sort()).toEqual(["seed-0", "seed-1"])
    }
    // Both seeds hold every blob complete, as the task named by its digest.
    for (const seed of seeds) {
      for (const b of blobs) {
        const stat = await held(seed, b.digest)
        expect(stat.complete, `${b.digest} on ${seed.url}`).toBe(true)
        expect(stat.contentLength).toBe(b.size)
      }
    }
    // The registry's own access log: per blob, GET bytes are exactly one copy per seed, in as many
    // ranged GETs as the blob has pieces.
    const gets = registry.blobRequests().slice(before).filter((r) => r.method === "GET")
    const table = blobs.map((b) => {
      const mine = gets.filter((g) => g.digest === b.digest)
      return { digest: b.digest.slice(0, 19), size: b.size, gets: mine.length, bytes: mine.reduce((s, g) => s + g.bytes, 0) }
    })
    console.log("registry access log per blob (2 seeds):", JSON.stringify(table))
    for (const [i, b] of blobs.entries()) {
      expect(table[i].bytes).toBe(b.size * 2)
      expect(table[i].gets).toBe(pieceCountOf(b.size, pieceLengthFor(b.size)) * 2)
    }
  }, 180_000)

  it("a preheated layer reaches a normal daemon from the seeds, not the registry", async () => {
    const layer = image.json.layers[1]
    const before = registry.blobRequests().filter((r) => r.method === "GET").length
    const r = await httpJson(`${peer.url}/v1/download`, {
      method: "POST",
      body: JSON.stringify({ url: `http://${registry.host}/v2/app/blobs/${layer.digest}`, digest: layer.digest, output: path.join(dir, "out", "layer.bin") }),
      timeoutMillis: 120_000
    })
    expect(r.status).toBe(200)
    expect(r.body.taskId).toBe(layer.digest.slice(7))
    expect(r.body.bytesFromOrigin).toBe(0)
    expect(r.body.bytesFromPeers).toBe(layer.size)
    expect(registry.blobRequests().filter((x) => x.method === "GET").length).toBe(before)
  }, 180_000)

  it("resolves a multi-arch index by platform, and fails naming the platform when it is not there", async () => {
    const created = await submit({ type: "image", url: `${registry.host}/multiarch:latest`, platform: "linux/arm64", scope: "single_seed_peer" })
    const done = await finished(created.body.id)
    expect(done.state).toBe("SUCCESS")
    expect(done.result.manifestDigest).toBe(arm.digest)
    expect(done.result.layers.map((l: any) => l.digest)).toEqual(blobsOf(arm).map((b) => b.digest))
    for (const l of done.result.layers) expect(l.peers).toHaveLength(1)
    const defaulted = await finished((await submit({ type: "image", url: `${registry.host}/multiarch@${indexDigest}` })).body.id)
    expect(defaulted.state).toBe("SUCCESS")
    expect(defaulted.result.manifestDigest).toBe(amd.digest)
    const missing = await finished((await submit({ type: "image", url: `${registry.host}/multiarch:latest`, platform: "linux/s390x" })).body.id)
    expect(missing.state).toBe("FAILURE")
    expect(missing.error).toMatch(/platform: linux\/s390x not in the index .*linux\/amd64, linux\/arm64/)
  }, 180_000)

  it("all_peers picks announced daemons by ips, percentage and count; a filter matching nobody fails saying so", async () => {
    const url = `${registry.host}/multiarch:amd64`
    const counted = await finished((await submit({ type: "file", url: `http://${registry.host}/v2/multiarch/blobs/${amd.json.layers[0].digest}`, scope: "all_peers", count: 2 })).body.id)
    expect(counted.error).toBeUndefined()
    expect(counted.state).toBe("SUCCESS")
    expect(counted.result.layers).toHaveLength(1)
    expect(counted.result.layers[0].kind).toBe("file")
    expect(counted.result.layers[0].peers.map((p: any) => p.hostId)).toEqual(["peer-0", "seed-0"])
    const half = await finished((await submit({ type: "image", url, scope: "all_peers", percentage: 50, ips: ["127.0.0.1"] })).body.id)
    expect(half.state).toBe("SUCCESS")
    for (const l of half.result.layers) expect(l.peers).toHaveLength(2) // ⌈3 × 50 %⌉
    for (const l of half.result.layers) expect((await held(peer, l.digest)).complete).toBe(true)
    const nobody = await finished((await submit({ type: "image", url, scope: "all_seed_peers", ips: ["10.9.9.9"] })).body.id)
    expect(nobody.state).toBe("FAILURE")
    expect(nobody.error).toMatch(/no seed peer with ip in 10\.9\.9\.9 is known/)
  }, 180_000)

  it("a bad job body is refused with the field named", async () => {
    const badScope = await submit({ type: "image", url: `${registry.host}/app:v1`, scope: "everyone" })
    expect(badScope.status).toBe(400)
    expect(badScope.body.error).toMatch(/scope/)
    const badType = await httpJson(`${scheduler.url}/api/v1/jobs`, { method: "POST", body: JSON.stringify({ type: "warm", args: {} }) })
    expect(badType.status).toBe(400)
    expect(badType.body.error).toMatch(/type/)
    const badPercentage = await submit({ type: "image", url: `${registry.host}/app:v1`, scope: "all_peers", percentage: 250 })
    expect(badPercentage.status).toBe(400)
    expect(badPercentage.body.error).toMatch(/percentage/)
    const badUrl = await submit({ type: "image", url: "ftp://example.com/x" })
    expect(badUrl.status).toBe(400)
    expect(badUrl.body.error).toMatch(/^args\.url: /)
    expect((await getJson(`${scheduler.url}/api/v1/jobs/00000000-0000-0000-0000-000000000000`)).status).toBe(404)
  })

  it("an htpasswd registry: preheat works with username/password and fails clearly without or with a wrong one", async () => {
    const url = `${authRegistry.host}/secret/app:v1`
    const ok = await finished((await submit({ type: "image", url, scope: "all_seed_peers", ...CREDS })).body.id)
    expect(ok.error).toBeUndefined()
    expect(ok.state).toBe("SUCCESS")
    expect(ok.args.password).toBeUndefined() // never echoed
    const m = await getManifest(authRegistry.host, "secret/app", "v1", CREDS)
    for (const seed of seeds) for (const b of blobsOf(m)) expect((await held(seed, b.digest)).complete).toBe(true)
    // Blobs behind credentials are private: the seeds got capabilities and serve pieces only with one.
    expect(ok.result.private).toBe(true)
    const layer = m.json.layers[0].digest.slice(7)
    const refused = await rawRequest(seeds[0].url, { path: `/v1/tasks/${layer}/pieces/0` })
    expect(refused.status).toBe(403)
    expect(refused.json.error).toMatch(/private/)
    expect((await job(firstJob)).result.private).toBe(false) // the public image
    const anonymous = await finished((await submit({ type: "image", url })).body.id)
    expect(anonymous.state).toBe("FAILURE")
    expect(anonymous.error).toMatch(/authentication required .*no username\/password given/)
    const wrong = await finished((await submit({ type: "image", url, username: CREDS.username, password: "nope" })).body.id)
    expect(wrong.state).toBe("FAILURE")
    expect(wrong.error).toMatch(/credentials of "puller" were refused/)
  }, 180_000)

  it("a registry with Bearer tokens: the token flow with username/password works; anonymous fails clearly", async () => {
    const url = `http://${tokenRegistry.host}/v2/bearer/app/manifests/v1`
    const issuedBefore = tokenServer.issued()
    const ok = await finished((await submit({ type: "image", url, scope: "all_seed_peers", ...CREDS })).body.id)
    expect(ok.error).toBeUndefined()
    expect(ok.state).toBe("SUCCESS")
    expect(ok.result.layers).toHaveLength(3)
    expect(ok.result.private).toBe(true)
    expect(tokenServer.issued()).toBeGreaterThan(issuedBefore)
    for (const seed of seeds) for (const l of ok.result.layers) expect((await held(seed, l.digest)).complete).toBe(true)
    // Every blob GET the registry served carried a token (it answers 401 otherwise) and came from a seed, once each.
    const gets = tokenRegistry.blobRequests().filter((r) => r.method === "GET" && r.status < 300)
    for (const l of ok.result.layers) expect(gets.filter((g) => g.digest === l.digest).reduce((n, g) => n + g.bytes, 0)).toBe(l.size * 2)
    const anonymous = await finished((await submit({ type: "image", url })).body.id)
    expect(anonymous.state).toBe("FAILURE")
    expect(anonymous.error).toMatch(/authentication required/)
  }, 180_000)

  it("a running job survives a scheduler restart (SQLite) and finished jobs stay queryable", async () => {
    // A slow link to the registry keeps the job running long enough to kill the scheduler under it.
    const relay = await startSlowRelay(Number(registry.host.split(":")[1]), 2 * 1024 * 1024)
    try {
      await pushImage(buildImage(dir, "slow", [8 * 1024 * 1024]), registry.host, "slow", "v1")
      const created = await submit({ type: "image", url: `${relay.host}/slow:v1`, scope: "all_seed_peers" })
      const id = created.body.id
      await waitFor("the job to be running on the seeds", async () => {
        const j = await job(id)
        return j.state === "RUNNING" && j.result?.layers?.some((l: any) => l.state === "RUNNING")
      }, 60_000)
      scheduler.proc.child.kill("SIGKILL")
      await scheduler.proc.exited
      scheduler.proc = damselfly("scheduler-restarted", schedulerArgs)
      await waitHealthy(scheduler.url, scheduler.proc, 60_000)
      const resumed = await job(id)
      expect(["RUNNING", "SUCCESS"]).toContain(resumed.state)
      const done = await finished(id, 60_000).catch((e) => {
        for (const sd of seeds) console.log(sd.proc.stderr().slice(-4000))
        console.log(scheduler.proc.stderr().slice(-3000))
        throw e
      })
      expect(done.error).toBeUndefined()
      expect(done.state).toBe("SUCCESS")
      expect(scheduler.proc.stderr()).toMatch(/preheat resumed after restart/)
      const first = await job(firstJob)
      expect(first.state).toBe("SUCCESS")
      expect(first.result.layers).toHaveLength(blobsOf(image).length)
    } finally {
      await relay.close()
    }
  }, 240_000)
})
