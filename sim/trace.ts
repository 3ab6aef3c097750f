// A run's fingerprint: every meaningful event as one text line folded into an incremental sha256.
// Lines hold only virtual time and simulation-local names (host ids, piece indices, flow numbers),
// never wall-clock time, object identity or Effect fiber ids, so the same (scenario, seed) gives the
// same hash in any process.
import { createHash, type Hash } from "node:crypto"

/** Bytes gathered before they are fed to the hash (sha256 is chunk-agnostic: same digest, cheaper). */
const CHUNK = 1 << 20

export class Trace {
  private hash: Hash = createHash("sha256")
  private digest: string | undefined
  lines = 0
  /** Optional sink for debugging (e.g. print the first lines of two runs that disagree). */
  constructor(private readonly sink?: (line: string) => void) {}

  /**
   * Lines not yet fed to the hash, as UTF-8 bytes (what `hash.update(string)` would hash): written
   * straight into one buffer, not concatenated into a string that is flattened and encoded later (a
   * large run records ~10 M lines).
   */
  private buffer: Buffer = Buffer.allocUnsafe(CHUNK)
  private used = 0

  /** The last time formatted, and its text: most lines share their instant with the line before. */
  private lastTime = NaN
  private timeText = ""

  record(timeMillis: number, line: string): void {
    this.begin(timeMillis, line.length).text(line).end()
  }

  /**
   * A line written in parts (`text`, `int`), then `end()`: what `record` does with the same text
   * joined, without building the line as a string first (a flow's start and end, a report, a store:
   * millions of lines). `most` bounds the UTF-16 length of the parts to come.
   */
  begin(timeMillis: number, most: number): this {
    // Microsecond resolution is below any latency in a scenario; fixed formatting keeps it stable.
    if (timeMillis !== this.lastTime) {
      this.lastTime = timeMillis
      this.timeText = `${timeMillis.toFixed(3)} `
    }
    // At most 3 UTF-8 bytes per UTF-16 unit, and the newline.
    const bound = (this.timeText.length + most) * 3 + 1
    if (this.used + bound > this.buffer.length) {
      this.flush()
      if (bound > this.buffer.length) this.buffer = Buffer.allocUnsafe(bound)
    }
    this.lineStart = this.used
    return this.text(this.timeText)
  }

  text(s: string): this {
    const n = s.length
    // A short ASCII string byte by byte: cheaper than a call into Buffer's UTF-8 encoder per part.
    if (n <= 64) {
      const b = this.buffer
      let at = this.used
      for (let k = 0; k < n; k++) {
        const c = s.charCodeAt(k)
        if (c >= 0x80) return this.encoded(s)
        b[at++] = c
      }
      this.used = at
      return this
    }
    return this.encoded(s)
  }

  /** `s` through the UTF-8 encoder (over any bytes `text` wrote of it). */
  private encoded(s: string): this {
    this.used += this.buffer.write(s, this.used)
    return this
  }

  /** `String(n)` for a non-negative safe integer, digit by digit; anything else as `String(n)`. */
  int(n: number): this {
    if (!(n >= 0 && n <= Number.MAX_SAFE_INTEGER && Math.floor(n) === n)) return this.text(String(n))
    const b = this.buffer
    let digits = 1
    for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++
    let at = this.used + digits
    this.used = at
    let x = n
    do {
      const q = Math.floor(x / 10)
      b[--at] = 48 + (x - q * 10)
      x = q
    } while (x > 0)
    return this
  }

  end(): void {
    this.buffer[this.used++] = 10
    this.lines++
    if (this.sink !== undefined) this.sink(this.buffer.toString("utf8", this.lineStart, this.used))
  }

  /** Where the line being written starts in `buffer` (for the sink). */
  private lineStart = 0

  private flush(): void {
    if (this.used > 0) this.hash.update(this.buffer.subarray(0, this.used))
    this.used = 0
  }

  /** The final hash; the trace is closed afterwards. */
  finish(): string {
    if (this.digest === undefined) {
      this.flush()
      this.digest = this.hash.digest("hex")
    }
    return this.digest
  }
}
