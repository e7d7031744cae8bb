// The signed-in frame: navigation (a sidebar on wide screens, a menu on
// phones), the theme toggle, the user menu and the page.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { Link, Outlet, useNavigate, useRouterState } from '@tanstack/react-router'
import {
  Flag,
  KeyRound,
  LayoutDashboard,
  LogOut,
  Menu,
  PackageCheck,
  ScrollText,
  Server,
  Settings,
  Terminal,
  Ticket,
  UserRound,
  X,
  type LucideIcon,
} from 'lucide-react'
import { useEffect, useState } from 'react'
import { infoQuery, logout, meQuery } from '../api/endpoints'
import { LiveIndicator, LiveProvider } from '../live/LiveProvider'
import { ThemeToggle } from './ThemeToggle'
import { Button } from './ui'

interface NavItem {
  to: '/' | '/agents' | '/updates' | '/commands' | '/registration-tokens' | '/audit' | '/settings' | '/api-tokens' | '/account'
  label: string
  icon: LucideIcon
}

const main: NavItem[] = [
  { to: '/', label: 'Overview', icon: LayoutDashboard },
  { to: '/agents', label: 'Agents', icon: Server },
  { to: '/updates', label: 'Updates', icon: PackageCheck },
  { to: '/commands', label: 'Commands', icon: Terminal },
  { to: '/registration-tokens', label: 'Registration tokens', icon: Ticket },
  { to: '/audit', label: 'Audit log', icon: ScrollText },
  { to: '/settings', label: 'Settings', icon: Settings },
]

const personal: NavItem[] = [
  { to: '/api-tokens', label: 'API tokens', icon: KeyRound },
  { to: '/account', label: 'Account', icon: UserRound },
]

function NavList({ items, label }: { items: NavItem[]; label: string }) {
  return (
    <ul aria-label={label} className="space-y-0.5">
      {items.map(({ to, label: text, icon: Icon }) => (
        <li key={to}>
          <Link
            to={to}
            activeOptions={{ exact: to === '/' }}
            className="flex items-center gap-2.5 rounded-md px-2.5 py-1.5 text-sm text-zinc-700 hover:bg-zinc-100 dark:text-zinc-300 dark:hover:bg-zinc-800"
            activeProps={{
              className: 'bg-zinc-100 font-medium text-zinc-900 dark:bg-zinc-800 dark:text-zinc-50',
              'aria-current': 'page',
            }}
          >
            <Icon className="size-4 shrink-0" aria-hidden="true" />
            {text}
          </Link>
        </li>
      ))}
    </ul>
  )
}

export function AppShell() {
  const qc = useQueryClient()
  const navigate = useNavigate()
  const me = useQuery(meQuery)
  const info = useQuery(infoQuery)
  const [menuOpen, setMenuOpen] = useState(false)
  const pathname = useRouterState({ select: (s) => s.location.pathname })
  useEffect(() => setMenuOpen(false), [pathname])
  const out = useMutation({
    mutationFn: logout,
    onSettled: async () => {
      // Leave the signed-in pages first, so that nothing refetches the
      // cleared queries with the ended session.
      await navigate({ to: '/login', replace: true })
      qc.clear()
    },
  })

  const nav = (
    <nav aria-label="Main" className="flex flex-1 flex-col gap-6 overflow-y-auto p-3">
      <NavList items={main} label="Fleet" />
      <div>
        <p className="mb-1 px-2.5 text-xs font-medium text-zinc-500 uppercase dark:text-zinc-400">You</p>
        <NavList items={personal} label="You" />
      </div>
    </nav>
  )
  const userBox = (
    <div className="border-t border-zinc-200 p-3 dark:border-zinc-800">
      <div className="flex items-center justify-between gap-2">
        <p className="min-w-0 truncate text-sm" title={me.data?.username}>
          <span className="text-zinc-500 dark:text-zinc-400">Signed in as </span>
          <span className="font-medium">{me.data?.username ?? '…'}</span>
        </p>
        <ThemeToggle />
      </div>
      <Button
        variant="ghost"
        size="sm"
        className="mt-2 w-full justify-start"
        busy={out.isPending}
        onClick={() => out.mutate()}
        icon={<LogOut className="size-4" aria-hidden="true" />}
      >
        Sign out
      </Button>
      <LiveIndicator className="mt-2 px-1" />
      {info.data !== undefined && <p className="mt-1 px-1 text-xs text-zinc-500">RedFlag {info.data.version}</p>}
    </div>
  )
  const brand = (
    <Link to="/" className="flex items-center gap-2 font-semibold">
      <span className="flex size-7 items-center justify-center rounded-md bg-red-700 text-white">
        <Flag className="size-4" aria-hidden="true" />
      </span>
      RedFlag
    </Link>
  )

  return (
    <LiveProvider>
    <div className="min-h-dvh lg:flex">
      <a
        href="#main"
        className="sr-only z-50 rounded-md bg-white px-3 py-2 text-sm shadow focus:not-sr-only focus:fixed focus:top-2 focus:left-2 dark:bg-zinc-900"
      >
        Skip to content
      </a>
      {/* Wide screens: a fixed sidebar. */}
      <aside className="sticky top-0 hidden h-dvh w-60 shrink-0 flex-col border-r border-zinc-200 bg-white lg:flex dark:border-zinc-800 dark:bg-zinc-900">
        <div className="flex h-14 items-center border-b border-zinc-200 px-4 dark:border-zinc-800">{brand}</div>
        {nav}
        {userBox}
      </aside>
      {/* Phones and tablets: a top bar with a menu. */}
      <header className="sticky top-0 z-30 flex h-14 items-center justify-between border-b border-zinc-200 bg-white px-3 lg:hidden dark:border-zinc-800 dark:bg-zinc-900">
        {brand}
        <div className="flex items-center gap-3">
        <LiveIndicator compact />
        <Button
          variant="ghost"
          size="sm"
          aria-expanded={menuOpen}
          aria-controls="mobile-nav"
          aria-label={menuOpen ? 'Close the menu' : 'Open the menu'}
          onClick={() => setMenuOpen((o) => !o)}
          icon={menuOpen ? <X className="size-5" aria-hidden="true" /> : <Menu className="size-5" aria-hidden="true" />}
        />
        </div>
      </header>
      <div
        id="mobile-nav"
        hidden={!menuOpen}
        className="fixed inset-x-0 top-14 bottom-0 z-20 flex flex-col bg-white lg:hidden dark:bg-zinc-900"
      >
        {menuOpen && (
          <>
            {nav}
            {userBox}
          </>
        )}
      </div>
      <main id="main" tabIndex={-1} className="min-w-0 flex-1 px-4 py-6 sm:px-6 lg:px-8">
        <div className="mx-auto max-w-7xl">
          <Outlet />
        </div>
      </main>
    </div>
    </LiveProvider>
  )
}
