// A minimal HTTP/1.1 GET client for piece bodies, on keep-alive sockets that read into one fixed
// buffer per connection (net's `onread`). Why not node:http: its parser hands every socket read to JS
// as a freshly allocated 64 KiB Buffer. At 1 GiB that churn of external memory triggers a full GC
// every few pieces, and each one marks the daemon's whole heap: in a bench it cost more CPU than the
// transfer itself. Here, while a body is being received, the socket reads straight into the piece's own
// buffer (taken from runtime/piece-buffer-pool.ts, so usually no allocation at all; net's
// `onread.buffer` as a function is asked for the buffer before every read), so the bytes are never
// copied in JS at all; they are staged to disk while still in cache (PieceSink) and hashed on the piece
// hash thread (runtime/piece-hash-thread.ts), and the answer comes once the digest is in.
//
// Scope, deliberately narrow: GET only, responses framed by Content-Length (the upload server always
// sends one; anything else is refused as a protocol error), no pipelining (one request per socket at
// a time). A pooled socket the parent closed while idle is retried once on a fresh connection.
import * as net from "node:net"
import { pieceBuffers } from "./piece-buffer-pool.ts"
import { type PieceHash, startPieceHash } from "./piece-hash-thread.ts"

export interface PieceReply {
  readonly status: number
  readonly body: Buffer
  /** sha256 hex of `body`, computed as it arrived (200 answers only). */
  readonly digest: string | undefined
}

export class PieceClientError extends Error {
  constructor(message: string, readonly timedOut: boolean) {
    super(message)
  }
}

/**
 * Where a 200 body's bytes also go while they arrive (runtime/disk-store.ts's `stage`: the piece's
 * place in the task's file). Why: written straight away, chunk by chunk on this thread, the bytes are
 * still in this core's cache; written as a whole 4 MiB piece afterwards, from a libuv thread, they are
 * not. In the throughput bench (runtime/testing/bench-throughput.ts) the downloading daemon went from
 * 3.2–3.6 to 2.4–3.1 CPU-s/GiB (load 12–16); a 1 GiB loopback receive-and-write alone measured
 * 0.35 CPU-s written chunk by chunk against 2.2–2.6 written piece by piece.
 */
export interface PieceSink {
  /** The next chunk of the body, in order from byte 0, as a view of the body's buffer; false = call no more. */
  write(chunk: Uint8Array): boolean
  /** The whole body arrived (and every chunk was accepted). */
  complete(): void
  /** The exchange failed or was refused: what was written is junk. */
  abandon(): void
}

export interface PieceGet {
  readonly host: string
  readonly port: number
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
  readonly timeoutMillis: number
  /** A 200 body longer than this is refused before anything is allocated. */
  readonly maxBodyBytes: number
  readonly signal?: AbortSignal | undefined
  /** Asked for a sink once a 200 body's buffer is allocated; undefined = none. */
  readonly sink?: ((body: Buffer) => PieceSink | undefined) | undefined
}

/** Heads and error bodies only (bodies are read in place): a small buffer, so little body is ever copied. */
const READ_BUFFER_BYTES = 16 * 1024
const EMPTY_DIGEST = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
const MAX_HEAD_BYTES = 16 * 1024
/**
 * A body is read in place at most this much per socket read: the bytes are then hashed and staged in the
 * task's file (PieceSink) while still in the CPU's cache. Unbounded reads (~1 MiB each on loopback) cost
 * the downloading daemon ~0.6 CPU-s/GiB more in the throughput bench; 128 KiB measured the same, 64 KiB worse.
 * Measured again with the hash on its own thread: 1 MiB reads took the child's main thread from
 * 0.70–0.78 to 1.44–1.49 CPU-s/GiB.
 */
const READ_INTO_BYTES = 256 * 1024
/**
 * Bytes staged to the sink at once, at least (but the body's end): loopback reads are larger and go at
 * once; on a slow link each read is a few KiB, and a write per read cost a syscall and a page-cache
 * lookup each. Small enough that the batch is still in the CPU's cache when it is written.
 */
const STAGE_BATCH_BYTES = 128 * 1024
/**
 * On a slow link a socket read is a packet or two (at 100 Mbit/s, ~2 KiB every ~0.15 ms), and each
 * costs a wake-up, a syscall and a JS callback: most of a downloading daemon's CPU. After such a read
 * (below COALESCE_BELOW_BYTES) into a body, the socket pauses for as long as the last read's rate needs
 * to gather COALESCE_TARGET_BYTES in the kernel's buffer, at most COALESCE_MAX_MILLIS; the next read then
 * takes them all at once. Pauses under 1 ms are not taken, so fast links read on at once. In a paced
 * 12.5 MB/s loopback stream this took reads from 1.8 KiB to 46–109 KiB each and the receiver's CPU from
 * 0.27 to 0.10 s per 48 MiB, at the same wall time.
 */
const COALESCE_BELOW_BYTES = 16 * 1024
const COALESCE_TARGET_BYTES = 64 * 1024
const COALESCE_MAX_MILLIS = 4
/** Error bodies are small JSON; more than this is refused. */
const MAX_ERROR_BODY_BYTES = 64 * 1024
/** Under the upload server's keep-alive timeout (Node's default is 5 s), so we rarely race its close. */
const IDLE_MILLIS = 4_000
const IDLE_PER_PEER = 16

/** Socket reads that went into a body in place, and their bytes, since the process started (for tests). */
export const inPlaceReads = { count: 0, bytes: 0 }

/** Receives what the socket reads, while a request is in flight on it. */
type Reader = (chunk: Buffer) => void

interface Connection {
  readonly socket: net.Socket
  readonly key: string
  reader: Reader | undefined
  /** Where the next socket read should land (the rest of a body being received), else the fixed buffer. */
  into: (() => Buffer | undefined) | undefined
  /** Called when the socket fails or closes during a request. */
  lost: ((reason: string) => void) | undefined
  idleTimer: NodeJS.Timeout | undefined
  closed: boolean
  /** The read being made goes into a body in place (`into` gave it a buffer). */
  inPlace: boolean
  /** performance.now() of the last in-place read of this exchange; 0 before the first. */
  lastReadAt: number
  /** Resumes reading after a pause that lets small reads gather (see COALESCE_BELOW_BYTES). */
  resumeTimer: NodeJS.Timeout | undefined
}

const idle = new Map<string, Array<Connection>>()

const dropIdle = (c: Connection) => {
  const list = idle.get(c.key)
  const i = list?.indexOf(c) ?? -1
  if (i >= 0) list!.splice(i, 1)
  if (list !== undefined && list.length === 0) idle.delete(c.key)
  if (c.idleTimer !== undefined) clearTimeout(c.idleTimer)
  c.idleTimer = undefined
}

const connect = (host: string, port: number, key: string): Connection => {
  const buffer = Buffer.allocUnsafe(READ_BUFFER_BYTES)
  const c: Connection = {
    socket: undefined!, key, reader: undefined, into: undefined, lost: undefined, idleTimer: undefined, closed: false,
    inPlace: false, lastReadAt: 0, resumeTimer: undefined
  }
  const resume = () => {
    c.resumeTimer = undefined
    if (!c.closed) socket.resume()
  }
  /** After an in-place read of `n` bytes: read on (true), or pause a moment to let a slow link's bytes gather. */
  const readOn = (n: number): boolean => {
    inPlaceReads.count++
    inPlaceReads.bytes += n
    const now = performance.now()
    const since = now - c.lastReadAt
    const first = c.lastReadAt === 0
    c.lastReadAt = now
    // Not for the first read of a body (`since` would be the round trip), nor once the body is complete.
    if (first || n >= COALESCE_BELOW_BYTES || c.into === undefined || c.closed) return true
    const millis = Math.min(COALESCE_MAX_MILLIS, COALESCE_TARGET_BYTES * since / Math.max(1, n))
    if (millis < 1) return true
    c.resumeTimer = setTimeout(resume, millis)
    return false
  }
  const socket = net.connect({
    host,
    port,
    noDelay: true,
    onread: {
      buffer: () => {
        const into = c.into?.()
        c.inPlace = into !== undefined
        return into ?? buffer
      },
      callback: (n: number, buf: Uint8Array) => {
        // Bytes nobody asked for (an idle socket): a confused peer; never reuse that connection.
        if (c.reader === undefined) {
          socket.destroy()
          return false
        }
        const inPlace = c.inPlace
        c.reader(Buffer.from(buf.buffer, buf.byteOffset, n))
        // false pauses the socket (net's onread contract); `resume` reads on.
        return inPlace ? readOn(n) : true
      }
    }
  })
  ;(c as { socket: net.Socket }).socket = socket
  const gone = (reason: string) => {
    c.closed = true
    dropIdle(c)
    if (c.resumeTimer !== undefined) clearTimeout(c.resumeTimer)
    c.resumeTimer = undefined
    const lost = c.lost
    c.lost = undefined
    c.reader = undefined
    c.into = undefined
    lost?.(reason)
  }
  socket.on("error", (e: NodeJS.ErrnoException) => gone(e.code ?? e.message))
  socket.on("end", () => gone("connection closed by peer"))
  socket.on("close", () => gone("connection closed"))
  return c
}

const release = (c: Connection, reusable: boolean) => {
  c.reader = undefined
  c.into = undefined
  c.lost = undefined
  c.lastReadAt = 0
  if (c.resumeTimer !== undefined) {
    clearTimeout(c.resumeTimer)
    c.resumeTimer = undefined
    if (reusable && !c.closed) c.socket.resume()
  }
  if (!reusable || c.closed) {
    c.socket.destroy()
    return
  }
  const list = idle.get(c.key) ?? []
  if (list.length >= IDLE_PER_PEER) {
    c.socket.destroy()
    return
  }
  list.push(c)
  idle.set(c.key, list)
  c.idleTimer = setTimeout(() => {
    dropIdle(c)
    c.socket.destroy()
  }, IDLE_MILLIS)
  c.idleTimer.unref()
  c.socket.unref()
}

const acquire = (host: string, port: number, fresh: boolean): { c: Connection; reused: boolean } => {
  const key = `${host}:${port}`
  const c = fresh ? undefined : idle.get(key)?.pop()
  if (c !== undefined) {
    dropIdle(c)
    c.socket.ref()
    return { c, reused: true }
  }
  return { c: connect(host, port, key), reused: false }
}

const requestText = (o: PieceGet) => {
  let head = `GET ${o.path} HTTP/1.1\r\nhost: ${o.host}:${o.port}\r\nconnection: keep-alive\r\n`
  for (const [k, v] of Object.entries(o.headers)) head += `${k}: ${v}\r\n`
  return `${head}\r\n`
}

/** One exchange on one connection; `stale` means the socket died before any byte of an answer. */
const exchange = (o: PieceGet, c: Connection, reused: boolean) =>
  new Promise<PieceReply>((resolve, reject) => {
    let settled = false
    let head: Buffer | undefined = Buffer.alloc(0)
    let status = 0
    let length = 0
    let keepAlive = true
    let body: Buffer | undefined
    let got = 0
    let received = 0
    let sink: PieceSink | undefined
    /** Bytes [0, staged) of the body went to the sink. */
    let staged = 0
    /** A 200 body's hash (runtime/piece-hash-thread.ts), fed as the body arrives. */
    let hash: PieceHash | undefined
    const finish = (error: PieceClientError | undefined, reply?: PieceReply) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      o.signal?.removeEventListener("abort", onAbort)
      if (error !== undefined) {
        sink?.abandon()
        hash?.drop()
        release(c, false)
        reject(error)
      } else {
        sink?.complete()
        release(c, keepAlive)
        resolve(reply!)
      }
    }
    /**
     * The whole body is in: the connection goes back to the pool at once (the next request need not
     * wait for the hash), and the answer follows with the digest. Nothing writes to the body meanwhile.
     */
    const bodyDone = () => {
      if (hash === undefined) return finish(undefined, { status, body: body!, digest: status === 200 ? EMPTY_DIGEST : undefined })
      const reply = { status, body: body! }
      const digest = hash.digest(length)
      hash = undefined
      if (settled) return
      settled = true
      clearTimeout(timer)
      o.signal?.removeEventListener("abort", onAbort)
      sink?.complete()
      release(c, keepAlive)
      digest.then(
        (hex) => resolve({ ...reply, digest: hex }),
        (e: unknown) => reject(new PieceClientError(`hashing the body: ${e instanceof Error ? e.message : String(e)}`, true))
      )
    }
    const protocol = (message: string) => finish(new PieceClientError(message, false))
    const onAbort = () => finish(new PieceClientError("aborted", false))
    const timer = setTimeout(() => finish(new PieceClientError(`timed out after ${o.timeoutMillis} ms`, true)), o.timeoutMillis)
    o.signal?.addEventListener("abort", onAbort, { once: true })

    const onHead = (text: string): boolean => {
      const lines = text.split("\r\n")
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "")
      if (m === null) return (protocol(`not an HTTP/1.x status line: ${JSON.stringify(lines[0]?.slice(0, 100))}`), false)
      status = Number(m[1])
      let contentLength: number | undefined
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(":")
        if (colon <= 0) continue
        const name = line.slice(0, colon).trim().toLowerCase()
        const value = line.slice(colon + 1).trim()
        if (name === "content-length") contentLength = /^\d{1,15}$/.test(value) ? Number(value) : NaN
        else if (name === "transfer-encoding") contentLength = -1
        else if (name === "connection" && value.toLowerCase() === "close") keepAlive = false
      }
      if (lines[0]!.startsWith("HTTP/1.0")) keepAlive = false
      if (status !== 200 && (contentLength === undefined || contentLength < 0)) {
        // A refusal framed otherwise: its status is what counts; the connection is not reused.
        keepAlive = false
        finish(undefined, { status, body: Buffer.alloc(0), digest: undefined })
        return false
      }
      if (contentLength === -1) return (protocol("transfer-encoding: expected a content-length body"), false)
      if (contentLength === undefined || Number.isNaN(contentLength)) return (protocol("content-length: expected a byte count"), false)
      const limit = status === 200 ? o.maxBodyBytes : MAX_ERROR_BODY_BYTES
      if (contentLength > limit) return (protocol(`content-length: ${contentLength} bytes, expected at most ${limit}`), false)
      length = contentLength
      // A piece's body goes into a pooled buffer, which the disk store gives back once it is written.
      body = status === 200 && length > 0 ? pieceBuffers.take(length) : Buffer.allocUnsafe(length)
      if (status === 200 && length > 0) {
        sink = o.sink?.(body)
        hash = startPieceHash(body)
      }
      return true
    }

    const onBody = (chunk: Buffer) => {
      if (got + chunk.length > length) return protocol(`more bytes than the content-length ${length}`)
      // Read in place (see `c.into`) unless it came with the head, into the fixed buffer.
      if (chunk.buffer !== body!.buffer || chunk.byteOffset !== body!.byteOffset + got) chunk.copy(body!, got)
      got += chunk.length
      // Staged in batches: a slow link's small reads would each be a write of their own.
      if (sink !== undefined && (got - staged >= STAGE_BATCH_BYTES || got === length)) {
        if (!sink.write(body!.subarray(staged, got))) {
          sink.abandon()
          sink = undefined
        }
        staged = got
      }
      if (got === length) bodyDone()
      else hash?.update(got)
    }

    c.reader = (chunk) => {
      if (settled) return
      received += chunk.length
      if (head === undefined) return onBody(chunk)
      head = Buffer.concat([head, chunk])
      const end = head.indexOf("\r\n\r\n")
      if (end < 0) {
        if (head.length > MAX_HEAD_BYTES) protocol(`response head longer than ${MAX_HEAD_BYTES} bytes`)
        return
      }
      const rest = head.subarray(end + 4)
      const text = head.subarray(0, end).toString("latin1")
      head = undefined
      if (!onHead(text)) return
      if (length === 0) return bodyDone()
      if (rest.length > 0) onBody(rest)
    }
    c.into = () => head === undefined && !settled && got < length ? body!.subarray(got, Math.min(length, got + READ_INTO_BYTES)) : undefined
    c.lost = (reason) =>
      finish(new PieceClientError(received === 0 && reused ? `stale: ${reason}` : reason, false))
    if (c.closed) return c.lost("connection closed")
    c.socket.write(requestText(o))
  })

/** GET one piece; a reused connection that turns out dead before answering is retried once, fresh. */
export const getPiece = async (o: PieceGet): Promise<PieceReply> => {
  const { c, reused } = acquire(o.host, o.port, false)
  try {
    return await exchange(o, c, reused)
  } catch (e) {
    if (!(e instanceof PieceClientError) || !reused || !e.message.startsWith("stale: ") || o.signal?.aborted === true) throw e
    return exchange(o, acquire(o.host, o.port, true).c, false)
  }
}
