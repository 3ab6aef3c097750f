// Serving throughput on loopback, all measured with curl in the same run: the file straight from the
// origin; GET /v1/object on a daemon that does not hold it (streamed while it downloads from a seed);
// the same on a daemon that holds it (served from disk); a 1 MiB range on a third daemon, cold.
// Run: npx tsx runtime/testing/bench-serving.ts [SIZE_MIB=256]
import { execFile } from "node:child_process"
import { promisify } from "node:util"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { damselfly, freePort, getJson, killAll, startOrigin, waitFor, waitHealthy } from "./harness.ts"

const MiB = 1024 * 1024
const SIZE = Number(process.argv[2] ?? 256) * MiB
const dir = await mkdtemp(path.join(tmpdir(), "damselfly-bench-serving-"))
const origin = await startOrigin(dir, SIZE)

/** curl's own timings: time to first byte, total, bytes/s; fails unless the status is the expected one. */
// Asynchronous: the origin serves from this very process.
const curl = async (url: string, headers: ReadonlyArray<string> = [], expect = 200) => {
  const { stdout: out } = await promisify(execFile)("curl", ["-s", "-o", "/dev/null", ...headers.flatMap((h) => ["-H", h]), "-w", "%{http_code} %{time_starttransfer} %{time_total} %{size_download}", url], { encoding: "utf8" })
  const [code, ttfb, total, bytes] = out.trim().split(" ").map(Number)
  if (code !== expect) throw new Error(`${url}: HTTP ${code}`)
  return { ttfbMs: ttfb * 1000, totalMs: total * 1000, mibps: bytes / MiB / total }
}

try {
  const scheduler = `http://127.0.0.1:${await freePort()}`
  damselfly("scheduler", ["scheduler", "--port", new URL(scheduler).port])
  await waitHealthy(scheduler)
  const daemon = async (name: string, extra: ReadonlyArray<string> = []) => {
    const url = `http://127.0.0.1:${await freePort()}`
    damselfly(name, ["daemon", "--port", new URL(url).port, "--data", path.join(dir, name), "--scheduler", scheduler, "--host-id", name, ...extra])
    await waitHealthy(url)
    return url
  }
  await daemon("seed", ["--seed"])
  await waitFor("the seed to announce", async () => (await getJson(`${scheduler}/healthy`)).body.seeds?.includes("seed"))
  const [a, b] = [await daemon("a"), await daemon("b")]
  const object = (d: string) => `${d}/v1/object?${new URLSearchParams({ url: origin.url })}`
  const rows: Array<[string, Awaited<ReturnType<typeof curl>>]> = []
  rows.push(["origin, direct (curl)", await curl(origin.url)])
  const directBytes = origin.bytesSent()
  rows.push(["daemon a, cold: streamed while downloading", await curl(object(a))])
  rows.push(["daemon a, held: from disk", await curl(object(a))])
  rows.push(["daemon b, cold: 1 MiB range at the middle", await curl(object(b), [`Range: bytes=${SIZE / 2}-${SIZE / 2 + MiB - 1}`], 206)])
  console.log(`${SIZE / MiB} MiB on loopback (scheduler, seed, daemons a and b; the origin sent ${((origin.bytesSent() - directBytes) / SIZE).toFixed(2)} copies for the daemons)`)
  console.log("| what | first byte ms | total ms | MiB/s |\n|---|---|---|---|")
  for (const [what, r] of rows) console.log(`| ${what} | ${r.ttfbMs.toFixed(0)} | ${r.totalMs.toFixed(0)} | ${r.mibps.toFixed(0)} |`)
} finally {
  await killAll()
  await origin.close()
  await rm(dir, { recursive: true, force: true })
}
