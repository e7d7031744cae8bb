// Loading, empty and error states: every page shows one of them instead of
// a blank area.
import { AlertTriangle, Inbox, LoaderCircle, RefreshCw } from 'lucide-react'
import type { ReactNode } from 'react'
import { errorMessage, isApiError } from '../api/client'
import { Button, cx } from './ui'

export function LoadingState({ label = 'Loading…', className }: { label?: string; className?: string }) {
  return (
    <div role="status" className={cx('flex items-center justify-center gap-2 py-10 text-sm text-zinc-500 dark:text-zinc-400', className)}>
      <LoaderCircle className="size-4 animate-spin" aria-hidden="true" />
      {label}
    </div>
  )
}

export function EmptyState({ title, children, action }: { title: string; children?: ReactNode; action?: ReactNode }) {
  return (
    <div className="flex flex-col items-center justify-center gap-2 px-4 py-10 text-center">
      <Inbox className="size-8 text-zinc-400" aria-hidden="true" />
      <p className="text-sm font-medium">{title}</p>
      {children !== undefined && <div className="max-w-md text-sm text-zinc-600 dark:text-zinc-400">{children}</div>}
      {action}
    </div>
  )
}

/** The server's own message for a failed request, with a retry. */
export function ErrorState({ error, onRetry, title = 'This could not be loaded' }: { error: unknown; onRetry?: () => void; title?: string }) {
  const rid = isApiError(error) ? error.requestId : null
  return (
    <div role="alert" className="flex flex-col items-center justify-center gap-2 px-4 py-10 text-center">
      <AlertTriangle className="size-8 text-red-600 dark:text-red-400" aria-hidden="true" />
      <p className="text-sm font-medium">{title}</p>
      <p className="max-w-xl text-sm text-zinc-700 dark:text-zinc-300">{errorMessage(error)}</p>
      {rid !== null && <p className="text-xs text-zinc-500">Request id: {rid}</p>}
      {onRetry !== undefined && (
        <Button size="sm" onClick={onRetry} icon={<RefreshCw className="size-4" aria-hidden="true" />}>
          Try again
        </Button>
      )}
    </div>
  )
}

/** A one-line error under a form or above a table. */
export function InlineError({ error }: { error: unknown }) {
  if (error === null || error === undefined) return null
  return (
    <p role="alert" className="rounded-md border border-red-200 bg-red-50 px-3 py-2 text-sm text-red-800 dark:border-red-900 dark:bg-red-950 dark:text-red-300">
      {errorMessage(error)}
    </p>
  )
}

export function Notice({ children }: { children: ReactNode }) {
  return (
    <p role="status" className="rounded-md border border-green-200 bg-green-50 px-3 py-2 text-sm text-green-800 dark:border-green-900 dark:bg-green-950 dark:text-green-300">
      {children}
    </p>
  )
}
