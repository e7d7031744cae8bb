// Parsing of URL search parameters into typed, validated page state. A
// value that does not parse is dropped, never trusted.

export type Search = Record<string, unknown>

export function str(v: unknown, max = 200): string | undefined {
  if (typeof v === 'number') return String(v)
  if (typeof v !== 'string' || v === '' || v.length > max) return undefined
  return v
}

export function int(v: unknown, min: number, max: number): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN
  if (!Number.isInteger(n) || n < min || n > max) return undefined
  return n
}

export function oneOf<T extends string>(v: unknown, allowed: readonly T[]): T | undefined {
  return typeof v === 'string' && (allowed as readonly string[]).includes(v) ? (v as T) : undefined
}

/** Drops undefined values so they stay out of the URL. */
export function compact<T extends object>(o: T): T {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v
  return out as T
}

/** A same-origin path to return to after signing in, or undefined. */
export function safeRedirect(v: unknown): string | undefined {
  const s = str(v, 2000)
  if (s === undefined || !s.startsWith('/') || s.startsWith('//') || s.startsWith('/\\') || s.startsWith('/login')) return undefined
  return s
}
