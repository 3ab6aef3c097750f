// Bandwidth limits on real processes (runtime/bandwidth.ts). Each test asserts only a lower bound on
// the time a transfer takes — the limiter must hold the rate down — never an upper bound, so a loaded
// machine cannot make them fail. The seed limits back-to-source, the daemon limits downloads from peers
// and uploads to them; each limit is exercised where no other one is in the way.
import { mkdtemp, rm } from "node:fs/promises"
import * as http from "node:http"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { chunkFor } from "../runtime/bandwidth.ts"
import { type Cluster, startCluster, taskIdFor } from "../runtime/testing/cluster.ts"
import { assertSound, busiestWindow, getJson, killAll, type Origin, rawRequest, sha256File, startOrigin } from "../runtime/testing/harness.ts"

const MiB = 1024 * 1024
const SIZE = 32 * MiB
const PIECE = 4 * MiB
const LIMIT = 8 * MiB
/** 32 MiB at 8 MiB/s is 4 s; 15% below it is the least a limit that holds can take. */
const AT_LEAST_SECONDS = 4 * 0.85

let dir: string
let origin: Origin
let cluster: Cluster

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "damselfly-limits-"))
  origin = await startOrigin(dir, SIZE)
  cluster = await startCluster({
    dir,
    daemons: 1,
    seedArgs: ["--back-to-source-limit", "8MiB/s"],
    daemonArgs: ["--download-limit", "8MiB/s", "--upload-limit", String(LIMIT)]
  })
}, 120_000)

afterAll(async () => {
  await killAll()
  await origin?.close()
  await rm(dir, { recursive: true, force: true })
})

/** A GET whose body chunks are reported as they arrive. */
const timedGet = (url: string, onChunk: (bytes: number) => void): Promise<{ status: number; bytes: number }> =>
  new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 60_000 }, (res) => {
      let bytes = 0
      res.on("data", (c: Buffer) => {
        bytes += c.length
        onChunk(c.length)
      })
      res.on("end", () => resolve({ status: res.statusCode ?? 0, bytes }))
      res.on("error", reject)
    })
    req.on("timeout", () => req.destroy(new Error(`no answer from ${url}`)))
    req.on("error", reject)
  })

const download = async (base: string, name: string) => {
  const output = path.join(dir, `${name}.bin`)
  const started = performance.now()
  const r = await rawRequest(base, {
    method: "POST",
    path: "/v1/download",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ url: origin.url, output, pieceLength: PIECE }),
    timeoutMillis: 120_000
  })
  const seconds = (performance.now() - started) / 1000
  expect(r.status, r.text).toBe(200)
  expect(await sha256File(output)).toBe(origin.sha256)
  return { seconds, result: r.json }
}

describe("bandwidth limits", () => {
  it("back-to-source: a seed limited to 8 MiB/s takes at least 3.4 s for 32 MiB from the origin", async () => {
    const { seconds, result } = await download(cluster.seed.url, "seed")
    console.log(`[limits] seed back-to-source 32 MiB at 8 MiB/s: ${seconds.toFixed(2)} s, ${result.bytesFromOrigin} bytes from the origin`)
    expect(result.bytesFromOrigin).toBe(SIZE)
    expect(seconds).toBeGreaterThanOrEqual(AT_LEAST_SECONDS)
  }, 120_000)

  it("download: a daemon limited to 8 MiB/s takes at least 3.4 s for 32 MiB from an unlimited peer", async () => {
    const daemon = cluster.daemons[0]
    const { seconds, result } = await download(daemon.url, "daemon")
    console.log(`[limits] daemon download 32 MiB at 8 MiB/s from the seed: ${seconds.toFixed(2)} s`)
    // Every byte came from the seed (which holds the task complete), so only the download limit applies.
    expect(result.bytesFromPeers).toBe(SIZE)
    expect(seconds).toBeGreaterThanOrEqual(AT_LEAST_SECONDS)
    // The piece timer saw the peer pieces.
    const metrics = (await rawRequest(daemon.url, { path: "/metrics" })).text
    const count = /damselfly_piece_duration_seconds_count\{[^}]*type="peer"[^}]*\} (\d+)/.exec(metrics)
    expect(Number(count?.[1])).toBe(SIZE / PIECE)
  }, 120_000)

  it("upload: 8 pieces asked at once of a daemon limited to 8 MiB/s take at least 3.4 s, arriving at the rate (per chunk)", async () => {
    const daemon = cluster.daemons[0]
    const taskId = taskIdFor(origin.url, PIECE)
    const started = performance.now()
    const arrivals: Array<{ at: number; bytes: number }> = []
    const replies = await Promise.all(Array.from({ length: SIZE / PIECE }, (_, i) =>
      timedGet(`${daemon.url}/v1/tasks/${taskId}/pieces/${i}`, (bytes) => arrivals.push({ at: performance.now() - started, bytes }))))
    const seconds = (performance.now() - started) / 1000
    const chunk = chunkFor(LIMIT)
    const busiest = busiestWindow(arrivals, 1000)
    const firstTenth = arrivals.filter((a) => a.at - arrivals[0].at < 100).reduce((n, a) => n + a.bytes, 0)
    console.log(
      `[limits] 8 × 4 MiB pieces from a daemon limited to 8 MiB/s upload: ${seconds.toFixed(2)} s; busiest 1-s window at the receiver ` +
        `${(busiest / MiB).toFixed(3)} MiB (limit 8 MiB + one ${chunk}-byte chunk = ${((LIMIT + chunk) / MiB).toFixed(3)} MiB); first 100 ms ${(firstTenth / MiB).toFixed(3)} MiB`
    )
    for (const r of replies) {
      expect(r.status).toBe(200)
      expect(r.bytes).toBe(PIECE)
    }
    expect(seconds).toBeGreaterThanOrEqual(AT_LEAST_SECONDS)
    // Per chunk, not per piece: the first 100 ms cannot hold whole pieces (8 were asked at once; at 8 MiB/s
    // about 0.8 MiB is due). Loose (2 MiB) for a receiver on a loaded machine reading late in bunches.
    expect(firstTenth).toBeLessThan(2 * MiB)
    expect((await getJson(`${daemon.url}/healthy`)).body.ok).toBe(true)
    assertSound(daemon.proc)
    assertSound(cluster.seed.proc)
  }, 120_000)
})
