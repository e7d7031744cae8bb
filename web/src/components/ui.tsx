// Small building blocks shared by every page.
import { LoaderCircle, Search } from 'lucide-react'
import { useId, type ButtonHTMLAttributes, type InputHTMLAttributes, type ReactNode, type SelectHTMLAttributes } from 'react'
import { humanize } from '../lib/format'
import { oneOf } from '../lib/search'

export function cx(...parts: Array<string | false | null | undefined>): string {
  return parts.filter(Boolean).join(' ')
}

type Variant = 'primary' | 'secondary' | 'danger' | 'ghost'

const variants: Record<Variant, string> = {
  primary: 'bg-red-700 text-white hover:bg-red-800 disabled:bg-red-700/60 dark:bg-red-600 dark:hover:bg-red-500',
  secondary:
    'border border-zinc-300 bg-white text-zinc-900 hover:bg-zinc-100 dark:border-zinc-700 dark:bg-zinc-900 dark:text-zinc-100 dark:hover:bg-zinc-800',
  danger:
    'border border-red-300 bg-white text-red-700 hover:bg-red-50 dark:border-red-800 dark:bg-zinc-900 dark:text-red-400 dark:hover:bg-red-950',
  ghost: 'text-zinc-700 hover:bg-zinc-100 dark:text-zinc-300 dark:hover:bg-zinc-800',
}

export const buttonClass = (variant: Variant = 'secondary', size: 'sm' | 'md' = 'md') =>
  cx(
    'inline-flex items-center justify-center gap-1.5 rounded-md font-medium whitespace-nowrap transition-colors disabled:cursor-not-allowed disabled:opacity-60',
    size === 'sm' ? 'h-8 px-2.5 text-sm' : 'h-9 px-3.5 text-sm',
    variants[variant],
  )

export interface ButtonProps extends ButtonHTMLAttributes<HTMLButtonElement> {
  variant?: Variant
  size?: 'sm' | 'md'
  busy?: boolean
  icon?: ReactNode
}

export function Button({ variant = 'secondary', size = 'md', busy = false, icon, className, children, disabled, type, ...rest }: ButtonProps) {
  return (
    <button
      type={type ?? 'button'}
      className={cx(buttonClass(variant, size), className)}
      disabled={disabled === true || busy}
      aria-busy={busy || undefined}
      {...rest}
    >
      {busy ? <LoaderCircle className="size-4 animate-spin" aria-hidden="true" /> : icon}
      {children}
    </button>
  )
}

const inputClass =
  'block w-full rounded-md border border-zinc-300 bg-white px-3 py-1.5 text-sm text-zinc-900 placeholder:text-zinc-400 disabled:opacity-60 aria-invalid:border-red-500 dark:border-zinc-700 dark:bg-zinc-900 dark:text-zinc-100 dark:placeholder:text-zinc-500'

export function Input({ className, ...rest }: InputHTMLAttributes<HTMLInputElement>) {
  return <input className={cx(inputClass, 'h-9', className)} {...rest} />
}

export function Select({ className, children, ...rest }: SelectHTMLAttributes<HTMLSelectElement>) {
  // Full width unless the caller sets a width (filters beside each other).
  const width = className !== undefined && /(^|\s)(sm:|md:)?w-/.test(className) ? '' : 'w-full'
  return (
    <select className={cx(inputClass.replace('w-full ', ''), width, 'h-9 pr-8', className)} {...rest}>
      {children}
    </select>
  )
}

/** A labelled form control with optional help and error text, wired with ids for screen readers. */
export function Field({
  label,
  help,
  error,
  children,
}: {
  label: string
  help?: ReactNode
  error?: string | null | undefined
  children: (props: { id: string; 'aria-describedby'?: string; 'aria-invalid'?: boolean }) => ReactNode
}) {
  const id = useId()
  const helpId = `${id}-help`
  const errId = `${id}-err`
  const describedBy = [help !== undefined ? helpId : '', error ? errId : ''].filter(Boolean).join(' ')
  return (
    <div className="space-y-1">
      <label htmlFor={id} className="block text-sm font-medium text-zinc-800 dark:text-zinc-200">
        {label}
      </label>
      {children({
        id,
        ...(describedBy !== '' && { 'aria-describedby': describedBy }),
        ...(error ? { 'aria-invalid': true } : {}),
      })}
      {help !== undefined && (
        <p id={helpId} className="text-xs text-zinc-500 dark:text-zinc-400">
          {help}
        </p>
      )}
      {error ? (
        <p id={errId} className="text-xs text-red-700 dark:text-red-400">
          {error}
        </p>
      ) : null}
    </div>
  )
}

export function Card({ title, actions, children, className }: { title?: ReactNode; actions?: ReactNode; children: ReactNode; className?: string }) {
  return (
    <section
      className={cx(
        'rounded-lg border border-zinc-200 bg-white shadow-xs dark:border-zinc-800 dark:bg-zinc-900',
        className,
      )}
    >
      {(title !== undefined || actions !== undefined) && (
        <header className="flex flex-wrap items-center justify-between gap-2 border-b border-zinc-200 px-4 py-3 dark:border-zinc-800">
          {title !== undefined && <h2 className="text-sm font-semibold">{title}</h2>}
          {actions}
        </header>
      )}
      <div className="p-4">{children}</div>
    </section>
  )
}

export function PageHeader({ title, description, actions }: { title: string; description?: ReactNode; actions?: ReactNode }) {
  return (
    <div className="mb-5 flex flex-wrap items-end justify-between gap-3">
      <div className="min-w-0">
        <h1 className="text-xl font-semibold tracking-tight">{title}</h1>
        {description !== undefined && <p className="mt-1 text-sm text-zinc-600 dark:text-zinc-400">{description}</p>}
      </div>
      {actions !== undefined && <div className="flex flex-wrap gap-2">{actions}</div>}
    </div>
  )
}

type Tone = 'green' | 'amber' | 'red' | 'zinc' | 'blue' | 'violet'

const tones: Record<Tone, string> = {
  green: 'bg-green-100 text-green-800 dark:bg-green-950 dark:text-green-300',
  amber: 'bg-amber-100 text-amber-900 dark:bg-amber-950 dark:text-amber-300',
  red: 'bg-red-100 text-red-800 dark:bg-red-950 dark:text-red-300',
  zinc: 'bg-zinc-100 text-zinc-700 dark:bg-zinc-800 dark:text-zinc-300',
  blue: 'bg-blue-100 text-blue-800 dark:bg-blue-950 dark:text-blue-300',
  violet: 'bg-violet-100 text-violet-800 dark:bg-violet-950 dark:text-violet-300',
}

export function Badge({ tone = 'zinc', children }: { tone?: Tone; children: ReactNode }) {
  return (
    <span className={cx('inline-flex items-center rounded-full px-2 py-0.5 text-xs font-medium whitespace-nowrap', tones[tone])}>
      {children}
    </span>
  )
}

const statusTones: Record<string, Tone> = {
  online: 'green',
  offline: 'amber',
  stale: 'zinc',
  active: 'green',
  retiring: 'amber',
  expired: 'zinc',
  revoked: 'red',
  exhausted: 'zinc',
  pending: 'blue',
  sent: 'violet',
  succeeded: 'green',
  failed: 'red',
  timed_out: 'red',
  cancelled: 'zinc',
  approved: 'blue',
  installing: 'violet',
  installed: 'green',
  rejected: 'zinc',
  ignored: 'zinc',
  critical: 'red',
  important: 'amber',
  moderate: 'blue',
  low: 'zinc',
  unknown: 'zinc',
  needs_confirmation: 'amber',
  resolved: 'zinc',
  updates_available: 'amber',
  up_to_date: 'green',
  scan_failed: 'red',
  scan_stale: 'amber',
  never_scanned: 'zinc',
  ok: 'green',
  error: 'red',
}

/** A state word (agent, command, token, update, severity) as a coloured badge. */
export function StatusBadge({ status }: { status: string }) {
  return <Badge tone={statusTones[status] ?? 'zinc'}>{humanize(status)}</Badge>
}

/** Text from an agent or the server, shown literally in a monospace block. */
export function Pre({ children, className }: { children: string; className?: string }) {
  return (
    <pre
      className={cx(
        'max-h-96 overflow-auto rounded-md bg-zinc-100 p-3 font-mono text-xs break-all whitespace-pre-wrap text-zinc-800 dark:bg-zinc-950 dark:text-zinc-200',
        className,
      )}
    >
      {children}
    </pre>
  )
}

export function DescriptionList({ items }: { items: Array<[string, ReactNode]> }) {
  return (
    <dl className="grid grid-cols-1 gap-x-6 gap-y-3 sm:grid-cols-2">
      {items.map(([k, v]) => (
        <div key={k} className="min-w-0">
          <dt className="text-xs font-medium text-zinc-500 dark:text-zinc-400">{k}</dt>
          <dd className="mt-0.5 text-sm break-words">{v}</dd>
        </div>
      ))}
    </dl>
  )
}

/**
 * A filter drop-down over a fixed list: the first entry ('' in the DOM)
 * means no filter and reaches onChange as undefined; anything not in the
 * list does too, so a tampered value never reaches the URL or the API.
 */
export function FilterSelect<T extends string>({
  label,
  value,
  options,
  allLabel,
  format = humanize,
  onChange,
}: {
  label: string
  value: T | undefined
  options: readonly T[]
  allLabel: string
  format?: (v: T) => string
  onChange: (v: T | undefined) => void
}) {
  return (
    <Select
      aria-label={label}
      className="w-auto"
      value={value ?? ''}
      onChange={(e) => onChange(oneOf(e.target.value, options))}
    >
      <option value="">{allLabel}</option>
      {options.map((o) => (
        <option key={o} value={o}>
          {format(o)}
        </option>
      ))}
    </Select>
  )
}

/** The list pages' search box: a search field with a magnifier, growing to fill the filter bar. */
export function SearchInput({
  label,
  placeholder,
  value,
  onChange,
}: {
  label: string
  placeholder: string
  value: string
  onChange: (v: string) => void
}) {
  return (
    <div className="relative min-w-0 flex-1 basis-48">
      <Search className="pointer-events-none absolute top-2.5 left-2.5 size-4 text-zinc-400" aria-hidden="true" />
      <Input
        type="search"
        aria-label={label}
        placeholder={placeholder}
        className="pl-8"
        value={value}
        onChange={(e) => onChange(e.target.value)}
      />
    </div>
  )
}
