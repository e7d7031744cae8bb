// Light and dark mode: "system" follows prefers-color-scheme (pure CSS, so
// there is no flash before the script runs); "light" and "dark" put a class
// on <html> that wins over the media query.
import { useCallback, useSyncExternalStore } from 'react'

export type Theme = 'system' | 'light' | 'dark'
const KEY = 'redflag-theme'
const listeners = new Set<() => void>()

function read(): Theme {
  try {
    const v = localStorage.getItem(KEY)
    return v === 'light' || v === 'dark' ? v : 'system'
  } catch {
    return 'system'
  }
}

export function applyTheme(t: Theme = read()): void {
  const root = document.documentElement
  root.classList.toggle('dark', t === 'dark')
  root.classList.toggle('light', t === 'light')
}

export function setTheme(t: Theme): void {
  try {
    if (t === 'system') localStorage.removeItem(KEY)
    else localStorage.setItem(KEY, t)
  } catch {
    // storage refused (private mode): the choice lasts for this page only
  }
  applyTheme(t)
  for (const l of listeners) l()
}

export function useTheme(): [Theme, (t: Theme) => void] {
  const theme = useSyncExternalStore(
    (cb) => {
      listeners.add(cb)
      return () => listeners.delete(cb)
    },
    read,
    () => 'system' as Theme,
  )
  const set = useCallback((t: Theme) => setTheme(t), [])
  return [theme, set]
}
