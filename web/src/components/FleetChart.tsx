// Agents by status as a bar chart (loaded lazily with the Overview page).
import { Bar, BarChart, CartesianGrid, Cell, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts'
import type { AgentStatus } from '../api/types'

const STATUS_COLORS: Record<AgentStatus, string> = { online: '#16a34a', offline: '#d97706', stale: '#71717a' }

export default function FleetChart({ counts }: { counts: Record<AgentStatus, number> }) {
  const data = (Object.keys(counts) as AgentStatus[]).map((s) => ({ status: s, agents: counts[s] }))
  return (
    <div className="h-56 w-full" role="img" aria-label={data.map((d) => `${d.agents} ${d.status}`).join(', ')}>
      <ResponsiveContainer width="100%" height="100%">
        <BarChart data={data} margin={{ top: 8, right: 8, bottom: 0, left: -16 }}>
          <CartesianGrid strokeDasharray="3 3" vertical={false} stroke="currentColor" strokeOpacity={0.15} />
          <XAxis dataKey="status" tickLine={false} axisLine={false} stroke="currentColor" fontSize={12} />
          <YAxis allowDecimals={false} tickLine={false} axisLine={false} stroke="currentColor" fontSize={12} />
          <Tooltip cursor={{ fillOpacity: 0.1 }} />
          <Bar dataKey="agents" radius={[4, 4, 0, 0]} isAnimationActive={false}>
            {data.map((d) => (
              <Cell key={d.status} fill={STATUS_COLORS[d.status]} />
            ))}
          </Bar>
        </BarChart>
      </ResponsiveContainer>
    </div>
  )
}
