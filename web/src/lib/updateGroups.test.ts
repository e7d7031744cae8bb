import { describe, expect, it } from 'vitest'
import type { UpdateCounts } from '../api/types'
import { groupByPackageType, severityCounts } from './updateGroups'

const counts = (c: Partial<UpdateCounts>): UpdateCounts => ({
  total: 0,
  by_severity: {},
  by_package_type: {},
  by_status: {},
  ...c,
})

describe('groupByPackageType', () => {
  it('is empty without counts or open updates', () => {
    expect(groupByPackageType(undefined)).toEqual([])
    expect(groupByPackageType(null)).toEqual([])
    expect(groupByPackageType(counts({ by_package_type: { apt: 0 } }))).toEqual([])
  })

  it('groups by package type with severities most urgent first, most urgent groups first', () => {
    const c = counts({
      total: 9,
      by_package_type: { snap: 4, apt: 3, dnf: 2 },
      by_package_type_severity: {
        snap: { low: 4 },
        apt: { low: 1, critical: 1, important: 1 },
        dnf: { important: 2, critical: 0 },
      },
    })
    expect(groupByPackageType(c)).toEqual([
      {
        packageType: 'apt',
        total: 3,
        bySeverity: [
          { severity: 'critical', count: 1 },
          { severity: 'important', count: 1 },
          { severity: 'low', count: 1 },
        ],
      },
      { packageType: 'dnf', total: 2, bySeverity: [{ severity: 'important', count: 2 }] },
      { packageType: 'snap', total: 4, bySeverity: [{ severity: 'low', count: 4 }] },
    ])
  })

  it('orders equal severities by total, then name, and keeps types without a breakdown', () => {
    const c = counts({ by_package_type: { flatpak: 2, apt: 2, winget: 5 } })
    expect(groupByPackageType(c).map((g) => [g.packageType, g.total, g.bySeverity.length])).toEqual([
      ['winget', 5, 0],
      ['apt', 2, 0],
      ['flatpak', 2, 0],
    ])
  })

  it('puts unknown severities last and never trusts a total below its parts', () => {
    const c = counts({ by_package_type: { apt: 1 }, by_package_type_severity: { apt: { zzz: 1, unknown: 1, critical: 1 } } })
    const [g] = groupByPackageType(c)
    expect(g?.total).toBe(3)
    expect(g?.bySeverity.map((s) => s.severity)).toEqual(['critical', 'unknown', 'zzz'])
  })
})

describe('severityCounts', () => {
  it('drops zeros and sorts by urgency', () => {
    expect(severityCounts({ low: 2, critical: 0, important: 1, moderate: 0, unknown: 0 })).toEqual([
      { severity: 'important', count: 1 },
      { severity: 'low', count: 2 },
    ])
    expect(severityCounts(undefined)).toEqual([])
  })
})
