package servercmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/redflaghq/redflag/internal/storemigrate"
)

// MigrateStore is `redflag-server migrate-store --from URL --to URL`: copy
// every table of a stopped store into an empty one (SQLite to PostgreSQL,
// or back), then verify the row counts.
func MigrateStore(ctx context.Context, args []string, _ func(string) string, stdout, stderr io.Writer) int {
	fs := newFlagSet("migrate-store", "--from URL --to URL [--batch-size N]", stderr)
	from := fs.String("from", "", "the store to copy, e.g. sqlite:///var/lib/redflag/redflag.db (required; stop the server first)")
	to := fs.String("to", "", "the empty database to copy into, e.g. postgres://redflag:…@db/redflag (required)")
	batch := fs.Int("batch-size", storemigrate.DefaultBatchSize, "rows per INSERT (at most 50 into SQLite)")
	if code, ok := parse(fs, args, stderr); !ok {
		return code
	}
	const me = "redflag-server migrate-store"
	if *from == "" || *to == "" {
		fmt.Fprintf(stderr, "%s: both --from and --to are required, e.g. --from sqlite:///var/lib/redflag/redflag.db --to 'postgres://redflag:…@db:5432/redflag'\n", me)
		return ExitUsage
	}
	if *batch < 1 {
		fmt.Fprintf(stderr, "%s: --batch-size must be at least 1\n", me)
		return ExitUsage
	}
	fmt.Fprintf(stdout, "copying %s to %s\n", redact(*from), redact(*to))
	fmt.Fprintln(stdout, "(the source must not be in use: rows a running server writes from now on are not copied)")
	progress := func(table string, rows int64) {
		fmt.Fprintf(stdout, "  %-28s %10d rows\n", table, rows)
	}
	res, err := storemigrate.Copy(ctx, *from, *to, storemigrate.Options{BatchSize: *batch, Progress: progress})
	if err != nil {
		var ue *storemigrate.UsageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "%s: %s\n", me, ue.Msg)
			return ExitUsage
		}
		fmt.Fprintf(stderr, "%s: %v\n", me, err)
		if !errors.Is(err, storemigrate.ErrTargetNotEmpty) {
			fmt.Fprintf(stderr, "%s: no rows were committed to the target; fix the cause and run it again\n", me)
		}
		return ExitFailure
	}
	fmt.Fprintf(stdout, "copied %d tables, %d rows, at schema version %d; every table's row count matches the source\n",
		len(res.Tables), res.Rows(), res.SchemaVersion)
	if len(res.Sequences) > 0 {
		fmt.Fprintf(stdout, "sequences moved past the copied ids: %s\n", strings.Join(res.Sequences, ", "))
	}
	fmt.Fprintf(stdout, "next: start redflag-server with REDFLAG_DATABASE_URL=%s and the same data directory (signing.key, jwt.secret)\n", redact(*to))
	return ExitOK
}
