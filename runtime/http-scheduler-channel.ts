// SchedulerChannel over HTTP. Anything that keeps us from a usable answer (refused, timeout, 5xx,
// an undecodable reply) is SchedulerUnavailable: core then goes back to the origin instead of failing.
import { Effect, Layer, Schema } from "effect"
import { SchedulerUnavailable } from "../core/errors.ts"
import { PeerReport, ScheduleRequest, SchedulerToPeer } from "../core/protocol.ts"
import { SchedulerChannel } from "../core/services/scheduler-channel.ts"
import { describe, postJson } from "./http-call.ts"

/** Scheduling rounds may wait for a seed to learn the length (10 s by default): leave room. */
const REQUEST_TIMEOUT_MILLIS = 60_000
const REPORT_TIMEOUT_MILLIS = 10_000

const encodeRequest = Schema.encodeSync(ScheduleRequest)
const encodeReport = Schema.encodeSync(PeerReport)
const decodeAnswer = Schema.decodeUnknownEffect(SchedulerToPeer)

export const makeHttpSchedulerChannel = (schedulerUrl: string) => {
  const base = schedulerUrl.replace(/\/+$/, "")
  const unavailable = (message: string) => new SchedulerUnavailable({ message: `scheduler ${base}: ${message}` })
  return SchedulerChannel.of({
    request: (message) =>
      postJson(`${base}/v1/schedule`, encodeRequest(message), REQUEST_TIMEOUT_MILLIS).pipe(
        Effect.mapError((e) => unavailable(e.message)),
        Effect.flatMap((reply) => {
          if (reply.status !== 200) return Effect.fail(unavailable(describe(reply)))
          return Effect.try({ try: () => JSON.parse(reply.body.toString("utf8")) as unknown, catch: () => unavailable("reply is not JSON") }).pipe(
            Effect.flatMap((json) => Effect.mapError(decodeAnswer(json), (e) => unavailable(`undecodable reply: ${e.message}`)))
          )
        })
      ),
    report: (message) =>
      postJson(`${base}/v1/report`, encodeReport(message), REPORT_TIMEOUT_MILLIS).pipe(
        Effect.mapError((e) => unavailable(e.message)),
        Effect.flatMap((reply) => reply.status < 300 ? Effect.void : Effect.fail(unavailable(describe(reply))))
      )
  })
}

export const HttpSchedulerChannel = (schedulerUrl: string) =>
  Layer.succeed(SchedulerChannel)(makeHttpSchedulerChannel(schedulerUrl))
