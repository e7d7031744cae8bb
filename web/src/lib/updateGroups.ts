// An agent's open updates grouped by package manager, from the counts the
// agent detail carries: one group per package type, its total and its
// counts by severity (most urgent first), the most urgent groups first.
import { SEVERITIES, type UpdateCounts } from '../api/types'

export interface SeverityCount {
  severity: string
  count: number
}

export interface PackageGroup {
  packageType: string
  total: number
  /** Non-zero counts only, in SEVERITIES order; severities outside it last, by name. */
  bySeverity: SeverityCount[]
}

function rank(severity: string): number {
  const i = (SEVERITIES as readonly string[]).indexOf(severity)
  return i < 0 ? SEVERITIES.length : i
}

function sortSeverities(counts: Record<string, number>): SeverityCount[] {
  return Object.entries(counts)
    .filter(([, n]) => Number.isFinite(n) && n > 0)
    .map(([severity, count]) => ({ severity, count }))
    .sort((a, b) => rank(a.severity) - rank(b.severity) || a.severity.localeCompare(b.severity))
}

/** The counts by severity, non-zero only, most urgent first. */
export function severityCounts(counts: Record<string, number> | null | undefined): SeverityCount[] {
  return sortSeverities(counts ?? {})
}

/**
 * Groups the open updates by package type. Types with no open update are
 * left out. Order: more critical updates first, then more important, … then
 * the larger total, then the name.
 */
export function groupByPackageType(c: UpdateCounts | null | undefined): PackageGroup[] {
  if (c === null || c === undefined) return []
  const detail = c.by_package_type_severity ?? {}
  const types = new Set([...Object.keys(c.by_package_type), ...Object.keys(detail)])
  const groups: PackageGroup[] = []
  for (const packageType of types) {
    const bySeverity = sortSeverities(detail[packageType] ?? {})
    const summed = bySeverity.reduce((n, s) => n + s.count, 0)
    const total = Math.max(c.by_package_type[packageType] ?? 0, summed)
    if (total <= 0) continue
    groups.push({ packageType, total, bySeverity })
  }
  const countOf = (g: PackageGroup, sev: string) => g.bySeverity.find((s) => s.severity === sev)?.count ?? 0
  return groups.sort((a, b) => {
    for (const sev of SEVERITIES) {
      const d = countOf(b, sev) - countOf(a, sev)
      if (d !== 0) return d
    }
    return b.total - a.total || a.packageType.localeCompare(b.packageType)
  })
}
