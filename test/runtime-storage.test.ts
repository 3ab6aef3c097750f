// Storage GC and keep-cache on real processes (runtime/storage-gc.ts, runtime/disk-store.ts): the quota
// watermarks evict the least recently used task and keep a task being downloaded even though it is the
// oldest; files that are not the store's own are neither counted nor touched; TTL evicts an idle task
// but not one still downloading; the store survives a restart unless --no-keep-cache.
import { existsSync } from "node:fs"
import { mkdir, readdir, readFile, truncate, writeFile } from "node:fs/promises"
import * as path from "node:path"
import { beforeAll, describe, expect, it } from "vitest"
import { taskIdFor } from "../runtime/testing/cluster.ts"
import { assertSound, damselfly, getJson, type Origin, type Proc, rawRequest, sha256File, startDaemon, startScheduler, waitFor } from "../runtime/testing/harness.ts"
import { useWorkspace } from "./fixtures/workspace.ts"

const MiB = 1024 * 1024

const ws = useWorkspace("damselfly-storage-")
let schedulerUrl: string

beforeAll(async () => {
  // A scheduler and no seed: with nobody to take pieces from, each daemon goes to the origin itself.
  schedulerUrl = (await startScheduler()).url
}, 60_000)

const origin = (name: string, size: number, bytesPerSecond?: number) => ws.origin(size, bytesPerSecond === undefined ? {} : { bytesPerSecond }, `origin-${name}`)

interface Daemon {
  readonly url: string
  readonly data: string
  readonly port: number
  proc: Proc
}

const startStorageDaemon = async (name: string, args: ReadonlyArray<string>, data = path.join(ws.dir, name), port?: number): Promise<Daemon> => {
  const d = await startDaemon(name, { data, schedulers: schedulerUrl, args, ...(port === undefined ? {} : { port }) })
  return { url: d.url, data, port: d.port, proc: d.proc }
}

/** Downloads `o` through the daemon as one piece (so a paced origin stays paced). */
const download = (d: Daemon, o: Origin, name: string) =>
  rawRequest(d.url, {
    method: "POST",
    path: "/v1/download",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ url: o.url, output: path.join(ws.dir, "out", `${name}.bin`), pieceLength: o.size }),
    timeoutMillis: 120_000
  })

const held = async (d: Daemon, o: Origin) => (await getJson(`${d.url}/v1/cache/tasks/${taskIdFor(o.url, o.size)}`)).status === 200
const taskDir = (d: Daemon, o: Origin) => path.join(d.data, "tasks", taskIdFor(o.url, o.size))

const metric = async (d: Daemon, name: string, labels = "") => {
  const text = (await rawRequest(d.url, { path: "/metrics" })).text
  const m = new RegExp(`^${name}\\{[^}]*${labels}[^}]*\\} (\\S+)$`, "m").exec(text)
  return m === null ? undefined : Number(m[1])
}

describe("storage GC", () => {
  it("over the high watermark: evicts the least recently used task, keeps the one downloading, ignores foreign files", async () => {
    // Quota 24 MiB: above 18 MiB (0.75) evict down to 16.8 MiB (0.7). A task counts its content length
    // from the moment it is opened (the data file is sized up front).
    const d = await startStorageDaemon("wm", ["--gc-quota", "24MiB", "--gc-high-watermark", "0.75", "--gc-low-watermark", "0.7", "--gc-interval", "200ms", "--gc-disk-high-watermark", "1"])
    // Foreign files beside the store's own: 64 MiB (sparse) that would blow the quota if they counted.
    await writeFile(path.join(d.data, "foreign.bin"), "")
    await truncate(path.join(d.data, "foreign.bin"), 64 * MiB)
    await mkdir(path.join(d.data, "tasks", "not-a-task"), { recursive: true })
    await writeFile(path.join(d.data, "tasks", "not-a-task", "notes.txt"), "operator's file")
    await writeFile(path.join(d.data, "tasks", `${"a".repeat(64)}.bak`), "x".repeat(1000))

    const slow = await origin("slow", 8 * MiB, MiB / 2) // 16 s: in flight the whole time
    const [a, b, c] = await Promise.all(["a", "b", "c"].map((n) => origin(n, 4 * MiB)))
    const slowDownload = download(d, slow, "slow")
    await waitFor("the slow task to open", async () =>
      ((await getJson(`${d.url}/v1/downloads`)).body.downloads as Array<{ url: string; contentLength: number | null }>)
        .some((x) => x.url === slow.url && x.contentLength !== null))
    // slow (8, oldest, in use) + a + b = 16 MiB: under the high watermark.
    for (const o of [a, b]) expect((await download(d, o, `first-${o.url.slice(-10)}`)).status).toBe(200)
    // Using a again makes b the least recently used task that is not in use.
    await new Promise((r) => setTimeout(r, 50))
    expect((await download(d, a, "a-again")).status).toBe(200)
    await new Promise((r) => setTimeout(r, 600))
    expect(await held(d, a)).toBe(true)
    expect(await held(d, b)).toBe(true)
    // + c = 20 MiB > 18: b goes (16 MiB ≤ 16.8), and nothing else.
    const cDone = await download(d, c, "c")
    expect(cDone.status, cDone.text).toBe(200)
    // The premise: the oldest task is still downloading while the store is over the watermark.
    const inFlight = (await getJson(`${d.url}/v1/downloads`)).body.downloads as Array<{ url: string }>
    expect(inFlight.map((x) => x.url), "the slow download must still be running").toContain(slow.url)
    // The index forgets b first, then its directory is removed: wait for both.
    await waitFor("b to be evicted", async () => !(await held(d, b)) && !existsSync(taskDir(d, b)), 10_000)
    await new Promise((r) => setTimeout(r, 600)) // a few more GC passes: nothing else goes
    expect(await held(d, a)).toBe(true)
    expect(await held(d, c)).toBe(true)
    expect(existsSync(taskDir(d, slow))).toBe(true)
    // The oldest task, still downloading, was never evicted: it completes with the right bytes.
    const s = await slowDownload
    expect(s.status, s.text).toBe(200)
    expect(await sha256File(path.join(ws.dir, "out", "slow.bin"))).toBe(slow.sha256)
    expect(await metric(d, "damselfly_gc_evictions_total", 'reason="watermark"')).toBe(1)
    expect(await metric(d, "damselfly_gc_evictions_total", 'reason="ttl"')).toBe(0)
    // The store's own bytes: a + c + slow (meta and logs add a few hundred bytes).
    const stored = await metric(d, "damselfly_store_bytes")
    expect(stored).toBeGreaterThanOrEqual(16 * MiB)
    expect(stored).toBeLessThan(16 * MiB + 64 * 1024)
    // Foreign files untouched.
    expect((await readFile(path.join(d.data, "tasks", "not-a-task", "notes.txt"), "utf8"))).toBe("operator's file")
    expect(existsSync(path.join(d.data, "foreign.bin"))).toBe(true)
    expect(existsSync(path.join(d.data, "tasks", `${"a".repeat(64)}.bak`))).toBe(true)
    assertSound(d.proc)
  }, 120_000)

  it("TTL: evicts a task idle for longer than the TTL, not one still downloading", async () => {
    const d = await startStorageDaemon("ttl", ["--gc-ttl", "2s", "--gc-interval", "200ms"])
    const quick = await origin("ttl-quick", 2 * MiB)
    const slow = await origin("ttl-slow", 8 * MiB, MiB / 2) // 16 s, much longer than the TTL
    const slowDownload = download(d, slow, "ttl-slow")
    expect((await download(d, quick, "ttl-quick")).status).toBe(200)
    const done = Date.now()
    expect(await held(d, quick)).toBe(true)
    await waitFor("the idle task to be evicted", async () => !(await held(d, quick)), 15_000)
    expect(Date.now() - done).toBeGreaterThanOrEqual(1_900)
    expect(existsSync(taskDir(d, quick))).toBe(false)
    // Opened more than 2 s ago and never touched since, but downloading: still there.
    const inFlight = (await getJson(`${d.url}/v1/downloads`)).body.downloads as Array<{ url: string; elapsedSeconds: number }>
    expect(inFlight.find((x) => x.url === slow.url)?.elapsedSeconds, "the slow download must still be running").toBeGreaterThan(2)
    expect(existsSync(taskDir(d, slow))).toBe(true)
    const s = await slowDownload
    expect(s.status, s.text).toBe(200)
    expect(await sha256File(path.join(ws.dir, "out", "ttl-slow.bin"))).toBe(slow.sha256)
    expect(await metric(d, "damselfly_gc_evictions_total", 'reason="ttl"')).toBeGreaterThanOrEqual(1)
    // An evicted task is simply downloaded again.
    expect((await download(d, quick, "ttl-quick-again")).status).toBe(200)
    expect(await sha256File(path.join(ws.dir, "out", "ttl-quick-again.bin"))).toBe(quick.sha256)
    assertSound(d.proc)
  }, 120_000)
})

describe("keep-cache", () => {
  it("resume: a daemon SIGKILLed mid-download restarts, re-hashes the logged pieces, drops a corrupted one and fetches only the rest", async () => {
    const o = await origin("resume", 8 * MiB, 1 * MiB) // 1 MiB pieces, one at a time: about 1 s each
    const data = path.join(ws.dir, "resume")
    let d = await startStorageDaemon("resume", ["--concurrent-pieces", "1"], data)
    const body = JSON.stringify({ url: o.url, output: path.join(ws.dir, "out", "resume.bin"), pieceLength: MiB })
    const first = rawRequest(d.url, { method: "POST", path: "/v1/download", headers: { "content-type": "application/json" }, body, timeoutMillis: 120_000 }).catch(() => undefined)
    const id = taskIdFor(o.url, MiB)
    const log = path.join(data, "tasks", id, "pieces.log")
    const logged = async () => (await readFile(log, "utf8").catch(() => "")).split("\n").filter((l) => /^\d+ [0-9a-f]{64}$/.test(l))
    await waitFor("three pieces on disk", async () => (await logged()).length >= 3, 30_000)
    d.proc.child.kill("SIGKILL")
    await d.proc.exited
    await first
    const held = await logged()
    // Flip a byte of the first logged piece: the restart must notice and fetch it again.
    const corrupt = Number(held[0].split(" ")[0])
    const { open } = await import("node:fs/promises")
    const fh = await open(path.join(data, "tasks", id, "data"), "r+")
    const byte = Buffer.alloc(1)
    await fh.read(byte, 0, 1, corrupt * MiB)
    byte[0] ^= 0xff
    await fh.write(byte, 0, 1, corrupt * MiB)
    await fh.close()

    // Same host id: the scheduler sees the same peer come back, not a dead parent to wait for.
    d = await startStorageDaemon("resume", [], data, d.port)
    const restarted = performance.now()
    const again = await rawRequest(d.url, { method: "POST", path: "/v1/download", headers: { "content-type": "application/json" }, body, timeoutMillis: 120_000 })
    expect(again.status, again.text).toBe(200)
    const resumedSeconds = (performance.now() - restarted) / 1000
    expect(await sha256File(path.join(ws.dir, "out", "resume.bin"))).toBe(o.sha256)
    console.log(`[storage] resume: ${held.length} pieces logged before SIGKILL, one corrupted; ${again.json.bytesFromOrigin / MiB} MiB fetched after the restart, in ${resumedSeconds.toFixed(1)} s`)
    expect(again.json.bytesFromOrigin).toBe(8 * MiB - (held.length - 1) * MiB)
    assertSound(d.proc)
  }, 120_000)

  it("a restarted daemon serves what it held (pieces re-verified); with --no-keep-cache it starts empty", async () => {
    const o = await origin("keep", 6 * MiB)
    const data = path.join(ws.dir, "keep")
    let d = await startStorageDaemon("keep", [], data)
    expect((await download(d, o, "keep")).status).toBe(200)
    await writeFile(path.join(data, "foreign.txt"), "not the daemon's")
    d.proc.child.kill("SIGTERM")
    await d.proc.exited

    d = await startStorageDaemon("keep-again", [], data, d.port)
    const stat = await getJson(`${d.url}/v1/cache/tasks/${taskIdFor(o.url, o.size)}`)
    expect(stat.body).toMatchObject({ complete: true, held: 1 })
    await o.close() // served from the store, not the origin
    const again = await download(d, o, "keep-again")
    expect(again.status, again.text).toBe(200)
    expect(again.json.bytesFromOrigin).toBe(0)
    expect(await sha256File(path.join(ws.dir, "out", "keep-again.bin"))).toBe(o.sha256)
    d.proc.child.kill("SIGTERM")
    await d.proc.exited

    d = await startStorageDaemon("keep-wiped", ["--no-keep-cache"], data, d.port)
    expect((await getJson(`${d.url}/v1/cache/tasks/${taskIdFor(o.url, o.size)}`)).status).toBe(404)
    expect((await readdir(path.join(data, "tasks"))).filter((n) => /^[0-9a-f]{64}$/.test(n))).toEqual([])
    expect(await readFile(path.join(data, "foreign.txt"), "utf8")).toBe("not the daemon's")
    assertSound(d.proc)
  }, 120_000)
})
