package servercmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/redflaghq/redflag/internal/store"
)

// Backup is `redflag-server backup --to FILE`: a consistent copy of the
// SQLite store, safe while the server runs. For a PostgreSQL store it says
// to use pg_dump.
func Backup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := newFlagSet("backup", "--to FILE [--force] [--data-dir DIR | --database-url sqlite://PATH]", stderr)
	to := fs.String("to", "", "the backup file to write (required); an existing file is refused unless --force")
	force := fs.Bool("force", false, "replace an existing backup file")
	dataDir := fs.String("data-dir", envOr(getenv, "REDFLAG_DATA_DIR", "./data"),
		"the server's data directory; the store is <data dir>/redflag.db unless --database-url says otherwise (env REDFLAG_DATA_DIR)")
	dbURL := fs.String("database-url", getenv("REDFLAG_DATABASE_URL"), "the store's URL, sqlite://PATH (env REDFLAG_DATABASE_URL)")
	if code, ok := parse(fs, args, stderr); !ok {
		return code
	}
	const me = "redflag-server backup"
	if *to == "" {
		fmt.Fprintf(stderr, "%s: --to FILE is required: name the file to write the copy to, e.g. --to /var/backups/redflag-$(date +%%F).db\n", me)
		return ExitUsage
	}
	u := *dbURL
	if u == "" {
		u = "sqlite://" + filepath.Join(*dataDir, "redflag.db")
	}
	switch {
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		fmt.Fprintf(stderr, "%s: the store is a PostgreSQL database (%s); back it up with PostgreSQL's own tool, "+
			"for example: pg_dump --format=custom --file=redflag.dump \"$REDFLAG_DATABASE_URL\"\n", me, redact(u))
		return ExitUsage
	case !strings.HasPrefix(u, "sqlite://"):
		fmt.Fprintf(stderr, "%s: the database URL must start with sqlite:// (or postgres://, which pg_dump backs up), got %q\n", me, redact(u))
		return ExitUsage
	}
	path := strings.TrimPrefix(u, "sqlite://")
	info, err := store.BackupSQLite(ctx, path, *to, *force)
	if err != nil {
		msg := err.Error()
		if errors.Is(err, store.ErrNoDatabase) {
			msg += ": point --data-dir or --database-url at the server's store"
		}
		fmt.Fprintf(stderr, "%s: %s\n", me, msg)
		return ExitFailure
	}
	fmt.Fprintf(stdout, "backed up %s to %s (%s, schema version %d)\n", path, info.Path, size(info.Bytes), info.SchemaVersion)
	where := "the data directory"
	if *dbURL == "" {
		where += " (" + *dataDir + ")"
	}
	fmt.Fprintf(stdout, "the copy holds the database only: keep signing.key and jwt.secret from %s with it\n", where)
	return ExitOK
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
