import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { Link, useNavigate } from '@tanstack/react-router'
import { useState, type FormEvent } from 'react'
import { keys, login, postSetup, setupQuery } from '../api/endpoints'
import { ErrorState, InlineError, LoadingState } from '../components/states'
import { Button, Field, Input } from '../components/ui'
import { AuthLayout } from './AuthLayout'

export const MIN_PASSWORD = 12

/** First-run setup: the setup token from the server log creates the first admin. */
export function SetupPage({ token }: { token?: string | undefined }) {
  const qc = useQueryClient()
  const navigate = useNavigate()
  const status = useQuery(setupQuery)
  const [setupToken, setSetupToken] = useState(token ?? '')
  const [username, setUsername] = useState('admin')
  const [password, setPassword] = useState('')
  const [confirm, setConfirm] = useState('')
  const [touched, setTouched] = useState(false)
  const m = useMutation({
    mutationFn: async () => {
      await postSetup({ setup_token: setupToken.trim(), username: username.trim(), password })
      return login({ username: username.trim(), password })
    },
    onSuccess: async (res) => {
      qc.clear()
      qc.setQueryData(keys.me, res.user)
      await navigate({ to: '/', replace: true })
    },
  })
  const mismatch = touched && confirm !== password ? 'The passwords differ.' : null
  const tooShort = touched && password.length > 0 && password.length < MIN_PASSWORD ? `Use at least ${MIN_PASSWORD} characters.` : null
  const submit = (e: FormEvent) => {
    e.preventDefault()
    setTouched(true)
    if (confirm !== password || password.length < MIN_PASSWORD) return
    m.mutate()
  }
  if (status.isPending) {
    return (
      <AuthLayout title="Set up RedFlag">
        <LoadingState />
      </AuthLayout>
    )
  }
  if (status.isError) {
    return (
      <AuthLayout title="Set up RedFlag">
        <ErrorState error={status.error} onRetry={() => void status.refetch()} />
      </AuthLayout>
    )
  }
  if (!status.data.setup_required && !m.isPending && !m.isSuccess) {
    return (
      <AuthLayout title="Setup is complete">
        <p className="mb-4 text-sm text-zinc-600 dark:text-zinc-400">An administrator already exists. Sign in instead.</p>
        <Link to="/login" className="font-medium text-red-700 underline dark:text-red-400">
          Go to sign in
        </Link>
      </AuthLayout>
    )
  }
  return (
    <AuthLayout title="Set up RedFlag">
      <p className="mb-4 text-sm text-zinc-600 dark:text-zinc-400">
        Create the first administrator. The setup token is in the server log of its first start (the line with
        &ldquo;setup_url&rdquo;); it works once.
      </p>
      <form onSubmit={submit} className="space-y-4" noValidate>
        <Field label="Setup token">
          {(p) => (
            <Input
              {...p}
              name="setup_token"
              autoComplete="off"
              spellCheck={false}
              required
              value={setupToken}
              onChange={(e) => setSetupToken(e.target.value)}
              className="font-mono"
            />
          )}
        </Field>
        <Field label="Username">
          {(p) => <Input {...p} name="username" autoComplete="username" required value={username} onChange={(e) => setUsername(e.target.value)} />}
        </Field>
        <Field label="Password" help={`At least ${MIN_PASSWORD} characters.`} error={tooShort}>
          {(p) => (
            <Input
              {...p}
              name="password"
              type="password"
              autoComplete="new-password"
              required
              value={password}
              onChange={(e) => setPassword(e.target.value)}
            />
          )}
        </Field>
        <Field label="Repeat the password" error={mismatch}>
          {(p) => (
            <Input
              {...p}
              name="confirm"
              type="password"
              autoComplete="new-password"
              required
              value={confirm}
              onChange={(e) => setConfirm(e.target.value)}
            />
          )}
        </Field>
        <InlineError error={m.error} />
        <Button
          type="submit"
          variant="primary"
          className="w-full"
          busy={m.isPending}
          disabled={setupToken.trim() === '' || username.trim() === '' || password === ''}
        >
          Create administrator
        </Button>
      </form>
    </AuthLayout>
  )
}
