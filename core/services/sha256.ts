// Hashing is CPU work, not I/O, but the fast implementation differs per platform, so it is a service.
import { Context } from "effect"

export class Sha256 extends Context.Service<Sha256, {
  /** Lowercase hex sha256 of the bytes (strings are hashed as UTF-8). */
  hex(data: Uint8Array | string): string
}>()("damselfly/core/Sha256") {}
