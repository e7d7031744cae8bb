import { Link } from '@tanstack/react-router'
import { COMMAND_STATES, COMMAND_TYPES, type CommandState, type CommandType } from '../api/types'
import { CommandsTable } from '../components/CommandsTable'
import { Card, FilterSelect, PageHeader } from '../components/ui'
import { shortId } from '../lib/format'
import { compact, int, oneOf, str, type Search } from '../lib/search'

export interface CommandsSearch {
  offset?: number
  limit?: number
  status?: CommandState
  type?: CommandType
  agent_id?: string
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export function parseCommandsSearch(s: Search): CommandsSearch {
  const agent = str(s['agent_id'], 36)
  return compact({
    offset: int(s['offset'], 0, 1 << 30),
    limit: int(s['limit'], 1, 500),
    status: oneOf(s['status'], COMMAND_STATES),
    type: oneOf(s['type'], COMMAND_TYPES),
    agent_id: agent !== undefined && UUID.test(agent) ? agent : undefined,
  })
}

/** Fleet-wide command history. */
export function CommandsPage({ search, onSearch }: { search: CommandsSearch; onSearch: (s: CommandsSearch) => void }) {
  return (
    <>
      <PageHeader title="Commands" description="Everything queued for agents, newest first, with its result and output." />
      <Card>
        <div className="-m-4">
          <div className="flex flex-wrap items-center gap-2 border-b border-zinc-200 p-3 dark:border-zinc-800">
            <FilterSelect
              label="Filter by status"
              value={search.status}
              options={COMMAND_STATES}
              allLabel="All statuses"
              onChange={(v) => onSearch(compact({ ...search, status: v, offset: undefined }))}
            />
            <FilterSelect
              label="Filter by type"
              value={search.type}
              options={COMMAND_TYPES}
              allLabel="All types"
              onChange={(v) => onSearch(compact({ ...search, type: v, offset: undefined }))}
            />
            {search.agent_id !== undefined && (
              <span className="flex items-center gap-2 text-sm">
                Agent{' '}
                <Link to="/agents/$agentId" params={{ agentId: search.agent_id }} className="font-mono text-red-700 hover:underline dark:text-red-400">
                  {shortId(search.agent_id)}
                </Link>
                <button
                  type="button"
                  className="text-xs text-zinc-500 underline"
                  onClick={() => onSearch(compact({ ...search, agent_id: undefined, offset: undefined }))}
                >
                  show all agents
                </button>
              </span>
            )}
          </div>
          <CommandsTable
            filter={{ status: search.status, type: search.type, agent_id: search.agent_id }}
            offset={search.offset ?? 0}
            limit={search.limit ?? 50}
            onPage={(offset, limit) =>
              onSearch(compact({ ...search, offset: offset === 0 ? undefined : offset, limit: limit === 50 ? undefined : limit }))
            }
          />
        </div>
      </Card>
    </>
  )
}
