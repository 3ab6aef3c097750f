// The daemons' scheduler channel over HTTP. A call whose connection is reset (the server closing a
// kept-alive socket as the request went out on it) is tried once more before the scheduler is marked
// down: with one scheduler, a mark means every report for the next 10 s is dropped. Per-piece reports
// from parents are gathered into one request per task for a moment; anything else goes at once, after them.
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { Effect } from "effect"
import { afterAll, afterEach, describe, expect, it } from "vitest"
import { DownloadFinished, PieceFinished } from "../core/protocol.ts"
import { makeRingSchedulerChannel, REPORT_BATCH_MILLIS } from "../runtime/http-scheduler-channel.ts"
import { getJson, killAll, startScheduler } from "../runtime/testing/harness.ts"

let server: Server | undefined
afterEach(() => new Promise<void>((resolve) => server === undefined ? resolve() : server.close(() => resolve())))
afterAll(() => killAll())

/** A scheduler whose first `resets` report requests have their connection destroyed unanswered. */
const flakyScheduler = async (resets: number) => {
  const seen = { reports: 0, answered: 0 }
  server = createServer((req, res) => {
    seen.reports++
    if (seen.reports <= resets) return req.socket.destroy()
    req.resume()
    req.on("end", () => {
      seen.answered++
      res.writeHead(204).end()
    })
  })
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

const report = new PieceFinished({ peerId: "p", taskId: "a".repeat(64), index: 0, parentId: null, digest: "b".repeat(64), length: 1, costMillis: 1 })

describe("scheduler channel over HTTP", () => {
  it("tries a reset call once more and keeps the scheduler in use", async () => {
    const { url, seen } = await flakyScheduler(1)
    const ring = await Effect.runPromise(makeRingSchedulerChannel([url]))
    await Effect.runPromise(ring.channel.report(report))
    expect(seen).toEqual({ reports: 2, answered: 1 })
    expect(ring.status()[0].downUntil).toBeNull()
  })

  it("marks the scheduler down when the second try is reset as well", async () => {
    const { url, seen } = await flakyScheduler(2)
    const ring = await Effect.runPromise(makeRingSchedulerChannel([url]))
    const failed = await Effect.runPromise(Effect.flip(ring.channel.report(report)))
    expect(failed._tag).toBe("SchedulerUnavailable")
    expect(seen).toEqual({ reports: 2, answered: 0 })
    expect(ring.status()[0].downUntil).not.toBeNull()
  })
})

/** A scheduler that answers every report (404 on the batch route when `batches` is false) and records each request. */
const recordingScheduler = async (batches = true) => {
  const requests: Array<{ path: string; tags: Array<string> }> = []
  server = createServer((req, res) => {
    let body = ""
    req.on("data", (c) => (body += c))
    req.on("end", () => {
      if (req.url === "/v1/reports" && !batches) return res.writeHead(404).end()
      const json = JSON.parse(body)
      const reports: Array<{ _tag: string; index?: number }> = req.url === "/v1/reports" ? json.reports : [json]
      requests.push({ path: req.url ?? "", tags: reports.map((r) => `${r._tag}${r.index === undefined ? "" : ` ${r.index}`}`) })
      res.writeHead(204).end()
    })
  })
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests }
}

const TASK = "c".repeat(64)
const fromParent = (index: number) => new PieceFinished({ peerId: "p", taskId: TASK, index, parentId: "q", digest: "d".repeat(64), length: 1, costMillis: 1 })
const fromOrigin = (index: number) => new PieceFinished({ peerId: "p", taskId: TASK, index, parentId: null, digest: "d".repeat(64), length: 1, costMillis: 1 })
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe("per-piece reports", () => {
  it("from parents go together once the batch time is up; an origin piece's report goes at once", async () => {
    const { url, requests } = await recordingScheduler()
    const ring = await Effect.runPromise(makeRingSchedulerChannel([url]))
    for (const i of [0, 1, 2]) await Effect.runPromise(ring.channel.report(fromParent(i)))
    await Effect.runPromise(ring.channel.report(fromOrigin(3)))
    // The origin piece's report flushed the three gathered before it, in order.
    expect(requests).toEqual([
      { path: "/v1/reports", tags: ["PieceFinished 0", "PieceFinished 1", "PieceFinished 2"] },
      { path: "/v1/report", tags: ["PieceFinished 3"] }
    ])
    for (const i of [4, 5]) await Effect.runPromise(ring.channel.report(fromParent(i)))
    expect(requests.length).toBe(2)
    await sleep(REPORT_BATCH_MILLIS + 300)
    expect(requests.slice(2)).toEqual([{ path: "/v1/reports", tags: ["PieceFinished 4", "PieceFinished 5"] }])
  })

  it("are sent before the download's end, and one at a time to a scheduler without the batch route", async () => {
    const { url, requests } = await recordingScheduler(false)
    const ring = await Effect.runPromise(makeRingSchedulerChannel([url]))
    for (const i of [0, 1]) await Effect.runPromise(ring.channel.report(fromParent(i)))
    await Effect.runPromise(ring.channel.report(new DownloadFinished({ peerId: "p", taskId: TASK, contentLength: 2 })))
    expect(requests).toEqual([
      { path: "/v1/report", tags: ["PieceFinished 0"] },
      { path: "/v1/report", tags: ["PieceFinished 1"] },
      { path: "/v1/report", tags: ["DownloadFinished"] }
    ])
  })

  it("are decoded and counted one by one by a real scheduler", async () => {
    const scheduler = await startScheduler("batch-scheduler")
    const ring = await Effect.runPromise(makeRingSchedulerChannel([scheduler.url]))
    for (const i of [0, 1, 2, 3]) await Effect.runPromise(ring.channel.report(fromParent(i)))
    await Effect.runPromise(ring.channel.report(new DownloadFinished({ peerId: "p", taskId: TASK, contentLength: 4 })))
    const metrics = String((await getJson(`${scheduler.url}/metrics`)).body)
    expect(metrics).toMatch(/damselfly_reports_total\{type="PieceFinished"[^}]*\} 4\b/)
    expect(metrics).toMatch(/damselfly_reports_total\{type="DownloadFinished"[^}]*\} 1\b/)
  }, 60_000)
})
