// `damselfly scheduler`: one core Scheduler behind HTTP. The server only decodes, delegates and
// encodes; every scheduling decision is core's.
import { randomUUID } from "node:crypto"
import { createServer } from "node:http"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { PeerReport, ScheduleRequest, SchedulerToPeer } from "../core/protocol.ts"
import { defaultSchedulerConfig } from "../core/scheduler/config.ts"
import { dragonflyEvaluator } from "../core/scheduler/evaluator.ts"
import { Scheduler } from "../core/scheduler/scheduler.ts"
import { SeedPeerTrigger } from "../core/services/seed-peer-trigger.ts"
import { HttpSeedPeerTrigger } from "./http-seed-trigger.ts"
import { decodeBody, encoded, jsonResponse, orBadRequest } from "./http-json.ts"

export interface SchedulerServerOptions {
  readonly port: number
  readonly listen: string
}

const SCHEDULE_TAGS = ["AnnounceHost", "RegisterPeer", "RescheduleParents"]
const REPORT_TAGS = ["DownloadStarted", "BackToSourceStarted", "PieceFinished", "PieceFailed", "DownloadFinished", "DownloadFailed", "LeavePeer"]

export const schedulerRoutes = (scheduler: Scheduler) =>
  Layer.unwrap(Effect.gen(function*() {
    const trigger = yield* SeedPeerTrigger
    return HttpRouter.addAll([
      HttpRouter.route("GET", "/healthy", Effect.sync(() => jsonResponse({
        ok: true,
        epoch: scheduler.epoch,
        hosts: scheduler.knownHosts().length,
        seeds: scheduler.knownHosts().filter((h) => h.type === "seed").map((h) => h.id)
      }))),
      HttpRouter.route("POST", "/v1/schedule", orBadRequest(Effect.gen(function*() {
        const message = yield* decodeBody(ScheduleRequest, SCHEDULE_TAGS)
        const answer = yield* Effect.provideService(scheduler.request(message), SeedPeerTrigger, trigger)
        return encoded(SchedulerToPeer, answer)
      }))),
      HttpRouter.route("POST", "/v1/report", orBadRequest(Effect.gen(function*() {
        const message = yield* decodeBody(PeerReport, REPORT_TAGS)
        yield* scheduler.report(message)
        return HttpServerResponse.empty({ status: 204 })
      })))
    ])
  }))

export const schedulerServer = (options: SchedulerServerOptions) =>
  HttpRouter.serve(schedulerRoutes(new Scheduler(defaultSchedulerConfig, dragonflyEvaluator, randomUUID()))).pipe(
    Layer.provide(HttpSeedPeerTrigger),
    Layer.provide(NodeHttpServer.layer(createServer, { port: options.port, host: options.listen }))
  )
