// Processes log one JSON object per line to stderr: stdout stays free for command output (`get`),
// and the lines are machine-readable for tests and log shippers.
import { Logger } from "effect"

export const JsonStderrLogger = Logger.layer([Logger.withConsoleError(Logger.formatJson)])
