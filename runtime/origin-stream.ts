// One ranged GET for a run of an origin's bytes, cut into pieces as the peer asks for them in order. A
// seed fetching a whole file by a request per piece keeps two TCP flows starting and stopping on the
// origin's link (each range's last bytes, then a round trip before the next); one flow read piece by
// piece keeps the link busy, and the origin sees one request instead of one per piece. Reading stops
// (TCP holds the origin back) while no piece is asked for, and a stream nobody reads for a while is
// closed, so at most a socket's buffer of bytes is fetched and not used.
import * as http from "node:http"
import * as https from "node:https"
import type { OriginRequest } from "../core/services/piece-transfer.ts"
import type { RateLimiter } from "./bandwidth.ts"

/** A stream's reader gone this long (no piece asked for): the stream is closed. */
export const STREAM_LINGER_MILLIS = 2_000

/** Why a stream could not serve a read; `fallBack`: the origin does not stream this way, ask per piece. */
export class OriginStreamError extends Error {
  constructor(message: string, readonly fallBack: boolean) {
    super(message)
  }
}

interface Read {
  readonly offset: number
  readonly bytes: Buffer
  filled: number
  readonly resolve: (bytes: Uint8Array) => void
  readonly reject: (e: OriginStreamError) => void
}

const agent = new http.Agent({ keepAlive: false })
const secureAgent = new https.Agent({ keepAlive: false })

class RangeStream {
  /** Reads queued back to back from `next`: the first is being filled. */
  private readonly reads: Array<Read> = []
  /** Offset of the next byte the response delivers. */
  private next: number
  /** A chunk's rest that arrived while no read was queued. */
  private pending: Buffer | undefined
  private res: http.IncomingMessage | undefined
  private readonly req: http.ClientRequest
  private idle: NodeJS.Timeout | undefined
  private linger: NodeJS.Timeout | undefined
  private paused = false
  private pacing = false
  closed = false

  constructor(
    readonly key: string,
    request: OriginRequest,
    readonly start: number,
    readonly end: number,
    private readonly idleTimeoutMillis: number,
    private readonly limiter: RateLimiter | undefined,
    private readonly onClose: (s: RangeStream) => void
  ) {
    this.next = start
    const secure = request.url.startsWith("https:")
    const range = `bytes=${start}-${end - 1}`
    this.req = (secure ? https : http).request(request.url, { headers: { ...request.headers, range }, agent: secure ? secureAgent : agent })
    this.req.on("error", (e: NodeJS.ErrnoException) => this.fail(`range ${range}: ${e.code ?? e.message}`, false))
    this.req.on("response", (res) => {
      const m = /^bytes (\d+)-(\d+)\//.exec(String(res.headers["content-range"] ?? ""))
      if (res.statusCode !== 206 || m === null || Number(m[1]) !== start || Number(m[2]) !== end - 1) {
        res.destroy()
        return this.fail(`range ${range}: HTTP ${res.statusCode} ${res.headers["content-range"] ?? "without content-range"} does not cover exactly the range`, true)
      }
      this.res = res
      res.on("data", (c: Buffer) => this.take(c))
      res.on("error", (e) => this.fail(`range ${range}: ${e.message}`, false))
      res.on("end", () => this.fail(this.next < this.end ? `range ${range}: connection closed at byte ${this.next}` : "stream ended", false))
      if (this.reads.length === 0) this.pause()
    })
    this.req.end()
    this.armIdle()
  }

  /** Where a read may join this stream: right after the last one queued. */
  get tail(): number {
    const last = this.reads[this.reads.length - 1]
    return last === undefined ? this.next : last.offset + last.bytes.length
  }

  accepts(key: string, offset: number, length: number): boolean {
    return !this.closed && key === this.key && offset === this.tail && offset + length <= this.end
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => {
      this.reads.push({ offset, bytes: Buffer.allocUnsafe(length), filled: 0, resolve, reject })
      if (this.linger !== undefined) clearTimeout(this.linger)
      this.linger = undefined
      this.armIdle()
      if (this.pending !== undefined) {
        const p = this.pending
        this.pending = undefined
        this.take(p)
      }
      if (this.reads.length > 0) this.resume()
    })
  }

  /** A read given up (its fetch interrupted): the stream cannot skip its bytes, so it closes. */
  abandon(offset: number): void {
    if (this.reads.some((r) => r.offset === offset)) this.fail("a read was abandoned", false)
  }

  private take(chunk: Buffer): void {
    let c = chunk
    while (c.length > 0) {
      const r = this.reads[0]
      if (r === undefined) {
        this.pending = c
        this.pause()
        this.armLinger()
        return
      }
      const n = Math.min(c.length, r.bytes.length - r.filled)
      c.copy(r.bytes, r.filled, 0, n)
      r.filled += n
      this.next += n
      c = c.subarray(n)
      if (r.filled === r.bytes.length) {
        this.reads.shift()
        r.resolve(r.bytes)
      }
    }
    this.armIdle()
    if (this.next >= this.end) return this.close()
    if (this.reads.length === 0) {
      this.pause()
      this.armLinger()
    }
    // The back-to-source limit: read no faster than it allows (TCP then holds the origin back).
    const wait = this.limiter?.reserve(chunk.length) ?? 0
    if (wait > 0 && this.res !== undefined) {
      this.pacing = true
      this.res.pause()
      setTimeout(() => {
        this.pacing = false
        if (!this.paused) this.res?.resume()
      }, wait)
    }
  }

  private pause(): void {
    this.paused = true
    this.res?.pause()
    if (this.idle !== undefined) clearTimeout(this.idle)
    this.idle = undefined
  }

  private resume(): void {
    this.paused = false
    if (!this.pacing) this.res?.resume()
    this.armIdle()
  }

  /** Silent this long while a read waits: the origin stalled. */
  private armIdle(): void {
    if (this.idle !== undefined) clearTimeout(this.idle)
    this.idle = undefined
    if (this.closed || this.reads.length === 0) return
    this.idle = setTimeout(() => this.fail(`no data for ${this.idleTimeoutMillis} ms`, false), this.idleTimeoutMillis)
  }

  private armLinger(): void {
    if (this.linger !== undefined || this.closed) return
    this.linger = setTimeout(() => this.close(), STREAM_LINGER_MILLIS)
  }

  private fail(message: string, fallBack: boolean): void {
    const reads = this.reads.splice(0)
    this.close()
    for (const r of reads) r.reject(new OriginStreamError(message, fallBack))
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    if (this.idle !== undefined) clearTimeout(this.idle)
    if (this.linger !== undefined) clearTimeout(this.linger)
    this.res?.destroy()
    this.req.destroy()
    this.onClose(this)
  }
}

/** The open streams of one Origin service (one daemon), keyed by URL and headers. */
export class OriginStreams {
  private readonly open = new Set<RangeStream>()

  constructor(private readonly idleTimeoutMillis: number, private readonly limiter?: RateLimiter) {}

  /**
   * `length` bytes at `offset`, from a stream already delivering up to there, else from a new one
   * covering [offset, runEnd). Rejects with OriginStreamError (`fallBack` when the origin answered the
   * range with anything but exactly that range: ask it per piece instead).
   */
  read(request: OriginRequest, offset: number, length: number, runEnd: number, signal?: AbortSignal): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => {
      this.waiting.push({ key: `${request.url}\u0000${JSON.stringify(request.headers)}`, request, offset, length, runEnd, signal, resolve, reject })
      // Reads asked for together (a seed's two origin pieces) are placed together, lowest offset first,
      // whatever order their fibers ran in: one stream then carries both.
      if (this.waiting.length === 1) setImmediate(() => this.place())
    })
  }

  private readonly waiting: Array<{
    readonly key: string
    readonly request: OriginRequest
    readonly offset: number
    readonly length: number
    readonly runEnd: number
    readonly signal: AbortSignal | undefined
    readonly resolve: (b: Uint8Array) => void
    readonly reject: (e: unknown) => void
  }> = []

  private place(): void {
    const reads = this.waiting.splice(0).sort((a, b) => a.offset - b.offset)
    for (const r of reads) {
      if (r.signal?.aborted === true) {
        r.reject(new OriginStreamError("aborted", false))
        continue
      }
      let stream: RangeStream | undefined
      for (const s of this.open) if (s.accepts(r.key, r.offset, r.length)) stream = s
      if (stream === undefined) {
        stream = new RangeStream(r.key, r.request, r.offset, r.runEnd, this.idleTimeoutMillis, this.limiter, (s) => this.open.delete(s))
        this.open.add(stream)
      }
      const s = stream
      r.signal?.addEventListener("abort", () => s.abandon(r.offset), { once: true })
      s.read(r.offset, r.length).then(r.resolve, r.reject)
    }
  }

  get size(): number {
    return this.open.size
  }

  closeAll(): void {
    for (const s of [...this.open]) s.close()
  }
}
