// One sweep worker thread: runs the jobs it is sent (runScenario plus trace-derived extras) and posts
// back one results row per job. Started by sim/sweep.ts with tsx as its loader.
import { parentPort } from "node:worker_threads"
import type { Job } from "./sweep-grid.ts"
import { runMeasured } from "./sweep-metrics.ts"

export interface JobMessage {
  readonly id: number
  readonly job: Job
}

export type RowMessage =
  | { readonly id: number; readonly row: Record<string, unknown> }

/** The JSONL row of one job: its key and params, then the measured result (or the error it threw). */
export const runJob = (job: Job): Record<string, unknown> => {
  const head = { key: job.key, params: job.params }
  try {
    return { ...head, ...runMeasured(job.scenario, { seed: job.seed, strategy: job.strategy }) }
  } catch (e) {
    return { ...head, scenario: job.scenario.name, strategy: job.strategy, seed: job.seed, error: e instanceof Error ? e.message : String(e) }
  }
}

if (parentPort !== null) {
  const port = parentPort
  port.on("message", (m: JobMessage) => {
    const message: RowMessage = { id: m.id, row: runJob(m.job) }
    port.postMessage(message)
  })
}
