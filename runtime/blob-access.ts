// Private blobs: a peer serves pieces of a private blob only to peers that proved access upstream.
//
// Dragonfly serves any piece to anyone who knows the task id. Here, when a daemon fetches a blob with
// an Authorization header, it first HEADs the blob upstream without credentials: a 2xx means the blob
// is public and nothing changes. Otherwise it HEADs it with the caller's Authorization; when that
// succeeds it asks the scheduler for a capability — (task id, source, its peer id, its IP, expiry),
// signed with the scheduler's Ed25519 key — and marks the task private on its disk, noting the source:
// the URL it proved access at (scheme, host, port and path). The request carries the URL and the
// Authorization; with `--verify-blob-access` the scheduler does not take the daemon's word for it and repeats
// the authenticated HEAD itself (bounded in time and concurrency, one HEAD per source and credentials a
// minute), so holding the cluster token is not enough. A holder
// accepts a capability only for the very source it proved the task at, and the first source a host
// proved a task at stays its source, so a member cannot mint a capability with a server of its own that
// answers 200 for any digest, nor with a public path of the same server, nor rebind a holder's task to
// either. A daemon's upload server serves pieces (and availability) of a task it marked private only to
// requests carrying a capability for that task, source and requesting peer (`x-damselfly-capability`,
// `x-damselfly-peer`, from the IP the capability names), verified with the schedulers' public keys:
// daemons never hold the signing key. Capabilities handed over by preheat are verified the same way
// before they are adopted. Credentials go only to the daemon's own upstream and its configured schedulers
// (in the capability request); only the capability travels to parents.
//
// Seeding a private blob: the scheduler's seed peer needs the registry's credentials to fetch it. A
// daemon that proved access sends its `Authorization` with its registration for that task
// (`SEED_AUTHORIZATION_HEADER` on POST /v1/schedule), the scheduler hands it to the seed it triggers (in
// the SeedRequest's headers, never stored or logged), and the seed proves access itself before it
// fetches, so the task is private on the seed too and its pieces go only to capability holders. This
// happens only inside a cluster that authenticates its members (a `--token` on daemons and the
// scheduler): without one, any host could announce itself as a seed and be handed the credentials, so
// they are neither sent nor forwarded and the seed stays without (it then fails to fetch, as before).
//
// The seam for the registry mirror: `proveAccess({upstreamUrl, authorization, digest})` →
// "public" | Capability (AccessDenied when the authenticated HEAD fails); the daemon's piece transfer
// then sends the capability with every request for that task (`requestHeaders`).
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto"
import { existsSync, mkdirSync, promises as fs, readdirSync, readFileSync, writeFileSync } from "node:fs"
import * as path from "node:path"
import { Effect, Schema, Semaphore } from "effect"
import { HttpRouter, HttpServerRequest } from "effect/http"
import type { Host } from "../core/domain.ts"
import { peerIdOf, TaskId } from "../core/domain.ts"
import { authHeaders } from "./auth.ts"
import { call, postJson } from "./http-call.ts"
import { decodeBody, errorResponse, jsonResponse, orBadRequest } from "./http-json.ts"
import { nodeRegistryFetch, type RegistryFetch } from "./oci-fetch.ts"
import { openSignedToken, signClaims } from "./signed-token.ts"
import { signTrigger, TRIGGER_HEADER, triggerClaims, triggerProblem, type TriggerRoute, type TriggerSigner } from "./scheduler-trigger.ts"

export const CAPABILITY_HEADER = "x-damselfly-capability"
/** On a daemon's RegisterPeer for a private task it proved access to: the origin `Authorization` for the seed. */
export const SEED_AUTHORIZATION_HEADER = "x-damselfly-seed-authorization"

/**
 * Whether a registration's forwarded credentials may ride this seed request. The task id is the blob
 * digest, so one task can be known under several registries' URLs, and the seed fetches the URL of whoever
 * created the task record: credentials go only to a fetch of the very URL their holder registered, never
 * to another upstream.
 */
export const seedCredentialsApply = (
  request: { readonly taskId: string; readonly url: string },
  registration: { readonly taskId: string; readonly url: string }
): boolean => request.taskId === registration.taskId && request.url === registration.url
export const PEER_HEADER = "x-damselfly-peer"
export const DEFAULT_CAPABILITY_TTL_SECONDS = 3600

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url")

/** What a capability says; the token is base64url(JSON of this) "." base64url(Ed25519 signature). */
export const CapabilityClaims = Schema.Struct({
  v: Schema.Literal(1),
  /** Which scheduler key signed it. */
  kid: Schema.String,
  task: TaskId,
  /** The URL (scheme://host:port/path) where access was proven (`sourceOf`). */
  source: Schema.optionalKey(Schema.String),
  peer: Schema.String,
  /** The requesting host's IP as the scheduler knows it; "" when unknown. */
  ip: Schema.String,
  /** Expiry, seconds since the epoch. */
  exp: Schema.Number
})
export type CapabilityClaims = typeof CapabilityClaims.Type

export interface Capability {
  readonly token: string
  readonly taskId: string
  readonly expiresAt: number
  /** The source the capability is good for. */
  readonly source: string
}

/** What a private task is bound to: the URL it was proven at, without credentials or query string. */
export const sourceOf = (url: string): string => {
  const u = new URL(url)
  return `${u.origin}${u.pathname}`
}

/** Why `url` cannot be a source access is proven at, or undefined when it can. */
export const accessUrlProblem = (url: string): string | undefined => {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return `url: expected an absolute http(s) URL, got ${JSON.stringify(url.slice(0, 200))}`
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return `url: expected http or https, got ${parsed.protocol}`
  if (parsed.username !== "" || parsed.password !== "") return "url: expected no user:password@ in the URL (send credentials as authorization)"
  return undefined
}

export class AccessDenied extends Schema.TaggedError<AccessDenied>()("AccessDenied", {
  message: Schema.String
}) {}

/**
 * Key id: the first 16 characters of the base64url sha256 of the public key's SPKI DER. (Not of the DER
 * itself: its first 12 bytes are the same ASN.1 header for every Ed25519 key, so every scheduler had the
 * same id and a daemon kept only one scheduler's key.)
 */
export const keyIdOf = (publicKey: KeyObject) => b64url(createHash("sha256").update(publicKey.export({ type: "spki", format: "der" })).digest()).slice(0, 16)

export const signCapability = (claims: CapabilityClaims, privateKey: KeyObject): string => signClaims(claims, privateKey)

/** A token's claims, without checking them (call `capabilityProblem` first). */
const claimsOf = (token: string): CapabilityClaims =>
  Schema.decodeUnknownSync(CapabilityClaims)(JSON.parse(Buffer.from(token.split(".")[0] ?? "", "base64url").toString("utf8")))

/** Why a token does not grant `taskId` to `peerId` from `remoteIp`, or undefined when it does. */
export const capabilityProblem = (
  token: string | undefined,
  o: {
    taskId: string
    /** The source the holder proved the task at (undefined: not checked; "" recorded before sources were: refused). */
    source?: string | undefined
    peerId: string | undefined
    remoteIp: string | undefined
    keys: ReadonlyMap<string, KeyObject>
    nowSeconds: number
  }
): string | undefined => {
  if (token === undefined || token === "") return `task ${o.taskId} is private: a ${CAPABILITY_HEADER} header is required`
  const opened = openSignedToken(token, CAPABILITY_HEADER, CapabilityClaims, o.keys)
  if (opened.problem !== undefined) return opened.problem
  const { claims } = opened
  if (claims.exp <= o.nowSeconds) return `${CAPABILITY_HEADER}: expired`
  if (claims.task !== o.taskId) return `${CAPABILITY_HEADER}: issued for another task`
  if (o.source === "") return `task ${o.taskId} was made private here before capabilities named their source: it is shared again once this peer proves access anew`
  if (o.source !== undefined && claims.source !== o.source) {
    return `${CAPABILITY_HEADER}: issued for the task at another source (${JSON.stringify(claims.source ?? "")}, this peer holds it from ${JSON.stringify(o.source)})`
  }
  if (o.peerId === undefined || claims.peer !== o.peerId) return `${CAPABILITY_HEADER}: issued for another peer than ${PEER_HEADER} ${JSON.stringify(o.peerId ?? null)}`
  if (claims.ip !== "" && o.remoteIp !== undefined && claims.ip !== o.remoteIp) return `${CAPABILITY_HEADER}: issued for a peer at another address`
  return undefined
}

const normalIp = (ip: string | undefined) => ip?.replace(/^::ffff:/, "")

// ---------------------------------------------------------------- scheduler side

export interface IssuerOptions {
  /** A PEM Ed25519 private key shared by the schedulers (optional). */
  readonly keyFile?: string | undefined
  /** Where a generated key is kept across restarts (the scheduler's data directory). */
  readonly data?: string | undefined
  readonly ttlSeconds?: number | undefined
  readonly hosts: () => ReadonlyArray<Host>
  /**
   * Repeat a daemon's authenticated HEAD before signing (`--verify-blob-access`). Off by default for now: with
   * it, a loaded 2-core machine measured 13–14 registry GETs instead of 8 for 8 pullers of a private image (the
   * extra round trip before the seed registers sends early peers back to the source); not yet diagnosed.
   */
  readonly verifyAccess?: boolean | undefined
  /** How the scheduler repeats a daemon's authenticated HEAD (tests may pass another). */
  readonly fetch?: RegistryFetch
  /** Why the scheduler will not send that HEAD to `url` (its --origin-allow), or undefined. */
  readonly originProblem?: ((url: string) => string | undefined) | undefined
}

const loadOrCreateKey = (o: IssuerOptions): KeyObject => {
  if (o.keyFile !== undefined) return createPrivateKey(readFileSync(o.keyFile))
  const file = o.data === undefined ? undefined : path.join(o.data, "blob-access-ed25519.pem")
  if (file !== undefined && existsSync(file)) return createPrivateKey(readFileSync(file))
  const { privateKey } = generateKeyPairSync("ed25519")
  if (file !== undefined) {
    mkdirSync(path.dirname(file), { recursive: true })
    writeFileSync(file, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 })
  }
  return privateKey
}

export const CapabilityRequest = Schema.Struct({
  taskId: TaskId,
  hostId: Schema.NonEmptyString,
  /** The URL the daemon proved access at: the capability's source. */
  url: Schema.NonEmptyString,
  /** The Authorization that proved it; the scheduler repeats the HEAD with it and forgets it. */
  authorization: Schema.NonEmptyString
})

/** At most this many authenticated HEADs at once from a scheduler, each bounded in time. */
const ACCESS_CHECKS = 16
const ACCESS_CHECK_MILLIS = 15_000
/** A rollout asks for the same blob with the same credentials from every node: one HEAD serves them all for this long. */
const ACCESS_PROOF_MILLIS = 60_000
const ACCESS_PROOFS_KEPT = 10_000

export const makeCapabilityIssuer = (o: IssuerOptions) => {
  const privateKey = loadOrCreateKey(o)
  const publicKey = createPublicKey(privateKey)
  const kid = keyIdOf(publicKey)
  const ttl = o.ttlSeconds ?? DEFAULT_CAPABILITY_TTL_SECONDS
  const fetch = o.fetch ?? nodeRegistryFetch
  const checks = Semaphore.makeUnsafe(ACCESS_CHECKS)
  // (source, sha256 of the Authorization) → until when a 2xx HEAD proved it; checks under way are shared.
  const proven = new Map<string, number>()
  const underway = new Map<string, Promise<number>>()
  /** The HTTP status of an authenticated HEAD of `url` (0: unreachable or too slow), from a recent proof if any. */
  const headStatus = (url: string, authorization: string) =>
    Effect.promise(() => {
      const key = `${sourceOf(url)}\n${createHash("sha256").update(authorization).digest("hex")}`
      if ((proven.get(key) ?? 0) > Date.now()) return Promise.resolve(200)
      let check = underway.get(key)
      if (check === undefined) {
        check = Effect.runPromise(Effect.result(checks.withPermits(1)(
          fetch({ method: "HEAD", url, headers: { authorization } }).pipe(Effect.timeout(ACCESS_CHECK_MILLIS))
        ))).then((r) => {
          const status = r._tag === "Failure" ? 0 : r.success.status
          if (status >= 200 && status < 300) {
            if (proven.size >= ACCESS_PROOFS_KEPT) proven.clear()
            proven.set(key, Date.now() + ACCESS_PROOF_MILLIS)
          }
          return status
        }).finally(() => underway.delete(key))
        underway.set(key, check)
      }
      return check
    })
  /** Tasks some daemon proved private access to (for operators; holders enforce it). */
  const privateTasks = new Set<string>()
  /** Signs a capability; callers have proven access to `taskId` at `source` (a daemon's HEAD repeated, or preheat's own). */
  const issue = (taskId: string, host: Pick<Host, "id" | "ip">, source: string, nowSeconds = Math.floor(Date.now() / 1000)): Capability => {
    privateTasks.add(taskId)
    const claims: CapabilityClaims = { v: 1, kid, task: taskId, source, peer: peerIdOf(host.id, taskId), ip: host.ip, exp: nowSeconds + ttl }
    return { token: signCapability(claims, privateKey), taskId, expiresAt: claims.exp, source }
  }
  const routes = [
    HttpRouter.route("GET", "/v1/blob-access/keys", Effect.sync(() =>
      jsonResponse({ keys: [{ kid, spki: b64url(publicKey.export({ type: "spki", format: "der" })) }] }))),
    // A daemon that proved access upstream asks for its capability. The host must have announced itself:
    // the capability names the IP this scheduler knows for it.
    HttpRouter.route("POST", "/v1/blob-access/capabilities", orBadRequest(Effect.gen(function*() {
      const body = yield* decodeBody(CapabilityRequest)
      const malformed = accessUrlProblem(body.url)
      if (malformed !== undefined) return errorResponse(400, malformed)
      const host = o.hosts().find((h) => h.id === body.hostId)
      if (host === undefined) return errorResponse(409, `hostId: host ${body.hostId} has not announced itself to this scheduler`)
      // The HEAD goes where a member says: only within --origin-allow.
      const outside = o.verifyAccess === true ? o.originProblem?.(body.url) : undefined
      if (outside !== undefined) return errorResponse(403, outside)
      const status = o.verifyAccess === true ? yield* headStatus(body.url, body.authorization) : 200
      // Little detail back: this HEAD goes where a member says, so its answer must not map the network.
      if (status === 0) return errorResponse(502, "url: the scheduler could not check access there (unreachable or too slow)")
      if (status === 401 || status === 403) return errorResponse(403, `authorization: the scheduler's HEAD with it was refused (HTTP ${status})`)
      if (status < 200 || status >= 300) return errorResponse(502, "url: the scheduler's HEAD did not succeed there")
      return jsonResponse(issue(body.taskId, host, sourceOf(body.url)))
    }))),
    HttpRouter.route("GET", "/v1/blob-access/tasks/:taskId", Effect.gen(function*() {
      const taskId = (yield* HttpRouter.params).taskId ?? ""
      return jsonResponse({ taskId, private: privateTasks.has(taskId) })
    }))
  ]
  /** The same key signs the scheduler's requests to daemons (runtime/scheduler-trigger.ts). */
  const signer: TriggerSigner = (route, taskId, hostId, body) =>
    signTrigger(triggerClaims(kid, route, taskId, hostId, body, Math.floor(Date.now() / 1000)), privateKey)
  return { kid, publicKey, issue, signTrigger: signer, routes, isPrivate: (taskId: string) => privateTasks.has(taskId) }
}

// ---------------------------------------------------------------- daemon side

export interface BlobAccessOptions {
  readonly data: string
  readonly schedulers: ReadonlyArray<string>
  readonly token?: string | undefined
  readonly hostId: string
  readonly fetch?: RegistryFetch
}

const KeysReply = Schema.Struct({ keys: Schema.Array(Schema.Struct({ kid: Schema.String, spki: Schema.String })) })
const CapabilityReply = Schema.Struct({ token: Schema.String, taskId: TaskId, expiresAt: Schema.Number, source: Schema.String })

const DIGEST = /^sha256:([0-9a-f]{64})$/

export const makeBlobAccess = (o: BlobAccessOptions) => {
  const fetch = o.fetch ?? nodeRegistryFetch
  const dir = path.join(o.data, "blob-access", "private")
  mkdirSync(dir, { recursive: true })
  // Tasks marked private survive a restart: one file per task id holding the source access was proven at
  // (empty in files from before sources were recorded: no capability is accepted until proven anew).
  const privateTasks = new Map<string, string>(
    readdirSync(dir).filter((n) => /^[0-9a-f]{64}$/.test(n)).map((n) => [n, readFileSync(path.join(dir, n), "utf8").trim()])
  )
  const held = new Map<string, Capability>()
  /** The `Authorization` that proved access to each private task, kept in memory for the seed trigger only. */
  const proofs = new Map<string, string>()
  const keys = new Map<string, KeyObject>()
  let keysFetchedAt = 0
  const headers = authHeaders(o.token)

  /** The source this host proved `taskId` at first; undefined when it holds no proof (or only a legacy marker). */
  const recordedSource = (taskId: string) => {
    const source = privateTasks.get(taskId)
    return source === undefined || source === "" ? undefined : source
  }

  // The first source stays: proving the same digest at another URL later must not widen who may read it.
  const markPrivate = (taskId: string, source: string) =>
    Effect.promise(async () => {
      if (source === "" || recordedSource(taskId) !== undefined) return
      privateTasks.set(taskId, source)
      await fs.writeFile(path.join(dir, taskId), source)
    })

  // Every configured scheduler's keys (each has its own unless they share --blob-access-key). One fetch at
  // a time, which concurrent callers wait for (a burst of triggers right after start must not be refused
  // because the first one's fetch was still under way), and at most one every 2 s, however many unknown
  // key ids arrive: a caller within 2 s of the last fetch waits for the next one rather than being refused
  // (a scheduler that restarted with a new key just after a fetch would otherwise lose its seed trigger).
  let fetchingKeys: Promise<void> | undefined
  const refreshKeys = Effect.promise(() => {
    if (fetchingKeys !== undefined) return fetchingKeys
    const wait = Math.max(0, keysFetchedAt + 2_000 - Date.now())
    fetchingKeys = new Promise<void>((resolve) => setTimeout(resolve, wait))
      .then(() => {
        keysFetchedAt = Date.now()
        return Effect.runPromise(fetchKeys)
      })
      .catch(() => {})
      .finally(() => (fetchingKeys = undefined))
    return fetchingKeys
  })
  const fetchKeys = Effect.gen(function*() {
    for (const base of o.schedulers) {
      const reply = yield* Effect.result(call(`${base}/v1/blob-access/keys`, { timeoutMillis: 5_000, headers }))
      if (reply._tag === "Failure" || reply.success.status !== 200) continue
      const decoded = yield* Effect.result(Effect.try(() => Schema.decodeUnknownSync(KeysReply)(JSON.parse(reply.success.body.toString("utf8")))))
      if (decoded._tag === "Failure") continue
      for (const k of decoded.success.keys) keys.set(k.kid, createPublicKey({ key: Buffer.from(k.spki, "base64url"), format: "der", type: "spki" }))
    }
  })

  const requestCapability = (taskId: string, url: string, authorization: string) =>
    Effect.gen(function*() {
      const problems: Array<string> = []
      for (const base of o.schedulers) {
        const reply = yield* Effect.result(postJson(`${base}/v1/blob-access/capabilities`, { taskId, hostId: o.hostId, url, authorization }, ACCESS_CHECK_MILLIS + 5_000, headers))
        if (reply._tag === "Failure") {
          problems.push(reply.failure.message)
          continue
        }
        if (reply.success.status !== 200) {
          problems.push(`${base}: HTTP ${reply.success.status} ${reply.success.body.subarray(0, 200).toString("utf8")}`)
          continue
        }
        const cap = yield* Effect.try({
          try: () => Schema.decodeUnknownSync(CapabilityReply)(JSON.parse(reply.success.body.toString("utf8"))),
          catch: () => new AccessDenied({ message: `${base}: capability reply not understood` })
        })
        return cap as Capability
      }
      return yield* Effect.fail(new AccessDenied({ message: `no scheduler issued a capability: ${problems.join("; ")}` }))
    })

  /**
   * The registry mirror's seam: before fetching a blob for a client that sent `authorization`.
   * "public": the blob needs no credentials (nothing to enforce). A Capability: the blob is private,
   * this daemon proved access, and its piece requests for the task now carry the capability.
   */
  const proveAccess = (input: { readonly upstreamUrl: string; readonly authorization?: string | undefined; readonly digest: string }) =>
    Effect.gen(function*() {
      const m = DIGEST.exec(input.digest)
      if (m === null) return yield* Effect.fail(new AccessDenied({ message: `digest: expected sha256:<64 hex>, got ${JSON.stringify(input.digest)}` }))
      const taskId = m[1]
      const anonymous = yield* Effect.mapError(fetch({ method: "HEAD", url: input.upstreamUrl }), (e) => new AccessDenied({ message: e.message }))
      if (anonymous.status >= 200 && anonymous.status < 300) return "public" as const
      if (input.authorization === undefined) {
        return yield* Effect.fail(new AccessDenied({ message: `HEAD ${input.upstreamUrl}: HTTP ${anonymous.status} without credentials, and none were given` }))
      }
      const authed = yield* Effect.mapError(fetch({ method: "HEAD", url: input.upstreamUrl, headers: { authorization: input.authorization } }), (e) => new AccessDenied({ message: e.message }))
      if (authed.status < 200 || authed.status >= 300) {
        return yield* Effect.fail(new AccessDenied({ message: `HEAD ${input.upstreamUrl} with the given authorization: HTTP ${authed.status}` }))
      }
      const malformed = accessUrlProblem(input.upstreamUrl)
      if (malformed !== undefined) return yield* Effect.fail(new AccessDenied({ message: malformed }))
      const cap = yield* requestCapability(taskId, input.upstreamUrl, input.authorization)
      // Held from another source already: keep that proof and capability (the caller still gets the
      // blob: the content is the digest's, and this host may serve itself).
      const recorded = recordedSource(taskId)
      if (recorded === undefined || recorded === cap.source) {
        held.set(taskId, cap)
        proofs.set(taskId, input.authorization)
        yield* markPrivate(taskId, cap.source)
      }
      return cap
    })

  /**
   * Extra headers for this daemon's registration of `taskId` with its scheduler: the origin credentials
   * for the seed, only for a private task this daemon proved access to, and only in a cluster with a token.
   */
  const seedHeaders = (taskId: string): Record<string, string> => {
    const authorization = proofs.get(taskId)
    return authorization === undefined || o.token === undefined || !held.has(taskId) ? {} : { [SEED_AUTHORIZATION_HEADER]: authorization }
  }

  /**
   * A seed asked to fetch `taskId` with an origin `Authorization` (the requesting daemon's, through the
   * scheduler): prove access first, so the task is marked private here before a byte of it is stored and
   * this seed holds a capability. AccessDenied means: do not fetch. Without credentials nothing changes.
   */
  const admitSeed = (seed: { readonly taskId: string; readonly url: string; readonly headers: Readonly<Record<string, string>> }) => {
    const authorization = Object.entries(seed.headers).find(([k]) => k.toLowerCase() === "authorization")?.[1]
    return authorization === undefined
      ? Effect.void
      : Effect.asVoid(proveAccess({ upstreamUrl: seed.url, authorization, digest: `sha256:${seed.taskId}` }))
  }

  /** Headers for this daemon's own requests to parents: the capability for a private task it holds one for. */
  const requestHeaders = (taskId: string): Record<string, string> => {
    const cap = held.get(taskId)
    return cap === undefined ? {} : { [CAPABILITY_HEADER]: cap.token, [PEER_HEADER]: peerIdOf(o.hostId, taskId) }
  }

  /** The upload server's check: undefined when the request may have the task's pieces, else why not. */
  const checkRequest = (taskId: string) =>
    Effect.gen(function*() {
      if (!privateTasks.has(taskId)) return undefined
      const request = yield* HttpServerRequest.HttpServerRequest
      const token = request.headers[CAPABILITY_HEADER]
      const peerId = request.headers[PEER_HEADER]
      const remoteIp = normalIp(request.peerAddress._tag === "Some" ? request.peerAddress.value : undefined)
      const check = () => capabilityProblem(token, { taskId, source: privateTasks.get(taskId), peerId, remoteIp, keys, nowSeconds: Math.floor(Date.now() / 1000) })
      let problem = check()
      if (problem !== undefined && /unknown key/.test(problem)) {
        yield* refreshKeys
        problem = check()
      }
      return problem
    })

  /**
   * Preheat hands a capability the scheduler issued for this host (the scheduler proved access itself).
   * Anyone with the cluster token can call the preheat route, so the token is verified like a parent's
   * request (signature, task, this host's peer id, expiry) and the source comes from its signed claims.
   */
  const adopt = (cap: Pick<Capability, "token" | "taskId">) =>
    Effect.gen(function*() {
      const check = () => capabilityProblem(cap.token, { taskId: cap.taskId, peerId: peerIdOf(o.hostId, cap.taskId), remoteIp: undefined, keys, nowSeconds: Math.floor(Date.now() / 1000) })
      let problem = check()
      if (problem !== undefined && /unknown key/.test(problem)) {
        yield* refreshKeys
        problem = check()
      }
      if (problem !== undefined) return yield* Effect.fail(new AccessDenied({ message: `capability: ${problem}` }))
      // Verified just above: its claims are what the scheduler signed.
      const claims = claimsOf(cap.token)
      const source = claims.source ?? ""
      if (source === "") return yield* Effect.fail(new AccessDenied({ message: "capability: names no source" }))
      const recorded = recordedSource(cap.taskId)
      if (recorded !== undefined && recorded !== source) return yield* Effect.fail(new AccessDenied({ message: `capability: this host holds task ${cap.taskId} from another source` }))
      held.set(cap.taskId, { token: cap.token, taskId: cap.taskId, expiresAt: claims.exp, source })
      yield* markPrivate(cap.taskId, source)
    })

  /**
   * A scheduler's request to this daemon (seed, preheat), after its body was decoded: undefined when its
   * signed claim (runtime/scheduler-trigger.ts) verifies with a configured scheduler's key and names this
   * route, task, host and body, else why not. Fails closed: when no scheduler's keys can be fetched,
   * nothing verifies and the request is refused (logged).
   */
  const checkTrigger = (route: TriggerRoute, taskId: string) =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const token = request.headers[TRIGGER_HEADER]
      // The body was read (and size-checked) by decodeBody already: this is its cached text.
      const body = route === "preheat-status" ? undefined : yield* Effect.orElseSucceed(request.text, () => "")
      const check = () => triggerProblem(token, { route, taskId, hostId: o.hostId, body }, keys, Math.floor(Date.now() / 1000))
      let problem = check()
      if (problem !== undefined && /unknown key/.test(problem)) {
        yield* refreshKeys
        problem = check()
        if (problem !== undefined && keys.size === 0) {
          yield* Effect.logWarning(`refused a scheduler request (${route}): no scheduler's signing keys could be fetched from ${o.schedulers.join(", ")} (GET /v1/blob-access/keys), so none can be verified`)
        }
      }
      return problem
    })

  return { proveAccess, requestHeaders, seedHeaders, admitSeed, checkRequest, checkTrigger, markPrivate, adopt, isPrivate: (taskId: string) => privateTasks.has(taskId) }
}

export type BlobAccess = ReturnType<typeof makeBlobAccess>

/**
 * The registry mirror's `onAuthorizedBlob` hook (runtime/registry-mirror.ts on h-registry): a client's
 * blob request carried Authorization; prove access and hold the capability for the task. A failure here
 * only means the blob is fetched without P2P privileges (the mirror falls back to the upstream).
 */
export const authorizedBlobHook = (access: Pick<BlobAccess, "proveAccess">) =>
  (proof: { readonly digest: string; readonly url: string; readonly authorization: string }): Promise<void> =>
    Effect.runPromise(Effect.ignore(access.proveAccess({ upstreamUrl: proof.url, authorization: proof.authorization, digest: proof.digest })))
