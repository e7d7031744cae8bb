import { ChevronLeft, ChevronRight } from 'lucide-react'
import { formatNumber } from '../lib/format'
import { Button, Select } from './ui'

export const PAGE_SIZES = [25, 50, 100, 200] as const

/** Offset paging: "51–100 of 10,000", previous/next, rows per page. */
export function Pagination({
  offset,
  limit,
  total,
  onOffsetChange,
  onLimitChange,
  busy = false,
}: {
  offset: number
  limit: number
  total: number
  onOffsetChange: (offset: number) => void
  onLimitChange?: (limit: number) => void
  busy?: boolean
}) {
  const first = total === 0 ? 0 : offset + 1
  const last = Math.min(offset + limit, total)
  return (
    <nav aria-label="Pages" className="flex flex-wrap items-center justify-between gap-3 border-t border-zinc-200 px-3 py-2 text-sm dark:border-zinc-800">
      <p className="text-zinc-600 dark:text-zinc-400" aria-live="polite">
        {formatNumber(first)}–{formatNumber(last)} of {formatNumber(total)}
        {busy && <span className="sr-only"> (loading)</span>}
      </p>
      <div className="flex items-center gap-2">
        {onLimitChange !== undefined && (
          <label className="flex items-center gap-2 text-zinc-600 dark:text-zinc-400">
            <span className="hidden sm:inline">Rows</span>
            <Select
              aria-label="Rows per page"
              className="w-auto"
              value={String(limit)}
              onChange={(e) => onLimitChange(Number(e.target.value))}
            >
              {PAGE_SIZES.map((n) => (
                <option key={n} value={n}>
                  {n}
                </option>
              ))}
            </Select>
          </label>
        )}
        <Button
          size="sm"
          aria-label="Previous page"
          disabled={offset === 0}
          onClick={() => onOffsetChange(Math.max(0, offset - limit))}
          icon={<ChevronLeft className="size-4" aria-hidden="true" />}
        />
        <Button
          size="sm"
          aria-label="Next page"
          disabled={offset + limit >= total}
          onClick={() => onOffsetChange(offset + limit)}
          icon={<ChevronRight className="size-4" aria-hidden="true" />}
        />
      </div>
    </nav>
  )
}
