package store

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// User is a dashboard/CLI account.
type User struct {
	ID                string    `json:"id"`
	Username          string    `json:"username"`
	PasswordHash      string    `json:"-"`
	Role              string    `json:"role"`
	CreatedAt         time.Time `json:"created_at"`
	PasswordChangedAt time.Time `json:"password_changed_at"`
}

// UserToken is a dashboard session or a long-lived API token. Only the
// SHA-256 of the token text is stored.
type UserToken struct {
	ID         string     `json:"id"`
	UserID     string     `json:"-"`
	Kind       string     `json:"kind"` // session or api
	Name       string     `json:"name"`
	TokenHash  string     `json:"-"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"-"`
	CreatedIP  string     `json:"created_ip"`
}

// Setup errors.
var (
	ErrSetupComplete     = errors.New("setup is complete: an administrator exists")
	ErrSetupTokenInvalid = errors.New("setup token is not valid")
)

const settingSetupToken = "setup_token_sha256"

// firstAdminLockKey is the PostgreSQL advisory lock serialising CreateFirstAdmin.
const firstAdminLockKey int64 = 0x7266_6164_6d69_6e31 // "rfadmin1"

// CountUsers counts accounts.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM users").Scan(&n); err != nil {
		return 0, fmt.Errorf("counting users: %w", err)
	}
	return n, nil
}

// SetSetupToken stores the hash of a fresh one-time setup token, but only
// while no account exists. It reports whether setup is still open.
func (s *Store) SetSetupToken(ctx context.Context, hash string) (bool, error) {
	open := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM users").Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			_, err := tx.ExecContext(ctx, "DELETE FROM settings WHERE key = $1", settingSetupToken)
			return err
		}
		open = true
		return upsertSetting(ctx, tx, settingSetupToken, hash)
	})
	if err != nil {
		return false, fmt.Errorf("storing setup token: %w", err)
	}
	return open, nil
}

// CreateFirstAdmin creates the first account. With a non-empty setupHash the
// stored setup token must match it (compared in constant time) and is
// consumed; with an empty one (REDFLAG_ADMIN_* at start-up) no token is needed.
// Either way it refuses once any account exists, so setup closes for good.
func (s *Store) CreateFirstAdmin(ctx context.Context, u User, setupHash string, a *Audit) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if s.dialect == Postgres {
			// Under READ COMMITTED two concurrent setups (or replicas starting
			// together) would both count zero users and both create an admin;
			// this lock, held until commit, makes them take turns. SQLite's
			// immediate transactions already do.
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", firstAdminLockKey); err != nil {
				return fmt.Errorf("locking first-admin setup: %w", err)
			}
		}
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM users").Scan(&n); err != nil {
			return fmt.Errorf("counting users: %w", err)
		}
		if n > 0 {
			return ErrSetupComplete
		}
		if setupHash != "" {
			var stored string
			err := tx.QueryRowContext(ctx, "SELECT value FROM settings WHERE key = $1", settingSetupToken).Scan(&stored)
			if errors.Is(err, sql.ErrNoRows) {
				return ErrSetupTokenInvalid
			}
			if err != nil {
				return fmt.Errorf("reading setup token: %w", err)
			}
			if subtle.ConstantTimeCompare([]byte(stored), []byte(setupHash)) != 1 {
				return ErrSetupTokenInvalid
			}
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM settings WHERE key = $1", settingSetupToken); err != nil {
			return fmt.Errorf("consuming setup token: %w", err)
		}
		if err := insertUser(ctx, tx, u); err != nil {
			return err
		}
		return insertAudit(ctx, tx, a)
	})
}

func insertUser(ctx context.Context, tx *sql.Tx, u User) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO users (id, username, password_hash, role, created_at, password_changed_at)
		VALUES ($1,$2,$3,$4,$5,$6)`, u.ID, u.Username, u.PasswordHash, u.Role, T(u.CreatedAt), T(u.PasswordChangedAt))
	if isUniqueViolation(err) {
		return fmt.Errorf("username %q: %w", u.Username, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("creating user: %w", err)
	}
	return nil
}

const userCols = "u.id, u.username, u.password_hash, u.role, u.created_at, u.password_changed_at"

func scanUser(sc interface{ Scan(...any) error }, extra ...any) (User, error) {
	var u User
	err := sc.Scan(append([]any{&u.ID, &u.Username, &u.PasswordHash, &u.Role, &u.CreatedAt, &u.PasswordChangedAt}, extra...)...)
	u.CreatedAt, u.PasswordChangedAt = u.CreatedAt.UTC(), u.PasswordChangedAt.UTC()
	return u, err
}

// UserByUsername finds an account, case-insensitively.
func (s *Store) UserByUsername(ctx context.Context, name string) (User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, "SELECT "+userCols+" FROM users u WHERE lower(u.username) = lower($1)", name))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("finding user: %w", err)
	}
	return u, nil
}

// UserByToken resolves a session or API token hash to its user, refusing
// revoked and expired tokens.
func (s *Store) UserByToken(ctx context.Context, hash string, now time.Time) (User, UserToken, error) {
	var t UserToken
	var exp, last sql.NullTime
	u, err := scanUser(s.r.QueryRowContext(ctx, "SELECT "+userCols+`, t.id, t.kind, t.name, t.created_at, t.expires_at, t.last_used_at
		FROM user_tokens t JOIN users u ON u.id = t.user_id
		WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)`, hash, T(now)),
		&t.ID, &t.Kind, &t.Name, &t.CreatedAt, &exp, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, UserToken{}, ErrNotFound
	}
	if err != nil {
		return User{}, UserToken{}, fmt.Errorf("finding token: %w", err)
	}
	t.UserID, t.TokenHash, t.CreatedAt, t.ExpiresAt, t.LastUsedAt = u.ID, hash, t.CreatedAt.UTC(), timePtr(exp), timePtr(last)
	return u, t, nil
}

// CreateUserToken stores a new session or API token.
func (s *Store) CreateUserToken(ctx context.Context, t UserToken, a *Audit) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO user_tokens (id, user_id, kind, name, token_hash, created_at, expires_at, created_ip)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`, t.ID, t.UserID, t.Kind, t.Name, t.TokenHash, T(t.CreatedAt), nullTime(t.ExpiresAt), t.CreatedIP)
		if err != nil {
			return fmt.Errorf("creating token: %w", err)
		}
		return insertAudit(ctx, tx, a)
	})
}

// TouchUserToken records use of a token; callers throttle it.
func (s *Store) TouchUserToken(ctx context.Context, id string, now time.Time, slideTo *time.Time) error {
	var err error
	if slideTo != nil {
		_, err = s.w.ExecContext(ctx, "UPDATE user_tokens SET last_used_at = $1, expires_at = $2 WHERE id = $3", T(now), T(*slideTo), id)
	} else {
		_, err = s.w.ExecContext(ctx, "UPDATE user_tokens SET last_used_at = $1 WHERE id = $2", T(now), id)
	}
	if err != nil {
		return fmt.Errorf("recording token use: %w", err)
	}
	return nil
}

// ListUserTokens lists a user's live tokens of one kind.
func (s *Store) ListUserTokens(ctx context.Context, userID, kind string, now time.Time) ([]UserToken, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, kind, name, created_at, expires_at, last_used_at, created_ip
		FROM user_tokens WHERE user_id = $1 AND kind = $2 AND revoked_at IS NULL
		AND (expires_at IS NULL OR expires_at > $3) ORDER BY created_at DESC, id LIMIT 1000`, userID, kind, T(now))
	if err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	defer rows.Close()
	out := []UserToken{}
	for rows.Next() {
		var t UserToken
		var exp, last sql.NullTime
		if err := rows.Scan(&t.ID, &t.Kind, &t.Name, &t.CreatedAt, &exp, &last, &t.CreatedIP); err != nil {
			return nil, fmt.Errorf("reading tokens: %w", err)
		}
		t.UserID, t.CreatedAt, t.ExpiresAt, t.LastUsedAt = userID, t.CreatedAt.UTC(), timePtr(exp), timePtr(last)
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeUserToken revokes one of a user's tokens (ErrNotFound if it is not theirs or already revoked).
func (s *Store) RevokeUserToken(ctx context.Context, userID, id string, now time.Time, a *Audit) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE user_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL", T(now), id, userID)
		if err != nil {
			return fmt.Errorf("revoking token: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return insertAudit(ctx, tx, a)
	})
}

// ChangePassword stores a new password hash and revokes every session of the
// user except keepTokenID, so a stolen session dies with the old password.
func (s *Store) ChangePassword(ctx context.Context, userID, hash, keepTokenID string, now time.Time, a *Audit) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3", hash, T(now), userID)
		if err != nil {
			return fmt.Errorf("changing password: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, `UPDATE user_tokens SET revoked_at = $1
			WHERE user_id = $2 AND kind = 'session' AND id <> $3 AND revoked_at IS NULL`, T(now), userID, keepTokenID); err != nil {
			return fmt.Errorf("revoking sessions: %w", err)
		}
		return insertAudit(ctx, tx, a)
	})
}

// CountUserTokens counts all token rows (tests use it to prove nothing was written).
func (s *Store) CountUserTokens(ctx context.Context) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM user_tokens").Scan(&n)
	return n, err
}
