import { Link } from '@tanstack/react-router'
import { EmptyState } from '../components/states'

export function NotFoundPage() {
  return (
    <EmptyState title="There is no such page">
      <Link to="/" className="text-red-700 underline dark:text-red-400">
        Go to the overview
      </Link>
    </EmptyState>
  )
}
