// The scheduler's requests to daemons (seed trigger, preheat) are signed with its key
// (runtime/scheduler-trigger.ts): the cluster token, which every node holds, no longer makes a daemon
// fetch a URL. Unit level: every way a claim can be wrong is refused, naming what. Real processes: a
// forged seed trigger or preheat with only the cluster token is refused and the origin sees nothing; a
// claim of the scheduler's key for another host, an expired one, or one over another body is refused;
// the scheduler's own triggers still seed and preheat; a daemon that cannot fetch its schedulers' keys
// refuses (fails closed) and says why.
import { createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto"
import { writeFileSync } from "node:fs"
import * as path from "node:path"
import fc from "fast-check"
import { beforeAll, describe, expect, it } from "vitest"
import { keyIdOf } from "../runtime/blob-access.ts"
import { signTrigger, TRIGGER_HEADER, TRIGGER_TTL_SECONDS, triggerClaims, type TriggerClaims, triggerProblem } from "../runtime/scheduler-trigger.ts"
import { taskIdFor } from "../runtime/testing/cluster.ts"
import { damselfly, freePort, type Origin, rawRequest, type Server, startDaemon, startScheduler, waitFor } from "../runtime/testing/harness.ts"
import { FUZZ } from "./fuzz-fixtures.ts"
import { useWorkspace } from "./fixtures/workspace.ts"

const TASK = "a".repeat(64)
const NOW = 1_800_000_000

const keyPair = () => {
  const { privateKey } = generateKeyPairSync("ed25519")
  const publicKey = createPublicKey(privateKey)
  return { privateKey, publicKey, kid: keyIdOf(publicKey) }
}

describe("triggerProblem", () => {
  const scheduler = keyPair()
  const keys = new Map<string, KeyObject>([[scheduler.kid, scheduler.publicKey]])
  const body = JSON.stringify({ taskId: TASK, url: "http://origin.example/file", pieceLength: 4, headers: {} })
  const expected = { route: "seed" as const, taskId: TASK, hostId: "seed-0", body }
  const signed = (c: Partial<TriggerClaims> = {}, key = scheduler.privateKey) =>
    signTrigger({ ...triggerClaims(scheduler.kid, "seed", TASK, "seed-0", body, NOW), ...c }, key)

  it("accepts the claim the scheduler signs for this route, task, host and body", () => {
    expect(triggerProblem(signed(), expected, keys, NOW)).toBeUndefined()
    expect(triggerProblem(signed(), expected, keys, NOW + TRIGGER_TTL_SECONDS - 1)).toBeUndefined()
    const status = signTrigger(triggerClaims(scheduler.kid, "preheat-status", TASK, "peer-0", undefined, NOW), scheduler.privateKey)
    expect(triggerProblem(status, { route: "preheat-status", taskId: TASK, hostId: "peer-0" }, keys, NOW)).toBeUndefined()
  })

  it("each scheduler key has its own key id (a daemon keeps every scheduler's key)", () => {
    const ids = new Set(Array.from({ length: 8 }, () => keyPair().kid))
    expect(ids.size).toBe(8)
  })

  it("refuses each wrong claim, naming what is wrong", () => {
    const other = keyPair()
    const cases: Array<[string | undefined, RegExp]> = [
      [undefined, /required/],
      ["", /required/],
      ["nodot", /malformed/],
      ["a.b.c", /malformed/],
      [`${Buffer.from("{\"v\":2}").toString("base64url")}.sig`, /malformed claims/],
      [signed({}, other.privateKey), /bad signature/],
      [signTrigger(triggerClaims(other.kid, "seed", TASK, "seed-0", body, NOW), other.privateKey), /unknown key/],
      [signed({ exp: NOW }), /expired/],
      [signed({ exp: NOW - 5 }), /expired 5 s ago/],
      [signed({ exp: NOW + 3600 }), /too far ahead/],
      [signed({ route: "preheat" }), /another route/],
      [signed({ task: "b".repeat(64) }), /another task/],
      [signed({ host: "peer-0" }), /another host/],
      [signed({ body: "0".repeat(64) }), /another request body/],
      [signTrigger(triggerClaims(scheduler.kid, "seed", TASK, "seed-0", undefined, NOW), scheduler.privateKey), /another request body/]
    ]
    for (const [token, why] of cases) {
      const problem = triggerProblem(token, expected, keys, NOW)
      expect(problem, String(token)).toMatch(why)
      expect(problem).toMatch(new RegExp(TRIGGER_HEADER))
    }
    // The body is bound byte for byte: another URL or piece length in the same task is another request.
    expect(triggerProblem(signed(), { ...expected, body: body.replace("file", "other") }, keys, NOW)).toMatch(/another request body/)
    expect(triggerProblem(signed(), { ...expected, body: body.replace("\"pieceLength\":4", "\"pieceLength\":8") }, keys, NOW)).toMatch(/another request body/)
  })

  it("any change to a signed claim's bytes is refused", () => {
    const token = signed()
    fc.assert(fc.property(fc.nat({ max: token.length - 1 }), fc.integer({ min: 1, max: 63 }), (at, delta) => {
      const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
      const c = alphabet[(alphabet.indexOf(token[at]) + delta) % alphabet.length]
      const tampered = token.slice(0, at) + c + token.slice(at + 1)
      // Base64url's last character may carry padding bits only: a change there can decode to the same bytes.
      const same = Buffer.from(tampered.split(".")[1] ?? "", "base64url").equals(Buffer.from(token.split(".")[1], "base64url")) &&
        tampered.split(".")[0] === token.split(".")[0]
      if (!same) expect(triggerProblem(tampered, expected, keys, NOW), tampered).toBeDefined()
    }), { ...FUZZ, numRuns: 300 })
  })
})

describe("scheduler-signed triggers between real processes", () => {
  const ws = useWorkspace("damselfly-trigger-")
  const TOKEN = "cluster-secret"
  const SIZE = 16 * 1024 * 1024
  const cluster = { authorization: `Bearer ${TOKEN}` }
  let key: ReturnType<typeof keyPair>
  let origin: Origin
  let scheduler: Server
  let seed: Server
  let peer: Server

  beforeAll(async () => {
    // The test holds the scheduler's key (--blob-access-key) to sign claims that are wrong in one respect only.
    key = keyPair()
    const keyFile = path.join(ws.dir, "scheduler-key.pem")
    writeFileSync(keyFile, key.privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 })
    origin = await ws.origin(SIZE)
    scheduler = await startScheduler("scheduler", ["--token", TOKEN, "--blob-access-key", keyFile])
    seed = await startDaemon("seed", { seed: true, dir: ws.dir, schedulers: scheduler.url, hostId: "seed-0", args: ["--token", TOKEN] })
    peer = await startDaemon("peer", { dir: ws.dir, schedulers: scheduler.url, hostId: "peer-0", args: ["--token", TOKEN] })
    await waitFor("both hosts announced", async () => JSON.parse((await rawRequest(scheduler.url, { path: "/healthy" })).text).hosts === 2)
  }, 120_000)

  const seedBody = (url: string) => JSON.stringify({ taskId: taskIdFor(url, 4 * 1024 * 1024), url, pieceLength: 4 * 1024 * 1024, headers: {} })
  const post = (to: Server, route: string, body: string, headers: Record<string, string> = {}) =>
    rawRequest(to.url, { method: "POST", path: route, body, headers: { ...cluster, "content-type": "application/json", ...headers } })
  const claim = (route: "seed" | "preheat" | "preheat-status", body: string | undefined, hostId: string, o: { exp?: number; signer?: ReturnType<typeof keyPair> } = {}) => {
    const signer = o.signer ?? key
    const taskId = body === undefined ? TASK : JSON.parse(body).taskId
    const c = triggerClaims(signer.kid, route, taskId, hostId, body, Math.floor(Date.now() / 1000))
    return signTrigger(o.exp === undefined ? c : { ...c, exp: o.exp }, signer.privateKey)
  }
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

  it("a forged seed trigger or preheat with only the cluster token: 403, and the origin sees no request", async () => {
    const body = seedBody(origin.url)
    const forged = await post(seed, "/v1/seed", body)
    expect(forged.status, forged.text).toBe(403)
    expect(forged.json.error).toMatch(/x-damselfly-trigger: required/)
    // Signed, but by a key of the attacker's own: none of the seed's schedulers serves it.
    const ownKey = await post(seed, "/v1/seed", body, { [TRIGGER_HEADER]: claim("seed", body, "seed-0", { signer: keyPair() }) })
    expect(ownKey.status).toBe(403)
    expect(ownKey.json.error).toMatch(/unknown key/)
    // A normal daemon refuses seed triggers outright; preheat (which may target any peer) needs the claim too.
    const notSeed = await post(peer, "/v1/seed", body, { [TRIGGER_HEADER]: claim("seed", body, "peer-0") })
    expect(notSeed.status).toBe(403)
    expect(notSeed.json.error).toMatch(/not a seed peer/)
    const preheat = JSON.stringify({ taskId: taskIdFor(origin.url, 4 * 1024 * 1024), url: origin.url, pieceLength: 4 * 1024 * 1024 })
    const forgedPreheat = await post(peer, "/v1/preheat", preheat)
    expect(forgedPreheat.status).toBe(403)
    expect(forgedPreheat.json.error).toMatch(/POST \/v1\/preheat: x-damselfly-trigger: required/)
    const status = await rawRequest(peer.url, { path: `/v1/preheat/${TASK}`, headers: cluster })
    expect(status.status).toBe(403)
    await pause(1_500)
    expect(origin.requests()).toBe(0)
  }, 60_000)

  it("claims of the scheduler's key for another host, expired or over another body: 403, origin untouched", async () => {
    const body = seedBody(origin.url)
    const otherHost = await post(seed, "/v1/seed", body, { [TRIGGER_HEADER]: claim("seed", body, "peer-0") })
    expect(otherHost.status).toBe(403)
    expect(otherHost.json.error).toMatch(/another host/)
    const expired = await post(seed, "/v1/seed", body, { [TRIGGER_HEADER]: claim("seed", body, "seed-0", { exp: Math.floor(Date.now() / 1000) - 1 }) })
    expect(expired.status).toBe(403)
    expect(expired.json.error).toMatch(/expired/)
    // A claim the scheduler made for one URL does not carry another (same task id in the body, another url).
    const elsewhere = JSON.stringify({ ...JSON.parse(body), url: `${origin.url}?elsewhere` })
    const swapped = await post(seed, "/v1/seed", elsewhere, { [TRIGGER_HEADER]: claim("seed", body, "seed-0") })
    expect(swapped.status).toBe(403)
    expect(swapped.json.error).toMatch(/another request body/)
    const route = await post(seed, "/v1/seed", body, { [TRIGGER_HEADER]: claim("preheat", body, "seed-0") })
    expect(route.status).toBe(403)
    expect(route.json.error).toMatch(/another route/)
    await pause(1_500)
    expect(origin.requests()).toBe(0)
  }, 60_000)

  it("the scheduler's own seed trigger still seeds, and its preheat still runs", async () => {
    const out = path.join(ws.dir, "got.bin")
    const get = damselfly("get", ["get", origin.url, "-O", out, "--daemon", peer.url, "--token", TOKEN, "--digest", `sha256:${origin.sha256}`])
    expect(await get.exited, get.stderr()).toBe(0)
    // The task the peer registered (the digest names it): the seed was triggered for it and holds all of it.
    const taskId = JSON.parse(get.stdout()).taskId
    expect(taskId).toBe(origin.sha256)
    await waitFor("the seed to hold the whole task", async () => {
      const r = await rawRequest(seed.url, { path: `/v1/tasks/${taskId}/availability?since=0`, headers: cluster, timeoutMillis: 2_000 }).catch(() => undefined)
      return r?.status === 200 && r.json.complete === true
    }, 30_000)
    expect(seed.proc.stdout() + seed.proc.stderr()).not.toMatch(/x-damselfly-trigger/)
    expect(scheduler.proc.stdout() + scheduler.proc.stderr()).toMatch(/seed triggered/)
    expect(scheduler.proc.stdout() + scheduler.proc.stderr()).not.toMatch(/seed refused/)
    // Preheat onto every peer: signed POST /v1/preheat and GET /v1/preheat/:taskId, to both hosts.
    const preheat = damselfly("preheat", ["preheat", origin.url, "--type", "file", "--scope", "all_peers", "--scheduler", scheduler.url, "--token", TOKEN, "--wait"])
    expect(await preheat.exited, preheat.stderr() + preheat.stdout()).toBe(0)
    expect(preheat.stdout()).toMatch(/SUCCESS/)
  }, 120_000)

  it("a valid claim of the scheduler's key is taken: the seed fetches the URL it names", async () => {
    const before = origin.requests()
    const url = `${origin.url}?signed-by-the-test`
    const body = seedBody(url)
    const taken = await post(seed, "/v1/seed", body, { [TRIGGER_HEADER]: claim("seed", body, "seed-0") })
    expect(taken.status, taken.text).toBe(202)
    await waitFor("the seed to ask the origin", async () => origin.requests() > before, 15_000)
  }, 60_000)

  it("a daemon that cannot fetch its schedulers' keys refuses (fails closed) and logs why", async () => {
    const lonely = await startDaemon("lonely-seed", { seed: true, dir: ws.dir, schedulers: `http://127.0.0.1:${await freePort()}`, hostId: "lonely", args: ["--token", TOKEN] })
    // An origin of its own: the other seed may still be retrying the URL the previous test made it fetch.
    const untouched = await ws.origin(1024, {}, "untouched")
    const body = seedBody(untouched.url)
    const refused = await post(lonely, "/v1/seed", body, { [TRIGGER_HEADER]: claim("seed", body, "lonely") })
    expect(refused.status).toBe(403)
    expect(refused.json.error).toMatch(/unknown key/)
    await waitFor("the log line", async () => /no scheduler's signing keys could be fetched/.test(lonely.proc.stdout() + lonely.proc.stderr()), 5_000)
    await pause(1_000)
    expect(untouched.requests()).toBe(0)
  }, 60_000)
})
