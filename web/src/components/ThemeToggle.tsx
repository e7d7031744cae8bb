import { Monitor, Moon, Sun } from 'lucide-react'
import { useTheme, type Theme } from '../lib/theme'
import { Button } from './ui'

const next: Record<Theme, Theme> = { system: 'light', light: 'dark', dark: 'system' }
const label: Record<Theme, string> = { system: 'System theme', light: 'Light theme', dark: 'Dark theme' }

/** Cycles system → light → dark. */
export function ThemeToggle() {
  const [theme, setTheme] = useTheme()
  const Icon = theme === 'light' ? Sun : theme === 'dark' ? Moon : Monitor
  return (
    <Button
      variant="ghost"
      size="sm"
      onClick={() => setTheme(next[theme])}
      aria-label={`${label[theme]} (switch to ${label[next[theme]].toLowerCase()})`}
      title={label[theme]}
      icon={<Icon className="size-4" aria-hidden="true" />}
    />
  )
}
