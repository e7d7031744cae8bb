// The API's sort parameter ("hostname", "-last_seen_at") and the table's
// sorting state, both ways.
import type { SortingState } from '@tanstack/react-table'

export function sortToState(sort: string | undefined): SortingState {
  if (sort === undefined) return []
  return [{ id: sort.replace(/^-/, ''), desc: sort.startsWith('-') }]
}

export function stateToSort(s: SortingState): string | undefined {
  const first = s[0]
  if (first === undefined) return undefined
  return (first.desc ? '-' : '') + first.id
}
