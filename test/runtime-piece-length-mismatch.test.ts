// A task named by its content digest (a registry blob) is one task whatever the piece length, so the
// piece length comes from the strategy each process runs. A daemon run with another --strategy than its
// cluster cuts the task differently; the scheduler says so in its log, naming the peer and both lengths.
import { expect, it } from "vitest"
import { rawRequest, startScheduler, waitFor } from "../runtime/testing/harness.ts"
import { useWorkspace } from "./fixtures/workspace.ts"

useWorkspace("damselfly-piece-length-mismatch-")
const MiB = 1024 * 1024
const TASK = "7".repeat(64)

const register = (peerId: string, pieceLength: number) => JSON.stringify({
  _tag: "RegisterPeer", peerId, taskId: TASK, url: "http://registry.invalid/v2/x/blobs/sha256:7",
  host: { id: `host-${peerId}`, ip: "127.0.0.1", port: 9, idc: "", location: "", type: "normal", uploadBandwidth: 1e8, downloadBandwidth: 1e8, uploadSlots: 4 },
  contentLength: 64 * MiB, pieceLength, finishedPieces: [], metadataOnly: false
})

it("a registration with another piece length than the task's is logged with both lengths", async () => {
  const scheduler = await startScheduler("scheduler", ["--strategy", "damselfly"])
  const post = (body: string) => rawRequest(scheduler.url, { method: "POST", path: "/v1/schedule", body, headers: { "content-type": "application/json" } })
  expect((await post(register("first", 2 * MiB))).status).toBe(200)
  expect((await post(register("same", 2 * MiB))).status).toBe(200)
  expect(scheduler.proc.stdout() + scheduler.proc.stderr()).not.toContain("another piece length")
  expect((await post(register("other", 4 * MiB))).status).toBe(200)
  await waitFor("the warning", async () => /another piece length/.test(scheduler.proc.stdout() + scheduler.proc.stderr()), 10_000)
  const line = (scheduler.proc.stdout() + scheduler.proc.stderr()).split("\n").find((l) => l.includes("another piece length"))!
  expect(line).toContain('"peerId":"other"')
  expect(line).toContain(`"pieceLength":${4 * MiB}`)
  expect(line).toContain(`"taskPieceLength":${2 * MiB}`)
}, 120_000)
