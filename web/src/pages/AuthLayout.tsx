import { Flag } from 'lucide-react'
import type { ReactNode } from 'react'
import { ThemeToggle } from '../components/ThemeToggle'

/** The frame of the pages shown before signing in. */
export function AuthLayout({ title, children }: { title: string; children: ReactNode }) {
  return (
    <div className="flex min-h-dvh flex-col items-center justify-center px-4 py-10">
      <div className="absolute top-3 right-3">
        <ThemeToggle />
      </div>
      <main className="w-full max-w-sm">
        <div className="mb-6 flex items-center justify-center gap-2">
          <span className="flex size-9 items-center justify-center rounded-lg bg-red-700 text-white">
            <Flag className="size-5" aria-hidden="true" />
          </span>
          <span className="text-lg font-semibold">RedFlag</span>
        </div>
        <div className="rounded-lg border border-zinc-200 bg-white p-6 shadow-sm dark:border-zinc-800 dark:bg-zinc-900">
          <h1 className="mb-4 text-lg font-semibold">{title}</h1>
          {children}
        </div>
      </main>
    </div>
  )
}
