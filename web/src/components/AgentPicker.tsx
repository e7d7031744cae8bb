// Chooses one agent by hostname: the server searches (10,000 agents are
// never listed at once) and offers the first matches as buttons.
import { useQuery } from '@tanstack/react-query'
import { useId, useState } from 'react'
import { agentsQuery } from '../api/endpoints'
import { useDebounced } from '../lib/useDebounced'
import { Input } from './ui'

export function AgentPicker({ onPick }: { onPick: (id: string) => void }) {
  const [text, setText] = useState('')
  const term = useDebounced(text.trim(), 250)
  const listId = useId()
  const q = useQuery({ ...agentsQuery({ limit: 8, offset: 0, hostname: term, sort: 'hostname' }), enabled: term !== '' })
  const open = term !== '' && text.trim() !== ''
  return (
    <div className="relative min-w-0 basis-44">
      <Input
        type="search"
        aria-label="Filter by agent (hostname)"
        aria-controls={listId}
        placeholder="Agent hostname"
        value={text}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === 'Escape') setText('')
        }}
      />
      {open && (
        <ul
          id={listId}
          aria-label="Matching agents"
          className="absolute z-10 mt-1 max-h-64 w-64 max-w-[80vw] overflow-auto rounded-md border border-zinc-200 bg-white py-1 text-sm shadow-lg dark:border-zinc-700 dark:bg-zinc-900"
        >
          {q.isPending ? (
            <li className="px-3 py-1.5 text-zinc-500">Searching…</li>
          ) : q.isError ? (
            <li className="px-3 py-1.5 text-red-700 dark:text-red-400">{q.error.message}</li>
          ) : q.data.items.length === 0 ? (
            <li className="px-3 py-1.5 text-zinc-500">No agent matches.</li>
          ) : (
            q.data.items.map((a) => (
              <li key={a.id}>
                <button
                  type="button"
                  className="block w-full px-3 py-1.5 text-left break-all hover:bg-zinc-100 focus-visible:bg-zinc-100 dark:hover:bg-zinc-800 dark:focus-visible:bg-zinc-800"
                  onClick={() => {
                    setText('')
                    onPick(a.id)
                  }}
                >
                  {a.hostname}
                </button>
              </li>
            ))
          )}
        </ul>
      )}
    </div>
  )
}
