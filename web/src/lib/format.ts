// Formatting helpers. Everything they return is plain text for React to
// render as text.

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n) || n < 0) return '—'
  let v = n
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${i === 0 ? String(v) : v.toFixed(v >= 100 ? 0 : 1)} ${units[i] ?? 'B'}`
}

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '—'
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`
  const two = (a: number, ua: string, b: number, ub: string) => (b === 0 ? `${a} ${ua}` : `${a} ${ua} ${b} ${ub}`)
  const m = Math.floor(seconds / 60)
  if (m < 60) return two(m, 'min', Math.round(seconds % 60), 's')
  const h = Math.floor(m / 60)
  if (h < 48) return two(h, 'h', m % 60, 'min')
  return two(Math.floor(h / 24), 'd', h % 24, 'h')
}

/** Seconds between two RFC 3339 times, or null. */
export function secondsBetween(from: string | null | undefined, to: string | null | undefined): number | null {
  if (!from || !to) return null
  const a = Date.parse(from)
  const b = Date.parse(to)
  if (Number.isNaN(a) || Number.isNaN(b) || b < a) return null
  return (b - a) / 1000
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' })

export function formatRelative(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return 'never'
  const t = Date.parse(iso)
  if (Number.isNaN(t)) return '—'
  const s = Math.round((t - now) / 1000)
  const abs = Math.abs(s)
  if (abs < 45) return rtf.format(s, 'second')
  if (abs < 45 * 60) return rtf.format(Math.round(s / 60), 'minute')
  if (abs < 36 * 3600) return rtf.format(Math.round(s / 3600), 'hour')
  if (abs < 45 * 86400) return rtf.format(Math.round(s / 86400), 'day')
  return formatDateTime(iso)
}

// One formatter each: toLocaleString with options builds a new Intl
// formatter on every call, which costs milliseconds over a page of rows.
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' })
const numberFormat = new Intl.NumberFormat()

export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return '—'
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return '—'
  return dateTimeFormat.format(d)
}

export function formatNumber(n: number): string {
  return numberFormat.format(n)
}

export function osLabel(os: string): string {
  switch (os) {
    case 'linux':
      return 'Linux'
    case 'windows':
      return 'Windows'
    case 'darwin':
      return 'macOS'
    default:
      return os
  }
}

/** "timed_out" → "timed out". */
export function humanize(s: string): string {
  return s.replaceAll('_', ' ')
}

/** The last 8 characters of an id: ids are time-ordered UUIDs (v7) whose first characters repeat. */
export function shortId(id: string): string {
  return id.length > 8 ? '…' + id.slice(-8) : id
}
