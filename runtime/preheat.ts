// Preheat jobs in the scheduler process (Dragonfly's manager job API without a manager):
// `POST /api/v1/jobs {type: "preheat", args}` resolves an image (manifest, multi-arch index by
// platform, registry auth) or a file to the blobs to fetch, picks the peers (seed peers, or every
// known daemon filtered by ips/count/percentage), asks each one to download each blob through its
// ordinary P2P download (`POST /v1/preheat` on the daemon) and follows them until every blob is held
// everywhere: `GET /api/v1/jobs/:id` reports PENDING → RUNNING → SUCCESS | FAILURE with per-layer
// progress. Jobs live in SQLite (preheat-store.ts): a restarted scheduler answers for finished jobs and
// runs the unfinished ones again (the daemons join downloads under way and answer at once for blobs
// they already hold).
// The API takes the operator's jobs token (or a caller on the scheduler's host: `jobsAccessProblem`), and
// with `--origin-allow` nothing a job names or fetches may leave the list (runtime/origin-allowlist.ts).
//
// Task ids: an image blob is the task named by its digest (core/task-id.ts with `digest`, i.e. the
// digest's hex) with pieces of the strategy's piece length for its size — the task a registry mirror pulling the same blob
// uses, whatever registry or mirror it came through. A file is the task `damselfly get URL` uses
// (URL and the strategy's piece length for its content length).
import { randomUUID } from "node:crypto"
import { Effect, Schema, type Scope } from "effect"
import { HttpRouter, HttpServerRequest, type HttpServerResponse } from "effect/http"
import type { Host } from "../core/domain.ts"
import { pieceLengthFor } from "../core/piece-layout.ts"
import { taskIdOf } from "../core/task-id.ts"
import { authHeaders } from "./auth.ts"
import { sourceOf } from "./blob-access.ts"
import { call } from "./http-call.ts"
import { badRequest, decodeBody, errorResponse, jsonResponse, orBadRequest } from "./http-json.ts"
import { NodeSha256 } from "./node-sha256.ts"
import { nodeRegistryFetch, nodeRegistryFetchRefusing, type RegistryFetch, RegistryFetchError } from "./oci-fetch.ts"
import { resolveImage } from "./oci-manifest.ts"
import { InvalidReference, manifestUrl, parseImageReference } from "./oci-reference.ts"
import { ALLOW_ALL, type OriginAllowlist } from "./origin-allowlist.ts"
import { connectionOf, isThisHost } from "./control-access.ts"
import { JOBS_TOKEN_HEADER, sameSecret } from "./auth.ts"
import { type JobRow, type JobState, JobStore } from "./preheat-store.ts"
import { TRIGGER_HEADER, type TriggerSigner } from "./scheduler-trigger.ts"

export const PREHEAT_SCOPES = ["single_seed_peer", "all_seed_peers", "all_peers"] as const
export type PreheatScope = typeof PREHEAT_SCOPES[number]

export const PreheatArgs = Schema.Struct({
  type: Schema.Literals(["image", "file"]),
  url: Schema.NonEmptyString,
  /** os/architecture[/variant] picked from a multi-arch index (default linux/amd64). */
  platform: Schema.optional(Schema.String.check(Schema.isPattern(/^[a-z0-9_.-]+\/[a-z0-9_.-]+(\/[a-z0-9_.-]+)?$/)).annotate({ description: "os/architecture[/variant], e.g. linux/amd64" })),
  headers: Schema.optional(Schema.Record(Schema.String, Schema.String)),
  username: Schema.optional(Schema.String),
  password: Schema.optional(Schema.String),
  scope: Schema.optional(Schema.Literals(PREHEAT_SCOPES)),
  /** Only hosts with these IPs. */
  ips: Schema.optional(Schema.Array(Schema.String)),
  /** all_peers: at most this many hosts. */
  count: Schema.optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))),
  /** all_peers: this share of the hosts (rounded up). */
  percentage: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 100 })))
})
export type PreheatArgs = typeof PreheatArgs.Type

export const JobRequest = Schema.Struct({
  type: Schema.Literal("preheat"),
  args: PreheatArgs
})

/** What a job keeps only while it runs (never shown by the API, erased when it ends). */
interface JobSecrets {
  readonly password?: string | undefined
  readonly headers?: Record<string, string> | undefined
}

export type UnitState = "PENDING" | "RUNNING" | "SUCCESS" | "FAILURE"

interface Target {
  readonly hostId: string
  readonly ip: string
  readonly port: number
  readonly type: string
}

interface PeerProgress extends Target {
  state: UnitState
  piecesHeld: number
  pieces: number | null
  error?: string
}

export interface LayerProgress {
  readonly url: string
  readonly digest: string | null
  readonly kind: "config" | "layer" | "file"
  readonly taskId: string
  readonly pieceLength: number
  readonly size: number
  state: UnitState
  bytesDone: number
  bytesTotal: number
  peers: Array<PeerProgress>
}

export interface JobResult {
  readonly reference?: string
  readonly manifestDigest?: string
  /** The blobs need credentials: peers got capabilities and serve them only to capability holders. */
  readonly private?: boolean
  readonly layers: ReadonlyArray<LayerProgress>
}

export interface PreheatOptions {
  readonly store: JobStore
  /** The piece length the daemons give content of this length: the strategy's rule (default Dragonfly's). */
  readonly pieceLengthFor?: ((contentLength: number) => number) | undefined
  /** The hosts this scheduler knows (announced daemons). */
  readonly hosts: () => ReadonlyArray<Host>
  readonly token?: string | undefined
  readonly fetch?: RegistryFetch
  readonly pollMillis?: number
  /** After a restart hosts re-announce within ~30 s: wait this long for a target before failing. */
  readonly hostWaitMillis?: number
  /** A peer whose download makes no progress this long fails its part of the job. */
  readonly stallMillis?: number
  /** Issues capabilities for private blobs (runtime/blob-access.ts): the job proved access itself. */
  readonly issueCapability?: (taskId: string, host: { id: string; ip: string }, source: string) => { token: string; taskId: string; expiresAt: number; source: string }
  /** Signs each request to a daemon (runtime/scheduler-trigger.ts): daemons refuse unsigned preheats. */
  readonly signTrigger: TriggerSigner
  /** `--origin-allow`: jobs for other origins are refused, and nothing the job fetches (manifests, token
   *  services, redirects, blobs) may leave it. Default: every origin. */
  readonly originAllow?: OriginAllowlist | undefined
}

class JobFailed extends Error {}

const publicArgs = (a: PreheatArgs) => {
  const { password: _p, headers, ...rest } = a
  return { ...rest, ...(headers === undefined ? {} : { headers: Object.fromEntries(Object.keys(headers).map((k) => [k, "<redacted>"])) }) }
}

const messageOf = (e: unknown) => e instanceof Error ? e.message : typeof e === "object" && e !== null && "message" in e ? String(e.message) : String(e)

/** The hosts a job downloads to, for one task (single_seed_peer picks the seed the scheduler would trigger for it). */
export const selectTargets = (args: Pick<PreheatArgs, "scope" | "ips" | "count" | "percentage">, hosts: ReadonlyArray<Host>, taskId: string): Array<Target> => {
  const scope = args.scope ?? "single_seed_peer"
  const byId = [...hosts].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  let chosen = scope === "all_peers" ? byId : byId.filter((h) => h.type === "seed")
  if (args.ips !== undefined) chosen = chosen.filter((h) => args.ips!.includes(h.ip))
  if (scope === "single_seed_peer") {
    chosen = chosen.length === 0 ? [] : [chosen[parseInt(taskId.slice(0, 8), 16) % chosen.length]]
  } else {
    if (args.percentage !== undefined) chosen = chosen.slice(0, Math.ceil((chosen.length * args.percentage) / 100))
    if (args.count !== undefined) chosen = chosen.slice(0, args.count)
  }
  return chosen.map((h) => ({ hostId: h.id, ip: h.ip, port: h.port, type: h.type }))
}

const DaemonStatus = Schema.Struct({
  state: Schema.Literals(["running", "succeeded", "failed", "unknown"]),
  error: Schema.optional(Schema.String),
  held: Schema.Number,
  pieces: Schema.NullOr(Schema.Number)
})

export const makePreheatJobs = (o: PreheatOptions) =>
  Effect.gen(function*() {
    const scope: Scope.Scope = yield* Effect.scope
    const allow = o.originAllow ?? ALLOW_ALL
    const refuse = (url: string) => allow.problem("url", url)
    // Every request a job makes, redirects included, stays within --origin-allow.
    const fetch: RegistryFetch = !allow.configured
      ? o.fetch ?? nodeRegistryFetch
      : o.fetch === undefined
      ? nodeRegistryFetchRefusing(refuse)
      : (request) => Effect.suspend(() => {
        const refused = refuse(request.url)
        return refused === undefined ? o.fetch!(request) : Effect.fail(new RegistryFetchError(`${request.method ?? "GET"} ${request.url}: ${refused}`))
      })
    const pollMillis = o.pollMillis ?? 500
    const hostWaitMillis = o.hostWaitMillis ?? 60_000
    const stallMillis = o.stallMillis ?? 300_000
    const daemonHeaders = authHeaders(o.token)

    /** The blobs of the job, each with the task id every peer will use for it. */
    const resolve = (args: PreheatArgs, secrets: JobSecrets) =>
      Effect.gen(function*() {
        const headers = secrets.headers ?? {}
        if (args.type === "image") {
          const ref = yield* Effect.try({ try: () => parseImageReference(args.url), catch: (e) => e as InvalidReference })
          const image = yield* resolveImage(fetch, ref, { username: args.username, password: secrets.password, headers, platform: args.platform })
          const downloadHeaders: Record<string, string> = image.authorization === undefined ? {} : { authorization: image.authorization }
          // Blob URLs are the registry's, but say so before any peer is asked to fetch one.
          for (const b of image.blobs) {
            const refused = allow.problem(`blob ${b.digest}`, b.url)
            if (refused !== undefined) return yield* Effect.fail(new JobFailed(refused))
          }
          return {
            reference: image.reference,
            manifestDigest: image.manifestDigest,
            headers: downloadHeaders,
            blobs: image.blobs.map((b) => ({ url: b.url, digest: b.digest as string | null, kind: b.kind as LayerProgress["kind"], size: b.size, pieceLength: (o.pieceLengthFor ?? pieceLengthFor)(b.size), taskId: b.digest.slice("sha256:".length) }))
          }
        }
        if (!/^https?:\/\/\S+$/.test(args.url)) return yield* Effect.fail(new JobFailed(`url: expected an http(s) URL for a file, got ${JSON.stringify(args.url)}`))
        const refused = allow.problem("url", args.url)
        if (refused !== undefined) return yield* Effect.fail(new JobFailed(refused))
        const basic: Record<string, string> = args.username === undefined ? {} : { authorization: `Basic ${Buffer.from(`${args.username}:${secrets.password ?? ""}`).toString("base64")}` }
        const downloadHeaders: Record<string, string> = { ...headers, ...basic }
        const head = yield* fetch({ method: "HEAD", url: args.url, headers: downloadHeaders })
        const size = Number(head.headers["content-length"])
        if (head.status !== 200 || !Number.isSafeInteger(size)) return yield* Effect.fail(new JobFailed(`url: HEAD ${args.url} answered HTTP ${head.status}${head.status === 200 ? " without a content length" : ""}`))
        const pieceLength = (o.pieceLengthFor ?? pieceLengthFor)(size)
        const taskId = yield* taskIdOf({ url: args.url, pieceLength }).pipe(Effect.provide(NodeSha256))
        return { reference: undefined, manifestDigest: undefined, headers: downloadHeaders, blobs: [{ url: args.url, digest: null, kind: "file" as const, size, pieceLength, taskId }] }
      })

    // Hosts re-announce within ~30 s of a scheduler start: only a young scheduler waits for them.
    const startedAt = Date.now()
    const waitForTargets = (args: PreheatArgs, taskId: string) =>
      Effect.gen(function*() {
        const deadline = startedAt + hostWaitMillis
        while (true) {
          const targets = selectTargets(args, o.hosts(), taskId)
          if (targets.length > 0) return targets
          if (Date.now() >= deadline) {
            return yield* Effect.fail(new JobFailed(`scope ${args.scope ?? "single_seed_peer"}: no ${args.scope === "all_peers" ? "host" : "seed peer"}${args.ips === undefined ? "" : ` with ip in ${args.ips.join(", ")}`} is known to this scheduler`))
          }
          yield* Effect.sleep(500)
        }
      })

    const daemonBase = (t: Target) => `http://${t.ip}:${t.port}`

    /** Asks one peer to download one blob; true when it accepted. */
    const start = (layer: LayerProgress, t: Target, headers: Record<string, string>, isPrivate: boolean) =>
      Effect.suspend(() => {
        const body = JSON.stringify({
          taskId: layer.taskId,
          url: layer.url,
          pieceLength: layer.pieceLength,
          headers,
          ...(layer.digest === null ? {} : { digest: layer.digest }),
          ...(isPrivate && o.issueCapability !== undefined ? { capability: o.issueCapability(layer.taskId, { id: t.hostId, ip: t.ip }, sourceOf(layer.url)) } : {})
        })
        return call(`${daemonBase(t)}/v1/preheat`, {
          method: "POST",
          headers: { ...daemonHeaders, "content-type": "application/json", [TRIGGER_HEADER]: o.signTrigger("preheat", layer.taskId, t.hostId, body) },
          body,
          timeoutMillis: 10_000
        })
      }).pipe(
        Effect.map((r) => r.status === 202 ? undefined : `HTTP ${r.status}: ${r.body.subarray(0, 300).toString("utf8")}`),
        Effect.catch((e) => Effect.succeed(e.message))
      )

    const status = (layer: LayerProgress, t: Target) =>
      Effect.suspend(() => call(`${daemonBase(t)}/v1/preheat/${layer.taskId}`, {
        timeoutMillis: 10_000,
        headers: { ...daemonHeaders, [TRIGGER_HEADER]: o.signTrigger("preheat-status", layer.taskId, t.hostId) }
      })).pipe(
        Effect.flatMap((r) => r.status !== 200
          ? Effect.fail(new JobFailed(`HTTP ${r.status}`))
          : Effect.try({ try: () => Schema.decodeUnknownSync(DaemonStatus)(JSON.parse(r.body.toString("utf8"))), catch: (e) => new JobFailed(messageOf(e)) })),
        Effect.result
      )

    const refresh = (layer: LayerProgress) => {
      const done = layer.peers.filter((p) => p.state === "SUCCESS").length
      const failed = layer.peers.filter((p) => p.state === "FAILURE").length
      layer.state = done === layer.peers.length ? "SUCCESS" : failed > 0 && done + failed === layer.peers.length ? "FAILURE" : layer.peers.some((p) => p.state !== "PENDING") ? "RUNNING" : "PENDING"
      layer.bytesTotal = layer.size * layer.peers.length
      layer.bytesDone = layer.peers.reduce((sum, p) => sum + (p.state === "SUCCESS" ? layer.size : Math.min(layer.size, p.piecesHeld * layer.pieceLength)), 0)
    }

    const run = (row: JobRow) =>
      Effect.gen(function*() {
        const args = Schema.decodeUnknownSync(PreheatArgs)({ ...(row.args as object), ...((row.secrets ?? {}) as object) })
        const secrets: JobSecrets = (row.secrets ?? {}) as JobSecrets
        const previous = row.result as JobResult | null
        let result: JobResult = { layers: previous?.layers ?? [] }
        o.store.update(row.id, "RUNNING", result)
        const resolved = yield* resolve(args, secrets)
        const layers: Array<LayerProgress> = []
        for (const blob of resolved.blobs) {
          // A resumed job goes back to the peers it chose before; a new one chooses now.
          const before = previous?.layers.find((l) => l.taskId === blob.taskId)?.peers
          const targets: Array<Target> = before !== undefined && before.length > 0
            ? before.map((p) => ({ hostId: p.hostId, ip: p.ip, port: p.port, type: p.type }))
            : yield* waitForTargets(args, blob.taskId)
          layers.push({ ...blob, state: "PENDING", bytesDone: 0, bytesTotal: 0, peers: targets.map((t) => ({ ...t, state: "PENDING", piecesHeld: 0, pieces: null })) })
        }
        // Blobs that need credentials are private: each chosen peer gets a capability with them, and
        // serves their pieces only to peers holding one (runtime/blob-access.ts).
        let isPrivate = false
        if (resolved.headers.authorization !== undefined && layers.length > 0) {
          const anonymous = yield* Effect.result(fetch({ method: "HEAD", url: layers[0].url }))
          isPrivate = anonymous._tag === "Failure" || anonymous.success.status < 200 || anonymous.success.status >= 300
        }
        result = { ...(resolved.reference === undefined ? {} : { reference: resolved.reference, manifestDigest: resolved.manifestDigest }), private: isPrivate, layers }
        layers.forEach(refresh)
        o.store.update(row.id, "RUNNING", result)
        yield* Effect.logInfo("preheat running").pipe(Effect.annotateLogs({ job: row.id, url: args.url, blobs: layers.length, peers: layers[0]?.peers.length ?? 0 }))

        const progressAt = new Map<PeerProgress, { held: number; at: number; startFailures: number }>()
        while (true) {
          const pending = layers.flatMap((layer) => layer.peers.filter((p) => p.state === "PENDING" || p.state === "RUNNING").map((p) => ({ layer, p })))
          if (pending.length === 0) break
          yield* Effect.forEach(pending, ({ layer, p }) =>
            Effect.gen(function*() {
              const seen = progressAt.get(p) ?? { held: -1, at: Date.now(), startFailures: 0 }
              progressAt.set(p, seen)
              if (p.state === "PENDING") {
                const refused = yield* start(layer, p, resolved.headers, isPrivate)
                if (refused === undefined) {
                  p.state = "RUNNING"
                  delete p.error
                } else {
                  p.error = refused
                  // A peer that cannot be reached for a while is given up; the others go on.
                  if (++seen.startFailures * pollMillis > Math.min(stallMillis, 30_000)) p.state = "FAILURE"
                }
                return
              }
              const s = yield* status(layer, p)
              if (s._tag === "Failure") {
                p.error = `status: ${s.failure.message}`
                if (Date.now() - seen.at > stallMillis) p.state = "FAILURE"
                return
              }
              const st = s.success
              p.piecesHeld = st.held
              p.pieces = st.pieces
              if (st.state === "succeeded") {
                p.state = "SUCCESS"
                delete p.error
              } else if (st.state === "failed") {
                p.state = "FAILURE"
                p.error = st.error ?? "download failed"
              } else if (st.state === "unknown") {
                p.state = "PENDING" // the daemon restarted and forgot: ask again
              } else if (st.held !== seen.held) {
                seen.held = st.held
                seen.at = Date.now()
              } else if (Date.now() - seen.at > stallMillis) {
                p.state = "FAILURE"
                p.error = `no progress for ${Math.round(stallMillis / 1000)} s`
              }
            }), { concurrency: 16, discard: true })
          layers.forEach(refresh)
          o.store.update(row.id, "RUNNING", result)
          if (layers.every((l) => l.state === "SUCCESS" || l.state === "FAILURE")) break
          yield* Effect.sleep(pollMillis)
        }
        const failures = layers.flatMap((l) => l.peers.filter((p) => p.state === "FAILURE").map((p) => `${l.digest ?? l.url} on ${p.hostId}: ${p.error ?? "failed"}`))
        if (failures.length === 0) {
          o.store.update(row.id, "SUCCESS", result)
          yield* Effect.logInfo("preheat succeeded").pipe(Effect.annotateLogs({ job: row.id }))
        } else {
          o.store.update(row.id, "FAILURE", result, `${failures.length} of ${layers.reduce((n, l) => n + l.peers.length, 0)} downloads failed: ${failures.slice(0, 3).join("; ")}`)
        }
      }).pipe(
        Effect.catch((e) => Effect.gen(function*() {
          const current = o.store.get(row.id)
          o.store.update(row.id, "FAILURE", current?.result ?? { layers: [] }, messageOf(e))
          yield* Effect.logWarning(`preheat failed: ${messageOf(e)}`).pipe(Effect.annotateLogs({ job: row.id }))
        })),
        Effect.catchDefect((d) => Effect.sync(() => o.store.update(row.id, "FAILURE", o.store.get(row.id)?.result ?? { layers: [] }, `internal error: ${messageOf(d)}`)))
      )

    const submit = (args: PreheatArgs) =>
      Effect.gen(function*() {
        const id = randomUUID()
        const secrets: JobSecrets = { ...(args.password === undefined ? {} : { password: args.password }), ...(args.headers === undefined ? {} : { headers: { ...args.headers } }) }
        const row = o.store.insert(id, "preheat", publicArgs(args), secrets)
        yield* run(row).pipe(Effect.forkIn(scope))
        return row
      })

    // Jobs the previous scheduler process left running: run them again.
    for (const row of o.store.unfinished()) {
      yield* Effect.logInfo("preheat resumed after restart").pipe(Effect.annotateLogs({ job: row.id }))
      yield* run(row).pipe(Effect.forkIn(scope))
    }
    /** Why a job for these args is refused at once (its URL's origin is not allowed), or undefined. */
    const refusal = (args: PreheatArgs): string | undefined => {
      if (args.type === "file") return allow.problem("args.url", args.url)
      const ref = parseImageReference(args.url)
      return allow.problem("args.url", manifestUrl(ref))
    }
    return { submit, refusal, get: (id: string) => o.store.get(id), list: (limit: number) => o.store.list(limit) }
  })

export type PreheatJobs = Effect.Success<ReturnType<typeof makePreheatJobs>>

export const jobView = (row: JobRow) => ({
  id: row.id,
  type: row.type,
  state: row.state as JobState,
  args: row.args,
  createdAt: row.createdAt,
  updatedAt: row.updatedAt,
  result: row.result ?? null,
  ...(row.error === null ? {} : { error: row.error })
})

const JOB_ID = /^[0-9a-f-]{36}$/

/**
 * Who may use the jobs API. A job makes the scheduler and the peers it picks fetch a URL, and every peer
 * holds the cluster token: so the operator's jobs token (`--jobs-token`, header x-damselfly-jobs-token),
 * or without one a caller on the scheduler's own host (as for a daemon's local control routes).
 */
export const jobsAccessProblem = (jobsToken: string | undefined) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const given = request.headers[JOBS_TOKEN_HEADER]
    if (jobsToken !== undefined) {
      if (given === undefined) return `the jobs API needs the operator's jobs token: missing ${JOBS_TOKEN_HEADER}`
      return sameSecret(given, jobsToken) ? undefined : `${JOBS_TOKEN_HEADER}: wrong jobs token`
    }
    const connection = connectionOf(request)
    if (isThisHost(connection)) return undefined
    return `the jobs API is for callers on the scheduler's host (a loopback address or its own address, not ${connection.remoteAddress ?? "an unknown address"}); this scheduler has no --jobs-token to open it to others`
  })

export const preheatRoutes = (jobs: PreheatJobs, jobsToken?: string | undefined) => {
  const gated = <E, R>(handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
    Effect.gen(function*() {
      const refused = yield* jobsAccessProblem(jobsToken)
      return refused === undefined ? yield* handler : errorResponse(403, refused)
    })
  return [
    HttpRouter.route("POST", "/api/v1/jobs", gated(orBadRequest(Effect.gen(function*() {
      const body = yield* decodeBody(JobRequest)
      if (body.args.type === "image") {
        yield* Effect.try({ try: () => parseImageReference(body.args.url), catch: (e) => e }).pipe(Effect.catch((e) => badRequest(`args.${messageOf(e)}`)))
      }
      // Refused before anything is fetched or stored: the job's URL must be within --origin-allow.
      const refused = jobs.refusal(body.args)
      if (refused !== undefined) return errorResponse(403, refused)
      const row = yield* jobs.submit(body.args)
      return jsonResponse({ id: row.id, type: row.type, state: row.state, createdAt: row.createdAt }, 201)
    })))),
    HttpRouter.route("GET", "/api/v1/jobs", gated(Effect.sync(() => jsonResponse(jobs.list(100).map(jobView))))),
    HttpRouter.route("GET", "/api/v1/jobs/:id", gated(Effect.gen(function*() {
      const id = (yield* HttpRouter.params).id ?? ""
      if (!JOB_ID.test(id)) return errorResponse(400, `id: expected a job id (a UUID), got ${JSON.stringify(id.slice(0, 100))}`)
      const row = jobs.get(id)
      return row === undefined ? errorResponse(404, `job ${id} not found`) : jsonResponse(jobView(row))
    })))
  ]
}
