// `damselfly cache import|export|stat` on real processes: a file imported on one daemon is served
// peer-to-peer to another without the origin (which is not even running), exported back byte for byte,
// and bad paths and ids are refused by field without creating files or hurting the daemon.
import { randomBytes } from "node:crypto"
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Cluster, startCluster, taskIdFor } from "../runtime/testing/cluster.ts"
import { assertSound, damselfly, freePort, getJson, killAll, type Proc, postRaw, rawRequest, sha256File } from "../runtime/testing/harness.ts"

const MiB = 1024 * 1024
let dir: string
let cluster: Cluster
let file: string
let url: string

const run = async (name: string, args: ReadonlyArray<string>): Promise<{ code: number | null; out: string; err: string; proc: Proc }> => {
  const proc = damselfly(name, args)
  const code = await proc.exited
  return { code, out: proc.stdout(), err: proc.stderr(), proc }
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "damselfly-cache-"))
  cluster = await startCluster({ dir, daemons: 1 })
  file = path.join(dir, "input.bin")
  await writeFile(file, randomBytes(12 * MiB + 12345))
  // Nothing listens here: every byte B gets must come from a peer.
  url = `http://127.0.0.1:${await freePort()}/blob`
}, 120_000)

afterAll(async () => {
  await killAll()
  await rm(dir, { recursive: true, force: true })
})

describe("damselfly cache", () => {
  it("imports on one daemon, serves it to another peer-to-peer with no origin, exports it back", async () => {
    // A is the seed daemon: peers take pieces the scheduler cannot vouch for only from a seed.
    const a = cluster.seed
    const b = cluster.daemons[0]
    const imported = await run("cache-import", ["cache", "import", file, "--url", url, "--daemon", a.url])
    expect(imported.code, imported.err).toBe(0)
    const answer = JSON.parse(imported.out)
    const pieceLength = 4 * MiB
    expect(answer).toMatchObject({ taskId: taskIdFor(url, pieceLength), contentLength: 12 * MiB + 12345, pieceLength, pieces: 4 })

    const stat = await run("cache-stat", ["cache", "stat", url, "--daemon", a.url])
    expect(stat.code, stat.err).toBe(0)
    expect(JSON.parse(stat.out)).toMatchObject({ taskId: answer.taskId, pieces: 4, held: 4, complete: true })
    const byId = await getJson(`${a.url}/v1/cache/tasks/${answer.taskId}`)
    expect(byId.body).toMatchObject({ complete: true, contentLength: 12 * MiB + 12345 })

    const out = path.join(dir, "via-b", "got.bin")
    const got = await run("get", ["get", url, "-O", out, "--daemon", b.url])
    expect(got.code, got.err).toBe(0)
    const result = JSON.parse(got.out)
    expect(result.via).toBe("daemon")
    expect(result.bytesFromOrigin).toBe(0)
    expect(result.bytesFromPeers).toBe(12 * MiB + 12345)
    expect(await sha256File(out)).toBe(await sha256File(file))

    const exported = path.join(dir, "exported.bin")
    const ex = await run("cache-export", ["cache", "export", "--task-id", answer.taskId, "-O", exported, "--daemon", a.url])
    expect(ex.code, ex.err).toBe(0)
    expect(await sha256File(exported)).toBe(await sha256File(file))
    const ex2 = await run("cache-export-url", ["cache", "export", url, "--piece-length", String(pieceLength), "-O", path.join(dir, "exported2.bin"), "--daemon", b.url])
    expect(ex2.code, ex2.err).toBe(0)
    expect(await sha256File(path.join(dir, "exported2.bin"))).toBe(await sha256File(file))
    assertSound(a.proc)
    assertSound(b.proc)
  }, 120_000)

  it("stat by URL finds the task whatever piece length it was cut with (the daemon's strategy's)", async () => {
    const d = cluster.daemons[0]
    const other = `${url}-cut-at-2MiB`
    const imported = await run("cache-import-2m", ["cache", "import", file, "--url", other, "--piece-length", String(2 * MiB), "--daemon", d.url])
    expect(imported.code, imported.err).toBe(0)
    const stat = await run("cache-stat-2m", ["cache", "stat", other, "--daemon", d.url])
    expect(stat.code, stat.err).toBe(0)
    expect(JSON.parse(stat.out)).toMatchObject({ taskId: JSON.parse(imported.out).taskId, pieceLength: 2 * MiB, pieces: 7, complete: true })
    const missing = await run("cache-stat-missing", ["cache", "stat", `${url}-never`, "--daemon", d.url])
    expect(missing.code).not.toBe(0)
    expect(missing.err).toMatch(/url: no task held for/)
  }, 60_000)

  it("refuses bad paths and ids by field, creates nothing, and keeps serving", async () => {
    const d = cluster.daemons[0].url
    const sandbox = path.join(dir, "sandbox")
    await mkdir(sandbox)
    const outside = path.join(dir, "outside")
    await mkdir(outside)
    await writeFile(path.join(outside, "secret"), "secret")
    await symlink(path.join(outside, "secret"), path.join(sandbox, "link"))
    const before = async () => ({ sandbox: (await readdir(sandbox)).sort(), outside: (await readdir(outside)).sort(), dir: (await readdir(dir)).sort() })
    const snapshot = await before()

    const imports: Array<[unknown, RegExp]> = [
      [{ path: "input.bin", url }, /path/],
      [{ path: `${sandbox}/../input.bin`, url }, /path/],
      [{ path: `${sandbox}/%2e%2e/input.bin`, url }, /path/],
      [{ path: sandbox, url }, /path/],
      [{ path: path.join(sandbox, "missing"), url }, /path/],
      [{ path: path.join(sandbox, "link"), url }, /path/],
      [{ path: "/dev/null", url }, /path/],
      [{ path: file, url: "file:///etc/passwd" }, /url/],
      [{ path: file, url, pieceLength: 0 }, /pieceLength/],
      [{ url }, /path/]
    ]
    for (const [body, field] of imports) {
      const r = await postRaw(`${d}/v1/cache/import`, JSON.stringify(body))
      expect(r.status, JSON.stringify(body)).toBeGreaterThanOrEqual(400)
      expect(r.status, JSON.stringify(body)).toBeLessThan(500)
      expect(r.body.error, JSON.stringify(body)).toMatch(field)
    }

    const held = taskIdFor(url, 4 * MiB)
    const exports: Array<[unknown, number, RegExp]> = [
      [{ taskId: held, output: "relative.bin" }, 400, /output/],
      [{ taskId: held, output: `${sandbox}/../escaped.bin` }, 400, /output/],
      [{ taskId: held, output: `${sandbox}/%2e%2e/escaped.bin` }, 400, /output/],
      [{ taskId: held, output: path.join(sandbox, "no-such-dir", "x.bin") }, 400, /output/],
      [{ taskId: held, output: sandbox }, 400, /output/],
      [{ taskId: "../../etc/passwd", output: path.join(sandbox, "x.bin") }, 400, /taskId/],
      [{ taskId: "A".repeat(64), output: path.join(sandbox, "x.bin") }, 400, /taskId/],
      [{ taskId: "c".repeat(64), output: path.join(sandbox, "x.bin") }, 404, /taskId/],
      [{ output: path.join(sandbox, "x.bin") }, 400, /taskId/]
    ]
    for (const [body, status, field] of exports) {
      const r = await postRaw(`${d}/v1/cache/export`, JSON.stringify(body))
      expect(r.status, JSON.stringify(body)).toBe(status)
      expect(r.body.error, JSON.stringify(body)).toMatch(field)
    }

    for (const p of ["/v1/cache/tasks/abc", "/v1/cache/tasks/..%2f..%2fetc", "/v1/cache/tasks/%2e%2e", `/v1/cache/tasks/${"g".repeat(64)}`]) {
      const r = await rawRequest(d, { path: p })
      expect(r.status, p).toBe(400)
      expect(r.json?.error, p).toMatch(/taskId/)
    }
    expect((await rawRequest(d, { path: "/v1/cache/tasks/../../etc/passwd" })).status).toBeGreaterThanOrEqual(400)
    expect((await getJson(`${d}/v1/cache/tasks/${"c".repeat(64)}`)).status).toBe(404)

    expect(await before()).toEqual(snapshot)
    expect((await getJson(`${d}/healthy`)).body.ok).toBe(true)
    assertSound(cluster.daemons[0].proc)
  }, 60_000)
})
