// PieceStore on disk: DIR/tasks/<taskId>/{meta.json, data, pieces.log, content}. Pieces are written in
// place into `data` (sized to the content up front), and only once a write has completed is the piece
// appended to `pieces.log` — so a half-written piece never counts. `commit` hard-links `data` to
// `content`: the whole file appears atomically and nothing is copied (a copy cost more than the
// download itself on loopback). The ledger lives in memory and is rebuilt on restart from the log,
// re-hashing each logged piece so a torn or corrupt one is dropped.
// For GC (runtime/storage-gc.ts) the store tracks when each task was last used (in memory, and as the
// task directory's mtime so it survives a restart) and which tasks are pinned (being read or delivered).
import { promises as fs, writeSync } from "node:fs"
import type { FileHandle } from "node:fs/promises"
import * as path from "node:path"
import { Effect, Layer } from "effect"
import type { TaskId } from "../core/domain.ts"
import { StoreFailed } from "../core/errors.ts"
import { pieceAt } from "../core/piece-layout.ts"
import { PieceLedger } from "../core/piece-ledger.ts"
import { PieceStore, type StoredTask } from "../core/services/piece-store.ts"
import { sha256Hex } from "./node-sha256.ts"
import type { PieceSink } from "./piece-client.ts"
import { pieceBuffers, type PieceBufferPool } from "./piece-buffer-pool.ts"

const TASK_ID = /^[0-9a-f]{64}$/
/** Piece writes in flight per task before `write` waits (8 × 4 MiB pieces in memory at most). */
const MAX_PENDING_WRITES = 8
const LOG_LINE = /^(\d+) ([0-9a-f]{64})$/

interface OpenTask {
  readonly meta: StoredTask
  readonly ledger: PieceLedger
  readonly data: FileHandle
  /** `pieces.log`, open for appending: one write per piece instead of an open/write/close. */
  readonly log: FileHandle
  /** Pieces being written now: a second writer of the same piece, and readers, wait for it. */
  readonly writing: Map<number, Promise<void>>
  /** Every write in flight (settles either way), for back-pressure and `commit`. */
  readonly pending: Set<Promise<void>>
  /** The first write that failed: the task is unusable until reopened. */
  failure: Error | undefined
  /** Pieces whose bytes go to the file while they arrive (`stage`), by index. */
  readonly staging: Map<number, Staging>
}

/** One piece's bytes written to their place in `data` as they arrive, before anyone has verified them. */
interface Staging {
  /** The buffer the bytes arrive in: `write` with this very buffer finds them on disk already. Weak: a
   *  staged piece that is then dropped (failed verification) must not keep its piece-sized buffer alive. */
  readonly buffer: WeakRef<Uint8Array>
  /** Bytes written so far, all from the start of the piece. */
  written: number
  /** False once revoked (a `write` of the piece came first, or a staged write failed): nothing more is written. */
  live: boolean
}


const writeAtomic = async (file: string, data: string) => {
  const tmp = `${file}.${process.pid}.tmp`
  await fs.writeFile(tmp, data)
  await fs.rename(tmp, file)
}

/** A task directory's mtime is refreshed at most this often (it only orders tasks for GC). */
const ACCESS_PERSIST_MILLIS = 60_000

export interface TaskUsage {
  readonly taskId: TaskId
  /** Bytes of this task's own files (data and content are one file, hard-linked: counted once). */
  readonly bytes: number
  readonly lastAccess: number
  readonly complete: boolean
}

export class DiskStore {
  private readonly tasks = new Map<TaskId, Promise<OpenTask>>()
  /** The tasks of `tasks` whose opening has completed, for synchronous use (`stage`). */
  private readonly ready = new Map<TaskId, OpenTask>()
  /** Wall-clock millis of each task's last use (opened, read for a child, committed, delivered). */
  private readonly lastAccess = new Map<TaskId, number>()
  private readonly persistedAccess = new Map<TaskId, number>()
  private readonly pins = new Map<TaskId, number>()

  /** `buffers`: where a written piece's buffer goes back to (PieceStore's `write` hands it over). */
  constructor(readonly root: string, private readonly buffers: PieceBufferPool = pieceBuffers) {}

  taskDir(taskId: TaskId) {
    if (!TASK_ID.test(taskId)) throw new Error(`not a task id: ${taskId}`)
    return path.join(this.root, "tasks", taskId)
  }
  contentPath(taskId: TaskId) {
    return path.join(this.taskDir(taskId), "content")
  }

  /** The ledger of an opened task, for the upload server; undefined for tasks this daemon does not hold. */
  async ledgerOf(taskId: TaskId): Promise<PieceLedger | undefined> {
    const open = this.tasks.get(taskId)
    return open === undefined ? undefined : (await open.catch(() => undefined))?.ledger
  }

  /**
   * The ledger once the task is opened, waiting at most `millis`: a peer the scheduler already hands
   * out as a parent may be a moment away from opening the task itself.
   */
  async awaitLedger(taskId: TaskId, millis: number): Promise<PieceLedger | undefined> {
    const deadline = Date.now() + millis
    while (Date.now() < deadline) {
      const ledger = await this.ledgerOf(taskId)
      if (ledger !== undefined) return ledger
      await new Promise((r) => setTimeout(r, 25))
    }
    return this.ledgerOf(taskId)
  }

  /** Records a use of the task, for LRU and TTL eviction; persisted as the directory's mtime now and then. */
  touch(taskId: TaskId, now = Date.now()) {
    this.lastAccess.set(taskId, now)
    if (now - (this.persistedAccess.get(taskId) ?? 0) < ACCESS_PERSIST_MILLIS) return
    this.persistedAccess.set(taskId, now)
    const when = new Date(now)
    void fs.utimes(this.taskDir(taskId), when, when).catch(() => this.persistedAccess.delete(taskId))
  }

  /** Keeps GC away from the task while `f` runs (a read for a child, a delivery to a client). */
  async withPin<A>(taskId: TaskId, f: () => Promise<A>): Promise<A> {
    this.pins.set(taskId, (this.pins.get(taskId) ?? 0) + 1)
    try {
      return await f()
    } finally {
      const n = (this.pins.get(taskId) ?? 1) - 1
      if (n === 0) this.pins.delete(taskId)
      else this.pins.set(taskId, n)
    }
  }

  pinned(taskId: TaskId): boolean {
    return this.pins.has(taskId)
  }

  /** Every opened task with the bytes of its own files; nothing else under the root is looked at. */
  async usage(): Promise<Array<TaskUsage>> {
    const out: Array<TaskUsage> = []
    for (const [taskId, open] of [...this.tasks]) {
      const o = await open.catch(() => undefined)
      if (o === undefined) continue
      const seen = new Set<string>()
      let bytes = 0
      for (const name of ["meta.json", "data", "content", "pieces.log"]) {
        const st = await fs.lstat(path.join(this.taskDir(taskId), name)).catch(() => undefined)
        if (st === undefined || !st.isFile() || seen.has(`${st.dev}:${st.ino}`)) continue
        seen.add(`${st.dev}:${st.ino}`)
        bytes += st.size
      }
      out.push({ taskId, bytes, lastAccess: this.lastAccess.get(taskId) ?? 0, complete: o.ledger.complete })
    }
    return out
  }

  /**
   * Forgets the task and removes its directory (by task id, under the root), unless it is pinned.
   * Later reads of it fail like reads of a task never held; a new download of it starts afresh.
   */
  async evict(taskId: TaskId): Promise<boolean> {
    const open = this.tasks.get(taskId)
    if (open === undefined || this.pinned(taskId)) return false
    this.tasks.delete(taskId)
    this.ready.delete(taskId)
    this.lastAccess.delete(taskId)
    this.persistedAccess.delete(taskId)
    const o = await open.catch(() => undefined)
    await o?.data.close().catch(() => {})
    await fs.rm(this.taskDir(taskId), { recursive: true, force: true })
    return true
  }

  /** Removes every task directory (only names that are task ids) before anything is opened: no keep-cache. */
  async wipe(): Promise<number> {
    const dir = path.join(this.root, "tasks")
    const names = await fs.readdir(dir).catch(() => [] as Array<string>)
    let count = 0
    for (const name of names) {
      if (!TASK_ID.test(name)) continue
      await fs.rm(path.join(dir, name), { recursive: true, force: true })
      count++
    }
    return count
  }

  /** Reopens every task found on disk, so a restarted daemon serves what it held before. */
  async loadExisting(): Promise<number> {
    const dir = path.join(this.root, "tasks")
    await fs.mkdir(dir, { recursive: true })
    let count = 0
    for (const name of await fs.readdir(dir)) {
      if (!TASK_ID.test(name)) continue
      try {
        const meta = JSON.parse(await fs.readFile(path.join(dir, name, "meta.json"), "utf8")) as StoredTask
        if (meta.taskId !== name) continue
        const used = (await fs.stat(path.join(dir, name))).mtimeMs
        await this.openUntouched(meta)
        // The last use before the restart, not the reopening, orders it for GC.
        this.lastAccess.set(name, used)
        this.persistedAccess.set(name, used)
        count++
      } catch {
        // No or broken metadata: the task was never opened completely; it is fetched again on demand.
      }
    }
    return count
  }

  openAsync(task: StoredTask): Promise<OpenTask> {
    const open = this.openUntouched(task)
    this.touch(task.taskId)
    return open
  }

  private openUntouched(task: StoredTask): Promise<OpenTask> {
    let open = this.tasks.get(task.taskId)
    if (open === undefined) {
      open = this.load(task)
      this.tasks.set(task.taskId, open)
      const opening = open
      opening.then(
        (o) => {
          if (this.tasks.get(task.taskId) === opening) this.ready.set(task.taskId, o)
        },
        () => this.tasks.delete(task.taskId)
      )
    }
    return open.then((o) => {
      if (o.meta.contentLength !== task.contentLength || o.meta.pieceLength !== task.pieceLength) {
        throw new Error(`task ${task.taskId} is open with length ${o.meta.contentLength}/${o.meta.pieceLength}, asked ${task.contentLength}/${task.pieceLength}`)
      }
      return o
    })
  }

  private async load(task: StoredTask): Promise<OpenTask> {
    const dir = this.taskDir(task.taskId)
    const metaFile = path.join(dir, "meta.json")
    const dataFile = path.join(dir, "data")
    const meta: StoredTask = { taskId: task.taskId, url: task.url, contentLength: task.contentLength, pieceLength: task.pieceLength }
    const old = await fs.readFile(metaFile, "utf8").then((t) => JSON.parse(t) as StoredTask, () => undefined)
    const sameLayout = old !== undefined && old.contentLength === meta.contentLength && old.pieceLength === meta.pieceLength
    if (!sameLayout) {
      // New task, or same id with another layout (the content changed at the origin): start afresh.
      await fs.rm(dir, { recursive: true, force: true })
      await fs.mkdir(dir, { recursive: true })
      await writeAtomic(metaFile, JSON.stringify(meta))
    }
    const data = await fs.open(dataFile, sameLayout ? "r+" : "w+").catch(() => fs.open(dataFile, "w+"))
    await data.truncate(meta.contentLength)
    const ledger = new PieceLedger(task.taskId, task.contentLength, task.pieceLength)
    if (sameLayout) {
      const log = await fs.readFile(path.join(dir, "pieces.log"), "utf8").catch(() => "")
      for (const line of log.split("\n")) {
        const m = LOG_LINE.exec(line)
        if (m === null) continue // a torn last line
        const index = Number(m[1])
        if (index >= ledger.pieceCount || ledger.has(index)) continue
        const piece = pieceAt(meta.contentLength, meta.pieceLength, index)
        const bytes = Buffer.allocUnsafe(piece.length)
        await data.read(bytes, 0, piece.length, piece.offset)
        if (sha256Hex(bytes) === m[2]) ledger.add(index, m[2])
      }
    }
    const log = await fs.open(path.join(dir, "pieces.log"), "a")
    return { meta, ledger, data, log, writing: new Map(), pending: new Set(), failure: undefined, staging: new Map() }
  }

  /**
   * Write-behind: the piece is handed to the disk and this returns at once (after at most
   * MAX_PENDING_WRITES are in flight for the task — back-pressure when the disk is slower than the
   * network), with the piece already in the ledger: readers of a piece still being written wait for
   * it (`written`), `commit` waits for all of them, and only logged pieces count after a restart. Why: the conductor awaits
   * `write` on its one loop, so each piece's disk latency used to stall every fetch (one piece in
   * flight on average in a loaded bench). A failed write fails the task: its reads, commit and later
   * writes throw, and the piece never reaches `pieces.log`.
   * `bytes` are the store's from now on: a buffer from runtime/piece-buffer-pool.ts goes back to the
   * pool once it is on disk (or at once if the piece was not needed); any other buffer is left alone.
   */
  async writeAsync(taskId: TaskId, index: number, bytes: Uint8Array, digest: string) {
    const open = await this.opened(taskId)
    const { ledger, meta, data, log, writing, pending } = open
    if (open.failure !== undefined) throw open.failure
    const piece = index >= 0 && index < ledger.pieceCount ? pieceAt(meta.contentLength, meta.pieceLength, index) : undefined
    if (piece === undefined || bytes.length !== piece.length) {
      throw new Error(`piece ${index} of task ${taskId}: ${bytes.length} bytes, expected ${piece?.length ?? "no such piece"}`)
    }
    // Whatever was staged for the piece, nothing more is written there now: these bytes are the piece.
    const staged = open.staging.get(index)
    open.staging.delete(index)
    if (staged !== undefined) staged.live = false
    await writing.get(index)?.catch(() => {})
    if (open.failure !== undefined) throw open.failure
    // Held already, or a concurrent writer of the same piece got there first: these bytes are not needed.
    if (ledger.has(index) || writing.has(index)) return void this.buffers.give(bytes)
    // Staged from this very buffer, every byte: they are in the file already (`stage`).
    const inPlace = staged !== undefined && staged.buffer.deref() === bytes && staged.written === bytes.length
    const done = (async () => {
      let at = inPlace ? bytes.length : 0
      while (at < bytes.length) {
        const { bytesWritten } = await data.write(bytes, at, bytes.length - at, piece.offset + at)
        at += bytesWritten
      }
      // On disk: nothing reads these bytes any more (a failed write drops them to the GC instead).
      this.buffers.give(bytes)
      await log.write(`${index} ${digest}\n`)
    })()
    writing.set(index, done)
    // Held from now on (PieceStore's contract): readers wait in `written`, only `pieces.log` survives a restart.
    ledger.add(index, digest)
    const settled: Promise<void> = done.then(
      () => {},
      (e: unknown) => {
        open.failure ??= new Error(`writing piece ${index} of task ${taskId}: ${e instanceof Error ? e.message : String(e)}`)
      }
    ).finally(() => {
      writing.delete(index)
      pending.delete(settled)
    })
    pending.add(settled)
    while (pending.size > MAX_PENDING_WRITES) await Promise.race(pending)
    if (open.failure !== undefined) throw open.failure
  }

  /**
   * Lets the bytes of piece `index` go to their place in the file while they arrive into `buffer`
   * (synchronous writes, in the caller's turn, while the bytes are still in cache), before they are
   * verified. Safe because a piece counts only once `write` is called with its verified bytes: until
   * then it is not in the ledger (nobody reads it) nor in `pieces.log` (a restart does not count it),
   * and `write` stops any staging of the piece before it writes. Undefined when the piece cannot be
   * staged now (the task is not open, the piece is held, being written or staged by another fetch,
   * or `buffer` is not the piece's length): the caller then just fills the buffer and `write` copies it.
   */
  stage(taskId: TaskId, index: number, buffer: Uint8Array): PieceSink | undefined {
    const open = this.ready.get(taskId)
    if (open === undefined || open.failure !== undefined || index < 0 || index >= open.ledger.pieceCount) return undefined
    const { ledger, meta, data, writing, staging } = open
    if (ledger.has(index) || writing.has(index) || staging.get(index)?.live === true) return undefined
    const piece = pieceAt(meta.contentLength, meta.pieceLength, index)
    if (buffer.length !== piece.length) return undefined
    const s: Staging = { buffer: new WeakRef(buffer), written: 0, live: true }
    staging.set(index, s)
    const stop = () => {
      s.live = false
      if (staging.get(index) === s) staging.delete(index)
    }
    return {
      write: (chunk) => {
        // fd -1: the task's file is being closed (evicted); the number may soon name another file.
        if (!s.live || data.fd < 0) return (stop(), false)
        if (chunk.buffer !== buffer.buffer || chunk.byteOffset !== buffer.byteOffset + s.written) return (stop(), false)
        try {
          let at = 0
          while (at < chunk.length) at += writeSync(data.fd, chunk, at, chunk.length - at, piece.offset + s.written + at)
        } catch {
          // Not the task's failure: `write` writes the piece itself (and reports a failure of its own).
          return (stop(), false)
        }
        s.written += chunk.length
        return true
      },
      // Stays in `staging` (not live) for `write` to find; a later fetch may stage the piece anew.
      complete: () => {
        s.live = false
      },
      abandon: stop
    }
  }

  /** Waits for the piece's write if one is under way; throws if the task's writes failed. */
  private async written(open: OpenTask, index: number) {
    await open.writing.get(index)?.catch(() => {})
    if (open.failure !== undefined) throw open.failure
  }

  /** The piece's bytes, in `into` (its first piece-length bytes) when given and large enough, else a new buffer. */
  readAsync(taskId: TaskId, index: number, into?: Buffer): Promise<Buffer> {
    this.touch(taskId)
    return this.withPin(taskId, () => this.read(taskId, index, into))
  }

  /**
   * Bytes [offset, offset + length) of the content, all inside pieces already held (a reader streaming
   * a task reads in small chunks rather than whole pieces of up to 64 MiB).
   */
  readRangeAsync(taskId: TaskId, offset: number, length: number): Promise<Buffer> {
    this.touch(taskId)
    return this.withPin(taskId, async () => {
      const open = await this.opened(taskId)
      const { ledger, meta, data } = open
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > meta.contentLength) {
        throw new Error(`bytes ${offset}+${length} outside task ${taskId} (${meta.contentLength} bytes)`)
      }
      if (length === 0) return Buffer.alloc(0)
      for (let i = Math.floor(offset / meta.pieceLength); i <= Math.floor((offset + length - 1) / meta.pieceLength); i++) {
        if (!ledger.has(i)) throw new Error(`piece ${i} of task ${taskId} is not held`)
        await this.written(open, i)
      }
      const bytes = Buffer.allocUnsafe(length)
      const { bytesRead } = await data.read(bytes, 0, length, offset)
      if (bytesRead !== length) throw new Error(`bytes ${offset}+${length} of task ${taskId}: short read`)
      return bytes
    })
  }

  private async read(taskId: TaskId, index: number, into?: Buffer): Promise<Buffer> {
    const open = await this.opened(taskId)
    const { ledger, meta, data } = open
    if (!ledger.has(index)) throw new Error(`piece ${index} of task ${taskId} is not held`)
    await this.written(open, index)
    const piece = pieceAt(meta.contentLength, meta.pieceLength, index)
    const bytes = into !== undefined && into.length >= piece.length ? into.subarray(0, piece.length) : Buffer.allocUnsafe(piece.length)
    const { bytesRead } = await data.read(bytes, 0, piece.length, piece.offset)
    if (bytesRead !== piece.length) throw new Error(`piece ${index} of task ${taskId}: short read`)
    return bytes
  }

  async commitAsync(taskId: TaskId) {
    const open = await this.opened(taskId)
    await Promise.all([...open.pending])
    if (open.failure !== undefined) throw open.failure
    const { ledger } = open
    if (!ledger.complete) throw new Error(`task ${taskId}: ${ledger.version}/${ledger.pieceCount} pieces held, cannot commit`)
    this.touch(taskId)
    await fs.link(path.join(this.taskDir(taskId), "data"), this.contentPath(taskId)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "EEXIST") throw e
    })
  }

  /** Every opened task with its ledger (tasks resumed from disk included). */
  async heldAsync(): Promise<Array<{ task: StoredTask; ledger: PieceLedger }>> {
    const settled = await Promise.allSettled([...this.tasks.values()])
    return settled.flatMap((r) => (r.status === "fulfilled" ? [{ task: r.value.meta, ledger: r.value.ledger }] : []))
  }

  private opened(taskId: TaskId): Promise<OpenTask> {
    const open = this.tasks.get(taskId)
    if (open === undefined) return Promise.reject(new Error(`task ${taskId} is not open`))
    return open
  }
}

const lift = <A>(what: string, f: () => Promise<A>): Effect.Effect<A, StoreFailed> =>
  Effect.tryPromise({ try: f, catch: (e) => new StoreFailed({ message: `${what}: ${e instanceof Error ? e.message : String(e)}` }) })

export const diskPieceStore = (store: DiskStore) =>
  PieceStore.of({
    open: (task) => Effect.map(lift(`open ${task.taskId}`, () => store.openAsync(task)), (o) => o.ledger),
    write: (taskId, index, bytes, digest) => lift(`write piece ${index}`, () => store.writeAsync(taskId, index, bytes, digest)),
    read: (taskId, index) => lift(`read piece ${index}`, () => store.readAsync(taskId, index)),
    commit: (taskId) => lift(`commit ${taskId}`, () => store.commitAsync(taskId)),
    held: () => Effect.promise(() => store.heldAsync())
  })

export const DiskPieceStore = (store: DiskStore) => Layer.succeed(PieceStore)(diskPieceStore(store))
