// Every protocol decoder, fed garbage and near-misses (fast-check, fixed seed; a failure prints the
// seed and the shrunk counterexample): decoding never throws, a bad message is refused with an error
// that names the wrong field, and every valid message survives an encode → JSON → decode round trip.
import { Exit, Schema } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { PeerReport, PeerToScheduler, PieceAvailability, ScheduleRequest, SchedulerToPeer } from "../core/protocol.ts"
import { DownloadBody, SeedRequestBody } from "../runtime/daemon.ts"
import { availability, downloadBody, FUZZ, mutated, peerReports, schedulerAnswers, scheduleRequests, seedBody, wrongValue } from "./fuzz-fixtures.ts"

const decoders: Array<[string, Schema.Top, ReadonlyArray<Record<string, unknown>>]> = [
  ["ScheduleRequest", ScheduleRequest, scheduleRequests],
  ["PeerReport", PeerReport, peerReports],
  ["PeerToScheduler", PeerToScheduler, [...scheduleRequests, ...peerReports]],
  ["SchedulerToPeer", SchedulerToPeer, schedulerAnswers],
  ["PieceAvailability", PieceAvailability, [availability]],
  ["SeedRequestBody (daemon /v1/seed)", SeedRequestBody, [seedBody]],
  ["DownloadBody (daemon /v1/download)", DownloadBody, [downloadBody]]
]

const decode = (schema: Schema.Top, input: unknown) => Schema.decodeUnknownExit(schema as any)(input)
const messageOf = (exit: Exit.Exit<unknown, unknown>) => Exit.isFailure(exit) ? String((exit.cause as any).reasons?.[0]?.error?.message ?? exit.cause) : ""

describe.each(decoders)("%s", (_name, schema, samples) => {
  it("accepts every valid sample, and each survives encode → JSON → decode", () => {
    for (const sample of samples) {
      const decoded = decode(schema, sample)
      expect(Exit.isSuccess(decoded), `${JSON.stringify(sample)}: ${messageOf(decoded)}`).toBe(true)
      const wire = JSON.parse(JSON.stringify(Schema.encodeSync(schema as any)((decoded as Exit.Success<unknown>).value)))
      const again = decode(schema, wire)
      expect(Exit.isSuccess(again)).toBe(true)
      expect(Schema.encodeSync(schema as any)((again as Exit.Success<unknown>).value)).toEqual(Schema.encodeSync(schema as any)((decoded as Exit.Success<unknown>).value))
    }
  })

  it("never throws on arbitrary input, and refuses non-objects", () => {
    fc.assert(fc.property(fc.oneof(fc.anything(), fc.jsonValue(), wrongValue), (input) => {
      const exit = decode(schema, input)
      if (typeof input !== "object" || input === null || Array.isArray(input)) expect(Exit.isFailure(exit)).toBe(true)
    }), { ...FUZZ, numRuns: 400 })
  })

  it("refuses a message with one wrong or missing field, naming that field", () => {
    let refused = 0
    fc.assert(fc.property(mutated(samples), ({ message, key }) => {
      const exit = decode(schema, message)
      if (Exit.isSuccess(exit)) return // this wrong value happens to be valid here (e.g. {} for headers)
      refused++
      expect(messageOf(exit)).toContain(key)
    }), { ...FUZZ, numRuns: 400 })
    // The generator is about wrong values: most must actually be wrong, or this test proves nothing.
    expect(refused).toBeGreaterThan(200)
  })
})
