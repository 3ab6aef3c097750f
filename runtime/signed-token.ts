// The one token format the schedulers sign with their Ed25519 key: base64url(JSON claims) "."
// base64url(signature over the first part). Private-blob capabilities (runtime/blob-access.ts) and
// scheduler triggers (runtime/scheduler-trigger.ts) are both this, with their own claims.
import { type KeyObject, sign, verify } from "node:crypto"
import { Schema } from "effect"

export const signClaims = (claims: unknown, privateKey: KeyObject): string => {
  const payload = Buffer.from(JSON.stringify(claims)).toString("base64url")
  return `${payload}.${sign(null, Buffer.from(payload), privateKey).toString("base64url")}`
}

/**
 * A token's claims once its form, claims and signature check out; else why not, prefixed with `header`
 * (the header it came in). Expiry and what the claims must name are the caller's to check.
 */
export const openSignedToken = <A extends { readonly kid: string }, I>(
  token: string,
  header: string,
  claimsSchema: Schema.Codec<A, I>,
  keys: ReadonlyMap<string, KeyObject>,
  unknownKeyHint = ""
): { readonly claims: A; readonly problem?: undefined } | { readonly problem: string } => {
  const [payload, signature, extra] = token.split(".")
  if (payload === undefined || signature === undefined || extra !== undefined) return { problem: `${header}: malformed` }
  let claims: A
  try {
    claims = Schema.decodeUnknownSync(claimsSchema)(JSON.parse(Buffer.from(payload, "base64url").toString("utf8")))
  } catch {
    return { problem: `${header}: malformed claims` }
  }
  const key = keys.get(claims.kid)
  if (key === undefined) return { problem: `${header}: signed by an unknown key ${JSON.stringify(claims.kid)}${unknownKeyHint}` }
  if (!verify(null, Buffer.from(payload), key, Buffer.from(signature, "base64url"))) return { problem: `${header}: bad signature` }
  return { claims }
}
