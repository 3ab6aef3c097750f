// A misbehaving origin (500s, bodies cut off, a stall) and a full disk, with real processes. `damselfly
// get` must either deliver the right bytes or fail with a message that says what went wrong, and must
// never leave a partial file at the -O path; the daemon keeps serving afterwards.
import { existsSync } from "node:fs"
import { mkdir, readdir } from "node:fs/promises"
import * as path from "node:path"
import { beforeAll, describe, expect, it } from "vitest"
import {
  assertSound,
  damselfly,
  freePort,
  getJson,
  mountTmpfs,
  type OriginMode,
  type Proc,
  sha256File,
  startDaemon,
  waitFor
} from "../runtime/testing/harness.ts"
import { useWorkspace } from "./fixtures/workspace.ts"

const MiB = 1024 * 1024
const SIZE = 8 * MiB

const ws = useWorkspace("damselfly-origin-")
let daemonUrl: string
let daemon: Proc

beforeAll(async () => {
  // No scheduler listens (startDaemon's default): the daemon goes to the origin itself, the path under test.
  const d = await startDaemon("daemon", { dir: ws.dir, data: path.join(ws.dir, "d"), hostId: "d0", args: ["--origin-timeout", "1", "--origin-outage", "3"] })
  daemonUrl = d.url
  daemon = d.proc
}, 60_000)

const getFrom = async (
  mode: OriginMode,
  name: string,
  o: { readonly bytesPerSecond?: number; readonly daemon?: string; readonly args?: ReadonlyArray<string> } = {}
) => {
  const origin = await ws.origin(SIZE, { mode, bytesPerSecond: o.bytesPerSecond }, `origin-${name}`)
  const out = path.join(ws.dir, `${name}.bin`)
  const started = Date.now()
  const get = damselfly(`get-${name}`, [
    "get", origin.url, "-O", out, "--daemon", o.daemon ?? daemonUrl, "--digest", `sha256:${origin.sha256}`, "--piece-length", String(MiB),
    ...(o.args ?? ["--idle-timeout", "2"])
  ])
  // When the origin first heard of this download (the daemon's HEAD probe, or get's own GET): time
  // after it excludes the get process's start-up.
  let firstRequestAt: number | undefined
  const watch = setInterval(() => {
    if (firstRequestAt === undefined && origin.requests() > 0) firstRequestAt = Date.now()
  }, 20)
  const code = await get.exited
  clearInterval(watch)
  const ended = Date.now()
  return { origin, out, get, code, seconds: (ended - started) / 1000, sinceFirstRequest: firstRequestAt === undefined ? undefined : (ended - firstRequestAt) / 1000 }
}

const expectNoPartialFile = async (out: string) => {
  expect(existsSync(out), `${out} must not exist`).toBe(false)
  expect((await readdir(path.dirname(out))).filter((f) => f.startsWith(path.basename(out)))).toEqual([])
}

describe("fault: origin misbehaves", () => {
  it("500: fails naming the status, no output file", async () => {
    const r = await getFrom("error500", "e500")
    console.log(`[fault] origin 500: get exit ${r.code} after ${r.seconds.toFixed(1)} s: ${r.get.stderr().trim()}`)
    expect(r.code).not.toBe(0)
    expect(r.get.stderr()).toMatch(/HTTP 500/)
    await expectNoPartialFile(r.out)
  }, 60_000)

  it("bodies cut off: fails saying so, no output file", async () => {
    const r = await getFrom("truncate", "cut")
    console.log(`[fault] origin truncating: get exit ${r.code} after ${r.seconds.toFixed(1)} s: ${r.get.stderr().trim()}`)
    expect(r.code).not.toBe(0)
    expect(r.get.stderr()).toMatch(/cut off|closed mid-body|aborted|ECONNRESET/)
    await expectNoPartialFile(r.out)
  }, 60_000)

  it("stalled replies: time out and fail saying so, no output file", async () => {
    const r = await getFrom("stall", "stall")
    console.log(`[fault] origin stalling: get exit ${r.code} after ${r.seconds.toFixed(1)} s: ${r.get.stderr().trim()}`)
    expect(r.code).not.toBe(0)
    expect(r.get.stderr()).toMatch(/stalled|no data for/)
    await expectNoPartialFile(r.out)
  }, 90_000)

  it("every other body cut off: the daemon retries the pieces and delivers the right bytes", async () => {
    const r = await getFrom("flaky-truncate", "flaky")
    console.log(`[fault] origin cutting every other reply: get exit ${r.code} after ${r.seconds.toFixed(1)} s, ${r.origin.gets()} range requests for 8 pieces`)
    expect(r.code, r.get.stderr()).toBe(0)
    expect(JSON.parse(r.get.stdout()).via).toBe("daemon")
    expect(await sha256File(r.out)).toBe(r.origin.sha256)
  }, 60_000)

  // 8 MiB at 128 KiB/s a response (1 MiB pieces: 8 s each) is a steady trickle: never idle, so only the whole-download deadline ends it.
  const SLOW = 128 * 1024

  it("--timeout through the daemon, slow origin: exit 1 naming the timeout, no output file; the daemon's download goes on", async () => {
    const r = await getFrom("ok", "deadline-daemon", { bytesPerSecond: SLOW, args: ["--timeout", "3"] })
    console.log(`[fault] slow origin, --timeout 3 via daemon: get exit ${r.code} after ${r.seconds.toFixed(1)} s, process start-up included: ${r.get.stderr().trim()}`)
    expect(r.code).toBe(1)
    expect(r.get.stderr()).toMatch(/not downloaded within --timeout 3 s/)
    await expectNoPartialFile(r.out)
    // No time bound here: with --digest and --piece-length the daemon asks nothing of the origin before it
    // has tried the (absent) scheduler, so there is no moment to measure from but get's own start-up,
    // which a loaded machine stretches. The message says the deadline ended it.
    // Only this caller gave up: the daemon's download goes on (README), and the daemon keeps serving.
    await waitFor("the daemon's download to keep fetching from the origin", async () => r.origin.bytesSent() > 0)
    expect((await getJson(`${daemonUrl}/healthy`)).body.ok).toBe(true)
    await expectNoPartialFile(r.out)
  }, 60_000)

  it("--timeout with no daemon (direct download), slow origin: exit 1 naming the timeout, no output or tmp file", async () => {
    const r = await getFrom("ok", "deadline-direct", { bytesPerSecond: SLOW, daemon: `http://127.0.0.1:${await freePort()}`, args: ["--timeout", "3"] })
    console.log(`[fault] slow origin, --timeout 3 direct: get exit ${r.code} after ${r.seconds.toFixed(1)} s (${r.sinceFirstRequest?.toFixed(1)} s after its origin GET): ${r.get.stderr().trim()}`)
    expect(r.code).toBe(1)
    expect(r.get.stderr()).toMatch(/direct download failed: .*not downloaded within --timeout 3 s/)
    await expectNoPartialFile(r.out)
    // The whole download would take 64 s; it stopped at the deadline (less than 3 s after its GET).
    expect(r.sinceFirstRequest).toBeDefined()
    expect(r.sinceFirstRequest!).toBeLessThan(3 + 4)
    expect(r.origin.bytesSent()).toBeGreaterThan(0)
    expect(r.origin.bytesSent()).toBeLessThan(SIZE)
  }, 60_000)

  it("--timeout long enough: the same kind of download completes", async () => {
    const r = await getFrom("ok", "deadline-met", { args: ["--timeout", "60"] })
    expect(r.code, r.get.stderr()).toBe(0)
    expect(await sha256File(r.out)).toBe(r.origin.sha256)
  }, 90_000)

  it("the daemon is still healthy and never logged an unhandled failure", async () => {
    expect((await getJson(`${daemonUrl}/healthy`)).body.ok).toBe(true)
    assertSound(daemon)
  })
})

describe("fault: full disk", () => {
  it("a daemon whose data dir is a 20 MiB tmpfs, asked for 48 MiB: clear error, no output, still serving", async (ctx) => {
    const mnt = path.join(ws.dir, "small-disk")
    await mkdir(mnt, { recursive: true })
    const mounted = mountTmpfs(mnt, 20)
    if (!mounted.ok) return ctx.skip(mounted.reason)
    ws.onClose(() => mounted.unmount())
    const { url, proc: small } = await startDaemon("daemon-small-disk", { data: path.join(mnt, "data"), hostId: "small" })
    const origin = await ws.origin(48 * MiB, {}, "origin-big")
    // The output is on the full disk too, so the direct fallback cannot succeed either.
    const out = path.join(mnt, "out.bin")
    const started = Date.now()
    const get = damselfly("get-full", ["get", origin.url, "-O", out, "--daemon", url, "--piece-length", String(4 * MiB)])
    const code = await get.exited
    console.log(`[fault] full disk: get exit ${code} after ${((Date.now() - started) / 1000).toFixed(1)} s: ${get.stderr().trim()}`)
    expect(code).not.toBe(0)
    expect(get.stderr()).toMatch(/ENOSPC/)
    await expectNoPartialFile(out)
    expect((await getJson(`${url}/healthy`)).body.ok).toBe(true)
    assertSound(small)
  }, 90_000)
})
