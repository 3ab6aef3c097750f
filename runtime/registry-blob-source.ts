// Where the mirror and the proxy get a blob's bytes peer to peer. `BlobSource` is the seam: today it is
// the daemon's download (core's downloadTask into the disk store, pieces from peers, the seed or the
// origin), then the committed file, read once in full against the blob digest before a byte is served.
// The task id is the digest's hex (core/task-id.ts), so one layer pulled through two registries or
// mirrors is one task. Headers given here go to this host's origin fetches only: the scheduler never
// forwards them, and pieces from other peers are requested without them.
import { createHash } from "node:crypto"
import { createReadStream, promises as fs } from "node:fs"
import type { Readable } from "node:stream"
import { Effect } from "effect"
import { pieceLengthFor } from "../core/piece-layout.ts"
import { taskIdOf } from "../core/task-id.ts"
import { NodeSha256 } from "./node-sha256.ts"

export interface BlobRequest {
  /** The origin URL of the blob (the upstream registry's `/v2/NAME/blobs/DIGEST`, or a proxied URL). */
  readonly url: string
  /** Sent to the origin by this host only (e.g. the client's Authorization). */
  readonly headers: Readonly<Record<string, string>>
  /** "sha256:<hex>" when known: names the task and is checked against the content. */
  readonly digest: string | undefined
  /** Content length, from the upstream's HEAD. */
  readonly size: number
}

/** Inclusive byte span, already checked against the size. */
export interface ByteSpan {
  readonly start: number
  readonly end: number
}

export interface OpenedBlob {
  readonly size: number
  /** The asked span (or everything), every byte of which has been verified. */
  readonly stream: Readable
}

export interface BlobSource {
  /** Rejects (before any byte) when P2P cannot deliver; the caller then goes to the upstream. */
  readonly open: (request: BlobRequest, span: ByteSpan | undefined) => Promise<OpenedBlob>
}

export interface StoredBlobSourceOptions {
  /** Runs (or joins) the daemon's download of a task into its store; resolves when it is committed. */
  readonly download: (taskId: string, url: string, pieceLength: number, headers: Record<string, string>) => Promise<unknown>
  /** The committed content file of a task. */
  readonly contentPath: (taskId: string) => string
}

const sha256OfFile = async (file: string) => {
  const hash = createHash("sha256")
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer)
  return `sha256:${hash.digest("hex")}`
}

export const storedBlobSource = (o: StoredBlobSourceOptions): BlobSource => {
  // Each committed task is hashed once per process; concurrent requests share the one check.
  const verified = new Map<string, Promise<void>>()
  const verify = (taskId: string, file: string, digest: string) => {
    let check = verified.get(taskId)
    if (check === undefined) {
      check = sha256OfFile(file).then((actual) => {
        if (actual !== digest) throw new Error(`stored content of ${digest} hashes to ${actual}`)
      })
      check.catch(() => verified.delete(taskId))
      verified.set(taskId, check)
    }
    return check
  }

  return {
    open: async (request, span) => {
      const pieceLength = pieceLengthFor(request.size)
      const taskId = await Effect.runPromise(
        taskIdOf({ url: request.url, pieceLength, ...(request.digest === undefined ? {} : { digest: request.digest }) }).pipe(Effect.provide(NodeSha256))
      )
      await o.download(taskId, request.url, pieceLength, { ...request.headers })
      const file = o.contentPath(taskId)
      const size = (await fs.stat(file)).size
      if (size !== request.size) throw new Error(`stored content of task ${taskId} is ${size} bytes, the upstream says ${request.size}`)
      if (request.digest !== undefined) await verify(taskId, file, request.digest)
      const stream = createReadStream(file, span === undefined ? {} : { start: span.start, end: span.end })
      return { size, stream }
    }
  }
}
