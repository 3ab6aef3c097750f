// `damselfly scheduler`: one core Scheduler behind HTTP. The server only decodes, delegates and
// encodes; every scheduling decision is core's.
import { randomUUID } from "node:crypto"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { PeerReport, PeerReportBatch, ScheduleRequest, SchedulerToPeer } from "../core/protocol.ts"
import { type Deployment, deployedConfig } from "../core/scheduler/config.ts"
import { Scheduler } from "../core/scheduler/scheduler.ts"
import { type StrategyName, strategies, strategyPieceLength } from "../core/strategies.ts"
import { SeedPeerTrigger } from "../core/services/seed-peer-trigger.ts"
import { JOBS_TOKEN_ENV, requireToken, resolveToken, sameSecret, SEED_TOKEN_ENV, SEED_TOKEN_HEADER } from "./auth.ts"
import { makeCapabilityIssuer, SEED_AUTHORIZATION_HEADER, seedCredentialsApply } from "./blob-access.ts"
import { httpSeedPeerTrigger } from "./http-seed-trigger.ts"
import { decodeBody, encoded, errorResponse, jsonResponse, orBadRequest, notFoundRoute } from "./http-json.ts"
import { listenLayer } from "./http-listen.ts"
import { serveRoutes } from "./http-serve.ts"
import { makeSchedulerMetrics, metricsRoute } from "./metrics.ts"
import { makeOriginAllowlist } from "./origin-allowlist.ts"
import { makePreheatJobs, preheatRoutes } from "./preheat.ts"
import { JobStore } from "./preheat-store.ts"

export interface SchedulerServerOptions {
  readonly port: number
  readonly listen: string
  /** Shared secret every request but /healthy must carry (falls back to DAMSELFLY_TOKEN). */
  readonly token?: string | undefined
  readonly maxConnections?: number | undefined
  /** Directory for state that outlives the process (preheat jobs); undefined keeps it in memory. */
  readonly data?: string | undefined
  /** PEM Ed25519 key that signs private-blob capabilities (default: generated, kept in `data`). */
  readonly blobAccessKey?: string | undefined
  readonly capabilityTtlSeconds?: number | undefined
  /** Repeat a daemon's authenticated HEAD before signing its capability (runtime/blob-access.ts). */
  readonly verifyBlobAccess?: boolean | undefined
  /** Which of core's strategies schedules (its config, evaluator and handout); default dragonfly. Daemons take the same name for its peer options. */
  readonly strategy?: StrategyName | undefined
  /** A secret only seed peers hold: a host announcing itself as a seed must carry it (default $DAMSELFLY_SEED_TOKEN). */
  readonly seedToken?: string | undefined
  /** The origin's IDC: strategies that seed near the origin (damselfly) trigger a seed host there. */
  readonly originIdc?: string | undefined
  /** `--origin-allow` (runtime/origin-allowlist.ts): registrations and preheat jobs for other origins are refused. Default: every origin. */
  readonly originAllow?: ReadonlyArray<string> | undefined
  /** The operator's secret for the jobs API (falls back to DAMSELFLY_JOBS_TOKEN); without one, only this host's callers. */
  readonly jobsToken?: string | undefined
}

const SCHEDULE_TAGS = ["AnnounceHost", "RegisterPeer", "RescheduleParents"]
const REPORT_TAGS = ["DownloadStarted", "BackToSourceStarted", "PieceFinished", "PieceFailed", "DownloadFinished", "DownloadFailed", "LeavePeer"]

/** A scheduler running one of core's strategies (the same configuration the simulator runs). */
export const schedulerFor = (strategy: StrategyName, epoch: string, deployment: Deployment = {}): Scheduler => {
  const s = strategies[strategy]
  return new Scheduler(deployedConfig(s.config, deployment), s.evaluator, epoch, s.handout)
}

/** The scheduler's Ed25519 key at work: private-blob capabilities and signed requests to daemons. */
export type SchedulerIssuer = ReturnType<typeof makeCapabilityIssuer>

export const schedulerRoutes = (
  scheduler: Scheduler,
  issuer: SchedulerIssuer,
  options: Pick<SchedulerServerOptions, "data" | "token" | "blobAccessKey" | "capabilityTtlSeconds" | "verifyBlobAccess" | "strategy" | "originIdc" | "seedToken" | "originAllow" | "jobsToken"> = {}
) =>
  Layer.unwrap(Effect.gen(function*() {
    const allow = makeOriginAllowlist(options.originAllow, "this scheduler")
    if (!allow.configured && options.token !== undefined) {
      yield* Effect.logWarning("no --origin-allow: any holder of the cluster token can make a seed fetch any URL (registering a task for it); list your registries and file servers")
    }
    // Defence in depth: a seed is never sent to a URL outside the list, whatever registered the task.
    const unguarded = yield* SeedPeerTrigger
    const trigger = !allow.configured ? unguarded : SeedPeerTrigger.of({
      trigger: (seed, request) => {
        const refused = allow.problem("url", request.url)
        return refused === undefined ? unguarded.trigger(seed, request) : Effect.logWarning(`seed not triggered: ${refused}`).pipe(Effect.annotateLogs({ taskId: request.taskId }))
      }
    })
    // Preheat jobs (runtime/preheat.ts): SQLite in the data directory, unfinished ones resumed now.
    const jobStore = yield* Effect.acquireRelease(Effect.sync(() => new JobStore(options.data)), (s) => Effect.sync(() => s.close()))
    // Preheated tasks are cut as the daemons of this strategy cut them (the same task ids and layouts).
    const pieceLengthFor = (contentLength: number) => strategyPieceLength(options.strategy ?? "dragonfly", contentLength)
    const jobs = yield* makePreheatJobs({ store: jobStore, hosts: () => scheduler.knownHosts(), token: options.token, issueCapability: issuer.issue, signTrigger: issuer.signTrigger, pieceLengthFor, originAllow: allow })
    const metrics = makeSchedulerMetrics(() => scheduler.knownHosts().length)
    // A registration for a private task may carry the origin credentials its seed needs
    // (runtime/blob-access.ts): they go into the seed request this registration triggers, if it triggers
    // one, and nowhere else (not kept, not logged). Only in a cluster with a token: without one, any host
    // could have announced itself as the seed.
    const seedTriggerFor = (message: ScheduleRequest) =>
      Effect.gen(function*() {
        if (message._tag !== "RegisterPeer" || message.metadataOnly) return trigger
        const authorization = (yield* HttpServerRequest.HttpServerRequest).headers[SEED_AUTHORIZATION_HEADER]
        if (authorization === undefined || authorization === "") return trigger
        if (options.token === undefined) {
          yield* Effect.logWarning(`${SEED_AUTHORIZATION_HEADER} ignored: this scheduler has no --token, so seeds are not authenticated`)
          return trigger
        }
        return SeedPeerTrigger.of({
          trigger: (seed, request) =>
            trigger.trigger(seed, seedCredentialsApply(request, message) ? { ...request, headers: { ...request.headers, authorization } } : request)
        })
      })
    // With a seed token, only its holders are taken as seeds: a seed is sent to the origin and may be
    // handed a daemon's origin credentials, so the cluster token alone must not make a host one — nor
    // change a host this scheduler knows as a seed (its id is public on /healthy: reusing it as a normal
    // host would leave the cluster without that seed).
    const seedProblem = (message: ScheduleRequest) =>
      Effect.gen(function*() {
        const seedToken = options.seedToken
        if (seedToken === undefined || message._tag === "RescheduleParents") return undefined
        const claimsSeed = message.host.type === "seed"
        if (!claimsSeed && scheduler.hostOf(message.host.id)?.type !== "seed") return undefined
        const given = (yield* HttpServerRequest.HttpServerRequest).headers[SEED_TOKEN_HEADER]
        if (given !== undefined && sameSecret(given, seedToken)) return undefined
        const why = given === undefined ? `missing ${SEED_TOKEN_HEADER}` : `wrong ${SEED_TOKEN_HEADER}`
        return claimsSeed
          ? `host.type: "seed" requires the seed token (${why})`
          : `host.id: ${JSON.stringify(message.host.id)} is a seed here; changing it requires the seed token (${why})`
      })
    const receive = (message: PeerReport) =>
      Effect.gen(function*() {
        // A parent that sent bytes not matching their digest is worth an operator's attention.
        if (message._tag === "PieceFailed" && !message.temporary) {
          yield* Effect.logWarning("piece failed").pipe(Effect.annotateLogs({
            peerId: message.peerId, taskId: message.taskId, index: message.index, parentId: message.parentId, reason: message.reason
          }))
        }
        yield* scheduler.report(message)
        metrics.report(message)
      })
    return HttpRouter.addAll([
      metricsRoute(metrics.registry),
      HttpRouter.route("GET", "/healthy", Effect.sync(() => jsonResponse({
        ok: true,
        epoch: scheduler.epoch,
        strategy: options.strategy ?? "dragonfly",
        originIdc: options.originIdc ?? null,
        hosts: scheduler.knownHosts().length,
        seeds: scheduler.knownHosts().filter((h) => h.type === "seed").map((h) => h.id)
      }))),
      // What this scheduler knows of one task (peers, states, parents): for operators and tests.
      HttpRouter.route("GET", "/v1/tasks/:taskId", Effect.gen(function*() {
        const { taskId } = yield* HttpRouter.params
        if (!/^[0-9a-f]{64}$/.test(taskId ?? "")) return errorResponse(400, `taskId: expected 64 lowercase hex characters, got ${JSON.stringify(taskId)}`)
        const snapshot = scheduler.snapshot(taskId!)
        return snapshot === undefined ? errorResponse(404, `task ${taskId} is not known here`) : jsonResponse(snapshot)
      })),
      HttpRouter.route("POST", "/v1/schedule", orBadRequest(Effect.gen(function*() {
        const message = yield* decodeBody(ScheduleRequest, SCHEDULE_TAGS)
        const refused = yield* seedProblem(message)
        if (refused !== undefined) return errorResponse(403, refused)
        // Before the task exists (its first registration's URL is what the seed fetches), metadata-only too.
        const outside = message._tag === "RegisterPeer" ? allow.problem("url", message.url) : undefined
        if (outside !== undefined) return errorResponse(403, outside)
        // A task named by its content digest is one task whatever the piece length, so a daemon cutting it
        // differently (another --strategy than the cluster's) would fetch pieces that are not its pieces.
        if (message._tag === "RegisterPeer") {
          const known = scheduler.pieceLengthOf(message.taskId)
          if (known !== undefined && known !== message.pieceLength) {
            yield* Effect.logWarning("a peer registered a task with another piece length than its other peers: give the scheduler and every daemon the same --strategy").pipe(
              Effect.annotateLogs({ taskId: message.taskId, peerId: message.peerId, host: message.host.id, pieceLength: message.pieceLength, taskPieceLength: known, strategy: options.strategy ?? "dragonfly" })
            )
          }
        }
        const answered = metrics.scheduleStarted(message._tag)
        const answer = yield* Effect.provideService(scheduler.request(message), SeedPeerTrigger, yield* seedTriggerFor(message))
        answered(answer._tag)
        if (message._tag === "RegisterPeer" && !message.metadataOnly && answer._tag !== "EmptyTask") metrics.registered(message.peerId)
        return encoded(SchedulerToPeer, answer)
      }))),
      HttpRouter.route("POST", "/v1/report", orBadRequest(Effect.gen(function*() {
        yield* receive(yield* decodeBody(PeerReport, REPORT_TAGS))
        return HttpServerResponse.empty({ status: 204 })
      }))),
      // A daemon's per-piece reports gathered into one request (runtime/http-scheduler-channel.ts), in order.
      HttpRouter.route("POST", "/v1/reports", orBadRequest(Effect.gen(function*() {
        const batch = yield* decodeBody(PeerReportBatch)
        for (const message of batch.reports) yield* receive(message)
        return HttpServerResponse.empty({ status: 204 })
      }))),
      ...preheatRoutes(jobs, options.jobsToken),
      ...issuer.routes,
      notFoundRoute
    ])
  }))

export const schedulerServer = (options: SchedulerServerOptions) => {
  const token = resolveToken(options.token)
  const seedToken = resolveToken(options.seedToken, SEED_TOKEN_ENV)
  const strategy = options.strategy ?? "dragonfly"
  return Layer.unwrap(Effect.sync(() => {
    const scheduler = schedulerFor(strategy, randomUUID(), { originIdc: options.originIdc })
    // One key (runtime/blob-access.ts: --blob-access-key, else kept in --data) signs private-blob
    // capabilities and every seed trigger and preheat request to daemons (runtime/scheduler-trigger.ts).
    const issuer = makeCapabilityIssuer({ keyFile: options.blobAccessKey, data: options.data, ttlSeconds: options.capabilityTtlSeconds, verifyAccess: options.verifyBlobAccess ?? false, hosts: () => scheduler.knownHosts(),
      originProblem: ((allow) => (url: string) => allow.problem("url", url))(makeOriginAllowlist(options.originAllow, "this scheduler")) })
    const jobsToken = resolveToken(options.jobsToken, JOBS_TOKEN_ENV)
    const routes = schedulerRoutes(scheduler, issuer, { ...options, token, seedToken, strategy, jobsToken })
    return serveRoutes(token === undefined ? routes : Layer.mergeAll(routes, requireToken(token))).pipe(
      Layer.provide(httpSeedPeerTrigger(token, issuer.signTrigger)),
      Layer.provide(listenLayer(options))
    )
  }))
}
