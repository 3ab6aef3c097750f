// How a parent's HTTP outcome becomes core's TransferFailed: busy, timed-out or not-yet-held answers are
// temporary (retry the parent later); a parent that is gone or answers nonsense is not.
import { TransferFailed } from "../core/errors.ts"
import type { HttpCallError } from "./http-call.ts"

export const transportFailure = (e: HttpCallError) => new TransferFailed({ message: e.message, temporary: e.timedOut })

export const statusFailure = (status: number, message: string) =>
  new TransferFailed({ message, temporary: status === 404 || status === 429 || status === 503 })
