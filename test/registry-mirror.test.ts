// The registry mirror against real components: Debian's docker-registry (plain, and with htpasswd
// auth), images built with umoci and pushed with skopeo, pulled through a daemon's mirror by skopeo
// and by containerd 1.6 (hosts.toml written by `damselfly containerd-config`). The registry's own
// access log says who fetched which blob.
import { execFile } from "node:child_process"
import { promises as fs } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { BIN, killAll } from "../runtime/testing/harness.ts"
import {
  blobGets,
  buildImage,
  layoutBlobs,
  makeCertificate,
  type MirrorCluster,
  pushImage,
  type Registry,
  skopeo,
  startContainerd,
  startMirrorCluster,
  startRegistry,
  stopAll
} from "./fixtures/registry/registry-env.ts"

const run = promisify(execFile)
const MiB = 1024 * 1024
const USER = "puller"
const PASSWORD = "s3cret-pw"
const CREDS = `${USER}:${PASSWORD}`
const basic = `Basic ${Buffer.from(CREDS).toString("base64")}`

let dir: string
let plain: Registry
let secured: Registry
let cluster: MirrorCluster
let tlsRegistry: Registry
let redirecting: Registry

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "damselfly-registry-"))
  plain = await startRegistry(path.join(dir, "registry-plain"))
  secured = await startRegistry(path.join(dir, "registry-auth"), { user: USER, password: PASSWORD })
  const certificate = await makeCertificate(path.join(dir, "tls"))
  tlsRegistry = await startRegistry(path.join(dir, "registry-tls"), undefined, certificate)
  redirecting = await startRegistry(path.join(dir, "registry-redirect"), undefined, undefined, true)
  // The plain registry is the default upstream; the others are reached by ?ns= or the header. Every
  // daemon (the seed too, which fetches from the registry) trusts the test certificate.
  cluster = await startMirrorCluster(path.join(dir, "cluster"), 1, [plain.url, secured.url, tlsRegistry.url, redirecting.url], { env: { NODE_EXTRA_CA_CERTS: certificate.cert } })
}, 180_000)

afterAll(async () => {
  await killAll()
  await stopAll()
  await fs.rm(dir, { recursive: true, force: true })
})

/** A fresh image (random layers, so no earlier test's cache can serve it) pushed to `registry/repo:v1`. */
const pushed = async (name: string, registry: Registry, layerSizes: ReadonlyArray<number>, creds?: string) => {
  const image = await buildImage(path.join(dir, `image-${name}`), layerSizes)
  await pushImage(image, registry.host, name, creds)
  return image
}

const daemonLog = () => cluster.daemons[0].proc.stderr()

describe("registry mirror", () => {
  it("skopeo pulls an image through the mirror; the blobs reach the registry only from Damselfly", async () => {
    const image = await pushed("app", plain, [2 * MiB, 1 * MiB, 3 * MiB])
    const before = (await plain.accessLog()).length
    const out = path.join(dir, "skopeo-out")
    await skopeo(["copy", "--src-tls-verify=false", `docker://127.0.0.1:${cluster.daemons[0].mirrorPort}/app:v1`, `oci:${out}:v1`])
    // skopeo checks every blob against its digest as it writes it; all of them are there.
    const blobs = await layoutBlobs(out)
    for (const d of [...image.layers, image.config]) expect(blobs.has(d)).toBe(true)
    const log = (await plain.accessLog()).slice(before)
    const gets = blobGets(log, "app")
    // Layers and config came through P2P: the registry saw their GETs from the seed or the daemon, never from skopeo.
    expect(gets.filter((g) => g.userAgent.startsWith("skopeo"))).toEqual([])
    expect(gets.length).toBeGreaterThanOrEqual(image.layers.length + 1)
    expect(gets.length).toBeLessThanOrEqual(image.layers.length + 1)
    // The manifest went through unchanged (passed through, so skopeo's own user agent).
    expect(log.some((e) => e.method === "GET" && e.path === "/v2/app/manifests/v1" && e.userAgent.startsWith("skopeo"))).toBe(true)
    expect(daemonLog()).not.toContain("blob served by the upstream directly")
    console.log(`skopeo via mirror: layers=${image.layers.length}, blob GETs at the registry=${gets.length} (config included)`)
  }, 120_000)

  it("X-Dragonfly-Registry picks the upstream; Range is answered with 206 from P2P; an unauthenticated blob GET gets the upstream's 401", async () => {
    const image = await pushed("private", secured, [1 * MiB + 12345], CREDS)
    const mirror = cluster.daemons[0].mirror
    const layer = image.layers[0]
    const blobPath = `/v2/private/blobs/${layer}`
    // No credentials: the secured registry's own challenge comes back, not a Damselfly error.
    const denied = await fetch(`${mirror}${blobPath}`, { headers: { "x-dragonfly-registry": secured.url } })
    expect(denied.status).toBe(401)
    expect(denied.headers.get("www-authenticate")).toContain(`realm="damselfly-test"`)
    // With them: the whole blob, then a range, both P2P and both matching the layout's bytes.
    const content = await fs.readFile(path.join(image.layout, "blobs", "sha256", layer.slice(7)))
    const whole = await fetch(`${mirror}${blobPath}`, { headers: { "x-dragonfly-registry": secured.url, authorization: basic } })
    expect(whole.status).toBe(200)
    expect(whole.headers.get("x-damselfly-source")).toBe("p2p")
    expect(whole.headers.get("docker-content-digest")).toBe(layer)
    expect(Buffer.from(await whole.arrayBuffer()).equals(content)).toBe(true)
    const ranged = await fetch(`${mirror}${blobPath}`, { headers: { "x-dragonfly-registry": secured.url, authorization: basic, range: "bytes=1000-4999" } })
    expect(ranged.status).toBe(206)
    expect(ranged.headers.get("content-range")).toBe(`bytes 1000-4999/${content.length}`)
    expect(Buffer.from(await ranged.arrayBuffer()).equals(content.subarray(1000, 5000))).toBe(true)
    // The daemon now holds the blob; still, without credentials the mirror does not hand it out.
    const again = await fetch(`${mirror}${blobPath}`, { headers: { "x-dragonfly-registry": secured.url } })
    expect(again.status).toBe(401)
    expect(again.headers.get("x-damselfly-source")).toBeNull()
    // A malformed header is named.
    const bad = await fetch(`${mirror}/v2/`, { headers: { "x-dragonfly-registry": "not a url" } })
    expect(bad.status).toBe(400)
    expect(await bad.text()).toContain("X-Dragonfly-Registry header")
  }, 120_000)

  it("an https registry: blobs go P2P over TLS, manifests pass through", async () => {
    const image = await pushed("tls-app", tlsRegistry, [2 * MiB + 5, 700 * 1024])
    const mirror = cluster.daemons[0].mirror
    const before = (await tlsRegistry.accessLog()).length
    const manifest = await fetch(`${mirror}/v2/tls-app/manifests/v1`, { headers: { "x-dragonfly-registry": tlsRegistry.url, accept: "application/vnd.oci.image.manifest.v1+json" } })
    expect(manifest.status).toBe(200)
    expect(manifest.headers.get("docker-content-digest")).toBe(image.manifest)
    for (const d of [...image.layers, image.config]) {
      const r = await fetch(`${mirror}/v2/tls-app/blobs/${d}`, { headers: { "x-dragonfly-registry": tlsRegistry.url, "user-agent": "test-client" } })
      expect(r.status).toBe(200)
      expect(r.headers.get("x-damselfly-source")).toBe("p2p")
      const body = Buffer.from(await r.arrayBuffer())
      expect(body.equals(await fs.readFile(path.join(image.layout, "blobs", "sha256", d.slice(7))))).toBe(true)
    }
    const gets = blobGets((await tlsRegistry.accessLog()).slice(before), "tls-app")
    expect(gets.filter((g) => g.userAgent === "test-client")).toEqual([])
    expect(gets.length).toBe(image.layers.length + 1)
  }, 120_000)

  it("a registry that redirects blobs to storage: the blobs come P2P from the storage URL", async () => {
    const image = await pushed("redirected", redirecting, [1 * MiB + 3, 300 * 1024])
    const mirror = cluster.daemons[0].mirror
    const before = redirecting.storageLog.length
    for (const d of [...image.layers, image.config]) {
      const r = await fetch(`${mirror}/v2/redirected/blobs/${d}`, { headers: { "x-dragonfly-registry": redirecting.url, "user-agent": "test-client" } })
      expect(r.status).toBe(200)
      expect(r.headers.get("x-damselfly-source")).toBe("p2p")
      expect(Buffer.from(await r.arrayBuffer()).equals(await fs.readFile(path.join(image.layout, "blobs", "sha256", d.slice(7))))).toBe(true)
    }
    const storageGets = redirecting.storageLog.slice(before).filter((e) => e.method === "GET" && e.status >= 200 && e.status < 300 && e.bytes > 1)
    // Storage served each blob once, to Damselfly; the registry itself only redirected.
    expect(storageGets.filter((e) => e.userAgent === "test-client")).toEqual([])
    expect(storageGets.length).toBe(image.layers.length + 1)
    const log = await redirecting.accessLog()
    expect(log.filter((e) => e.method === "HEAD" && e.status === 307 && e.path.startsWith("/v2/redirected/blobs/")).length).toBeGreaterThanOrEqual(image.layers.length + 1)
    expect(blobGets(log, "redirected").filter((g) => g.status === 200)).toEqual([])
  }, 120_000)

  it("containerd pulls through the mirror with hosts.toml from `damselfly containerd-config`; blobs reach the registry only from Damselfly", async () => {
    const image = await pushed("ctr-app", plain, [1 * MiB, 2 * MiB, 1 * MiB + 777, 512 * 1024])
    const hosts = path.join(dir, "certs.d")
    const { stdout } = await run(process.execPath, [BIN, "containerd-config", "--registry", plain.url, "--registry", secured.url, "--mirror", cluster.daemons[0].mirror, "--dir", hosts])
    expect(JSON.parse(stdout).written).toHaveLength(2)
    const toml = await fs.readFile(path.join(hosts, plain.host, "hosts.toml"), "utf8")
    expect(toml).toContain(`server = "${plain.url}"`)
    expect(toml).toContain(`[host."${cluster.daemons[0].mirror}"]`)
    const containerd = await startContainerd(path.join(dir, "containerd-1"))
    const before = (await plain.accessLog()).length
    await containerd.ctr(["images", "pull", "--hosts-dir", hosts, "--plain-http", `${plain.host}/ctr-app:v1`])
    const { stdout: content } = await containerd.ctr(["content", "ls", "-q"])
    for (const d of [...image.layers, image.config]) expect(content).toContain(d)
    const log = (await plain.accessLog()).slice(before)
    const gets = blobGets(log, "ctr-app")
    expect(gets.filter((g) => g.userAgent.startsWith("containerd"))).toEqual([])
    expect(gets.length).toBe(image.layers.length + 1)
    // containerd resolved the tag through the mirror too (its own user agent, passed through).
    expect(log.some((e) => e.path.startsWith("/v2/ctr-app/manifests/") && e.userAgent.startsWith("containerd"))).toBe(true)
    console.log(`containerd via mirror: layers=${image.layers.length}, blob GETs at the registry=${gets.length} (config included), none from containerd`)
    await containerd.stop()
  }, 180_000)

  it("containerd pulls from the authenticated registry (chosen by ?ns=) with credentials, and fails with the registry's 401 without", async () => {
    const image = await pushed("ctr-private", secured, [1 * MiB, 2 * MiB], CREDS)
    const hosts = path.join(dir, "certs.d")
    const containerd = await startContainerd(path.join(dir, "containerd-2"))
    const ref = `${secured.host}/ctr-private:v1`
    const refused = await containerd.ctr(["images", "pull", "--hosts-dir", hosts, "--plain-http", ref]).then(() => undefined, (e) => String(e.stderr ?? e))
    expect(refused).toBeDefined()
    expect(refused).toMatch(/401 Unauthorized|unauthorized/i)
    const before = (await secured.accessLog()).length
    await containerd.ctr(["images", "pull", "--hosts-dir", hosts, "--plain-http", "--user", CREDS, ref])
    const { stdout: content } = await containerd.ctr(["content", "ls", "-q"])
    for (const d of [...image.layers, image.config]) expect(content).toContain(d)
    const log = (await secured.accessLog()).slice(before)
    const served = blobGets(log, "ctr-private").filter((g) => g.status === 200 || g.status === 206)
    // Every blob the registry served went to Damselfly (the daemon's authenticated origin fetch), none to containerd.
    expect(served.filter((g) => g.userAgent.startsWith("containerd"))).toEqual([])
    expect(served.length).toBe(image.layers.length + 1)
    console.log(`containerd via mirror, authenticated registry: layers=${image.layers.length}, blob GETs served=${served.length}, refused (seed without credentials)=${blobGets(log, "ctr-private").length - served.length}`)
    await containerd.stop()
  }, 240_000)
})
