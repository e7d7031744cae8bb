package store

import "database/sql"

// Pools returns the connection pools behind the Store: for SQLite the
// single writer connection and the read-only pool, for PostgreSQL the one
// pool twice. Only tools that work on whole tables use them
// (redflag-server migrate-store); everything else goes through the Store's
// methods.
func (s *Store) Pools() (writer, reader *sql.DB) { return s.w, s.r }
