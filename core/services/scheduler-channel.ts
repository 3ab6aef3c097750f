// A peer's line to its scheduler. Requests wait for parents; reports are one-way.
import { Context, type Effect } from "effect"
import type { SchedulerUnavailable } from "../errors.ts"
import type { PeerReport, ScheduleRequest, SchedulerToPeer } from "../protocol.ts"

export class SchedulerChannel extends Context.Service<SchedulerChannel, {
  request(message: ScheduleRequest): Effect.Effect<SchedulerToPeer, SchedulerUnavailable>
  report(message: PeerReport): Effect.Effect<void, SchedulerUnavailable>
}>()("damselfly/core/SchedulerChannel") {}
