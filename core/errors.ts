// Failures that cross service boundaries, as tagged types so callers route on them.
import { Schema } from "effect"

export class SchedulerUnavailable extends Schema.TaggedError<SchedulerUnavailable>()("SchedulerUnavailable", {
  message: Schema.String
}) {}

/** A parent could not give us a piece (refused, went away, timed out). */
export class TransferFailed extends Schema.TaggedError<TransferFailed>()("TransferFailed", {
  message: Schema.String,
  /** Worth retrying later from the same parent (busy, timeout) rather than blocklisting it. */
  temporary: Schema.Boolean
}) {}

export class OriginFailed extends Schema.TaggedError<OriginFailed>()("OriginFailed", {
  message: Schema.String,
  status: Schema.NullOr(Schema.Number)
}) {}

export class StoreFailed extends Schema.TaggedError<StoreFailed>()("StoreFailed", {
  message: Schema.String
}) {}

export class DownloadError extends Schema.TaggedError<DownloadError>()("DownloadError", {
  message: Schema.String
}) {}
