// `damselfly get`: ask the local daemon for the content; if no daemon answers, fetch it straight from
// the origin (streamed to a tmp file, renamed when complete), so a host without a daemon still works.
import { createHash, randomUUID } from "node:crypto"
import { createWriteStream, promises as fs } from "node:fs"
import * as http from "node:http"
import * as https from "node:https"
import * as path from "node:path"
import { Transform } from "node:stream"
import { pipeline } from "node:stream/promises"
import { callPromise, HttpCallError } from "./http-call.ts"

export interface GetOptions {
  readonly url: string
  readonly output: string
  readonly daemon: string
  readonly digest: string | undefined
  readonly pieceLength?: number | undefined
}

export interface GetResult {
  readonly via: "daemon" | "origin"
  readonly output: string
  readonly contentLength: number
  readonly detail: Record<string, unknown>
}

export class GetFailed extends Error {}

const DIGEST = /^sha256:[0-9a-f]{64}$/

/** Straight from the origin: streamed, hashed on the fly, renamed into place only when complete and verified. */
export const downloadDirect = async (url: string, output: string, digest: string | undefined, redirects = 5): Promise<number> => {
  const tmp = `${output}.damselfly-${randomUUID().slice(0, 8)}.tmp`
  const client = url.startsWith("https:") ? https : http
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => client.get(url, resolve).on("error", reject))
  if (res.statusCode !== undefined && res.statusCode >= 300 && res.statusCode < 400 && res.headers.location !== undefined && redirects > 0) {
    res.resume()
    return downloadDirect(new URL(res.headers.location, url).toString(), output, digest, redirects - 1)
  }
  if (res.statusCode !== 200) {
    res.resume()
    throw new GetFailed(`origin ${url}: HTTP ${res.statusCode}`)
  }
  const hash = createHash("sha256")
  let size = 0
  try {
    await pipeline(
      res,
      new Transform({ transform: (chunk: Buffer, _e, cb) => cb(null, (hash.update(chunk), (size += chunk.length), chunk)) }),
      createWriteStream(tmp)
    )
    const expected = res.headers["content-length"]
    if (expected !== undefined && Number(expected) !== size) throw new GetFailed(`origin ${url}: got ${size} bytes, expected ${expected}`)
    const actual = `sha256:${hash.digest("hex")}`
    if (digest !== undefined && actual !== digest) throw new GetFailed(`digest mismatch: expected ${digest}, got ${actual}`)
    await fs.rename(tmp, output)
    return size
  } catch (e) {
    await fs.rm(tmp, { force: true })
    throw e
  }
}

export const get = async (o: GetOptions, log: (line: string) => void = () => {}): Promise<GetResult> => {
  if (!/^https?:\/\//.test(o.url)) throw new GetFailed(`url: expected an http(s) URL, got ${JSON.stringify(o.url)}`)
  if (o.digest !== undefined && !DIGEST.test(o.digest)) throw new GetFailed(`--digest: expected sha256:<64 lowercase hex>, got ${JSON.stringify(o.digest)}`)
  // The daemon runs elsewhere (its own cwd): always hand it an absolute path.
  const output = path.resolve(o.output)
  await fs.mkdir(path.dirname(output), { recursive: true })
  const body = JSON.stringify({
    url: o.url,
    output,
    ...(o.digest === undefined ? {} : { digest: o.digest }),
    ...(o.pieceLength === undefined ? {} : { pieceLength: o.pieceLength })
  })
  let fallback: string
  try {
    const reply = await callPromise(`${o.daemon.replace(/\/+$/, "")}/v1/download`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body
    })
    const text = reply.body.toString("utf8")
    if (reply.status === 200) {
      const detail = JSON.parse(text) as Record<string, unknown>
      return { via: "daemon", output, contentLength: Number(detail.contentLength), detail }
    }
    // The daemon understood us and said the request is wrong: the origin would not do better.
    if (reply.status >= 400 && reply.status < 500) throw new GetFailed(`daemon ${o.daemon} refused: HTTP ${reply.status}: ${text}`)
    fallback = `daemon ${o.daemon} failed (HTTP ${reply.status}: ${text.slice(0, 300)})`
  } catch (e) {
    if (!(e instanceof HttpCallError && e.unreachable)) throw e
    fallback = `daemon ${o.daemon} unreachable (${e.message})`
  }
  log(`${fallback}; downloading directly from the origin`)
  const size = await downloadDirect(o.url, output, o.digest)
  return { via: "origin", output, contentLength: size, detail: { reason: fallback } }
}
