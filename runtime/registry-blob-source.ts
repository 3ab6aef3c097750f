// Where the mirror and the proxy get a blob's bytes peer to peer. `BlobSource` is the seam; the daemon's
// is runtime/task-stream.ts's openTask: it starts (or joins) the download of the task named by the blob
// digest (core/task-id.ts: the digest's hex, so one layer pulled through two registries or mirrors is
// one task) and streams each piece once it is verified, holding back the last bytes of a whole blob
// until the content matches the digest. Headers given here go to this host's origin fetches only: the
// scheduler never forwards them, and pieces from other peers are requested without them.
import { Readable } from "node:stream"
import { Stream } from "effect"
import type { TaskId } from "../core/domain.ts"
import type { OpenedTask, OpenTaskRequest } from "./task-stream.ts"

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

export interface TaskStreamBlobSourceOptions {
  /** runtime/task-stream.ts's openTask, run to a promise (rejects before any byte when it cannot deliver). */
  readonly openTask: (request: OpenTaskRequest) => Promise<OpenedTask>
  /** Keeps the task from storage GC until `until` settles (runtime/disk-store.ts's withPin). */
  readonly pin: (taskId: TaskId, until: Promise<void>) => void
}

export const taskStreamBlobSource = (o: TaskStreamBlobSourceOptions): BlobSource => ({
  open: async (request, span) => {
    const opened = await o.openTask({
      url: request.url,
      headers: request.headers,
      digest: request.digest,
      ...(span === undefined ? {} : { range: { start: span.start, end: span.end } })
    })
    const stream = Readable.from(Stream.toAsyncIterable(opened.stream), { objectMode: false })
    if (opened.size !== request.size) {
      stream.destroy()
      throw new Error(`task ${opened.taskId} is ${opened.size} bytes, the upstream says ${request.size}`)
    }
    o.pin(opened.taskId, new Promise((resolve) => stream.once("close", () => resolve())))
    return { size: opened.size, stream }
  }
})
