// A pull never fails because of Damselfly: a corrupt seed, a daemon whose disk is full (P2P fails
// outright: the mirror passes the GET through) and a dead scheduler all still complete skopeo pulls
// from a real docker-registry, with the right bytes. Also the generic HTTP proxy (`--proxy-port`):
// absolute-URI requests, blob URLs P2P by rule, the rest passed through, CONNECT tunnels.
import * as http from "node:http"
import { promises as fs } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { damselfly, freePort, killAll, mountTmpfs, waitHealthy } from "../runtime/testing/harness.ts"
import { blobGets, buildImage, layoutBlobs, type MirrorCluster, pushImage, type Registry, skopeo, startMirrorCluster, startRegistry, stopAll } from "./fixtures/registry/registry-env.ts"

const MiB = 1024 * 1024

let dir: string
let registry: Registry
let cluster: MirrorCluster
let proxyPort: number
const unmounts: Array<() => void> = []

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "damselfly-registry-fallback-"))
  registry = await startRegistry(path.join(dir, "registry"))
  proxyPort = await freePort()
  // The seed is corrupt: it serves every piece with a flipped byte while claiming the true digest.
  cluster = await startMirrorCluster(path.join(dir, "cluster"), 1, [registry.url], {
    seedArgs: ["--fault", "corrupt-uploads"],
    daemonArgs: ["--proxy-port", String(proxyPort)]
  })
}, 180_000)

afterAll(async () => {
  await killAll()
  await stopAll()
  for (const u of unmounts) u()
  await fs.rm(dir, { recursive: true, force: true })
})

const pushed = async (name: string, layerSizes: ReadonlyArray<number>) => {
  const image = await buildImage(path.join(dir, `image-${name}`), layerSizes)
  await pushImage(image, registry.host, name)
  return image
}

/** skopeo copy through a mirror; checks every blob arrived; returns the registry's log entries meanwhile. */
const pullThrough = async (mirrorPort: number, name: string, image: Awaited<ReturnType<typeof pushed>>) => {
  const before = (await registry.accessLog()).length
  const out = path.join(dir, `out-${name}-${mirrorPort}`)
  await skopeo(["copy", "--src-tls-verify=false", `docker://127.0.0.1:${mirrorPort}/${name}:v1`, `oci:${out}:v1`])
  const blobs = await layoutBlobs(out)
  for (const d of [...image.layers, image.config]) expect(blobs.has(d)).toBe(true)
  return blobGets((await registry.accessLog()).slice(before), name).filter((g) => g.status === 200 || g.status === 206)
}

/** One request through the proxy in absolute form. */
const viaProxy = (url: string, headers: Record<string, string> = {}) =>
  new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port: proxyPort, method: "GET", path: url, headers, agent: false }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
    })
    req.on("error", reject)
    req.end()
  })

describe("fallback", () => {
  it("a corrupt seed: the pull completes with the right bytes (the daemon drops the seed and fetches from the registry)", async () => {
    const image = await pushed("corrupt", [2 * MiB, 1 * MiB])
    const gets = await pullThrough(cluster.daemons[0].mirrorPort, "corrupt", image)
    // Whoever fetched, it was Damselfly (seed or daemon), not skopeo: the corrupt pieces never reached it.
    expect(gets.filter((g) => g.userAgent.startsWith("skopeo"))).toEqual([])
    expect(gets.some((g) => g.userAgent.startsWith("damselfly-mirror"))).toBe(true)
    console.log(`corrupt seed: layers=${image.layers.length}, registry blob GETs=${gets.length} (seed ${gets.filter((g) => g.userAgent === "").length}, daemon ${gets.filter((g) => g.userAgent.startsWith("damselfly")).length})`)
  }, 180_000)

  it("the HTTP proxy: blob URLs go P2P by rule, other URLs pass through, CONNECT tunnels", async () => {
    const image = await pushed("proxied", [1 * MiB + 99])
    const layer = image.layers[0]
    const content = await fs.readFile(path.join(image.layout, "blobs", "sha256", layer.slice(7)))
    const blob = await viaProxy(`${registry.url}/v2/proxied/blobs/${layer}`)
    expect(blob.status).toBe(200)
    expect(blob.headers["x-damselfly-source"]).toBe("p2p")
    expect(blob.body.equals(content)).toBe(true)
    const manifest = await viaProxy(`${registry.url}/v2/proxied/manifests/v1`, { accept: "application/vnd.oci.image.manifest.v1+json" })
    expect(manifest.status).toBe(200)
    expect(manifest.headers["x-damselfly-source"]).toBeUndefined()
    expect(JSON.parse(manifest.body.toString()).layers[0].digest).toBe(layer)
    const notAbsolute = await new Promise<number>((resolve, reject) =>
      http.get({ host: "127.0.0.1", port: proxyPort, path: "/v2/", agent: false }, (res) => (res.resume(), resolve(res.statusCode ?? 0))).on("error", reject))
    expect(notAbsolute).toBe(400)
    // CONNECT: a raw tunnel to the registry's port, speaking HTTP inside it.
    const tunnelled = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port: proxyPort, method: "CONNECT", path: registry.host, agent: false })
      req.on("connect", (res, socket) => {
        expect(res.statusCode).toBe(200)
        let text = ""
        socket.on("data", (c) => (text += c))
        socket.on("end", () => resolve(text))
        socket.write(`GET /v2/ HTTP/1.1\r\nHost: ${registry.host}\r\nConnection: close\r\n\r\n`)
      })
      req.on("error", reject)
      req.end()
    })
    expect(tunnelled).toMatch(/^HTTP\/1\.1 200 OK/)
  }, 120_000)

  it("P2P fails outright (the daemon's disk is full): the mirror passes the blob GETs through and the pull completes", async () => {
    const data = path.join(dir, "tiny-disk")
    await fs.mkdir(data, { recursive: true })
    const mounted = mountTmpfs(data, 1)
    if (!mounted.ok) throw new Error(`this test needs a 1 MiB tmpfs (run as root, as CI does): ${mounted.reason}`)
    unmounts.push(mounted.unmount)
    const [port, mirrorPort] = [await freePort(), await freePort()]
    const proc = damselfly("tiny-disk", [
      "daemon", "--port", String(port), "--data", data, "--scheduler", cluster.scheduler.url, "--host-id", "tiny-disk",
      "--mirror-port", String(mirrorPort), "--mirror-upstream", registry.url
    ])
    await waitHealthy(`http://127.0.0.1:${port}`, proc, 60_000)
    const image = await pushed("full-disk", [3 * MiB])
    const gets = await pullThrough(mirrorPort, "full-disk", image)
    // The layer did not fit: skopeo got it from the registry through the mirror's passthrough.
    expect(gets.some((g) => g.userAgent.startsWith("skopeo") && g.path.endsWith(image.layers[0]))).toBe(true)
    expect(proc.stderr()).toContain("blob served by the upstream directly")
  }, 180_000)

  it("the scheduler is down: the daemon fetches from the registry itself and the pull completes", async () => {
    cluster.scheduler.proc.child.kill("SIGKILL")
    await cluster.scheduler.proc.exited
    const image = await pushed("no-scheduler", [2 * MiB, 512 * 1024])
    const gets = await pullThrough(cluster.daemons[0].mirrorPort, "no-scheduler", image)
    expect(gets.filter((g) => g.userAgent.startsWith("skopeo"))).toEqual([])
    expect(gets.filter((g) => g.userAgent.startsWith("damselfly-mirror")).length).toBe(image.layers.length + 1)
  }, 180_000)
})
