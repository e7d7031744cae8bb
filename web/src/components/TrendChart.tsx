// Pending updates per day stacked by severity, and installs and failures per
// day (loaded lazily with the Overview page).
import { Area, AreaChart, Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts'
import { SEVERITIES, type TrendDay } from '../api/types'

export const SEVERITY_COLORS: Record<(typeof SEVERITIES)[number], string> = {
  critical: '#dc2626',
  important: '#ea580c',
  moderate: '#ca8a04',
  low: '#2563eb',
  unknown: '#71717a',
}

const tick = { fontSize: 12 }
const tooltipStyle = { contentStyle: { fontSize: 12 }, labelStyle: { fontWeight: 600 } }

function shortDate(d: string): string {
  return d.length >= 10 ? d.slice(5) : d
}

export default function TrendChart({ days }: { days: TrendDay[] }) {
  const data = days.map((d) => ({
    date: d.date,
    ...Object.fromEntries(SEVERITIES.map((s) => [s, d.pending[s] ?? 0])),
    installed: d.installed,
    failed: d.failed,
  }))
  const last = days[days.length - 1]
  const pendingNow = last === undefined ? 0 : SEVERITIES.reduce((n, s) => n + (last.pending[s] ?? 0), 0)
  const installed = days.reduce((n, d) => n + d.installed, 0)
  const failed = days.reduce((n, d) => n + d.failed, 0)
  return (
    <div className="grid gap-6 xl:grid-cols-2">
      <figure>
        <figcaption className="mb-2 text-xs font-medium text-zinc-500 uppercase">Pending updates by severity</figcaption>
        <div className="h-60 w-full" role="img" aria-label={`Pending updates over ${days.length} days; ${pendingNow} on ${last?.date ?? 'the last day'}`}>
          <ResponsiveContainer width="100%" height="100%">
            <AreaChart data={data} margin={{ top: 8, right: 8, bottom: 0, left: -16 }}>
              <CartesianGrid strokeDasharray="3 3" vertical={false} stroke="currentColor" strokeOpacity={0.15} />
              <XAxis dataKey="date" tickFormatter={shortDate} tickLine={false} axisLine={false} stroke="currentColor" tick={tick} minTickGap={24} />
              <YAxis allowDecimals={false} tickLine={false} axisLine={false} stroke="currentColor" tick={tick} />
              <Tooltip {...tooltipStyle} />
              <Legend wrapperStyle={{ fontSize: 12 }} />
              {SEVERITIES.map((s) => (
                <Area key={s} type="monotone" dataKey={s} stackId="pending" stroke={SEVERITY_COLORS[s]} fill={SEVERITY_COLORS[s]} fillOpacity={0.35} isAnimationActive={false} />
              ))}
            </AreaChart>
          </ResponsiveContainer>
        </div>
      </figure>
      <figure>
        <figcaption className="mb-2 text-xs font-medium text-zinc-500 uppercase">Installs and failures per day</figcaption>
        <div className="h-60 w-full" role="img" aria-label={`${installed} installed and ${failed} failed over ${days.length} days`}>
          <ResponsiveContainer width="100%" height="100%">
            <BarChart data={data} margin={{ top: 8, right: 8, bottom: 0, left: -16 }}>
              <CartesianGrid strokeDasharray="3 3" vertical={false} stroke="currentColor" strokeOpacity={0.15} />
              <XAxis dataKey="date" tickFormatter={shortDate} tickLine={false} axisLine={false} stroke="currentColor" tick={tick} minTickGap={24} />
              <YAxis allowDecimals={false} tickLine={false} axisLine={false} stroke="currentColor" tick={tick} />
              <Tooltip {...tooltipStyle} cursor={{ fillOpacity: 0.1 }} />
              <Legend wrapperStyle={{ fontSize: 12 }} />
              <Bar dataKey="installed" stackId="done" fill="#16a34a" isAnimationActive={false} />
              <Bar dataKey="failed" stackId="done" fill="#dc2626" isAnimationActive={false} />
            </BarChart>
          </ResponsiveContainer>
        </div>
      </figure>
    </div>
  )
}
