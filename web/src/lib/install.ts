// The one-line agent install commands shown with a new registration token.

export interface InstallCommand {
  platform: 'linux' | 'windows' | 'darwin'
  label: string
  command: string
}

/** Single quotes keep the shell from reading the URL; a quote inside is escaped for it. */
function shQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`
}

function psQuote(s: string): string {
  return `'${s.replaceAll("'", "''")}'`
}

export function installCommands(server: string, token: string): InstallCommand[] {
  const base = server.replace(/\/+$/, '')
  const url = (p: string) => `${base}/install/${p}?token=${encodeURIComponent(token)}`
  return [
    { platform: 'linux', label: 'Linux (as root)', command: `curl -fsSL ${shQuote(url('linux'))} | sudo sh` },
    {
      platform: 'windows',
      label: 'Windows (PowerShell as Administrator)',
      command: `irm ${psQuote(url('windows'))} | iex`,
    },
    { platform: 'darwin', label: 'macOS (Terminal)', command: `curl -fsSL ${shQuote(url('darwin'))} | sudo sh` },
  ]
}
