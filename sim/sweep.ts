// `damselfly sweep GRID -o RESULTS.jsonl [--workers N] [--quiet]`: runs every (params, strategy, seed)
// of a grid on worker threads and appends one JSON line per run. Re-running the same command resumes:
// rows already in the file (by key) are skipped, a partial last line is cut off, only the missing
// runs (and runs that threw) are appended; readers take the last row of a key. A row is a pure function of its key (no wall-clock fields).
import cliProgress from "cli-progress"
import { closeSync, existsSync, openSync, readFileSync, truncateSync, writeSync } from "node:fs"
import { createRequire } from "node:module"
import { availableParallelism } from "node:os"
import { pathToFileURL } from "node:url"
import { Worker } from "node:worker_threads"
import { type ExpandedGrid, GridError, type Job, loadGrid } from "./sweep-grid.ts"
import type { JobMessage, RowMessage } from "./sweep-worker.ts"

const USAGE = "usage: damselfly sweep GRID.(yaml|json|ts) -o RESULTS.jsonl [--workers N] [--quiet]"

export interface Resume {
  /** Keys of the successful rows already in the file. */
  readonly done: ReadonlySet<string>
  readonly rows: number
  /** Bytes of a partial last line that were cut off. */
  readonly discardedBytes: number
  /** Complete lines that did not parse as a row (kept, not counted as done). */
  readonly badLines: number
}

/** Reads an existing results file; cuts a partial (unterminated) last line off the file itself. */
export const readResume = (path: string): Resume => {
  if (!existsSync(path)) return { done: new Set(), rows: 0, discardedBytes: 0, badLines: 0 }
  const buf = readFileSync(path)
  const end = buf.lastIndexOf(0x0a) + 1
  const discardedBytes = buf.length - end
  if (discardedBytes > 0) truncateSync(path, end)
  const done = new Set<string>()
  let rows = 0
  let badLines = 0
  for (const line of buf.subarray(0, end).toString("utf8").split("\n")) {
    if (line.trim() === "") continue
    try {
      const row = JSON.parse(line) as { key?: unknown; error?: unknown }
      if (typeof row.key !== "string") throw new Error("no key")
      // A run that threw is tried again on the next resume (the code may have been fixed since).
      if (row.error === undefined) done.add(row.key)
      rows++
    } catch {
      badLines++
    }
  }
  return { done, rows, discardedBytes, badLines }
}

export interface SweepOptions {
  readonly workers?: number
  /** Called after each row is written. */
  readonly onRow?: (row: Record<string, unknown>, done: number, total: number) => void
  /** Stop after this many new rows (tests: an interrupted sweep). */
  readonly limit?: number
}

export interface SweepSummary {
  readonly total: number
  readonly skipped: number
  readonly ran: number
  readonly errors: number
  readonly resume: Resume
}

/**
 * A worker thread running sim/sweep-worker.ts through tsx. `execArgv: ["--import", "tsx"]` does not
 * work on Node 20.20 ("Unknown file extension .ts" for the worker's entry), so a small eval'd
 * bootstrap registers tsx's ESM hooks in the worker first and then imports the entry.
 */
const startWorker = (): Worker => {
  // tsx's ESM build of its API (require.resolve finds the CommonJS one next to it).
  const cjs = createRequire(import.meta.url).resolve("tsx/esm/api")
  const mjs = cjs.replace(/\.cjs$/, ".mjs")
  const api = pathToFileURL(existsSync(mjs) ? mjs : cjs).href
  const entry = new URL("./sweep-worker.ts", import.meta.url).href
  const boot = `import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}) })` +
    `.catch((e) => { setImmediate(() => { throw e }) })`
  return new Worker(boot, { eval: true })
}

/** Runs the grid's missing jobs on `workers` threads, appending rows to `out` as they finish. */
export const runSweep = async (grid: ExpandedGrid, out: string, options: SweepOptions = {}): Promise<SweepSummary> => {
  const resume = readResume(out)
  let pending: ReadonlyArray<Job> = grid.jobs.filter((j) => !resume.done.has(j.key))
  if (options.limit !== undefined) pending = pending.slice(0, options.limit)
  const total = grid.jobs.length
  const skipped = grid.jobs.length - grid.jobs.filter((j) => !resume.done.has(j.key)).length
  let finished = skipped
  let ran = 0
  let errors = 0
  if (pending.length === 0) return { total, skipped, ran, errors, resume }

  const fd = openSync(out, "a")
  const threads = Math.max(1, Math.min(options.workers ?? availableParallelism(), pending.length))
  const workers: Array<Worker> = []
  try {
    await new Promise<void>((resolveAll, reject) => {
      let next = 0
      const give = (w: Worker) => {
        if (next >= pending.length) return
        const id = next++
        const message: JobMessage = { id, job: pending[id] }
        w.postMessage(message)
      }
      for (let i = 0; i < threads; i++) {
        const w = startWorker()
        workers.push(w)
        w.on("message", (m: RowMessage) => {
          writeSync(fd, JSON.stringify(m.row) + "\n")
          ran++
          finished++
          if ("error" in m.row) errors++
          options.onRow?.(m.row, finished, total)
          if (ran === pending.length) resolveAll()
          else give(w)
        })
        w.on("error", (e) => reject(new Error(`sweep worker failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`)))
        w.on("exit", (code) => {
          if (code !== 0 && ran < pending.length) reject(new Error(`sweep worker exited with code ${code}`))
        })
        give(w)
      }
    })
  } finally {
    closeSync(fd)
    await Promise.all(workers.map((w) => w.terminate()))
  }
  return { total, skipped, ran, errors, resume }
}

interface SweepArgs {
  readonly grid: string
  readonly out: string
  readonly workers: number | undefined
  readonly quiet: boolean
}

const parseArgs = (argv: ReadonlyArray<string>): SweepArgs | string => {
  let grid: string | undefined
  let out: string | undefined
  let workers: number | undefined
  let quiet = false
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const needsValue = a === "-o" || a === "--out" || a === "--workers" || a === "-j"
    const v = needsValue ? argv[++i] : undefined
    if (needsValue && v === undefined) return `${a}: expected a value\n${USAGE}`
    if (a === "-o" || a === "--out") out = v
    else if (a === "--workers" || a === "-j") {
      workers = Number(v)
      if (!Number.isSafeInteger(workers) || workers < 1) return `--workers: expected a positive integer, got ${JSON.stringify(v)}`
    } else if (a === "--quiet" || a === "-q") quiet = true
    else if (a === "-h" || a === "--help") return USAGE
    else if (a.startsWith("-")) return `unknown option ${a}\n${USAGE}`
    else if (grid === undefined) grid = a
    else return `unexpected argument ${JSON.stringify(a)}\n${USAGE}`
  }
  if (grid === undefined) return `missing GRID\n${USAGE}`
  if (out === undefined) return `missing -o RESULTS.jsonl\n${USAGE}`
  return { grid, out, workers, quiet }
}

export async function runSweepCommand(argv: ReadonlyArray<string>): Promise<number> {
  const args = parseArgs(argv)
  if (typeof args === "string") {
    console.error(args)
    return args === USAGE ? 0 : 2
  }
  let grid: ExpandedGrid
  try {
    grid = await loadGrid(args.grid)
  } catch (e) {
    console.error(e instanceof GridError ? `bad grid: ${e.message}` : `cannot load grid ${args.grid}: ${String(e)}`)
    return 1
  }
  const started = performance.now()
  const bar = args.quiet
    ? undefined
    : new cliProgress.SingleBar(
      { format: "sweep [{bar}] {percentage}% | {value}/{total} runs | ETA {eta_formatted} | {last}", hideCursor: true, stream: process.stderr },
      cliProgress.Presets.shades_classic
    )
  const resumed = readResume(args.out)
  const todo = grid.jobs.filter((j) => !resumed.done.has(j.key)).length
  console.error(`damselfly sweep ${args.grid}: ${grid.name}; ${grid.jobs.length} runs, ${grid.jobs.length - todo} already in ${args.out}` +
    (resumed.discardedBytes > 0 ? ` (cut a partial last line of ${resumed.discardedBytes} bytes)` : ""))
  bar?.start(grid.jobs.length, grid.jobs.length - todo, { last: "" })
  const stop = () => {
    bar?.stop()
    process.exit(130)
  }
  process.once("SIGINT", stop)
  try {
    const s = await runSweep(grid, args.out, {
      workers: args.workers,
      onRow: (row, done) => bar?.update(done, { last: `${String(row.strategy)} seed ${String(row.seed)}${"error" in row ? " FAILED" : ""}` })
    })
    bar?.stop()
    console.error(`ran ${s.ran} runs (${s.errors} failed), skipped ${s.skipped}, in ${((performance.now() - started) / 1000).toFixed(1)}s; wrote ${args.out}`)
    return s.errors === 0 ? 0 : 3
  } catch (e) {
    bar?.stop()
    console.error(`sweep failed: ${e instanceof Error ? e.message : String(e)}`)
    return 1
  } finally {
    process.off("SIGINT", stop)
  }
}
