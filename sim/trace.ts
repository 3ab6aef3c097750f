// A run's fingerprint: every meaningful event as one text line folded into an incremental sha256.
// Lines hold only virtual time and simulation-local names (host ids, piece indices, flow numbers),
// never wall-clock time, object identity or Effect fiber ids, so the same (scenario, seed) gives the
// same hash in any process.
import { createHash, type Hash } from "node:crypto"

export class Trace {
  private hash: Hash = createHash("sha256")
  private digest: string | undefined
  lines = 0
  /** Optional sink for debugging (e.g. print the first lines of two runs that disagree). */
  constructor(private readonly sink?: (line: string) => void) {}

  /** Lines not yet fed to the hash: sha256 is chunk-agnostic, so feeding ~64 KiB at a time gives the same digest, cheaper. */
  private pending = ""

  /** The last time formatted, and its text: most lines share their instant with the line before. */
  private lastTime = NaN
  private timeText = ""

  record(timeMillis: number, line: string): void {
    // Microsecond resolution is below any latency in a scenario; fixed formatting keeps it stable.
    if (timeMillis !== this.lastTime) {
      this.lastTime = timeMillis
      this.timeText = `${timeMillis.toFixed(3)} `
    }
    const text = this.timeText + line + "\n"
    this.pending += text
    if (this.pending.length > 65_536) {
      this.hash.update(this.pending)
      this.pending = ""
    }
    this.lines++
    this.sink?.(text)
  }

  /** The final hash; the trace is closed afterwards. */
  finish(): string {
    if (this.digest === undefined) {
      this.hash.update(this.pending)
      this.pending = ""
      this.digest = this.hash.digest("hex")
    }
    return this.digest
  }
}
