// GET /metrics on real processes (a scheduler, a seed and one daemon, with a shared token): Prometheus
// text that counts one 8 MiB download where it happened, and open without the token, like /healthy.
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { startCluster } from "../runtime/testing/cluster.ts"
import { killAll, type Origin, rawRequest, sha256File, startOrigin, waitFor } from "../runtime/testing/harness.ts"

const MiB = 1024 * 1024
const SIZE = 8 * MiB
const TOKEN = "metrics-token"

let dir: string | undefined
let origin: Origin | undefined

afterAll(async () => {
  await killAll()
  await origin?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

interface Sample {
  readonly name: string
  readonly labels: Record<string, string>
  readonly value: number
}

/** The samples of a Prometheus text exposition (no escaped quotes in our label values). */
const parse = (text: string): Array<Sample> =>
  text.split("\n").filter((l) => l !== "" && !l.startsWith("#")).map((line) => {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line)
    if (m === null) throw new Error(`not a Prometheus sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"/g)) labels[l[1]] = l[2]
    return { name: m[1], labels, value: Number(m[3]) }
  })

/** Sum of the samples of `name` whose labels include `labels`; undefined when there is none. */
const value = (samples: Array<Sample>, name: string, labels: Record<string, string> = {}) => {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  return hits.length === 0 ? undefined : hits.reduce((a, s) => a + s.value, 0)
}

/** Scrapes without any credentials, as Prometheus would. */
const scrape = async (base: string) => {
  const r = await rawRequest(base, { path: "/metrics" })
  expect(r.status, r.text).toBe(200)
  expect(r.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/)
  return parse(r.text)
}

describe("GET /metrics", () => {
  it("scheduler, seed and daemon expose Prometheus metrics that count a download; open without the token", async () => {
    dir = await mkdtemp(path.join(tmpdir(), "damselfly-metrics-"))
    origin = await startOrigin(dir, SIZE)
    const cluster = await startCluster({ dir, daemons: 1, env: { DAMSELFLY_TOKEN: TOKEN } })
    const daemon = cluster.daemons[0]
    const auth = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }

    // The token still guards the rest: a download without it is refused.
    expect((await rawRequest(daemon.url, { method: "POST", path: "/v1/download", body: "{}" })).status).toBe(401)

    const output = path.join(dir, "out.bin")
    const r = await rawRequest(daemon.url, {
      method: "POST",
      path: "/v1/download",
      headers: auth,
      body: JSON.stringify({ url: origin.url, output, pieceLength: MiB }),
      timeoutMillis: 60_000
    })
    expect(r.status, r.text).toBe(200)
    expect(await sha256File(output)).toBe(origin.sha256)
    expect(r.json.bytesFromPeers + r.json.bytesFromOrigin).toBe(SIZE)

    // Daemon: traffic by source adds up to the file, one successful download, timed.
    const d = await scrape(daemon.url)
    expect(value(d, "damselfly_traffic_bytes_total", { type: "peer" })).toBe(r.json.bytesFromPeers)
    expect(value(d, "damselfly_traffic_bytes_total", { type: "origin" })).toBe(r.json.bytesFromOrigin)
    expect(value(d, "damselfly_traffic_bytes_total")).toBe(SIZE)
    expect(value(d, "damselfly_downloads_total", { result: "success" })).toBe(1)
    expect(value(d, "damselfly_downloads_total", { result: "failure" })).toBe(0)
    expect(value(d, "damselfly_task_duration_seconds_count", { result: "success" })).toBe(1)
    expect(value(d, "damselfly_task_duration_seconds_sum", { result: "success" })).toBeGreaterThan(0)
    expect(value(d, "damselfly_upload_bytes_total")).toBe(0) // nobody downloaded from it
    expect(value(d, "damselfly_upload_failures_total", { reason: "busy" })).toBe(0)
    expect(value(d, "damselfly_downloads_in_flight")).toBe(0)
    expect(value(d, "process_resident_memory_bytes")).toBeGreaterThan(0) // default Node metrics
    expect(d.find((s) => s.name === "damselfly_upload_bytes_total")?.labels.role).toBe("daemon")

    // Seed: fetched the file from the origin and served the daemon what it got from peers.
    await waitFor("the seed's download to end", async () =>
      value(await scrape(cluster.seed.url), "damselfly_downloads_total", { result: "success" }) === 1)
    const s = await scrape(cluster.seed.url)
    expect(value(s, "damselfly_traffic_bytes_total", { type: "origin" })).toBe(SIZE)
    expect(value(s, "damselfly_upload_bytes_total")).toBe(r.json.bytesFromPeers)
    expect(value(s, "damselfly_upload_bytes_total")).toBeGreaterThan(0)

    // Scheduler: every request it answered, timed; the hosts and peers it knows.
    const sc = await scrape(cluster.scheduler.url)
    expect(value(sc, "damselfly_schedule_requests_total")).toBeGreaterThan(0)
    expect(value(sc, "damselfly_schedule_requests_total", { answer: "HostAnnounced" })).toBeGreaterThanOrEqual(2)
    expect(value(sc, "damselfly_schedule_duration_seconds_count")).toBe(value(sc, "damselfly_schedule_requests_total"))
    expect(value(sc, "damselfly_schedule_duration_seconds_count", { request: "RegisterPeer" })).toBeGreaterThanOrEqual(2)
    expect(value(sc, "damselfly_hosts")).toBe(2)
    expect(value(sc, "damselfly_registered_peers")).toBe(2) // the seed's peer and the daemon's, both finished
    expect(value(sc, "damselfly_piece_failures_total")).toBe(0)
    expect(value(sc, "damselfly_reports_total", { type: "DownloadFinished" })).toBeGreaterThanOrEqual(1)
    expect(sc.find((x) => x.name === "damselfly_hosts")?.labels.role).toBe("scheduler")
  }, 120_000)
})
