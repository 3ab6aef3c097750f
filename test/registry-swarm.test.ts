// Eight daemons (real processes, plus a scheduler and a seed peer) pull the same multi-layer image
// through their own mirrors at once, with skopeo. The registry's access log must show about one copy
// of each blob: one ranged GET per 4 MiB piece, not one per puller.
import { promises as fs } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, expect, it } from "vitest"
import { pieceLengthFor } from "../core/piece-layout.ts"
import { killAll } from "../runtime/testing/harness.ts"
import { blobGets, buildImage, layoutBlobs, type MirrorCluster, pushImage, type Registry, skopeo, startMirrorCluster, startRegistry, stopAll } from "./fixtures/registry/registry-env.ts"

const MiB = 1024 * 1024
const PULLERS = 8

let dir: string
let registry: Registry
let cluster: MirrorCluster

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "damselfly-registry-swarm-"))
  registry = await startRegistry(path.join(dir, "registry"))
  cluster = await startMirrorCluster(path.join(dir, "cluster"), PULLERS, [registry.url])
}, 300_000)

afterAll(async () => {
  await killAll()
  await stopAll()
  await fs.rm(dir, { recursive: true, force: true })
})

it(`${PULLERS} daemons pull one multi-layer image at once; the registry serves about one copy of each blob`, async () => {
  // One layer spans three pieces, the rest one each.
  const image = await buildImage(path.join(dir, "image"), [9 * MiB, 3 * MiB, 2 * MiB, 1 * MiB, 256 * 1024])
  await pushImage(image, registry.host, "swarm")
  const blobDigests = [...image.layers, image.config]
  const sizes = new Map<string, number>()
  for (const d of blobDigests) sizes.set(d, (await fs.stat(path.join(image.layout, "blobs", "sha256", d.slice(7)))).size)
  const totalBytes = [...sizes.values()].reduce((a, b) => a + b, 0)
  const pieces = [...sizes.values()].reduce((a, s) => a + Math.max(1, Math.ceil(s / pieceLengthFor(s))), 0)
  const before = (await registry.accessLog()).length

  const started = Date.now()
  await Promise.all(cluster.daemons.map((d, i) =>
    skopeo(["copy", "--src-tls-verify=false", `docker://127.0.0.1:${d.mirrorPort}/swarm:v1`, `oci:${path.join(dir, `out-${i}`)}:v1`])))
  const seconds = (Date.now() - started) / 1000
  for (let i = 0; i < PULLERS; i++) {
    const blobs = await layoutBlobs(path.join(dir, `out-${i}`))
    for (const d of blobDigests) expect(blobs.has(d)).toBe(true)
  }

  const log = (await registry.accessLog()).slice(before)
  const gets = blobGets(log, "swarm").filter((g) => g.status === 200 || g.status === 206)
  const bytes = gets.reduce((a, g) => a + g.bytes, 0)
  const manifestGets = log.filter((e) => e.method === "GET" && e.path.startsWith("/v2/swarm/manifests/")).length
  const copies = bytes / totalBytes
  console.log(
    `${PULLERS} pullers, ${image.layers.length} layers + config = ${blobDigests.length} blobs in ${pieces} pieces (${(totalBytes / MiB).toFixed(1)} MiB): ` +
      `registry blob GETs=${gets.length}, blob bytes=${bytes} (${copies.toFixed(3)} copies), manifest GETs=${manifestGets}, ` +
      `from skopeo directly=${gets.filter((g) => g.userAgent.startsWith("skopeo")).length}; wall ${seconds.toFixed(1)} s (shared machine)`
  )
  expect(gets.filter((g) => g.userAgent.startsWith("skopeo"))).toEqual([])
  // Every piece had to come from the registry at least once; about once is the point.
  expect(gets.length).toBeGreaterThanOrEqual(pieces)
  expect(gets.length).toBeLessThanOrEqual(Math.floor(1.1 * pieces))
  expect(copies).toBeGreaterThanOrEqual(1)
  expect(copies).toBeLessThanOrEqual(1.1)
  // Manifests pass through: one resolution per puller (skopeo may GET the manifest twice), never P2P.
  expect(manifestGets).toBeGreaterThanOrEqual(PULLERS)
}, 600_000)
