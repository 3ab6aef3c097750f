// Benchmark: N pullers (default 8) pull one multi-layer image (default 5 layers of random bytes,
// 512 MiB in all) at once from a real registry (Debian's docker-registry on loopback), three ways:
//   direct    — N `skopeo copy` straight from the registry;
//   cold      — the same N copies through N daemons' registry mirrors (fresh scheduler, seed peer, daemons);
//   preheated — a fresh cluster, the image preheated onto the seed peer first (scope all_seed_peers,
//               timed separately), then the N copies through the mirrors.
// Every puller is skopeo writing an OCI layout (the same client in every mode, so the modes compare);
// every blob it wrote is hashed again here and checked against its digest. Registry egress comes from
// the registry's own access log: bytes of blob GETs answered 200/206, in copies of the image's blobs.
// Run: npx tsx scenarios/registry-bench.ts [--layers 5] [--size-mib 512] [--pullers 8] [--modes direct,cold,preheated]
// Prints a markdown table; writes out/registry-bench.json.
import { createHash } from "node:crypto"
import { createReadStream, promises as fs } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { getJson, httpJson, killAll, waitFor } from "../runtime/testing/harness.ts"
import { blobGets, buildImage, pushImage, type Registry, skopeo, startMirrorCluster, startRegistry, stopAll, type TestImage } from "../test/fixtures/registry/registry-env.ts"

const MiB = 1024 * 1024
const REPO = "bench"
const MODES = ["direct", "cold", "preheated"] as const
type Mode = (typeof MODES)[number]

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(name)
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback
}
const positive = (name: string, fallback: number): number => {
  const v = Number(arg(name, String(fallback)))
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name}: expected a positive integer, got ${arg(name, "")}`)
  return v
}
const layers = positive("--layers", 5)
const sizeMiB = positive("--size-mib", 512)
const pullers = positive("--pullers", 8)
const modes = arg("--modes", MODES.join(",")).split(",").map((m) => {
  if (!(MODES as ReadonlyArray<string>).includes(m)) throw new Error(`--modes: expected some of ${MODES.join(",")}, got ${m}`)
  return m as Mode
})

const sha256File = async (file: string) => {
  const hash = createHash("sha256")
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * MiB })) hash.update(chunk as Buffer)
  return `sha256:${hash.digest("hex")}`
}

const quantile = (sorted: ReadonlyArray<number>, q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]

interface ModeResult {
  readonly mode: Mode
  readonly pullers: number
  /** Seconds from the common start until the last pull finished. */
  readonly wallSeconds: number
  readonly p50Seconds: number
  readonly pullSeconds: ReadonlyArray<number>
  /** Registry blob GETs (200/206) and their bytes during the pulls. */
  readonly blobGets: number
  readonly egressBytes: number
  readonly egressCopies: number
  readonly refusedBlobGets: number
  readonly manifestGets: number
  /** preheated only: the preheat job (POST to SUCCESS), and what the registry served for it. */
  readonly preheatSeconds?: number
  readonly preheatBlobGets?: number
  readonly preheatEgressBytes?: number
  readonly preheatEgressCopies?: number
  readonly verifiedBlobs: number
}

const main = async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "damselfly-registry-bench-"))
  const results: Array<ModeResult> = []
  try {
    // Sizes split evenly, the remainder on the first layer.
    const total = sizeMiB * MiB
    const sizes = Array.from({ length: layers }, (_, i) => Math.floor(total / layers) + (i === 0 ? total % layers : 0))
    let t = Date.now()
    const image: TestImage = await buildImage(path.join(dir, "image"), sizes)
    const blobDigests = [...image.layers, image.config]
    const blobSizes = await Promise.all(blobDigests.map(async (d) => (await fs.stat(path.join(image.layout, "blobs", "sha256", d.slice(7)))).size))
    const imageBytes = blobSizes.reduce((a, b) => a + b, 0)
    console.log(`built ${layers} layers + config = ${blobDigests.length} blobs, ${(imageBytes / MiB).toFixed(1)} MiB, in ${((Date.now() - t) / 1000).toFixed(1)} s`)

    const registry: Registry = await startRegistry(path.join(dir, "registry"))
    t = Date.now()
    await pushImage(image, registry.host, REPO)
    console.log(`pushed to ${registry.host}/${REPO}:${image.tag} in ${((Date.now() - t) / 1000).toFixed(1)} s`)

    /** N skopeo copies from `sources[i]` at once; their times from the common start; every blob's digest checked. */
    const pullAll = async (label: string, sources: ReadonlyArray<string>) => {
      const outs = sources.map((_, i) => path.join(dir, `out-${label}-${i}`))
      const started = Date.now()
      const seconds = await Promise.all(sources.map(async (src, i) => {
        await skopeo(["copy", "--src-tls-verify=false", `docker://${src}/${REPO}:${image.tag}`, `oci:${outs[i]}:${image.tag}`])
        return (Date.now() - started) / 1000
      }))
      let verified = 0
      for (const out of outs) {
        for (const d of blobDigests) {
          const got = await sha256File(path.join(out, "blobs", "sha256", d.slice(7)))
          if (got !== d) throw new Error(`${out}: blob ${d} hashes to ${got}`)
          verified++
        }
        await fs.rm(out, { recursive: true, force: true })
      }
      return { seconds, verified }
    }

    const egress = (log: ReadonlyArray<import("../test/fixtures/registry/registry-env.ts").AccessEntry>) => {
      const all = blobGets(log, REPO)
      const served = all.filter((g) => g.status === 200 || g.status === 206)
      const bytes = served.reduce((a, g) => a + g.bytes, 0)
      return {
        blobGets: served.length,
        refusedBlobGets: all.length - served.length,
        egressBytes: bytes,
        egressCopies: bytes / imageBytes,
        manifestGets: log.filter((e) => e.method === "GET" && e.path.startsWith(`/v2/${REPO}/manifests/`) && e.status === 200).length
      }
    }

    for (const mode of modes) {
      console.log(`\n[${mode}] ${pullers} pullers …`)
      let sources: ReadonlyArray<string>
      let preheat: Pick<ModeResult, "preheatSeconds" | "preheatBlobGets" | "preheatEgressBytes" | "preheatEgressCopies"> = {}
      if (mode === "direct") {
        sources = Array.from({ length: pullers }, () => registry.host)
      } else {
        const cluster = await startMirrorCluster(path.join(dir, `cluster-${mode}`), pullers, [registry.url])
        sources = cluster.daemons.map((d) => `127.0.0.1:${d.mirrorPort}`)
        if (mode === "preheated") {
          const before = (await registry.accessLog()).length
          const t0 = Date.now()
          const created = await httpJson(`${cluster.scheduler.url}/api/v1/jobs`, {
            method: "POST",
            body: JSON.stringify({ type: "preheat", args: { type: "image", url: `${registry.url}/v2/${REPO}/manifests/${image.tag}`, scope: "all_seed_peers" } })
          })
          if (created.status !== 201) throw new Error(`preheat job refused: ${created.status} ${JSON.stringify(created.body)}`)
          let job: any
          await waitFor(`preheat job ${created.body.id}`, async () => {
            job = (await getJson(`${cluster.scheduler.url}/api/v1/jobs/${created.body.id}`)).body
            return job.state === "SUCCESS" || job.state === "FAILURE"
          }, 1_800_000)
          if (job.state !== "SUCCESS") throw new Error(`preheat failed: ${job.error}`)
          const seconds = (Date.now() - t0) / 1000
          const e = egress((await registry.accessLog()).slice(before))
          preheat = { preheatSeconds: seconds, preheatBlobGets: e.blobGets, preheatEgressBytes: e.egressBytes, preheatEgressCopies: e.egressCopies }
          console.log(`[${mode}] preheat SUCCESS in ${seconds.toFixed(1)} s; registry blob GETs ${e.blobGets}, ${e.egressCopies.toFixed(3)} copies`)
        }
      }
      const before = (await registry.accessLog()).length
      const pulled = await pullAll(mode, sources)
      const e = egress((await registry.accessLog()).slice(before))
      const sorted = [...pulled.seconds].sort((a, b) => a - b)
      const r: ModeResult = {
        mode,
        pullers,
        wallSeconds: sorted[sorted.length - 1],
        p50Seconds: quantile(sorted, 0.5),
        pullSeconds: pulled.seconds,
        ...e,
        ...preheat,
        verifiedBlobs: pulled.verified
      }
      results.push(r)
      console.log(`[${mode}] wall ${r.wallSeconds.toFixed(1)} s, p50 ${r.p50Seconds.toFixed(1)} s, registry blob GETs ${r.blobGets}, ${r.egressCopies.toFixed(3)} copies, ${r.verifiedBlobs} blobs verified`)
      if (mode !== "direct") {
        await killAll()
        await fs.rm(path.join(dir, `cluster-${mode}`), { recursive: true, force: true })
      }
    }

    const header = "| mode | pullers | wall (max) s | p50 s | registry blob GETs | registry egress MiB | egress copies | preheat s (GETs, copies) |"
    const rows = results.map((r) =>
      `| ${r.mode} | ${r.pullers} | ${r.wallSeconds.toFixed(1)} | ${r.p50Seconds.toFixed(1)} | ${r.blobGets} | ${(r.egressBytes / MiB).toFixed(1)} | ${r.egressCopies.toFixed(3)} | ` +
        `${r.preheatSeconds === undefined ? "–" : `${r.preheatSeconds.toFixed(1)} (${r.preheatBlobGets}, ${r.preheatEgressCopies!.toFixed(3)})`} |`)
    console.log(`\nimage: ${layers} layers + config, ${(imageBytes / MiB).toFixed(1)} MiB; ${pullers} pullers (skopeo copy to OCI layouts); loopback, ${os.cpus().length} cores, node ${process.version}\n`)
    console.log([header, "|---|---|---|---|---|---|---|---|", ...rows].join("\n"))
    await fs.mkdir("out", { recursive: true })
    await fs.writeFile("out/registry-bench.json", JSON.stringify({
      image: { layers, blobs: blobDigests.length, bytes: imageBytes, blobSizes },
      pullers,
      cores: os.cpus().length,
      node: process.version,
      results
    }, null, 2) + "\n")
    console.log("\nwrote out/registry-bench.json")
  } finally {
    await killAll()
    await stopAll()
    await fs.rm(dir, { recursive: true, force: true })
  }
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
