// The availability feed: all of a child's long-poll answers for one (parent, task) over ONE HTTP
// response, a line per change, instead of one request per answer. In a swarm the long-poll was 3.6 full
// HTTP exchanges per piece moved, on both sides (request, router, fiber, response, client, JSON, Schema).
//
// Parent (`availabilityLines`, served by runtime/upload-server.ts for `?since=N&stream=1`): NDJSON, each
// line the long-poll's answer (`PieceAvailability`, encoded) as a delta since the previous line's version,
// exactly `ledger.since(lastSent)`. The first line is the ledger's state at once (if its version does not
// exceed `since` it carries no pieces: a child needs it only for its timeout answer); then a line each
// time the version grows, wakes of one tick coalesced; a bare "\n" every 10 s (heartbeat); the response
// ends after a `complete` line or after a cap (120 s; the child reopens).
//
// Child (`makeAvailabilityFeeds`, used by runtime/http-piece-transfer.ts): one feed per (parent, task),
// opened by the first `availability(since)` and kept while asked; it keeps the pieces received since the
// version it opened at, so every later call is answered from memory, at once or on the next line, with
// the long-poll's semantics (PieceTransfer.availability in core/services/piece-transfer.ts). A parent
// from before the feed (a 200 that is not NDJSON) answered the call as a long-poll: that parent is then
// long-polled as before.
import * as http from "node:http"
import type { Socket } from "node:net"
import { Readable } from "node:stream"
import { Effect, Schema } from "effect"
import { TransferFailed } from "../core/errors.ts"
import type { PieceLedger } from "../core/piece-ledger.ts"
import { type PieceEntry, PieceAvailability, trusted } from "../core/protocol.ts"
import type { ParentAddress } from "../core/services/piece-transfer.ts"
import { statusFailure } from "./transfer-failure.ts"

export const NDJSON = "application/x-ndjson"
export const FEED_HEARTBEAT_MILLIS = 10_000
export const FEED_CAP_MILLIS = 120_000

const decodeAvailability = Schema.decodeUnknownSync(PieceAvailability)

export interface FeedLineOptions {
  readonly heartbeatMillis?: number | undefined
  readonly capMillis?: number | undefined
  /** Called per line written; `news`: it answers the child (the version grew, or the ledger is complete). */
  readonly onLine?: (news: boolean) => void
}

/**
 * The parent's side: `ledger`'s changes after `since` as NDJSON lines, a Node stream for the response
 * body (`HttpServerResponse.raw`: piped into Node's response, no fiber step per line). Destroyed when the
 * response closes (the child is gone): the ledger wait and the timers go with it. While the client reads
 * slowly the next line waits, and then carries every change since the last one.
 */
export const availabilityLines = (ledger: PieceLedger, since: number, options: FeedLineOptions = {}): Readable => {
  let sent = since
  let first = true
  let wanted = true
  let due = false
  let done = false
  let scheduled: NodeJS.Immediate | undefined
  let cancelWait: () => void = () => {}
  const cleanup = () => {
    done = true
    clearInterval(heartbeat)
    clearTimeout(cap)
    if (scheduled !== undefined) clearImmediate(scheduled)
    cancelWait()
  }
  const flush = () => {
    scheduled = undefined
    if (done) return
    if (!wanted) return void (due = true)
    due = false
    const a = ledger.since(sent)
    const news = a.version > sent || a.complete
    if (!first && !news) return void (cancelWait = ledger.whenChanged(sent, wake))
    first = false
    sent = Math.max(sent, a.version)
    // `ledger.since` builds the message from the ledger's own state (`trusted`): its JSON is the encoded
    // form already (plain numbers, strings and arrays, `_tag` first), without a Schema pass per line and child.
    wanted = stream.push(JSON.stringify(a) + "\n")
    options.onLine?.(news)
    if (a.complete) {
      cleanup()
      return void stream.push(null)
    }
    cancelWait = ledger.whenChanged(sent, wake)
  }
  // Pieces landing in the same tick go out as one line.
  const wake = () => {
    if (scheduled === undefined && !done) scheduled = setImmediate(flush)
  }
  const stream = new Readable({
    read() {
      wanted = true
      if (due) flush()
    },
    destroy(error, callback) {
      cleanup()
      callback(error)
    }
  })
  const heartbeat = setInterval(() => {
    if (!done && wanted) wanted = stream.push("\n")
  }, options.heartbeatMillis ?? FEED_HEARTBEAT_MILLIS).unref()
  const cap = setTimeout(() => {
    if (done) return
    cleanup()
    stream.push(null)
  }, options.capMillis ?? FEED_CAP_MILLIS).unref()
  flush()
  return stream
}

export interface AvailabilityFeedOptions {
  /** The plain long-poll, for parents from before the feed. */
  readonly longPoll: (parent: ParentAddress, taskId: string, since: number) => Effect.Effect<PieceAvailability, TransferFailed>
  /** A call with no change this long answers the current state, as the long-poll's time limit did. */
  readonly answerMillis?: number
  /** No byte (not even a heartbeat) this long: the parent is taken as hung. */
  readonly silenceMillis?: number
  /** A feed no call has waited on for this long is closed (the core stopped watching the parent). */
  readonly idleMillis?: number
}

interface Waiter {
  readonly since: number
  feed: Feed
  timer: NodeJS.Timeout | undefined
  readonly answer: (a: PieceAvailability) => void
  readonly fail: (e: TransferFailed) => void
}

type FeedState = "open" | "complete" | "closed"

/** One stream from one parent for one task, and what it has said since `base`. */
class Feed {
  state: FeedState = "open"
  /** The parent's arrival log from `base` on: entries[k] is the piece that made version base + k + 1. */
  readonly entries: Array<PieceEntry> = []
  /** The last line; its version may lag `base` only while it says the parent has fewer pieces than asked. */
  latest: PieceAvailability | undefined
  /** The known log's length before the last line: a call from there is answered by that line itself. */
  lineFrom = -1
  readonly waiters = new Set<Waiter>()
  socket: Socket | undefined
  request: http.ClientRequest | undefined
  readonly idle: NodeJS.Timeout
  private text = ""

  constructor(
    readonly feeds: AvailabilityFeeds,
    readonly key: string,
    readonly parent: ParentAddress,
    readonly taskId: string,
    readonly base: number,
    /** The last call's (a capability may have come since): a reopened stream sends these. */
    public headers: Readonly<Record<string, string>>
  ) {
    this.idle = setTimeout(() => this.idleCheck(), feeds.idleMillis).unref()
  }

  get known(): number {
    return this.base + this.entries.length
  }

  private what(): string {
    return `availability from ${this.parent.peerId}`
  }

  open(): void {
    let req: http.ClientRequest
    try {
      req = http.request({
        host: this.parent.host.ip,
        port: this.parent.host.port,
        path: `/v1/tasks/${this.taskId}/availability?since=${this.base}&stream=1`,
        headers: this.headers,
        // Its own socket: a long-lived response must not hold one of the piece client's.
        agent: false
      })
    } catch (e) {
      // Refused before any socket (e.g. a header Node will not send): a failure, never a defect that
      // would leave the core's watch unanswered; on the next turn, once the caller's wait is attached.
      const failure = new TransferFailed({ message: `${this.what()}: ${e instanceof Error ? e.message : String(e)}`, temporary: false })
      setImmediate(() => this.fail(failure))
      return
    }
    this.request = req
    req.setTimeout(this.feeds.silenceMillis, () =>
      this.fail(new TransferFailed({ message: `${this.what()}: timed out (no data for ${this.feeds.silenceMillis} ms)`, temporary: true })))
    req.on("socket", (socket) => {
      this.socket = socket
      if (this.waiters.size === 0) socket.unref()
    })
    req.on("error", (e: NodeJS.ErrnoException) =>
      this.fail(new TransferFailed({ message: `${this.what()}: ${e.code ?? e.message}`, temporary: false })))
    req.on("response", (res) => this.response(res))
    req.end()
  }

  private response(res: http.IncomingMessage): void {
    if (this.state === "closed") return void res.destroy()
    res.setEncoding("utf8")
    const status = res.statusCode ?? 0
    const type = String(res.headers["content-type"] ?? "").split(";")[0].trim().toLowerCase()
    if (status !== 200 || type !== NDJSON) {
      // An error's text, or an older parent's one long-poll answer: read whole (small), then judged.
      let body = ""
      res.on("data", (chunk: string) => {
        if (body.length < 1024 * 1024) body += chunk
      })
      res.on("end", () => status === 200 ? this.answeredOnce(body) : this.fail(statusFailure(status, `${this.what()}: HTTP ${status}${body.length > 0 ? `: ${body.slice(0, 300)}` : ""}`)))
      res.on("close", () => !res.complete && this.fail(new TransferFailed({ message: `${this.what()}: connection closed mid-body`, temporary: false })))
      return
    }
    res.on("data", (chunk: string) => this.received(chunk))
    res.on("end", () => this.ended())
    res.on("close", () => !res.complete && this.fail(new TransferFailed({ message: `${this.what()}: connection closed mid-stream`, temporary: false })))
  }

  private received(chunk: string): void {
    this.text += chunk
    let at = 0
    for (let nl = this.text.indexOf("\n"); nl >= 0 && this.state !== "closed"; nl = this.text.indexOf("\n", at)) {
      const line = this.text.slice(at, nl)
      at = nl + 1
      if (line.length > 0) this.line(line)
    }
    this.text = this.text.slice(at)
  }

  private decode(text: string): PieceAvailability | undefined {
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      return void this.fail(new TransferFailed({ message: `${this.what()}: not JSON`, temporary: false }))
    }
    try {
      return decodeAvailability(json)
    } catch (e) {
      return void this.fail(new TransferFailed({ message: `${this.what()}: ${(e as Error).message}`, temporary: false }))
    }
  }

  private line(text: string): void {
    const a = this.decode(text)
    if (a === undefined) return
    const known = this.known
    if (a.version > known) {
      if (a.pieces.length !== a.version - known) {
        return this.fail(new TransferFailed({ message: `${this.what()}: a line of version ${a.version} carries ${a.pieces.length} pieces after version ${known}`, temporary: false }))
      }
      for (const p of a.pieces) this.entries.push(p)
    } else if (a.pieces.length > 0) {
      return this.fail(new TransferFailed({ message: `${this.what()}: a line of version ${a.version} carries pieces, version ${known} was known`, temporary: false }))
    }
    this.lineFrom = known
    this.latest = a
    if (a.complete) this.state = "complete"
    for (const w of this.waiters) {
      const answer = this.answerFor(w.since)
      if (answer !== undefined) this.settle(w).answer(answer)
    }
  }

  /** The long-poll's answer from `since` (at least `base`), once the parent's version exceeds it or it is complete. */
  answerFor(since: number): PieceAvailability | undefined {
    const a = this.latest
    if (a === undefined || !(a.version > since || a.complete)) return undefined
    return this.stateAt(since)
  }

  /** What the parent said last, as a delta from `since`. */
  stateAt(since: number): PieceAvailability {
    const a = this.latest!
    if (since === this.lineFrom) return a
    return trusted(PieceAvailability, {
      taskId: a.taskId,
      version: a.version,
      contentLength: a.contentLength,
      pieceLength: a.pieceLength,
      pieces: since >= a.version ? [] : this.entries.slice(since - this.base),
      arriving: a.arriving,
      complete: a.complete
    })
  }

  /** Whether a call from `since` can be served here (else the feed is reopened from `since`). */
  serves(since: number): boolean {
    return this.state !== "closed" && since >= this.base
  }

  add(w: Waiter): void {
    w.feed = this
    this.waiters.add(w)
    this.socket?.ref()
    w.timer ??= setTimeout(() => this.timedOut(w), this.feeds.answerMillis)
  }

  /** Takes `w` off this feed (answered, failed, moved or interrupted). */
  settle(w: Waiter): Waiter {
    if (w.timer !== undefined) clearTimeout(w.timer)
    w.timer = undefined
    this.waiters.delete(w)
    if (this.waiters.size === 0) {
      this.socket?.unref()
      this.idle.refresh()
    }
    return w
  }

  private timedOut(w: Waiter): void {
    // No change in time: the current state, as the long-poll's time limit answered; before the first
    // line there is none yet, and only the silence timeout ends the wait.
    if (this.latest === undefined) return void (w.timer = setTimeout(() => this.timedOut(w), this.feeds.answerMillis))
    this.settle(w).answer(this.stateAt(Math.max(w.since, this.latest.version)))
  }

  touch(): void {
    this.idle.refresh()
  }

  private idleCheck(): void {
    if (this.state === "closed") return
    if (this.waiters.size > 0) return void this.idle.refresh()
    this.close()
  }

  close(): void {
    if (this.state === "closed") return
    this.state = "closed"
    clearTimeout(this.idle)
    this.feeds.dropped(this)
    this.request?.destroy()
  }

  fail(e: TransferFailed): void {
    if (this.state === "closed") return
    const waiting = [...this.waiters]
    for (const w of waiting) this.settle(w)
    this.close()
    for (const w of waiting) w.fail(e)
  }

  /** The parent ended the response: after `complete` the state stays good; after the cap, a new stream. */
  private ended(): void {
    if (this.state === "complete") {
      this.request = undefined
      return
    }
    if (this.state === "closed") return
    const waiting = [...this.waiters]
    for (const w of waiting) this.settle(w)
    this.close()
    if (waiting.length > 0) {
      const next = this.feeds.open(this.parent, this.taskId, Math.min(...waiting.map((w) => w.since)), this.headers)
      for (const w of waiting) next.add(w)
    }
  }

  /** An older parent answered the stream request as a plain long-poll: the answer for this call. */
  private answeredOnce(body: string): void {
    if (this.state === "closed") return
    this.feeds.noStream.add(this.feeds.hostKey(this.parent))
    const a = this.decode(body)
    if (a === undefined) return
    const waiting = [...this.waiters]
    for (const w of waiting) this.settle(w)
    this.close()
    for (const w of waiting) w.answer(a)
  }
}

/** The child's feeds, one per (parent, task); `availability` is PieceTransfer.availability. */
export class AvailabilityFeeds {
  readonly answerMillis: number
  readonly silenceMillis: number
  readonly idleMillis: number
  private readonly feeds = new Map<string, Feed>()
  /** Parents (host:port) that ignored `stream=1`: long-polled. */
  readonly noStream = new Set<string>()

  constructor(private readonly options: AvailabilityFeedOptions) {
    this.answerMillis = options.answerMillis ?? 20_000
    this.silenceMillis = options.silenceMillis ?? 35_000
    this.idleMillis = options.idleMillis ?? 3_000
  }

  hostKey(parent: ParentAddress): string {
    return `${parent.host.ip}:${parent.host.port}`
  }

  /** Feeds open now (for tests and metrics). */
  get size(): number {
    return this.feeds.size
  }

  /** Calls waiting on any feed (for tests). */
  get waiting(): number {
    let n = 0
    for (const f of this.feeds.values()) n += f.waiters.size
    return n
  }

  open(parent: ParentAddress, taskId: string, since: number, headers: Readonly<Record<string, string>>): Feed {
    const key = `${this.hostKey(parent)}/${taskId}`
    this.feeds.get(key)?.close()
    const feed = new Feed(this, key, parent, taskId, since, headers)
    this.feeds.set(key, feed)
    feed.open()
    return feed
  }

  dropped(feed: Feed): void {
    if (this.feeds.get(feed.key) === feed) this.feeds.delete(feed.key)
  }

  availability(parent: ParentAddress, taskId: string, since: number, headers: Readonly<Record<string, string>>): Effect.Effect<PieceAvailability, TransferFailed> {
    return Effect.suspend(() => {
      if (this.noStream.has(this.hostKey(parent))) return this.options.longPoll(parent, taskId, since)
      let feed = this.feeds.get(`${this.hostKey(parent)}/${taskId}`)
      if (feed === undefined || !feed.serves(since)) {
        // A call from before the feed's base (the core went back) gets a feed from there; waiting calls move along.
        const moving = feed === undefined ? [] : [...feed.waiters].map((w) => feed!.settle(w))
        feed = this.open(parent, taskId, Math.min(since, ...moving.map((w) => w.since)), headers)
        for (const w of moving) feed.add(w)
      }
      feed.touch()
      feed.headers = headers
      const ready = feed.answerFor(since)
      if (ready !== undefined) return Effect.succeed(ready)
      const first = feed
      return Effect.callback<PieceAvailability, TransferFailed>((resume) => {
        const w: Waiter = {
          since,
          feed: first,
          timer: undefined,
          answer: (a) => resume(Effect.succeed(a)),
          fail: (e) => resume(Effect.fail(e))
        }
        first.add(w)
        // Interrupted (the core stopped watching): no waiter is left behind; the feed closes once idle.
        return Effect.sync(() => {
          if (w.feed.waiters.has(w)) w.feed.settle(w)
        })
      })
    })
  }

  /** Closes every feed (a daemon shutting down, a test's end). */
  closeAll(): void {
    for (const f of [...this.feeds.values()]) f.close()
  }
}

export const makeAvailabilityFeeds = (options: AvailabilityFeedOptions) => new AvailabilityFeeds(options)
