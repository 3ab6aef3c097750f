// The daemon's local control routes (runtime/control-access.ts): a peer holding the cluster token must not
// drive another node's daemon. A real daemon runs in its own network namespace (root only, like the swarm
// tests; without root this file fails, it does not skip): this test process reaches it over a veth from
// the root namespace — another host as far as the daemon can tell — while curl inside the namespace is a
// client on the daemon's host, through loopback and through the daemon's own address.
import { execFile } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import { existsSync, promises as fs } from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import * as path from "node:path"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { fileURLToPath } from "node:url"
import { controlProblem, controlSourceProblem, isLoopback, isPeerRoute, parseControlSources, sameAddress } from "../runtime/control-access.ts"
import { CONTROL_TOKEN_HEADER } from "../runtime/auth.ts"
import { BIN } from "../runtime/testing/harness.ts"
import { type NetNode, Topology } from "../scenarios/swarm/netns.ts"

const REPO = fileURLToPath(new URL("..", import.meta.url))

describe("the address rule", () => {
  it("loopback: 127.0.0.0/8, ::1 and IPv4-mapped loopback; nothing else", () => {
    for (const a of ["127.0.0.1", "127.255.3.4", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "::FFFF:127.9.9.9"]) expect(isLoopback(a), a).toBe(true)
    for (const a of ["10.0.0.1", "128.0.0.1", "::2", "::ffff:10.0.0.1", "fe80::1", "", "localhost", "127.0.0.1.5"]) expect(isLoopback(a), a).toBe(false)
  })

  it("the same address however written (IPv4-mapped, zero runs), never across zones", () => {
    expect(sameAddress("10.1.2.3", "::ffff:10.1.2.3")).toBe(true)
    expect(sameAddress("::ffff:10.1.2.3", "10.1.2.3")).toBe(true)
    expect(sameAddress("fd00::1", "fd00:0:0:0::1")).toBe(true)
    expect(sameAddress("FD00::A", "fd00::a")).toBe(true)
    expect(sameAddress("10.1.2.3", "10.1.2.4")).toBe(false)
    expect(sameAddress("fd00::1", "fd00::2")).toBe(false)
    expect(sameAddress("fe80::1%eth0", "fe80::1%eth0")).toBe(true)
    expect(sameAddress("fe80::1%eth0", "fe80::1%eth1")).toBe(false)
    expect(sameAddress("not-an-ip", "not-an-ip")).toBe(false)
  })

  it("property: any IPv4 address equals its mapped form, and is loopback exactly when its first octet is 127", () => {
    const seed = 20261129
    const octet = fc.integer({ min: 0, max: 255 })
    try {
      fc.assert(fc.property(octet, octet, octet, octet, (a, b, c, d) => {
        const v4 = `${a}.${b}.${c}.${d}`
        expect(sameAddress(v4, `::ffff:${v4}`)).toBe(true)
        expect(isLoopback(v4)).toBe(a === 127)
        expect(isLoopback(`::ffff:${v4}`)).toBe(a === 127)
        expect(sameAddress(v4, `${a}.${b}.${c}.${(d + 1) % 256}`)).toBe(false)
      }), { seed, numRuns: 500 })
    } catch (e) {
      throw new Error(`failing seed ${seed}: ${String(e)}`)
    }
  })

  it("a control request passes from loopback, from the daemon's own address, from a listed source, with the control token", () => {
    const none = parseControlSources([])
    const conn = (remoteAddress: string | undefined, localAddress = "10.0.0.1") => ({ remoteAddress, localAddress })
    expect(controlProblem(conn("127.0.0.1"), undefined, undefined, none)).toBeUndefined()
    expect(controlProblem(conn("::ffff:127.0.0.1", "::ffff:10.0.0.1"), undefined, undefined, none)).toBeUndefined()
    expect(controlProblem(conn("::1", "::1"), undefined, undefined, none)).toBeUndefined()
    // A client on the host connecting to the host's own address (hostNetwork pods, the swarm's curl).
    expect(controlProblem(conn("10.0.0.1"), undefined, undefined, none)).toBeUndefined()
    expect(controlProblem(conn("::ffff:10.0.0.1", "10.0.0.1"), undefined, undefined, none)).toBeUndefined()
    // Another host.
    expect(controlProblem(conn("10.0.0.2"), undefined, undefined, none)).toMatch(/not 10\.0\.0\.2.*has no --control-token.*--control-from/)
    expect(controlProblem(conn("10.0.0.2"), undefined, "secret", none)).toMatch(/x-damselfly-control-token/)
    expect(controlProblem(conn("10.0.0.2"), "secret", "secret", none)).toBeUndefined()
    expect(controlProblem(conn("10.0.0.2"), "guess", "secret", none)).toMatch(/wrong control token/)
    // A token sent to a daemon that has none opens nothing.
    expect(controlProblem(conn("10.0.0.2"), "secret", undefined, none)).toBeDefined()
    expect(controlProblem(conn(undefined), undefined, undefined, none)).toMatch(/unknown address/)
    // --control-from: addresses and CIDR blocks, mapped forms included; `any`.
    const listed = parseControlSources(["192.168.7.0/24", "fd00::5"])
    expect(controlProblem(conn("192.168.7.200"), undefined, undefined, listed)).toBeUndefined()
    expect(controlProblem(conn("::ffff:192.168.7.9"), undefined, undefined, listed)).toBeUndefined()
    expect(controlProblem(conn("fd00:0::5"), undefined, undefined, listed)).toBeUndefined()
    expect(controlProblem(conn("192.168.8.1"), undefined, undefined, listed)).toBeDefined()
    expect(controlProblem(conn("203.0.113.9"), undefined, undefined, parseControlSources(["any"]))).toBeUndefined()
  })

  it("--control-from entries are checked", () => {
    for (const ok of ["any", "10.0.0.1", "10.0.0.0/8", "0.0.0.0/0", "fd00::/64", "::1"]) expect(controlSourceProblem(ok), ok).toBeUndefined()
    for (const bad of ["", "all", "10.0.0.0/33", "fd00::/129", "10.0.0.0/8/1", "host.example", "10.0.0.0/x"]) expect(controlSourceProblem(bad), bad).toBeDefined()
    expect(() => parseControlSources(["10.0.0.0/40"])).toThrow(/control-from: .*prefix length must be 0 to 32/)
  })

  it("only the peers' routes are peer routes; anything else (unknown paths included) is control", () => {
    const id = "a".repeat(64)
    for (const [m, u] of [["GET", "/healthy"], ["GET", "/metrics"], ["GET", `/v1/tasks/${id}/availability?since=3`], ["GET", `/v1/tasks/${id}/pieces/7`],
      ["POST", "/v1/seed"], ["POST", "/v1/preheat"], ["GET", `/v1/preheat/${id}`]] as const) expect(isPeerRoute(m, u), `${m} ${u}`).toBe(true)
    for (const [m, u] of [["POST", "/v1/download"], ["GET", "/v1/downloads"], ["GET", `/v1/downloads/${id}/pieces`], ["POST", "/v1/cache/import"],
      ["POST", "/v1/cache/export"], ["GET", `/v1/cache/tasks/${id}`], ["GET", "/v1/cache/tasks?url=x"], ["GET", "/v1/object?url=x"], ["HEAD", "/v1/object?url=x"],
      ["GET", "/v1/seed"], ["POST", `/v1/tasks/${id}/pieces/1`], ["GET", "/v1/tasks/../pieces/1"], ["GET", "/v1/tasks/%2e%2e/availability"],
      ["GET", "/v1/tasks/a/pieces/1/../../../download"], ["GET", "/nope"], ["GET", "/healthy/"]] as const) expect(isPeerRoute(m, u), `${m} ${u}`).toBe(false)
  })
})

// ---- real daemons in a namespace ----

const CLUSTER = "cluster-token-every-peer-has"
const CONTROL = "control-token-only-operators-have"
const octet = 20 + (process.pid % 200)
const topo = new Topology("dfc", `10.79.${octet}`)
let node: NetNode
let work: string
let origin: http.Server
let originBase: string
const originRequests: Array<string> = []
let originConnections = 0
const content = randomBytes(3 * 1024 * 1024 + 123)
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")
const daemonPort = 39_701
const mirrorPort = 39_702
const proxyPort = 39_703
const listedPort = 39_704
let daemonFromHere: string
let secretFile: string

type Reply = { status: number; body: string; headers: http.IncomingHttpHeaders }

/** A request from this process, in the root namespace: another host to the daemon. */
const fromOtherHost = (url: string, o: { method?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Reply> =>
  new Promise((resolve, reject) => {
    const body = o.body === undefined ? undefined : JSON.stringify(o.body)
    const req = http.request(url, {
      method: o.method ?? "GET", agent: false, timeout: 60_000,
      headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...(o.headers ?? {}) }
    }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("latin1"), headers: res.headers }))
    })
    req.on("timeout", () => req.destroy(new Error(`no answer from ${url}`)))
    req.on("error", reject)
    req.end(body)
  })

/** A request by curl inside the daemon's namespace: a client on the daemon's host. */
const onDaemonHost = (url: string, o: { method?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Reply> =>
  new Promise((resolve, reject) => {
    const args = ["netns", "exec", node.ns, "curl", "-sS", "--max-time", "60", "-X", o.method ?? "GET", "-w", "\n%{http_code}"]
    for (const [k, v] of Object.entries(o.headers ?? {})) args.push("-H", `${k}: ${v}`)
    if (o.body !== undefined) args.push("-H", "content-type: application/json", "--data", JSON.stringify(o.body))
    args.push(url)
    execFile("ip", args, { encoding: "latin1", maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null) return reject(new Error(`curl ${url}: ${stderr || err.message}`))
      const cut = stdout.lastIndexOf("\n")
      resolve({ status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut), headers: {} })
    })
  })

const cluster = { authorization: `Bearer ${CLUSTER}` }
const withControl = { ...cluster, [CONTROL_TOKEN_HEADER]: CONTROL }
const json = (r: Reply) => JSON.parse(r.body) as Record<string, any>
const taskIdOfImport = async (r: Reply) => {
  expect(r.status, r.body).toBe(200)
  return String(json(r).taskId)
}

const waitHealthyFromHere = async (base: string, log: string) => {
  const deadline = Date.now() + 120_000
  while (Date.now() < deadline) {
    const r = await fromOtherHost(`${base}/healthy`).catch(() => undefined)
    if (r?.status === 200) return
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error(`daemon at ${base} did not answer /healthy: ${await fs.readFile(log, "utf8").catch(() => "")}`)
}

describe("a daemon's control routes, seen from another host and from its own", () => {
  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error("this test needs root (network namespaces); CI runs it as root")
    work = await fs.mkdtemp(path.join(tmpdir(), "damselfly-control-"))
    secretFile = path.join(work, "node-secret.txt")
    await fs.writeFile(secretFile, "what only this node may read\n")
    topo.create([{ name: "d", octet: 1, upMbit: undefined, downMbit: undefined }])
    node = topo.node("d")
    // The origin (and the mirror's upstream) on the root namespace's side of the bridge.
    origin = http.createServer((req, res) => {
      originRequests.push(`${req.method} ${req.url}`)
      if (req.url === "/v2/") return void res.writeHead(200, { "content-type": "application/json" }).end("{}")
      if (req.url !== "/file") return void res.writeHead(404).end()
      const range = /^bytes=(\d+)-(\d+)?$/.exec(req.headers.range ?? "")
      if (range === null) return void res.writeHead(200, { "content-length": content.length, "accept-ranges": "bytes" }).end(req.method === "HEAD" ? undefined : content)
      const start = Number(range[1])
      const end = Math.min(range[2] === undefined ? content.length - 1 : Number(range[2]), content.length - 1)
      res.writeHead(206, { "content-length": end - start + 1, "content-range": `bytes ${start}-${end}/${content.length}` }).end(req.method === "HEAD" ? undefined : content.subarray(start, end + 1))
    })
    origin.on("connection", () => originConnections++)
    await new Promise<void>((r) => origin.listen(0, topo.bridgeIp, r))
    originBase = `http://${topo.bridgeIp}:${(origin.address() as AddressInfo).port}`
    const start = (name: string, port: number, extra: ReadonlyArray<string>) => {
      const log = path.join(work, `${name}.log`)
      topo.spawnIn("d", process.execPath, [BIN, "daemon", "--listen", "0.0.0.0", "--port", String(port), "--data", path.join(work, name),
        "--scheduler", "http://127.0.0.1:9", "--host-id", name, "--token", CLUSTER, ...extra], { cwd: REPO, log })
      return waitHealthyFromHere(`http://${node.ip}:${port}`, log)
    }
    await Promise.all([
      start("daemon", daemonPort, ["--control-token", CONTROL, "--mirror-port", String(mirrorPort), "--mirror-upstream", originBase, "--proxy-port", String(proxyPort)]),
      // No control token, but this test process's address (the bridge's) listed.
      start("listed", listedPort, ["--control-from", `${topo.bridgeIp}/32`])
    ])
    daemonFromHere = `http://${node.ip}:${daemonPort}`
  }, 180_000)

  afterAll(async () => {
    await topo.stopAll()
    topo.destroySync()
    await new Promise((r) => origin?.close(r))
    if (work !== undefined) await fs.rm(work, { recursive: true, force: true })
  })

  it("from another host, the cluster token opens no control route, and nothing is read, written or fetched", async () => {
    const before = { requests: originRequests.length, connections: originConnections }
    const imported = await fromOtherHost(`${daemonFromHere}/v1/cache/import`, { method: "POST", headers: cluster, body: { path: secretFile, url: "http://files.invalid/secret" } })
    expect(imported.status, imported.body).toBe(403)
    expect(json(imported).error).toMatch(/^POST \/v1\/cache\/import is a local control route: .*not 10\.79\.\d+\.254.*x-damselfly-control-token/)
    // Nothing was imported (asked on the daemon's host, which may ask).
    expect((await onDaemonHost(`http://127.0.0.1:${daemonPort}/v1/cache/tasks?url=${encodeURIComponent("http://files.invalid/secret")}`, { headers: cluster })).status).toBe(404)

    // A task the daemon holds, imported by a client on its host: the export below would succeed but for the rule.
    const held = await taskIdOfImport(await onDaemonHost(`http://127.0.0.1:${daemonPort}/v1/cache/import`, { method: "POST", headers: cluster, body: { path: secretFile, url: "http://files.invalid/held" } }))
    const exportTo = path.join(work, "exported-by-a-peer")
    const exported = await fromOtherHost(`${daemonFromHere}/v1/cache/export`, { method: "POST", headers: cluster, body: { taskId: held, output: exportTo } })
    expect(exported.status, exported.body).toBe(403)
    expect(existsSync(exportTo)).toBe(false)

    const downloadTo = path.join(work, "downloaded-for-a-peer")
    const downloaded = await fromOtherHost(`${daemonFromHere}/v1/download`, { method: "POST", headers: cluster, body: { url: `${originBase}/file`, output: downloadTo } })
    expect(downloaded.status, downloaded.body).toBe(403)
    expect(json(downloaded).error).toMatch(/^POST \/v1\/download is a local control route/)
    expect(existsSync(downloadTo)).toBe(false)

    const object = await fromOtherHost(`${daemonFromHere}/v1/object?url=${encodeURIComponent(`${originBase}/file`)}`, { headers: cluster })
    expect(object.status).toBe(403)
    expect(json(object).error).toMatch(/^GET \/v1\/object is a local control route/)
    expect((await fromOtherHost(`${daemonFromHere}/v1/object?url=${encodeURIComponent(`${originBase}/file`)}`, { method: "HEAD", headers: cluster })).status).toBe(403)
    for (const route of ["/v1/downloads", `/v1/downloads/${held}/pieces`, `/v1/cache/tasks/${held}`, "/v1/no-such-route"]) {
      expect((await fromOtherHost(`${daemonFromHere}${route}`, { headers: cluster })).status, route).toBe(403)
    }
    // A wrong control token is refused as such.
    const guessed = await fromOtherHost(`${daemonFromHere}/v1/cache/export`, { method: "POST", headers: { ...cluster, [CONTROL_TOKEN_HEADER]: "guess" }, body: { taskId: held, output: exportTo } })
    expect(guessed.status).toBe(403)
    expect(json(guessed).error).toMatch(/wrong control token/)
    expect(existsSync(exportTo)).toBe(false)

    // The registry mirror and the proxy are local front ends too: refused before anything goes upstream.
    const mirror = await fromOtherHost(`http://${node.ip}:${mirrorPort}/v2/`)
    expect(mirror.status).toBe(403)
    expect(JSON.parse(mirror.body).error).toMatch(/registry mirror is for clients on this host/)
    const proxied = await fromOtherHost(`http://${node.ip}:${proxyPort}/`, { headers: { host: new URL(originBase).host } })
    expect(proxied.status).toBe(403)
    const tunnel = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: node.ip, port: proxyPort, method: "CONNECT", path: new URL(originBase).host, agent: false })
      req.on("connect", (res, socket) => {
        socket.destroy()
        resolve(res.statusCode ?? 0)
      })
      req.on("error", reject)
      req.end()
    })
    expect(tunnel).toBe(403)

    expect(originRequests.length - before.requests, originRequests.slice(before.requests).join(", ")).toBe(0)
    expect(originConnections - before.connections).toBe(0)
  }, 120_000)

  it("from another host, the peer routes still work with the cluster token (and only with it)", async () => {
    const held = await taskIdOfImport(await onDaemonHost(`http://${node.ip}:${daemonPort}/v1/cache/import`, { method: "POST", headers: cluster, body: { path: secretFile, url: "http://files.invalid/peers" } }))
    const availability = await fromOtherHost(`${daemonFromHere}/v1/tasks/${held}/availability?since=0`, { headers: cluster })
    expect(availability.status, availability.body).toBe(200)
    expect(json(availability).complete).toBe(true)
    const piece = await fromOtherHost(`${daemonFromHere}/v1/tasks/${held}/pieces/0`, { headers: cluster })
    expect(piece.status).toBe(200)
    const secret = await fs.readFile(secretFile)
    expect(Buffer.from(piece.body, "latin1").equals(secret)).toBe(true)
    expect(piece.headers["x-piece-digest"]).toBe(sha(secret))
    expect((await fromOtherHost(`${daemonFromHere}/v1/tasks/${"0".repeat(64)}/pieces/0`, { headers: cluster })).status).toBe(404)
    expect((await fromOtherHost(`${daemonFromHere}/v1/tasks/${held}/pieces/0`)).status).toBe(401)
    expect((await fromOtherHost(`${daemonFromHere}/healthy`)).status).toBe(200)
    expect((await fromOtherHost(`${daemonFromHere}/metrics`)).status).toBe(200)
    // The scheduler's routes are not control routes (the scheduler is on another host): they are refused
    // here for the missing scheduler signature (runtime/scheduler-trigger.ts), not for the caller's address.
    const preheat = await fromOtherHost(`${daemonFromHere}/v1/preheat/${"0".repeat(64)}`, { headers: cluster })
    expect(preheat.status).toBe(403)
    expect(json(preheat).error).toMatch(/x-damselfly-trigger: required/)
  }, 60_000)

  it("from another host with the control token, import, export, download and object work", async () => {
    const held = await taskIdOfImport(await fromOtherHost(`${daemonFromHere}/v1/cache/import`, { method: "POST", headers: withControl, body: { path: secretFile, url: "http://files.invalid/operator" } }))
    const exportTo = path.join(work, "exported-by-the-operator")
    const exported = await fromOtherHost(`${daemonFromHere}/v1/cache/export`, { method: "POST", headers: withControl, body: { taskId: held, output: exportTo } })
    expect(exported.status, exported.body).toBe(200)
    expect((await fs.readFile(exportTo)).equals(await fs.readFile(secretFile))).toBe(true)

    const downloadTo = path.join(work, "downloaded-for-the-operator")
    const downloaded = await fromOtherHost(`${daemonFromHere}/v1/download`, { method: "POST", headers: withControl, body: { url: `${originBase}/file`, output: downloadTo } })
    expect(downloaded.status, downloaded.body).toBe(200)
    expect(sha(await fs.readFile(downloadTo))).toBe(sha(content))
    const object = await fromOtherHost(`${daemonFromHere}/v1/object?url=${encodeURIComponent(`${originBase}/file`)}`, { headers: withControl })
    expect(object.status).toBe(200)
    expect(sha(Buffer.from(object.body, "latin1"))).toBe(sha(content))
    // The control token does not stand in for the cluster token.
    expect((await fromOtherHost(`${daemonFromHere}/v1/downloads`, { headers: { [CONTROL_TOKEN_HEADER]: CONTROL } })).status).toBe(401)
  }, 120_000)

  it("on the daemon's host (loopback, or its own address) the control routes need no control token", async () => {
    for (const base of [`http://127.0.0.1:${daemonPort}`, `http://${node.ip}:${daemonPort}`]) {
      const held = await taskIdOfImport(await onDaemonHost(`${base}/v1/cache/import`, { method: "POST", headers: cluster, body: { path: secretFile, url: `http://files.invalid/local/${base.length}` } }))
      const exportTo = path.join(work, `exported-locally-${base.length}`)
      const exported = await onDaemonHost(`${base}/v1/cache/export`, { method: "POST", headers: cluster, body: { taskId: held, output: exportTo } })
      expect(exported.status, `${base}: ${exported.body}`).toBe(200)
      expect((await fs.readFile(exportTo)).equals(await fs.readFile(secretFile))).toBe(true)
      expect((await onDaemonHost(`${base}/v1/downloads`, { headers: cluster })).status, base).toBe(200)
      const object = await onDaemonHost(`${base}/v1/object?url=${encodeURIComponent(`${originBase}/file`)}`, { headers: cluster })
      expect(object.status, base).toBe(200)
      expect(sha(Buffer.from(object.body, "latin1"))).toBe(sha(content))
    }
    // The mirror passes the request upstream for a client on its host (and keeps the control token to itself).
    const before = originRequests.length
    expect((await onDaemonHost(`http://127.0.0.1:${mirrorPort}/v2/`)).status).toBe(200)
    expect((await onDaemonHost(`http://${node.ip}:${mirrorPort}/v2/`)).status).toBe(200)
    expect(originRequests.slice(before)).toEqual(["GET /v2/", "GET /v2/"])
  }, 120_000)

  it("--control-from lets a listed source in without a control token", async () => {
    const listed = `http://${node.ip}:${listedPort}`
    const held = await taskIdOfImport(await fromOtherHost(`${listed}/v1/cache/import`, { method: "POST", headers: cluster, body: { path: secretFile, url: "http://files.invalid/listed" } }))
    expect((await fromOtherHost(`${listed}/v1/cache/tasks/${held}`, { headers: cluster })).status).toBe(200)
  }, 60_000)

  it("damselfly get and cache take --control-token for a daemon on another host; a refusal is final (no origin fallback)", async () => {
    const run = (args: ReadonlyArray<string>) =>
      new Promise<{ code: number; stderr: string }>((resolve) => {
        execFile(process.execPath, [BIN, ...args], { cwd: REPO, env: { ...process.env, DAMSELFLY_TOKEN: CLUSTER } }, (err, _stdout, stderr) =>
          resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : 1, stderr }))
      })
    const before = originRequests.length
    const refusedTo = path.join(work, "get-refused")
    const refused = await run(["get", `${originBase}/file`, "-O", refusedTo, "--daemon", daemonFromHere, "--no-progress"])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/HTTP 403.*local control route/)
    expect(existsSync(refusedTo)).toBe(false)
    expect(originRequests.length).toBe(before)
    const gotTo = path.join(work, "get-with-control-token")
    const got = await run(["get", `${originBase}/file`, "-O", gotTo, "--daemon", daemonFromHere, "--no-progress", "--control-token", CONTROL])
    expect(got.code, got.stderr).toBe(0)
    expect(sha(await fs.readFile(gotTo))).toBe(sha(content))
    const stat = await run(["cache", "stat", `${originBase}/file`, "--daemon", daemonFromHere, "--control-token", CONTROL])
    expect(stat.code, stat.stderr).toBe(0)
    const statRefused = await run(["cache", "stat", `${originBase}/file`, "--daemon", daemonFromHere])
    expect(statRefused.code).toBe(1)
    expect(statRefused.stderr).toMatch(/HTTP 403/)
  }, 120_000)
})
