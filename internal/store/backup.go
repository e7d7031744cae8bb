package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Errors of BackupSQLite that the command line turns into plain sentences.
var (
	// ErrBackupExists: the target file is there and overwriting was not asked for.
	ErrBackupExists = errors.New("backup target already exists")
	// ErrNoDatabase: there is no SQLite database at the given path.
	ErrNoDatabase = errors.New("no database")
)

// BackupInfo describes a finished backup.
type BackupInfo struct {
	Path          string // absolute path of the backup file
	Bytes         int64
	SchemaVersion int64 // migration version recorded in the copy
}

// GooseTable is the table in which goose records applied migrations. It is
// bookkeeping, not data: tools that copy tables leave it alone.
const GooseTable = "goose_db_version"

// BackupSQLite writes a consistent copy of the SQLite database at dbPath to
// target while other connections, a running server among them, keep
// reading and writing it: SQLite's VACUUM INTO copies from one read
// transaction, which in WAL mode blocks no writer.
//
// The copy is written to a temporary file in the target's directory,
// checked (PRAGMA quick_check), synced, made owner-only (it holds token
// hashes) and only then given its name, so a failed or interrupted backup
// never leaves a partial file under the target name. An existing target is
// refused (ErrBackupExists) unless force is set. The source is opened
// without the create flag, so a wrong path never creates an empty database.
func BackupSQLite(ctx context.Context, dbPath, target string, force bool) (BackupInfo, error) {
	if dbPath == "" || strings.ContainsAny(dbPath, "?#") {
		return BackupInfo{}, fmt.Errorf("sqlite database path %q is empty or contains '?' or '#'", dbPath)
	}
	fi, err := os.Stat(dbPath)
	if errors.Is(err, fs.ErrNotExist) {
		return BackupInfo{}, fmt.Errorf("%w at %s", ErrNoDatabase, dbPath)
	}
	if err != nil {
		return BackupInfo{}, fmt.Errorf("reading %s: %w", dbPath, err)
	}
	if !fi.Mode().IsRegular() {
		return BackupInfo{}, fmt.Errorf("%w at %s: it is not a regular file", ErrNoDatabase, dbPath)
	}
	abs, err := filepath.Abs(target)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup target %s: %w", target, err)
	}
	info := BackupInfo{Path: abs}
	if tfi, err := os.Stat(abs); err == nil {
		switch {
		case tfi.IsDir():
			return info, fmt.Errorf("%s is a directory: give the name of the backup file to write", abs)
		case os.SameFile(fi, tfi):
			return info, fmt.Errorf("%s is the database itself: choose another file for the backup", abs)
		case !force:
			return info, fmt.Errorf("%w: %s (choose another name, or pass --force to replace it)", ErrBackupExists, abs)
		}
	}
	dir := filepath.Dir(abs)
	if dfi, err := os.Stat(dir); err != nil || !dfi.IsDir() {
		return info, fmt.Errorf("the directory %s does not exist: create it first", dir)
	}
	// CreateTemp makes an empty file, mode 0600, that VACUUM INTO accepts.
	tmp, err := os.CreateTemp(dir, ".redflag-backup-*.tmp")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return info, fmt.Errorf("cannot write the backup in %s: %w", dir, err)
	}
	tmpPath := tmp.Name()
	tmp.Close()
	done := false
	defer func() {
		if !done {
			os.Remove(tmpPath)
			// VACUUM INTO may leave its rollback journal when interrupted.
			os.Remove(tmpPath + "-journal")
		}
	}()

	if err := vacuumInto(ctx, dbPath, tmpPath); err != nil {
		return info, err
	}
	if info.SchemaVersion, err = checkCopy(ctx, tmpPath); err != nil {
		return info, err
	}
	if err := syncFile(tmpPath); err != nil {
		return info, err
	}
	if err := os.Chmod(tmpPath, 0o600); err != nil {
		return info, fmt.Errorf("restricting %s to its owner: %w", tmpPath, err)
	}
	if err := place(tmpPath, abs, force); err != nil {
		return info, err
	}
	done = true
	syncDir(dir)
	if fi, err := os.Stat(abs); err == nil {
		info.Bytes = fi.Size()
	}
	return info, nil
}

// vacuumInto runs VACUUM INTO from a connection of its own. The file name
// is a bound parameter, never SQL text; it is absolute, so SQLite never
// reads it as a "file:" URI.
func vacuumInto(ctx context.Context, dbPath, into string) error {
	// mode=rw: open an existing database only. No journal_mode pragma: the
	// database keeps the mode the server gave it. This connection closing
	// last (server stopped) checkpoints and removes the -wal and -shm files
	// like the server's own last connection would.
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("opening %s: %w", dbPath, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1", GooseTable).Scan(&n); err != nil {
		return fmt.Errorf("reading %s: %w", dbPath, err)
	}
	if n == 0 {
		return fmt.Errorf("%s is not a RedFlag database (it has no %s table)", dbPath, GooseTable)
	}
	if _, err := db.ExecContext(ctx, "VACUUM INTO $1", into); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("backup interrupted: %w", ctx.Err())
		}
		return fmt.Errorf("copying %s: %w", dbPath, err)
	}
	return nil
}

// checkCopy runs SQLite's quick_check on the copy and returns the schema
// version it records.
func checkCopy(ctx context.Context, path string) (int64, error) {
	db, err := sql.Open("sqlite", sqliteFileURI(path)+"?mode=ro")
	if err != nil {
		return 0, fmt.Errorf("opening the copy: %w", err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&res); err != nil {
		return 0, fmt.Errorf("checking the copy: %w", err)
	}
	if res != "ok" {
		return 0, fmt.Errorf("the copy failed SQLite's quick_check: %s", res)
	}
	var v sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT MAX(version_id) FROM "+GooseTable+" WHERE is_applied").Scan(&v); err != nil {
		return 0, fmt.Errorf("reading the copy's schema version: %w", err)
	}
	return v.Int64, nil
}

// sqliteFileURI makes a "file:" URI of a path; the characters SQLite's URI
// parser treats specially are percent-encoded.
func sqliteFileURI(path string) string {
	r := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
	return "file:" + r.Replace(filepath.ToSlash(path))
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("syncing the copy: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing the copy: %w", err)
	}
	return f.Close()
}

// place gives the finished copy its name: replacing an existing file only
// with force. Without force a hard link is the atomic "create if absent";
// where the file system has no hard links, a check then a rename.
func place(tmp, target string, force bool) error {
	if force {
		if err := os.Rename(tmp, target); err != nil {
			return fmt.Errorf("naming the backup %s: %w", target, err)
		}
		return nil
	}
	err := os.Link(tmp, target)
	if err == nil {
		os.Remove(tmp)
		return nil
	}
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s (choose another name, or pass --force to replace it)", ErrBackupExists, target)
	}
	if _, serr := os.Lstat(target); serr == nil {
		return fmt.Errorf("%w: %s (choose another name, or pass --force to replace it)", ErrBackupExists, target)
	}
	if err := os.Rename(tmp, target); err != nil {
		return fmt.Errorf("naming the backup %s: %w", target, err)
	}
	return nil
}

// syncDir makes the new directory entry durable where the platform allows.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
