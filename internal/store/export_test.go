package store

import "io/fs"

// WithMigrations returns o with the migration files replaced by fsys, so a
// test can run Open against a broken or future migration set.
func WithMigrations(o Options, fsys fs.FS) Options {
	o.migrations = fsys
	return o
}

// EmbeddedMigrations is the migration directory of dialect d built into the binary.
func EmbeddedMigrations(d Dialect) fs.FS {
	sub, err := fs.Sub(migrationsFS, "migrations/"+string(d))
	if err != nil {
		panic(err)
	}
	return sub
}
