// `damselfly get`: ask the local daemon for the content; if no daemon answers, fetch it straight from
// the origin (streamed to a tmp file, renamed when complete), so a host without a daemon still works.
import { createHash, randomUUID } from "node:crypto"
import { createWriteStream, promises as fs } from "node:fs"
import * as http from "node:http"
import * as https from "node:https"
import * as path from "node:path"
import { Transform } from "node:stream"
import { pipeline } from "node:stream/promises"
import { clientHeaders } from "./auth.ts"
import { callPromise, HttpCallError } from "./http-call.ts"
import type { ProgressView } from "./progress.ts"

export interface GetOptions {
  readonly url: string
  readonly output: string
  readonly daemon: string
  readonly digest: string | undefined
  readonly pieceLength?: number | undefined
  /** Sent to the daemon as a bearer token (falls back to DAMSELFLY_TOKEN). */
  readonly token?: string | undefined
  /** Sent in x-damselfly-control-token (falls back to DAMSELFLY_CONTROL_TOKEN): only needed for a daemon on another host. */
  readonly controlToken?: string | undefined
  /**
   * Deadline for the whole download (`--timeout`), through the daemon and any direct fallback alike: when
   * it passes, `get` fails naming it and nothing is left at `output`.
   */
  readonly timeoutMillis?: number | undefined
  /** A direct download from the origin fails after this long without a byte (`--idle-timeout`). */
  readonly idleTimeoutMillis?: number | undefined
  /** Request headers for the origin (`-H "Name: value"`), sent by the daemon or the direct download. */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** Never fetch from the origin: neither the daemon (for a task it starts) nor `get` itself. */
  readonly disableBackToSource?: boolean | undefined
  /** Called with the daemon's progress of this download about every `progressMillis` while it runs. */
  readonly onProgress?: ((view: ProgressView) => void) | undefined
  readonly progressMillis?: number | undefined
}

export const DEFAULT_GET_IDLE_MILLIS = 60_000

/**
 * How long `get` waits for the daemon's answer past the deadline it handed the daemon: the daemon stops
 * at the deadline (and renames nothing after it), so its timeout answer arrives well within this.
 */
export const DAEMON_ANSWER_GRACE_MILLIS = 5_000

export interface GetResult {
  readonly via: "daemon" | "origin"
  readonly output: string
  readonly contentLength: number
  readonly detail: Record<string, unknown>
}

export class GetFailed extends Error {}
/** `--timeout` passed before the content was in place. */
export class TimedOut extends GetFailed {}

const HEADER = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):\s*(.*)$/

/** `-H "Name: value"` flags to a header record; a malformed one is refused by its text. */
export const parseHeaders = (flags: ReadonlyArray<string>): Record<string, string> => {
  const headers: Record<string, string> = {}
  for (const f of flags) {
    const m = HEADER.exec(f)
    if (m === null) throw new GetFailed(`-H: expected "Name: value", got ${JSON.stringify(f)}`)
    headers[m[1].toLowerCase()] = m[2]
  }
  return headers
}

/**
 * Polls the daemon's `GET /v1/downloads` for the download of `url` (and `pieceLength` when given) until
 * stopped. Polling failures are ignored: the bar is a convenience, the download is what matters.
 */
const pollProgress = (o: GetOptions, onProgress: (view: ProgressView) => void) => {
  let stopped = false
  const base = o.daemon.replace(/\/+$/, "")
  const loop = async () => {
    while (!stopped) {
      await new Promise((r) => setTimeout(r, o.progressMillis ?? 250))
      if (stopped) break
      try {
        const reply = await callPromise(`${base}/v1/downloads`, { headers: clientHeaders(o.token, o.controlToken), timeoutMillis: 2_000 })
        if (reply.status !== 200 || stopped) continue
        const { downloads } = JSON.parse(reply.body.toString("utf8")) as { downloads: Array<ProgressView> }
        const mine = downloads.find((d) => d.url === o.url && (o.pieceLength === undefined || d.pieceLength === o.pieceLength))
        if (mine !== undefined) onProgress(mine)
      } catch {}
    }
  }
  void loop()
  return () => {
    stopped = true
  }
}

const DIGEST = /^sha256:[0-9a-f]{64}$/

/**
 * Straight from the origin: streamed, hashed on the fly, renamed into place only when complete and
 * verified. A stalled, refused, cut-off or overdue transfer fails with a message saying which, and leaves
 * no file at `output` (only the tmp file ever holds partial bytes, and it is removed).
 */
export interface DirectOptions {
  readonly digest?: string | undefined
  readonly redirects?: number | undefined
  readonly idleTimeoutMillis?: number | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** `Date.now()` by which the file must be in place, and the failure to report when it is not. */
  readonly deadline?: Deadline | undefined
}

export interface Deadline {
  readonly at: number
  readonly expired: () => GetFailed
}

export const downloadDirect = async (url: string, output: string, o: DirectOptions = {}): Promise<number> => {
  const idleTimeoutMillis = o.idleTimeoutMillis ?? DEFAULT_GET_IDLE_MILLIS
  const redirects = o.redirects ?? 5
  const deadline = o.deadline
  if (deadline !== undefined && Date.now() >= deadline.at) throw deadline.expired()
  const client = url.startsWith("https:") ? https : http
  const stalled = new GetFailed(`origin ${url}: no data for ${idleTimeoutMillis} ms (stalled)`)
  // What ended the transfer on our side (a stall or the deadline), reported instead of the socket error.
  let ended: GetFailed | undefined
  let req: http.ClientRequest | undefined
  const deadlineTimer = deadline === undefined ? undefined : setTimeout(() => {
    ended ??= deadline.expired()
    req?.destroy(ended)
  }, deadline.at - Date.now())
  try {
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      req = client.get(url, { headers: o.headers ?? {} }, resolve).on("error", (e) =>
        reject(ended ?? new GetFailed(`origin ${url}: ${(e as NodeJS.ErrnoException).code ?? e.message}`)))
      req.setTimeout(idleTimeoutMillis, () => {
        ended ??= stalled
        req?.destroy(stalled)
      })
    })
    if (res.statusCode !== undefined && res.statusCode >= 300 && res.statusCode < 400 && res.headers.location !== undefined && redirects > 0) {
      res.resume()
      return await downloadDirect(new URL(res.headers.location, url).toString(), output, { ...o, redirects: redirects - 1 })
    }
    if (res.statusCode !== 200) {
      res.resume()
      throw new GetFailed(`origin ${url}: HTTP ${res.statusCode}`)
    }
    return await receive(res)
  } finally {
    clearTimeout(deadlineTimer)
  }

  async function receive(res: http.IncomingMessage): Promise<number> {
    const tmp = `${output}.damselfly-${randomUUID().slice(0, 8)}.tmp`
    const hash = createHash("sha256")
    let size = 0
    const expected = res.headers["content-length"]
    try {
      try {
        await pipeline(
          res,
          new Transform({ transform: (chunk: Buffer, _e, cb) => cb(null, (hash.update(chunk), (size += chunk.length), chunk)) }),
          createWriteStream(tmp)
        )
      } catch (e) {
        if (ended !== undefined) throw ended
        const err = e as NodeJS.ErrnoException
        // A failing system call on our side (ENOSPC, EACCES) is a local problem, not the origin's.
        if (err.syscall !== undefined) throw new GetFailed(`writing ${output}: ${err.code ?? err.message}`)
        if (!res.complete) throw new GetFailed(`origin ${url}: body cut off after ${size} of ${expected ?? "?"} bytes (${(e as Error).message})`)
        throw new GetFailed(`writing ${output}: ${err.code ?? err.message}`)
      }
      if (expected !== undefined && Number(expected) !== size) throw new GetFailed(`origin ${url}: got ${size} bytes, expected ${expected}`)
      const actual = `sha256:${hash.digest("hex")}`
      if (o.digest !== undefined && actual !== o.digest) throw new GetFailed(`digest mismatch: expected ${o.digest}, got ${actual}`)
      // Checked last, right before the atomic rename: a file is in place only if it was complete in time.
      if (deadline !== undefined && Date.now() >= deadline.at) throw deadline.expired()
      await fs.rename(tmp, output)
      return size
    } catch (e) {
      await fs.rm(tmp, { force: true })
      throw e
    }
  }
}

export const get = async (o: GetOptions, log: (line: string) => void = () => {}): Promise<GetResult> => {
  if (!/^https?:\/\//.test(o.url)) throw new GetFailed(`url: expected an http(s) URL, got ${JSON.stringify(o.url)}`)
  if (o.digest !== undefined && !DIGEST.test(o.digest)) throw new GetFailed(`--digest: expected sha256:<64 lowercase hex>, got ${JSON.stringify(o.digest)}`)
  // The daemon runs elsewhere (its own cwd): always hand it an absolute path.
  const output = path.resolve(o.output)
  if (o.timeoutMillis !== undefined && !(Number.isInteger(o.timeoutMillis) && o.timeoutMillis > 0)) {
    throw new GetFailed(`--timeout: expected a positive number of seconds, got ${o.timeoutMillis / 1000}`)
  }
  const started = Date.now()
  const deadline: Deadline | undefined = o.timeoutMillis === undefined ? undefined : {
    at: started + o.timeoutMillis,
    expired: () => new TimedOut(`${o.url}: not downloaded within --timeout ${o.timeoutMillis! / 1000} s; nothing written to ${output}`)
  }
  await fs.mkdir(path.dirname(output), { recursive: true })
  const body = JSON.stringify({
    url: o.url,
    output,
    ...(o.digest === undefined ? {} : { digest: o.digest }),
    ...(o.pieceLength === undefined ? {} : { pieceLength: o.pieceLength }),
    ...(o.headers === undefined || Object.keys(o.headers).length === 0 ? {} : { headers: o.headers }),
    ...(o.disableBackToSource === true ? { disableBackToSource: true } : {}),
    // The daemon stops at the same deadline (and delivers nothing after it).
    ...(o.timeoutMillis === undefined ? {} : { timeoutMillis: o.timeoutMillis })
  })
  let fallback: string
  const stopProgress = o.onProgress === undefined ? () => {} : pollProgress(o, o.onProgress)
  try {
    const reply = await callPromise(`${o.daemon.replace(/\/+$/, "")}/v1/download`, {
      method: "POST",
      headers: { ...clientHeaders(o.token, o.controlToken), "content-type": "application/json" },
      body,
      ...(deadline === undefined ? {} : { timeoutMillis: deadline.at - Date.now() + DAEMON_ANSWER_GRACE_MILLIS })
    }).finally(stopProgress)
    const text = reply.body.toString("utf8")
    if (reply.status === 200) {
      const detail = JSON.parse(text) as Record<string, unknown>
      return { via: "daemon", output, contentLength: Number(detail.contentLength), detail }
    }
    // The daemon understood us and said the request is wrong: the origin would not do better.
    if (reply.status >= 400 && reply.status < 500) throw new GetFailed(`daemon ${o.daemon} refused: HTTP ${reply.status}: ${text}`)
    // No time left for a direct download: the daemon's failure (its own 504 at the deadline, or another) is final.
    if (deadline !== undefined && Date.now() >= deadline.at) throw deadline.expired()
    fallback = `daemon ${o.daemon} failed (HTTP ${reply.status}: ${text.slice(0, 300)})`
  } catch (e) {
    if (e instanceof HttpCallError && e.timedOut && deadline !== undefined) throw deadline.expired()
    if (!(e instanceof HttpCallError && e.unreachable)) throw e
    fallback = `daemon ${o.daemon} unreachable (${e.message})`
  }
  if (o.disableBackToSource === true) throw new GetFailed(`${fallback}; not downloading from the origin (--disable-back-to-source)`)
  log(`${fallback}; downloading directly from the origin`)
  const size = await downloadDirect(o.url, output, { digest: o.digest, idleTimeoutMillis: o.idleTimeoutMillis, headers: o.headers, deadline }).catch((e: unknown) => {
    // Say both why the daemon did not deliver and why the direct download failed.
    throw new (e instanceof TimedOut ? TimedOut : GetFailed)(`${fallback}; direct download failed: ${e instanceof Error ? e.message : String(e)}`)
  })
  return { via: "origin", output, contentLength: size, detail: { reason: fallback } }
}
