// The command line: `--help` on every command, and `damselfly get`'s options on real processes — the
// progress the daemon exposes (GET /v1/downloads) and the summary line `--progress` prints to a pipe,
// `-H` headers reaching the origin, and `--disable-back-to-source` never
// touching the origin.
import { existsSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { randomBytes, createHash } from "node:crypto"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Cluster, startCluster } from "../runtime/testing/cluster.ts"
import { spawn } from "node:child_process"
import { BIN, damselfly, freePort, getJson, killAll, type Origin, sha256File, startOrigin, waitFor, waitHealthy } from "../runtime/testing/harness.ts"
import { rangeOf, writeRangeHead } from "../runtime/testing/range.ts"

const MiB = 1024 * 1024

const run = async (args: ReadonlyArray<string>) => {
  const p = damselfly(args.join("-"), args)
  const started = Date.now()
  const code = await p.exited
  if (process.env.DEBUG_TIMES) console.log(`${args.slice(0, 2).join(" ")}: ${Date.now() - started} ms`)
  return { code, out: p.stdout(), err: p.stderr() }
}

describe("--help", () => {
  // Each command with a flag its help must list.
  const commands: Array<[Array<string>, Array<string>]> = [
    [[], ["scheduler", "daemon", "get", "cache"]],
    [["scheduler"], ["--config", "--port", "--listen", "--token", "--max-connections"]],
    [["daemon"], ["--config", "--data", "--scheduler", "--seed", "--upload-limit", "--download-limit", "--back-to-source-limit", "--keep-cache", "--gc-ttl", "--gc-quota", "--gc-high-watermark", "--gc-disk-high-watermark"]],
    [["get"], ["--output", "--digest", "--header", "--timeout", "--idle-timeout", "--disable-back-to-source", "--progress"]],
    [["cache"], ["import", "export", "stat"]],
    [["cache", "import"], ["--url", "--piece-length"]],
    [["cache", "export"], ["--output", "--task-id"]],
    [["cache", "stat"], ["--task-id"]]
  ]
  it.each(commands)("damselfly %j --help", async (command, expected) => {
    const r = await run([...command, "--help"])
    expect(r.code, r.err).toBe(0)
    expect(r.out).toContain("USAGE")
    for (const flag of expected) expect(r.out).toContain(flag)
  }, 60_000)

  it.each([["sim"], ["sweep"], ["report"], ["chaos"]])("damselfly %s --help (the command's own parser)", async (command) => {
    const r = await run([command, "--help"])
    expect(r.code, r.err).toBe(0)
    expect(`${r.out}${r.err}`).toMatch(/usage/i)
  }, 60_000)
})

describe("damselfly get", () => {
  let dir: string
  let cluster: Cluster
  const closers: Array<() => Promise<void>> = []

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "damselfly-get-"))
    cluster = await startCluster({ dir, daemons: 1 })
  }, 120_000)

  afterAll(async () => {
    await killAll()
    for (const c of closers) await c()
    await rm(dir, { recursive: true, force: true })
  })

  it("the daemon exposes a download's progress; --progress to a pipe ends with a summary line", async () => {
    // 16 MiB in 4 MiB pieces, each range paced at 2 MiB/s: about 2 s, long enough to watch.
    const origin = await startOrigin(dir, 16 * MiB, { bytesPerSecond: 2 * MiB })
    closers.push(origin.close)
    const daemon = cluster.daemons[0]
    const out = path.join(dir, "progress.bin")
    const get = damselfly("get-progress", ["get", origin.url, "-O", out, "--daemon", daemon.url, "--progress", "--piece-length", String(4 * MiB)])
    const seen: Array<{ contentLength: number | null; completedBytes: number }> = []
    await waitFor("the download to show up in /v1/downloads", async () => {
      const d = ((await getJson(`${daemon.url}/v1/downloads`)).body.downloads as Array<{ url: string; contentLength: number | null; completedBytes: number }>)
        .find((x) => x.url === origin.url)
      if (d !== undefined) seen.push(d)
      return d !== undefined && d.contentLength !== null
    })
    expect(seen.at(-1)!.contentLength).toBe(16 * MiB)
    expect(seen.at(-1)!.completedBytes).toBeLessThan(16 * MiB)
    expect(await get.exited, get.stderr()).toBe(0)
    expect(await sha256File(out)).toBe(origin.sha256)
    const result = JSON.parse(get.stdout())
    expect(result.via).toBe("daemon")
    // The summary: size, time, rate, and the shares by source (here the seed is a peer: some from peers).
    const summary = /damselfly get: 16\.0 MiB in \d+\.\d s \([\d.]+ [KMG]?i?B\/s\), (\d+)% from peers, (\d+)% from the origin/.exec(get.stderr())
    expect(summary, get.stderr()).not.toBeNull()
    expect(Number(summary![1]) + Number(summary![2])).toBeGreaterThanOrEqual(99)
    // Finished downloads leave the list.
    const after = (await getJson(`${daemon.url}/v1/downloads`)).body.downloads as Array<{ url: string }>
    expect(after.some((x) => x.url === origin.url)).toBe(false)
    // …but their piece log stays: each of the 4 pieces once, from a parent or the origin, timed.
    const log = await getJson(`${daemon.url}/v1/downloads/${result.taskId}/pieces`)
    expect(log.status).toBe(200)
    const pieces = log.body.pieces as Array<{ index: number; from: string; startedAt: number; endedAt: number }>
    expect(pieces.map((p) => p.index).sort()).toEqual([0, 1, 2, 3])
    for (const p of pieces) {
      expect(p.from).not.toBe("")
      expect(p.endedAt).toBeGreaterThanOrEqual(p.startedAt)
    }
    expect((await getJson(`${daemon.url}/v1/downloads/${"0".repeat(64)}/pieces`)).status).toBe(404)

    // Without --progress, to a pipe: no bar, no summary; the JSON result is unchanged.
    const quiet = await run(["get", origin.url, "-O", path.join(dir, "quiet.bin"), "--daemon", daemon.url, "--piece-length", String(4 * MiB)])
    expect(quiet.code, quiet.err).toBe(0)
    expect(quiet.err).not.toMatch(/from peers/)
    expect(JSON.parse(quiet.out).via).toBe("daemon")
  }, 90_000)

  it("on a terminal (a pty from script(1)) draws the bar: bytes, rate, ETA, peers vs origin", async () => {
    const origin = await startOrigin(await mkdtemp(path.join(dir, "tty-")), 16 * MiB, { bytesPerSecond: 2 * MiB })
    closers.push(origin.close)
    const out = path.join(dir, "tty.bin")
    const command = [process.execPath, BIN, "get", origin.url, "-O", out, "--daemon", cluster.daemons[0].url, "--piece-length", String(4 * MiB)].join(" ")
    const child = spawn("script", ["-qec", command, "/dev/null"], { stdio: ["ignore", "pipe", "pipe"] })
    let tty = ""
    child.stdout.on("data", (c) => (tty += c))
    const code = await new Promise<number | null>((r) => child.on("exit", r))
    expect(code, tty).toBe(0)
    expect(await sha256File(out)).toBe(origin.sha256)
    // The bar's line, as cli-progress renders it, and the summary after it.
    expect(tty).toMatch(/damselfly get \[[= ]+\] \d+% \| [\d.]+ [KMG]?i?B\/16\.0 MiB \| [\d.]+ [KMG]?i?B\/s \| ETA \S+ \| peers \d+% origin \d+%/)
    expect(tty).toMatch(/damselfly get: 16\.0 MiB in \d+\.\d s/)
  }, 90_000)

  it("-H headers reach the origin, directly and through the daemon; without them the origin refuses", async () => {
    const content = randomBytes(6 * MiB)
    const sha = createHash("sha256").update(content).digest("hex")
    const server = http.createServer((req, res) => {
      if (req.headers["x-auth"] !== "let-me-in") {
        res.writeHead(403, { "content-type": "text/plain" }).end("forbidden")
        return
      }
      const span = writeRangeHead(res, rangeOf(req.headers.range, content.length), content.length)
      if (span === undefined) return
      res.end(req.method === "HEAD" ? undefined : content.subarray(span.start, span.end + 1))
    })
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
    closers.push(() => new Promise((r) => server.close(() => r())))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/guarded`
    const daemon = cluster.daemons[0]

    // Straight to the origin (no daemon answers): refused without the header, served with it.
    const noDaemon = `http://127.0.0.1:${await freePort()}`
    const refused = await run(["get", url, "-O", path.join(dir, "refused.bin"), "--daemon", noDaemon])
    expect(refused.code).not.toBe(0)
    expect(refused.err).toMatch(/HTTP 403/)
    const direct = await run(["get", url, "-O", path.join(dir, "direct.bin"), "--daemon", noDaemon, "-H", "X-Auth: let-me-in"])
    expect(direct.code, direct.err).toBe(0)
    expect(JSON.parse(direct.out).via).toBe("origin")
    expect(await sha256File(path.join(dir, "direct.bin"))).toBe(sha)

    // Through the daemon: it probes and fetches with the header. (The seed the scheduler triggers gets
    // no headers — core's seed request carries none — so it is refused, and the daemon goes to the
    // origin itself once its parent has nothing: slower, but only the header lets it in.)

    const out = path.join(dir, "guarded.bin")
    const ok = await run(["get", `${url}?v=2`, "-O", out, "--daemon", daemon.url, "-H", "X-Auth: let-me-in", "--digest", `sha256:${sha}`])
    expect(ok.code, ok.err).toBe(0)
    expect(JSON.parse(ok.out)).toMatchObject({ via: "daemon", bytesFromOrigin: 6 * MiB })
    expect(await sha256File(out)).toBe(sha)

    const malformed = await run(["get", url, "-O", path.join(dir, "x.bin"), "--daemon", daemon.url, "-H", "no colon here"])
    expect(malformed.code).not.toBe(0)
    expect(malformed.err).toContain(`-H: expected "Name: value", got "no colon here"`)
  }, 120_000)

  it("--disable-back-to-source: with no peer holding the content, fails without touching the origin", async () => {
    const origin: Origin = await startOrigin(await mkdtemp(path.join(dir, "nb2s-")), 2 * MiB)
    closers.push(origin.close)
    // A daemon with no scheduler: no parents, so the origin would be its only source.
    const port = await freePort()
    const lonely = damselfly("lonely", ["daemon", "--port", String(port), "--data", path.join(dir, "lonely"), "--scheduler", `http://127.0.0.1:${await freePort()}`])
    await waitHealthy(`http://127.0.0.1:${port}`, lonely)
    const out = path.join(dir, "nb2s.bin")
    const r = await run(["get", origin.url, "-O", out, "--daemon", `http://127.0.0.1:${port}`, "--disable-back-to-source"])
    expect(r.code).not.toBe(0)
    expect(r.err).toMatch(/back-to-source disabled/)
    expect(r.err).toMatch(/--disable-back-to-source/)
    expect(origin.gets()).toBe(0)
    expect(existsSync(out)).toBe(false)
  }, 90_000)
})
