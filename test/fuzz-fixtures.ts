// Valid wire messages of every kind, as plain JSON (what arrives on a socket), for fuzz tests to
// mutate: a fuzzed field is then the only thing wrong with the message.
import fc from "fast-check"

export const HEX = "a".repeat(64)
export const HEX2 = "b".repeat(64)

export const host = {
  id: "h1", ip: "127.0.0.1", port: 65001, idc: "", location: "", type: "normal",
  uploadBandwidth: 1_000_000, downloadBandwidth: 1_000_000, uploadSlots: 4
}
const task = { id: HEX, url: "http://o/x", contentLength: 10, pieceLength: 4, pieceDigests: [null, HEX2, null] }

export const scheduleRequests: Array<Record<string, unknown>> = [
  { _tag: "AnnounceHost", host },
  { _tag: "RegisterPeer", peerId: "h1/x", taskId: HEX, url: "http://o/x", host, contentLength: null, pieceLength: 4, finishedPieces: [0, 1], metadataOnly: false },
  { _tag: "RescheduleParents", peerId: "h1/x", taskId: HEX, blockedParents: ["p"], reason: "r" }
]

export const peerReports: Array<Record<string, unknown>> = [
  { _tag: "DownloadStarted", peerId: "h1/x", taskId: HEX },
  { _tag: "BackToSourceStarted", peerId: "h1/x", taskId: HEX, contentLength: 10 },
  { _tag: "PieceFinished", peerId: "h1/x", taskId: HEX, index: 0, parentId: null, digest: HEX2, length: 4, costMillis: 1.5 },
  { _tag: "PieceFailed", peerId: "h1/x", taskId: HEX, index: 0, parentId: "p", temporary: false, reason: "digest mismatch" },
  { _tag: "DownloadFinished", peerId: "h1/x", taskId: HEX, contentLength: 10 },
  { _tag: "DownloadFailed", peerId: "h1/x", taskId: HEX, reason: "r" },
  { _tag: "LeavePeer", peerId: "h1/x", taskId: HEX }
]

export const schedulerAnswers: Array<Record<string, unknown>> = [
  { _tag: "CandidateParents", task, parents: [{ peerId: "p", host }] },
  { _tag: "NeedBackToSource", taskId: HEX, reason: "r" },
  { _tag: "EmptyTask", taskId: HEX },
  { _tag: "MetadataOnly", task },
  { _tag: "ScheduleFailed", taskId: HEX, reason: "r" },
  { _tag: "HostAnnounced", epoch: "e" },
  { _tag: "NeedRegister", taskId: HEX }
]

export const availability = {
  _tag: "PieceAvailability", taskId: HEX, version: 2, contentLength: 10, pieceLength: 4,
  pieces: [{ index: 0, digest: HEX2 }], arriving: [1], complete: false
}

export const seedBody = { taskId: HEX, url: "http://127.0.0.1:1/x", pieceLength: 4, headers: { a: "b" } }
export const downloadBody = { url: "http://127.0.0.1:1/x", output: "/tmp/damselfly-fuzz-never", digest: `sha256:${HEX}`, pieceLength: 4, headers: {} }

/**
 * Values of the wrong kind for any field of these messages. Every field is a string, number, boolean,
 * array, object or null of a specific shape; each candidate is checked against the schema by the test,
 * so one that happens to be valid for a field is simply skipped.
 */
export const wrongValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(null, true, -1, 1.5, Number.MAX_SAFE_INTEGER + 2, "", "../../etc/passwd", "%2e%2e%2f", "/etc/passwd", [], [null], {}, { _tag: "x" }, "A".repeat(64), "g".repeat(64), "a".repeat(63)),
  fc.string({ maxLength: 80 }),
  fc.integer(),
  fc.double(),
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 4 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 })
)

/** One valid message with one field (never `_tag`) replaced by a wrong value. */
export const mutated = (samples: ReadonlyArray<Record<string, unknown>>) =>
  fc.constantFrom(...samples).chain((sample) => {
    const keys = Object.keys(sample).filter((k) => k !== "_tag")
    return fc.tuple(fc.constant(sample), fc.constantFrom(...keys), wrongValue, fc.boolean()).map(([s, key, value, drop]) => {
      const copy: Record<string, unknown> = { ...s }
      if (drop) delete copy[key]
      else copy[key] = value
      return { message: copy, key }
    })
  })

export const FUZZ = { seed: 42 } as const
