// Garbage collection of a daemon's piece store. Every `interval` it evicts, never touching a task in
// use (being downloaded here, read for a child, or delivered to a client):
// - by TTL: tasks not used for `ttl`;
// - by watermarks: when the store's own bytes exceed `highWatermark × quota`, or the file system's used
//   fraction exceeds `diskHighWatermark`, the least recently used tasks go until both are back under
//   their low watermark (or nothing evictable is left).
// Only the store's own task directories are counted and removed (runtime/disk-store.ts `usage`): files
// an operator put beside them are neither counted in the store's bytes nor deleted. The file system's
// used fraction is what `df` shows, so it includes them — that is the point of a disk watermark.
import { promises as fs } from "node:fs"
import { Duration, Effect } from "effect"
import type { DiskStore, TaskUsage } from "./disk-store.ts"

export interface GcOptions {
  readonly intervalMillis: number
  /** Evict tasks not used for this long; undefined: never by age. */
  readonly ttlMillis: number | undefined
  /** Bytes the store may hold; the watermarks below are fractions of it. Undefined: no quota. */
  readonly quotaBytes: number | undefined
  readonly highWatermark: number
  readonly lowWatermark: number
  /** Used fraction of the file system above which the store evicts; undefined: ignore the file system. */
  readonly diskHighWatermark: number | undefined
  readonly diskLowWatermark: number | undefined
}

export const DEFAULT_GC: GcOptions = {
  intervalMillis: 60_000,
  ttlMillis: 6 * 3600_000,
  quotaBytes: undefined,
  highWatermark: 0.9,
  lowWatermark: 0.8,
  diskHighWatermark: 0.95,
  diskLowWatermark: 0.9
}

export type EvictionReason = "ttl" | "watermark"

export interface Eviction {
  readonly taskId: string
  readonly bytes: number
  readonly reason: EvictionReason
}

export interface DiskSpace {
  readonly usedBytes: number
  readonly totalBytes: number
}

/**
 * Which tasks to evict, and why: a pure function of the tasks' usage, the clock and the file system's
 * state. Tasks in use are never chosen; the rest go by TTL, then least recently used first.
 */
export const planEvictions = (
  tasks: ReadonlyArray<TaskUsage & { readonly inUse: boolean }>,
  now: number,
  o: GcOptions,
  disk: DiskSpace | undefined
): Array<Eviction> => {
  const out: Array<Eviction> = []
  const evictable = tasks.filter((t) => !t.inUse)
  const expired = new Set<string>()
  if (o.ttlMillis !== undefined) {
    for (const t of evictable) {
      if (now - t.lastAccess > o.ttlMillis) {
        expired.add(t.taskId)
        out.push({ taskId: t.taskId, bytes: t.bytes, reason: "ttl" })
      }
    }
  }
  const freedByTtl = out.reduce((s, e) => s + e.bytes, 0)
  let storeBytes = tasks.reduce((s, t) => s + t.bytes, 0) - freedByTtl
  let diskUsed = disk === undefined ? 0 : disk.usedBytes - freedByTtl
  const overQuota = o.quotaBytes !== undefined && storeBytes > o.highWatermark * o.quotaBytes
  const overDisk = disk !== undefined && o.diskHighWatermark !== undefined && diskUsed > o.diskHighWatermark * disk.totalBytes
  if (!overQuota && !overDisk) return out
  const done = () =>
    (!overQuota || storeBytes <= o.lowWatermark * o.quotaBytes!) &&
    (!overDisk || diskUsed <= (o.diskLowWatermark ?? o.diskHighWatermark!) * disk!.totalBytes)
  const lru = evictable.filter((t) => !expired.has(t.taskId)).sort((a, b) => a.lastAccess - b.lastAccess || (a.taskId < b.taskId ? -1 : 1))
  for (const t of lru) {
    if (done()) break
    out.push({ taskId: t.taskId, bytes: t.bytes, reason: "watermark" })
    storeBytes -= t.bytes
    diskUsed -= t.bytes
  }
  return out
}

/** The file system's used and total bytes as `df` counts them (blocks reserved for root excluded). */
export const diskSpaceOf = async (dir: string): Promise<DiskSpace> => {
  const s = await fs.statfs(dir)
  const used = (s.blocks - s.bfree) * s.bsize
  return { usedBytes: used, totalBytes: used + s.bavail * s.bsize }
}

export interface GcMetrics {
  readonly evicted: (reason: EvictionReason, bytes: number) => void
  readonly stored: (bytes: number, tasks: number) => void
}

export interface GcDeps {
  readonly store: DiskStore
  /** A download of the task is running on this host. */
  readonly downloading: (taskId: string) => boolean
  readonly metrics?: GcMetrics
}

/** One pass: measure, plan, evict. Returns what was evicted (a task pinned meanwhile is skipped). */
export const collectOnce = async (deps: GcDeps, o: GcOptions, now = Date.now()): Promise<Array<Eviction>> => {
  const usage = await deps.store.usage()
  const tasks = usage.map((t) => ({ ...t, inUse: deps.downloading(t.taskId) || deps.store.pinned(t.taskId) }))
  const disk = o.diskHighWatermark === undefined ? undefined : await diskSpaceOf(deps.store.root).catch(() => undefined)
  const evicted: Array<Eviction> = []
  for (const e of planEvictions(tasks, now, o, disk)) {
    // Checked again right before removal: a download or a read may have started since the plan.
    if (deps.downloading(e.taskId)) continue
    if (await deps.store.evict(e.taskId)) {
      evicted.push(e)
      deps.metrics?.evicted(e.reason, e.bytes)
    }
  }
  const gone = new Set(evicted.map((e) => e.taskId))
  const kept = usage.filter((t) => !gone.has(t.taskId))
  deps.metrics?.stored(kept.reduce((s, t) => s + t.bytes, 0), kept.length)
  return evicted
}

/** Runs `collectOnce` every interval for as long as the daemon lives; a failed pass is logged and retried. */
export const gcLoop = (deps: GcDeps, o: GcOptions) =>
  Effect.forever(
    Effect.sleep(Duration.millis(o.intervalMillis)).pipe(
      Effect.andThen(Effect.tryPromise(() => collectOnce(deps, o))),
      Effect.tap((evicted) =>
        evicted.length === 0 ? Effect.void : Effect.logInfo("storage gc evicted tasks").pipe(Effect.annotateLogs({
          tasks: evicted.map((e) => e.taskId),
          bytes: evicted.reduce((s, e) => s + e.bytes, 0),
          reasons: [...new Set(evicted.map((e) => e.reason))]
        }))),
      Effect.catch((e) => Effect.logWarning(`storage gc failed: ${e instanceof Error ? e.message : String(e)}`))
    )
  )
