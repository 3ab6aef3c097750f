// Preheat jobs on disk: one SQLite file (better-sqlite3) in the scheduler's data directory, so a
// restarted scheduler still answers for finished jobs and picks up the ones that were running.
// Credentials a job needs to run (password, headers) sit in their own column, are never returned by
// the API, and are erased when the job ends; the file is created readable by its owner only.
import { chmodSync, mkdirSync } from "node:fs"
import * as path from "node:path"
import Database from "better-sqlite3"

export type JobState = "PENDING" | "RUNNING" | "SUCCESS" | "FAILURE"

export interface JobRow {
  readonly id: string
  readonly type: string
  readonly state: JobState
  /** The job's arguments without secrets. */
  readonly args: unknown
  readonly secrets: unknown
  readonly result: unknown
  readonly error: string | null
  readonly createdAt: string
  readonly updatedAt: string
}

interface RawRow {
  id: string
  type: string
  state: JobState
  args: string
  secrets: string | null
  result: string | null
  error: string | null
  created_at: string
  updated_at: string
}

const fromRaw = (r: RawRow): JobRow => ({
  id: r.id,
  type: r.type,
  state: r.state,
  args: JSON.parse(r.args),
  secrets: r.secrets === null ? null : JSON.parse(r.secrets),
  result: r.result === null ? null : JSON.parse(r.result),
  error: r.error,
  createdAt: r.created_at,
  updatedAt: r.updated_at
})

export class JobStore {
  private readonly db: Database.Database

  /** `dataDir` undefined: an in-memory database (jobs do not survive a restart). */
  constructor(dataDir: string | undefined) {
    if (dataDir === undefined) {
      this.db = new Database(":memory:")
    } else {
      mkdirSync(dataDir, { recursive: true })
      const file = path.join(dataDir, "jobs.sqlite")
      this.db = new Database(file)
      chmodSync(file, 0o600)
      this.db.pragma("journal_mode = WAL")
    }
    this.db.exec(`CREATE TABLE IF NOT EXISTS jobs (
      id TEXT PRIMARY KEY,
      type TEXT NOT NULL,
      state TEXT NOT NULL,
      args TEXT NOT NULL,
      secrets TEXT,
      result TEXT,
      error TEXT,
      created_at TEXT NOT NULL,
      updated_at TEXT NOT NULL
    )`)
  }

  insert(id: string, type: string, args: unknown, secrets: unknown): JobRow {
    const now = new Date().toISOString()
    this.db.prepare("INSERT INTO jobs (id, type, state, args, secrets, result, error, created_at, updated_at) VALUES (?, ?, 'PENDING', ?, ?, NULL, NULL, ?, ?)")
      .run(id, type, JSON.stringify(args), secrets === undefined ? null : JSON.stringify(secrets), now, now)
    return this.get(id)!
  }

  get(id: string): JobRow | undefined {
    const r = this.db.prepare("SELECT * FROM jobs WHERE id = ?").get(id) as RawRow | undefined
    return r === undefined ? undefined : fromRaw(r)
  }

  list(limit: number): Array<JobRow> {
    return (this.db.prepare("SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?").all(limit) as Array<RawRow>).map(fromRaw)
  }

  /** Jobs a previous run of the scheduler left unfinished. */
  unfinished(): Array<JobRow> {
    return (this.db.prepare("SELECT * FROM jobs WHERE state IN ('PENDING', 'RUNNING') ORDER BY created_at").all() as Array<RawRow>).map(fromRaw)
  }

  update(id: string, state: JobState, result: unknown, error: string | null = null) {
    const finished = state === "SUCCESS" || state === "FAILURE"
    this.db.prepare(`UPDATE jobs SET state = ?, result = ?, error = ?, updated_at = ?${finished ? ", secrets = NULL" : ""} WHERE id = ?`)
      .run(state, JSON.stringify(result), error, new Date().toISOString(), id)
  }

  close() {
    this.db.close()
  }
}
