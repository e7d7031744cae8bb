import { describe, expect, it } from 'vitest'
import { parseAgentsSearch } from '../pages/AgentsPage'
import { sortToState, stateToSort } from './sort'
import { formatBytes, formatDuration } from './format'
import { installCommands } from './install'
import { safeRedirect } from './search'

describe('installCommands', () => {
  it('builds the three one-liners with the token in the query', () => {
    const cmds = installCommands('https://rf.example:8443/', 'rf_reg_abc+/=')
    expect(cmds.map((c) => c.platform)).toEqual(['linux', 'windows', 'darwin'])
    expect(cmds[0]?.command).toBe("curl -fsSL 'https://rf.example:8443/install/linux?token=rf_reg_abc%2B%2F%3D' | sudo sh")
    expect(cmds[1]?.command).toBe("irm 'https://rf.example:8443/install/windows?token=rf_reg_abc%2B%2F%3D' | iex")
    expect(cmds[2]?.command).toBe("curl -fsSL 'https://rf.example:8443/install/darwin?token=rf_reg_abc%2B%2F%3D' | sudo sh")
  })

  it('keeps a quote in the URL from ending the shell string', () => {
    const cmds = installCommands("http://x'y", 't')
    expect(cmds[0]?.command).toBe("curl -fsSL 'http://x'\\''y/install/linux?token=t' | sudo sh")
    expect(cmds[1]?.command).toBe("irm 'http://x''y/install/windows?token=t' | iex")
  })
})

describe('search parameters', () => {
  it('accepts only same-origin redirects', () => {
    expect(safeRedirect('/agents?status=online')).toBe('/agents?status=online')
    for (const bad of ['//evil.example', 'https://evil.example', '/\\evil', 'agents', '/login?redirect=/x', 42, null]) {
      expect(safeRedirect(bad)).toBeUndefined()
    }
  })

  it('validates the agents list state', () => {
    expect(parseAgentsSearch({ offset: '100', limit: 50, sort: '-last_seen_at', status: 'online', os: 'darwin', q: 'web' })).toEqual({
      offset: 100,
      limit: 50,
      sort: '-last_seen_at',
      status: 'online',
      os: 'darwin',
      q: 'web',
    })
    expect(parseAgentsSearch({ offset: '-1', limit: 9999, sort: 'machine_id', status: 'gone', os: 'beos', pkg: 'rpm' })).toEqual({})
    expect(parseAgentsSearch({ sort: '-critical_updates', pkg: 'apt' })).toEqual({ sort: '-critical_updates', pkg: 'apt' })
    expect(parseAgentsSearch({ sort: 'pending_updates' })).toEqual({ sort: 'pending_updates' })
  })

  it('maps sorting to the API sort parameter and back', () => {
    expect(stateToSort([{ id: 'hostname', desc: true }])).toBe('-hostname')
    expect(stateToSort([])).toBeUndefined()
    expect(sortToState('last_seen_at')).toEqual([{ id: 'last_seen_at', desc: false }])
  })
})

describe('format', () => {
  it('formats sizes and durations', () => {
    expect(formatBytes(0)).toBe('0 B')
    expect(formatBytes(1536)).toBe('1.5 KiB')
    expect(formatBytes(undefined)).toBe('—')
    expect(formatDuration(300)).toBe('5 min')
    expect(formatDuration(3661)).toBe('1 h 1 min')
    expect(formatDuration(604800)).toBe('7 d')
    expect(formatDuration(0.25)).toBe('250 ms')
  })
})
