// Sha256 on node:crypto (native, OpenSSL with the CPU's SHA extensions where it has them).
//
// A piece fetched from a parent is hashed while its bytes arrive, on the piece hash thread
// (runtime/piece-client.ts, runtime/piece-hash-thread.ts), so the hash overlaps the network. That digest is
// remembered for that exact buffer, and `hex` answers it instead of hashing the 4 MiB again: the
// conductor still compares every piece's digest with the expected one. A remembered digest is only
// ever set by whoever filled the buffer, once it is complete, and nothing writes to a piece buffer
// after that until the store is done with it; a pooled buffer's digest is forgotten when it is taken
// again (runtime/piece-buffer-pool.ts).
import { createHash } from "node:crypto"
import { Layer } from "effect"
import { Sha256 } from "../core/services/sha256.ts"

export const sha256Hex = (data: Uint8Array | string): string => createHash("sha256").update(data).digest("hex")

const knownDigests = new WeakMap<Uint8Array, string>()

/** Records the digest of `bytes`, computed over exactly these bytes by the caller that filled them. */
export const rememberDigest = (bytes: Uint8Array, hex: string): void => {
  knownDigests.set(bytes, hex)
}

/** Forgets what `rememberDigest` recorded for `bytes` (its content is about to change). */
export const forgetDigest = (bytes: Uint8Array): void => {
  knownDigests.delete(bytes)
}

/** The remembered digest of this buffer, or a fresh hash. */
export const pieceSha256Hex = (data: Uint8Array | string): string =>
  (typeof data === "string" ? undefined : knownDigests.get(data)) ?? sha256Hex(data)

export const NodeSha256 = Layer.succeed(Sha256)(Sha256.of({ hex: pieceSha256Hex }))
