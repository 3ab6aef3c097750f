// `--origin-allow` and `--jobs-token` with real processes on loopback: a scheduler, a seed daemon and a
// daemon, each with its allowlist, and origins that count every request they receive. Whatever a holder
// of the cluster token asks for outside the lists — a download, a registration straight to the scheduler,
// a seed request the scheduler would make, a preheat job — the origin it names receives nothing.
// The last part runs a scheduler in a network namespace (root, like test/runtime-control-routes.test.ts)
// to show the jobs API without a jobs token refusing a caller from another host.
import { execFile } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import { mkdtempSync, promises as fs, rmSync } from "node:fs"
import * as http from "node:http"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Host } from "../core/domain.ts"
import { AnnounceHost, RegisterPeer, ScheduleRequest } from "../core/protocol.ts"
import { JOBS_TOKEN_HEADER } from "../runtime/auth.ts"
import {
  BIN, damselfly, freePort, getJson, killAll, type Origin, rawRequest, type Server, sha256File, startDaemon, startOrigin, startScheduler, waitFor
} from "../runtime/testing/harness.ts"
import { Topology } from "../scenarios/swarm/netns.ts"
import { buildImage, getManifest, type Manifest, pushImage, type Registry, startRegistry, startTokenServer } from "./oci-registry-fixture.ts"

const TOKEN = "cluster-token-every-peer-has"
const JOBS = "jobs-token-only-operators-have"
const dir = mkdtempSync(path.join(tmpdir(), "damselfly-allow-"))
const auth = { authorization: `Bearer ${TOKEN}` }

let allowed: Origin // in every list
let denied: Origin // in none
let seedDenied: Origin // in the scheduler's list, not in the seed's
let scheduler: Server
let seed: Server
let peer: Server
let open: Server // a daemon without a list: its local user's downloads are not restricted
let userChosen: Origin // outside the scheduler's list; only `open`'s user asks for it
let registry: Registry // listed everywhere: the mirror and preheat reach it
let tokenRegistry: Registry // listed, but its token service is not
let tokenServer: Awaited<ReturnType<typeof startTokenServer>>
let image: Manifest
let mirrorPort: number
const CREDS = { username: "puller", password: "s3cret-pass" }
const hostPort = (o: Origin) => new URL(o.url).host

const post = (base: string, route: string, body: unknown, headers: Record<string, string> = {}, timeoutMillis = 30_000) =>
  rawRequest(base, { method: "POST", path: route, headers: { ...headers, "content-type": "application/json" }, body: JSON.stringify(body), timeoutMillis })

const intruder = new Host({ id: "intruder", ip: "127.0.0.1", port: 9, idc: "", location: "", type: "normal", uploadBandwidth: 1, downloadBandwidth: 1, uploadSlots: 1 })

const registration = (url: string, metadataOnly: boolean) =>
  Schema.encodeSync(ScheduleRequest)(new RegisterPeer({
    peerId: `intruder-${randomBytes(4).toString("hex")}`,
    taskId: randomBytes(32).toString("hex"),
    url,
    host: intruder,
    contentLength: null,
    pieceLength: 4 * 1024 * 1024,
    finishedPieces: [],
    metadataOnly
  }))

const getBytes = (url: string) =>
  new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 60_000 }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }))
      res.on("error", reject)
    })
    req.on("timeout", () => req.destroy(new Error(`no answer from ${url}`)))
    req.on("error", reject)
  })

const run = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const p = damselfly("cli", args, undefined, { DAMSELFLY_JOBS_TOKEN: "", DAMSELFLY_TOKEN: "", ...env })
    void p.exited.then((code) => resolve({ code, stdout: p.stdout(), stderr: p.stderr() }))
  })

beforeAll(async () => {
  allowed = await startOrigin(await fs.mkdtemp(path.join(dir, "a-")), 6 * 1024 * 1024 + 77)
  denied = await startOrigin(await fs.mkdtemp(path.join(dir, "d-")), 1024 * 1024)
  seedDenied = await startOrigin(await fs.mkdtemp(path.join(dir, "s-")), 1024 * 1024)
  userChosen = await startOrigin(await fs.mkdtemp(path.join(dir, "u-")), 5 * 1024 * 1024 + 11)
  registry = await startRegistry(path.join(dir, "registry"))
  await pushImage(buildImage(dir, "app", [200_000, 5 * 1024 * 1024 + 3]), registry.host, "app", "v1")
  image = await getManifest(registry.host, "app", "v1")
  tokenServer = await startTokenServer(path.join(dir, "token"), CREDS)
  tokenRegistry = await startRegistry(path.join(dir, "registry-token"), undefined, tokenServer.auth)
  await pushImage(buildImage(dir, "bearer", [100_000]), tokenRegistry.host, "bearer/app", "v1", CREDS)
  scheduler = await startScheduler("scheduler", [
    "--token", TOKEN, "--jobs-token", JOBS, "--data", path.join(dir, "scheduler"),
    "--origin-allow", `http://${hostPort(allowed)}`, "--origin-allow", `http://${hostPort(seedDenied)}/blob`,
    "--origin-allow", `http://${registry.host},http://${tokenRegistry.host}`
  ])
  const list = ["--token", TOKEN, "--origin-allow", `http://${hostPort(allowed)}/`, "--origin-allow", `http://${registry.host}/v2/`]
  seed = await startDaemon("seed", { dir, seed: true, schedulers: scheduler.url, hostId: "seed-0", args: list })
  mirrorPort = await freePort()
  peer = await startDaemon("peer", {
    dir, schedulers: scheduler.url, hostId: "peer-0", args: [...list, "--mirror-port", String(mirrorPort), "--mirror-upstream", `http://${registry.host}`]
  })
  open = await startDaemon("open", { dir, schedulers: scheduler.url, hostId: "open-0", args: ["--token", TOKEN] })
  await waitFor("every host to announce itself", async () => (await getJson(`${scheduler.url}/healthy`)).body.hosts === 3)
}, 120_000)

afterAll(async () => {
  await killAll()
  await Promise.all([allowed, denied, seedDenied, userChosen].map((o) => o?.close()))
  await registry?.close()
  await tokenRegistry?.close()
  await tokenServer?.close()
  rmSync(dir, { recursive: true, force: true })
})

describe("--origin-allow", () => {
  it("a download of an allowed URL works (through the scheduler and the seed)", async () => {
    const out = path.join(dir, "allowed.bin")
    const r = await run(["get", allowed.url, "-O", out, "--daemon", peer.url, "--token", TOKEN, "--no-progress"])
    expect(r.code, r.stderr).toBe(0)
    expect(await sha256File(out)).toBe(allowed.sha256)
    expect(allowed.gets()).toBeGreaterThan(0)
    // The scheduler triggered the seed for it, and the seed's list let it fetch.
    await waitFor("the seed to hold the allowed content", async () => {
      const held = await rawRequest(seed.url, { path: `/v1/cache/tasks?url=${encodeURIComponent(allowed.url)}`, headers: auth })
      return held.status === 200 && JSON.stringify(held.json).includes('"complete":true')
    }, 30_000)
  }, 60_000)

  it("a download of a URL outside the daemon's list fails with the reason, and its origin hears nothing", async () => {
    const r = await run(["get", denied.url, "-O", path.join(dir, "denied.bin"), "--daemon", peer.url, "--token", TOKEN, "--no-progress"])
    expect(r.code).not.toBe(0)
    expect(r.stderr).toContain(`url: origin http://${hostPort(denied)} is not allowed by this daemon's --origin-allow`)
    const direct = await post(peer.url, "/v1/download", { url: denied.url, output: path.join(dir, "denied2.bin") }, auth)
    expect(direct.status).toBe(403)
    expect((direct.json as { error: string }).error).toMatch(/url: origin http:\/\/127\.0\.0\.1:\d+ is not allowed/)
    const object = await rawRequest(peer.url, { path: `/v1/object?url=${encodeURIComponent(denied.url)}`, headers: auth, timeoutMillis: 30_000 })
    expect(object.status).toBeGreaterThanOrEqual(400)
    expect(object.text).toContain("is not allowed by this daemon's --origin-allow")
    await fs.access(path.join(dir, "denied.bin")).then(() => expect.fail("denied.bin written"), () => undefined)
    expect(denied.requests()).toBe(0)
  }, 60_000)

  it("a registration straight to the scheduler (any token holder) for another origin: 403 naming url and origin, before any seed", async () => {
    for (const metadataOnly of [false, true]) {
      const r = await post(scheduler.url, "/v1/schedule", registration(denied.url, metadataOnly), auth)
      expect(r.status).toBe(403)
      expect((r.json as { error: string }).error).toBe(
        `url: origin http://${hostPort(denied)} is not allowed by this scheduler's --origin-allow (http://${hostPort(allowed)}, http://${hostPort(seedDenied)}/blob, ` +
          `http://${registry.host}, http://${tokenRegistry.host})`
      )
    }
    // A path outside the prefix is outside too, on an allowed host and port.
    const other = await post(scheduler.url, "/v1/schedule", registration(`http://${hostPort(seedDenied)}/admin`, false), auth)
    expect(other.status).toBe(403)
    await new Promise((r) => setTimeout(r, 1_500))
    expect(denied.requests()).toBe(0)
    expect(seedDenied.requests()).toBe(0)
    expect((await getJson(`${seed.url}/healthy`)).body.downloading).toBe(0)
  }, 60_000)

  it("a daemon without a list downloads what its user asks from the origin itself when the scheduler refuses; no seed fetches it", async () => {
    const out = path.join(dir, "user-chosen.bin")
    const r = await post(open.url, "/v1/download", { url: userChosen.url, output: out }, auth, 90_000)
    expect(r.status, r.text).toBe(200)
    const { taskId, bytesFromOrigin } = r.json as { taskId: string; bytesFromOrigin: number }
    expect(bytesFromOrigin).toBe(userChosen.size)
    expect(await sha256File(out)).toBe(userChosen.sha256)
    expect(userChosen.gets()).toBeGreaterThan(0)
    const onSeed = await rawRequest(seed.url, { path: `/v1/cache/tasks/${taskId}`, headers: auth })
    expect(onSeed.status, onSeed.text).toBe(404)
    const onOpen = await rawRequest(open.url, { path: `/v1/cache/tasks/${taskId}`, headers: auth })
    expect((onOpen.json as { complete: boolean }).complete).toBe(true)
  }, 90_000)

  it("the seed's own list: a URL the scheduler allows but the seed does not is refused by the seed (403), and fetched by nobody", async () => {
    const r = await post(scheduler.url, "/v1/schedule", registration(seedDenied.url, false), auth, 60_000)
    expect(r.status, r.text).toBe(200)
    await waitFor("the scheduler to log the seed's refusal", async () =>
      /seed refused: .*is not allowed by this daemon's --origin-allow/.test(scheduler.proc.stderr() + scheduler.proc.stdout()), 20_000)
    expect(seedDenied.requests()).toBe(0)
  }, 90_000)
})

describe("--verify-blob-access within the list", () => {
  it("the scheduler sends its access check only to allowed origins", async () => {
    const verifier = await startScheduler("verifier", ["--token", TOKEN, "--verify-blob-access", "--origin-allow", `http://${hostPort(allowed)}`])
    const announced = await post(verifier.url, "/v1/schedule", Schema.encodeSync(ScheduleRequest)(new AnnounceHost({ host: intruder })), auth)
    expect(announced.status, announced.text).toBe(200)
    const ask = (url: string) => post(verifier.url, "/v1/blob-access/capabilities", { taskId: "c".repeat(64), hostId: "intruder", url, authorization: "Basic eDp5" }, auth)
    const outside = await ask(denied.url)
    expect(outside.status).toBe(403)
    expect((outside.json as { error: string }).error).toContain(`url: origin http://${hostPort(denied)} is not allowed by this scheduler's --origin-allow`)
    expect(denied.requests()).toBe(0)
    const before = allowed.requests()
    const inside = await ask(allowed.url)
    expect(inside.status, inside.text).toBe(200)
    expect(allowed.requests()).toBe(before + 1)
    verifier.proc.child.kill("SIGTERM")
  }, 60_000)
})

describe("the jobs API", () => {
  const job = (url: string, type = "file") => ({ type: "preheat", args: { type, url } })

  it("needs the jobs token when the scheduler has one: missing or wrong → 403, with it → accepted", async () => {
    const missing = await post(scheduler.url, "/api/v1/jobs", job(allowed.url), auth)
    expect(missing.status).toBe(403)
    expect((missing.json as { error: string }).error).toMatch(/missing x-damselfly-jobs-token/)
    const wrong = await post(scheduler.url, "/api/v1/jobs", job(allowed.url), { ...auth, [JOBS_TOKEN_HEADER]: "guess" })
    expect(wrong.status).toBe(403)
    expect((wrong.json as { error: string }).error).toMatch(/wrong jobs token/)
    const list = await rawRequest(scheduler.url, { path: "/api/v1/jobs", headers: auth })
    expect(list.status).toBe(403)
    const ok = await post(scheduler.url, "/api/v1/jobs", job(allowed.url), { ...auth, [JOBS_TOKEN_HEADER]: JOBS })
    expect(ok.status, ok.text).toBe(201)
    const id = (ok.json as { id: string }).id
    const shown = await rawRequest(scheduler.url, { path: `/api/v1/jobs/${id}`, headers: auth })
    expect(shown.status).toBe(403)
    let last: any
    await waitFor("the job to finish", async () => {
      last = (await rawRequest(scheduler.url, { path: `/api/v1/jobs/${id}`, headers: { ...auth, [JOBS_TOKEN_HEADER]: JOBS } })).json
      return last.state === "SUCCESS" || last.state === "FAILURE"
    }, 60_000)
    expect(last.state, JSON.stringify(last)).toBe("SUCCESS")
  }, 90_000)

  it("a job for another origin (file or image) is refused before anything is fetched", async () => {
    const headers = { ...auth, [JOBS_TOKEN_HEADER]: JOBS }
    const file = await post(scheduler.url, "/api/v1/jobs", job(denied.url), headers)
    expect(file.status).toBe(403)
    expect((file.json as { error: string }).error).toMatch(new RegExp(`^args\\.url: origin http://${hostPort(denied).replace(/\./g, "\\.")} is not allowed by this scheduler's --origin-allow`))
    const image = await post(scheduler.url, "/api/v1/jobs", job(`${hostPort(denied)}/app:v1`, "image"), headers)
    expect(image.status).toBe(403)
    expect((image.json as { error: string }).error).toContain(`args.url: origin http://${hostPort(denied)} is not allowed`)
    expect(denied.requests()).toBe(0)
  })

  it("a job the scheduler allows but the seed's list does not: the seed refuses the signed request and fetches nothing", async () => {
    const headers = { ...auth, [JOBS_TOKEN_HEADER]: JOBS }
    const created = await post(scheduler.url, "/api/v1/jobs", job(seedDenied.url), headers)
    expect(created.status, created.text).toBe(201)
    let last: any
    await waitFor("the job to fail", async () => {
      last = (await rawRequest(scheduler.url, { path: `/api/v1/jobs/${(created.json as { id: string }).id}`, headers })).json
      return last.state === "SUCCESS" || last.state === "FAILURE"
    }, 90_000)
    expect(last.state).toBe("FAILURE")
    expect(last.error).toMatch(/HTTP 403: .*POST \/v1\/preheat: url: origin http:\/\/127\.0\.0\.1:\d+ is not allowed by this daemon's --origin-allow/)
    // The scheduler's own HEAD (its list allows it) is all that origin saw: no GET, no seed download.
    expect(seedDenied.gets()).toBe(0)
  }, 120_000)

  it("a registry on the lists: an image preheats and the mirror serves its blobs", async () => {
    const headers = { ...auth, [JOBS_TOKEN_HEADER]: JOBS }
    const created = await post(scheduler.url, "/api/v1/jobs", { type: "preheat", args: { type: "image", url: `${registry.host}/app:v1` } }, headers)
    expect(created.status, created.text).toBe(201)
    let last: any
    await waitFor("the image job to finish", async () => {
      last = (await rawRequest(scheduler.url, { path: `/api/v1/jobs/${(created.json as { id: string }).id}`, headers })).json
      return last.state === "SUCCESS" || last.state === "FAILURE"
    }, 60_000)
    expect(last.state, JSON.stringify(last)).toBe("SUCCESS")
    const layer = image.json.layers[1]
    const pulled = await getBytes(`http://127.0.0.1:${mirrorPort}/v2/app/blobs/${layer.digest}`)
    expect(pulled.status).toBe(200)
    expect(pulled.body.length).toBe(layer.size)
    expect(`sha256:${createHash("sha256").update(pulled.body).digest("hex")}`).toBe(layer.digest)
    // Through the daemon's download (P2P, from the seed that preheated it), not a pass-through to the registry.
    const held = await rawRequest(peer.url, { path: `/v1/cache/tasks/${layer.digest.slice(7)}`, headers: auth })
    expect(held.status, held.text).toBe(200)
    expect((held.json as { complete: boolean }).complete).toBe(true)
  }, 90_000)

  it("a registry on the list whose token service is not: the job fails naming it, and the token service hears nothing", async () => {
    const headers = { ...auth, [JOBS_TOKEN_HEADER]: JOBS }
    const issued = tokenServer.issued()
    const created = await post(scheduler.url, "/api/v1/jobs", { type: "preheat", args: { type: "image", url: `${tokenRegistry.host}/bearer/app:v1`, ...CREDS } }, headers)
    expect(created.status, created.text).toBe(201)
    let last: any
    await waitFor("the job to fail", async () => {
      last = (await rawRequest(scheduler.url, { path: `/api/v1/jobs/${(created.json as { id: string }).id}`, headers })).json
      return last.state === "SUCCESS" || last.state === "FAILURE"
    }, 60_000)
    expect(last.state).toBe("FAILURE")
    expect(last.error).toContain(`url: origin ${new URL(tokenServer.auth.realm).origin} is not allowed by this scheduler's --origin-allow`)
    expect(tokenServer.issued()).toBe(issued)
  }, 90_000)

  it("damselfly preheat sends --jobs-token; without it the scheduler's refusal is shown", async () => {
    const base = ["preheat", allowed.url, "--type", "file", "--scheduler", scheduler.url, "--token", TOKEN]
    const without = await run(base)
    expect(without.code).toBe(1)
    expect(without.stderr).toMatch(/HTTP 403: the jobs API needs the operator's jobs token: missing x-damselfly-jobs-token/)
    const withFlag = await run([...base, "--jobs-token", JOBS, "--wait"])
    expect(withFlag.code, withFlag.stderr).toBe(0)
    expect(withFlag.stderr).toMatch(/SUCCESS/)
    const fromEnv = await run(base, { DAMSELFLY_JOBS_TOKEN: JOBS })
    expect(fromEnv.code, fromEnv.stderr).toBe(0)
  }, 90_000)
})

// ---- a scheduler without a jobs token, seen from another host and from its own ----

const REPO = fileURLToPath(new URL("..", import.meta.url))
const topo = new Topology("dfo", `10.76.${20 + (process.pid % 200)}`)

const fromOtherHost = (url: string, body: unknown) =>
  new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = http.request(url, { method: "POST", agent: false, timeout: 30_000, headers: { ...auth, "content-type": "application/json" } }, (res) => {
      let text = ""
      res.on("data", (c) => (text += c))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }))
    })
    req.on("timeout", () => req.destroy(new Error(`no answer from ${url}`)))
    req.on("error", reject)
    req.end(JSON.stringify(body))
  })

const onSchedulerHost = (ns: string, url: string, body: unknown) =>
  new Promise<{ status: number; text: string }>((resolve, reject) => {
    execFile("ip", ["netns", "exec", ns, "curl", "-sS", "--max-time", "30", "-X", "POST", "-H", `authorization: Bearer ${TOKEN}`,
      "-H", "content-type: application/json", "--data", JSON.stringify(body), "-w", "\n%{http_code}", url], (err, stdout, stderr) => {
      if (err !== null) return reject(new Error(`curl ${url}: ${stderr || err.message}`))
      const cut = stdout.lastIndexOf("\n")
      resolve({ status: Number(stdout.slice(cut + 1)), text: stdout.slice(0, cut) })
    })
  })

describe("a scheduler without --jobs-token", () => {
  let log: string
  let ip: string
  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error("this part needs root (network namespaces); CI runs it as root")
    topo.create([{ name: "s", octet: 1, upMbit: undefined, downMbit: undefined }])
    ip = topo.node("s").ip
    log = path.join(dir, "ns-scheduler.log")
    topo.spawnIn("s", process.execPath, [BIN, "scheduler", "--listen", "0.0.0.0", "--port", "39811", "--token", TOKEN], { cwd: REPO, log })
    await waitFor("the namespaced scheduler", async () => {
      const r = await fromOtherHost(`http://${ip}:39811/healthy`, {}).catch(() => undefined)
      return r !== undefined && r.status < 500
    }, 60_000)
  }, 90_000)

  afterAll(async () => {
    await topo.stopAll()
    topo.destroySync()
  })

  it("refuses jobs from another host, takes them from its own, and warns at start that no allowlist is set", async () => {
    const body = { type: "preheat", args: { type: "file", url: "http://127.0.0.1:9/nothing" } }
    const other = await fromOtherHost(`http://${ip}:39811/api/v1/jobs`, body)
    expect(other.status).toBe(403)
    expect(JSON.parse(other.text).error).toMatch(/the jobs API is for callers on the scheduler's host .*not 10\.76\.\d+\.254.*no --jobs-token/)
    const local = await onSchedulerHost(topo.node("s").ns, "http://127.0.0.1:39811/api/v1/jobs", body)
    expect(local.status, local.text).toBe(201)
    const own = await onSchedulerHost(topo.node("s").ns, `http://${ip}:39811/api/v1/jobs`, body)
    expect(own.status, own.text).toBe(201)
    expect(await fs.readFile(log, "utf8")).toMatch(/no --origin-allow: any holder of the cluster token can make a seed fetch any URL/)
  }, 60_000)
})
