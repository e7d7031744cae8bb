import { formatDateTime, formatRelative } from '../lib/format'

/** "3 minutes ago", with the full date and time on hover and for screen readers. */
export function Time({ iso, fallback = 'never' }: { iso: string | null | undefined; fallback?: string }) {
  if (!iso) return <span className="text-zinc-500">{fallback}</span>
  return (
    <time dateTime={iso} title={formatDateTime(iso)}>
      {formatRelative(iso)}
    </time>
  )
}
