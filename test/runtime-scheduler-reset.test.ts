// A scheduler call whose connection is reset (the server closing a kept-alive socket as the request
// went out on it) is tried once more before the scheduler is marked down: with one scheduler, a mark
// means every report for the next 10 s is dropped.
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { Effect } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { PieceFinished } from "../core/protocol.ts"
import { makeRingSchedulerChannel } from "../runtime/http-scheduler-channel.ts"

let server: Server | undefined
afterEach(() => new Promise<void>((resolve) => server === undefined ? resolve() : server.close(() => resolve())))

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
