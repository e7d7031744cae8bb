// A table over TanStack Table v9 for server-side data: the server pages,
// sorts and filters; this renders one page, the sort buttons in the
// headers and, optionally, row checkboxes for bulk actions.
import {
  metaHelper,
  rowSelectionFeature,
  rowSortingFeature,
  tableFeatures,
  useTable,
  type ColumnDef,
  type RowData,
  type RowSelectionState,
  type SortingState,
  type Updater,
} from '@tanstack/react-table'
import { ArrowDown, ArrowUp, ArrowUpDown } from 'lucide-react'
import type { ReactNode } from 'react'
import { cx } from './ui'

/** Column meta, read through `columnDef.meta`. */
export interface ColumnMetaInfo {
  /** Classes for the header and cells of this column (e.g. hide on small screens). */
  className?: string
}

export const tableFeaturesSet = tableFeatures({
  rowSortingFeature,
  rowSelectionFeature,
  columnMeta: metaHelper<ColumnMetaInfo>(),
})
export type Features = typeof tableFeaturesSet
export type Columns<T extends RowData> = Array<ColumnDef<Features, T>>

const noSelection: RowSelectionState = {}
const noSorting: SortingState = []

export interface DataTableProps<T extends RowData> {
  columns: Columns<T>
  data: T[]
  getRowId: (row: T) => string
  caption: string
  sorting?: SortingState
  onSortingChange?: (s: SortingState) => void
  selection?: RowSelectionState
  onSelectionChange?: (s: RowSelectionState) => void
  /** Dims the rows while a new page loads (the previous page stays shown). */
  stale?: boolean
  /** Shown in place of the body when there are no rows. */
  empty?: ReactNode
}

function apply<S>(u: Updater<S>, prev: S): S {
  return typeof u === 'function' ? (u as (p: S) => S)(prev) : u
}

export function DataTable<T extends RowData>({
  columns,
  data,
  getRowId,
  caption,
  sorting,
  onSortingChange,
  selection,
  onSelectionChange,
  stale = false,
  empty,
}: DataTableProps<T>) {
  const sortState = sorting ?? noSorting
  const selState = selection ?? noSelection
  const table = useTable({
    features: tableFeaturesSet,
    columns,
    data,
    getRowId: (row: T) => getRowId(row),
    manualSorting: true,
    enableSorting: onSortingChange !== undefined,
    enableSortingRemoval: true,
    enableMultiSort: false,
    enableRowSelection: onSelectionChange !== undefined,
    state: { sorting: sortState, rowSelection: selState },
    onSortingChange: (u: Updater<SortingState>) => onSortingChange?.(apply(u, sortState)),
    onRowSelectionChange: (u: Updater<RowSelectionState>) => onSelectionChange?.(apply(u, selState)),
  })
  const selectable = onSelectionChange !== undefined
  const rows = table.getRowModel().rows
  return (
    <div className="overflow-x-auto">
      <table className={cx('w-full text-left text-sm', stale && 'opacity-60')}>
        <caption className="sr-only">{caption}</caption>
        <thead className="border-b border-zinc-200 text-xs text-zinc-500 uppercase dark:border-zinc-800 dark:text-zinc-400">
          {table.getHeaderGroups().map((group) => (
            <tr key={group.id}>
              {selectable && (
                <th scope="col" className="w-10 px-3 py-2">
                  <input
                    type="checkbox"
                    aria-label="Select all rows on this page"
                    className="size-4 accent-red-700"
                    checked={rows.length > 0 && table.getIsAllPageRowsSelected()}
                    ref={(el) => {
                      if (el !== null) el.indeterminate = table.getIsSomePageRowsSelected() && !table.getIsAllPageRowsSelected()
                    }}
                    onChange={table.getToggleAllPageRowsSelectedHandler()}
                  />
                </th>
              )}
              {group.headers.map((header) => {
                const col = header.column
                const sorted = col.getIsSorted()
                const canSort = col.getCanSort()
                const meta = col.columnDef.meta
                return (
                  <th
                    key={header.id}
                    scope="col"
                    className={cx('px-3 py-2 font-medium whitespace-nowrap', meta?.className)}
                    aria-sort={sorted === 'asc' ? 'ascending' : sorted === 'desc' ? 'descending' : undefined}
                  >
                    {header.isPlaceholder ? null : canSort ? (
                      <button
                        type="button"
                        className="inline-flex items-center gap-1 uppercase hover:text-zinc-900 dark:hover:text-zinc-100"
                        onClick={col.getToggleSortingHandler()}
                      >
                        <table.FlexRender header={header} />
                        {sorted === 'asc' ? (
                          <ArrowUp className="size-3.5" aria-hidden="true" />
                        ) : sorted === 'desc' ? (
                          <ArrowDown className="size-3.5" aria-hidden="true" />
                        ) : (
                          <ArrowUpDown className="size-3.5 opacity-40" aria-hidden="true" />
                        )}
                      </button>
                    ) : (
                      <table.FlexRender header={header} />
                    )}
                  </th>
                )
              })}
            </tr>
          ))}
        </thead>
        <tbody className="divide-y divide-zinc-100 dark:divide-zinc-800">
          {rows.map((row) => (
            <tr key={row.id} className={cx('hover:bg-zinc-50 dark:hover:bg-zinc-800/50', row.getIsSelected() && 'bg-red-50/60 dark:bg-red-950/30')}>
              {selectable && (
                <td className="px-3 py-2">
                  <input
                    type="checkbox"
                    className="size-4 accent-red-700"
                    aria-label={`Select row ${row.id}`}
                    checked={row.getIsSelected()}
                    onChange={row.getToggleSelectedHandler()}
                  />
                </td>
              )}
              {row.getAllCells().map((cell) => (
                <td key={cell.id} className={cx('px-3 py-2 align-top', cell.column.columnDef.meta?.className)}>
                  <table.FlexRender cell={cell} />
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length === 0 && empty}
    </div>
  )
}
