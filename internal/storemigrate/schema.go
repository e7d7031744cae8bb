package storemigrate

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/redflaghq/redflag/internal/store"
)

// column is one insertable column and the kind of value it takes.
type column struct {
	name string
	kind kind
}

// table is one table of a schema.
type table struct {
	name string
	cols []column
	// refs are the tables this one's foreign keys point at.
	refs []string
	// identityAlways: a GENERATED ALWAYS identity column needs
	// OVERRIDING SYSTEM VALUE to take copied ids (PostgreSQL).
	identityAlways bool
}

// schema is the set of data tables of one database: everything but goose's
// version table and SQLite's internal tables.
type schema struct {
	tables map[string]*table
}

func (s schema) names() []string { return sortedKeys(s.tables) }

// listTables lists the base tables of the database (PostgreSQL: of its
// current schema, the one search_path selects), without goose's table.
// SQLite's internal tables, and virtual tables (a full-text index) with
// their shadow tables, are derived data, not copied.
func listTables(ctx context.Context, q querier, d store.Dialect) ([]string, error) {
	query := `SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table'
		AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`
	if d == store.Postgres {
		query = `SELECT table_name FROM information_schema.tables
			WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`
	}
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		if n != store.GooseTable {
			out = append(out, n)
		}
	}
	return out, rows.Err()
}

// inspect reads the tables, their insertable columns (with the kind of
// value each takes) and their foreign keys from the database's catalogue.
func inspect(ctx context.Context, q querier, d store.Dialect) (schema, error) {
	names, err := listTables(ctx, q, d)
	if err != nil {
		return schema{}, err
	}
	s := schema{tables: map[string]*table{}}
	for _, n := range names {
		s.tables[n] = &table{name: n}
	}
	if d == store.Postgres {
		return s, inspectPostgres(ctx, q, s)
	}
	return s, inspectSQLite(ctx, q, s)
}

func inspectSQLite(ctx context.Context, q querier, s schema) error {
	for _, t := range s.tables {
		// table_info leaves out generated columns, which take no values.
		rows, err := q.QueryContext(ctx, "SELECT name, type FROM pragma_table_info($1) ORDER BY cid", t.name)
		if err != nil {
			return fmt.Errorf("columns of %s: %w", t.name, err)
		}
		for rows.Next() {
			var c column
			var typ string
			if err := rows.Scan(&c.name, &typ); err != nil {
				rows.Close()
				return fmt.Errorf("columns of %s: %w", t.name, err)
			}
			c.kind = sqliteKind(typ)
			t.cols = append(t.cols, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("columns of %s: %w", t.name, err)
		}
		rows, err = q.QueryContext(ctx, `SELECT DISTINCT "table" FROM pragma_foreign_key_list($1)`, t.name)
		if err != nil {
			return fmt.Errorf("foreign keys of %s: %w", t.name, err)
		}
		for rows.Next() {
			var ref string
			if err := rows.Scan(&ref); err != nil {
				rows.Close()
				return fmt.Errorf("foreign keys of %s: %w", t.name, err)
			}
			t.refs = append(t.refs, ref)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("foreign keys of %s: %w", t.name, err)
		}
	}
	return nil
}

func inspectPostgres(ctx context.Context, q querier, s schema) error {
	rows, err := q.QueryContext(ctx, `SELECT table_name, column_name, data_type, COALESCE(identity_generation, '')
		FROM information_schema.columns
		WHERE table_schema = current_schema() AND is_generated = 'NEVER'
		ORDER BY table_name, ordinal_position`)
	if err != nil {
		return fmt.Errorf("columns: %w", err)
	}
	for rows.Next() {
		var tn, typ, ident string
		var c column
		if err := rows.Scan(&tn, &c.name, &typ, &ident); err != nil {
			rows.Close()
			return fmt.Errorf("columns: %w", err)
		}
		t, ok := s.tables[tn]
		if !ok {
			continue // a view, or goose's table
		}
		c.kind = postgresKind(typ)
		t.cols = append(t.cols, c)
		if ident == "ALWAYS" {
			t.identityAlways = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("columns: %w", err)
	}
	rows, err = q.QueryContext(ctx, `SELECT DISTINCT cl.relname, rf.relname
		FROM pg_constraint c
		JOIN pg_class cl ON cl.oid = c.conrelid
		JOIN pg_class rf ON rf.oid = c.confrelid
		JOIN pg_namespace n ON n.oid = cl.relnamespace
		WHERE c.contype = 'f' AND n.nspname = current_schema()`)
	if err != nil {
		return fmt.Errorf("foreign keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var tn, ref string
		if err := rows.Scan(&tn, &ref); err != nil {
			return fmt.Errorf("foreign keys: %w", err)
		}
		if t, ok := s.tables[tn]; ok {
			t.refs = append(t.refs, ref)
		}
	}
	return rows.Err()
}

// sameTables checks that source and target have the same tables with the
// same columns, so no value is dropped and none is left to a default.
func sameTables(src, dst schema) error {
	for _, n := range src.names() {
		if _, ok := dst.tables[n]; !ok {
			return fmt.Errorf("the source has a table %s that the target's schema lacks", n)
		}
	}
	for _, n := range dst.names() {
		st, ok := src.tables[n]
		if !ok {
			return fmt.Errorf("the target has a table %s that the source's schema lacks", n)
		}
		dt := dst.tables[n]
		var sc, dc []string
		for _, c := range st.cols {
			sc = append(sc, c.name)
		}
		for _, c := range dt.cols {
			dc = append(dc, c.name)
		}
		slices.Sort(sc)
		slices.Sort(dc)
		if !slices.Equal(sc, dc) {
			return fmt.Errorf("the columns of %s differ: source (%s), target (%s)", n, strings.Join(sc, ", "), strings.Join(dc, ", "))
		}
	}
	return nil
}

// copyOrder sorts the tables so that every table comes after the tables
// its foreign keys point at (the union of both schemas' keys), by name
// where the keys leave a choice. A table referring to itself is allowed; a
// cycle between tables is an error.
func copyOrder(src, dst schema) ([]string, error) {
	deps := map[string]map[string]bool{}
	for _, n := range dst.names() {
		deps[n] = map[string]bool{}
	}
	for _, s := range []schema{src, dst} {
		for n, t := range s.tables {
			for _, r := range t.refs {
				if _, ok := deps[r]; ok && r != n && deps[n] != nil {
					deps[n][r] = true
				}
			}
		}
	}
	var order []string
	done := map[string]bool{}
	for len(order) < len(deps) {
		progressed := false
		for _, n := range sortedKeys(deps) {
			if done[n] {
				continue
			}
			ready := true
			for r := range deps[n] {
				if !done[r] {
					ready = false
					break
				}
			}
			if ready {
				order = append(order, n)
				done[n] = true
				progressed = true
			}
		}
		if !progressed {
			var left []string
			for _, n := range sortedKeys(deps) {
				if !done[n] {
					left = append(left, n)
				}
			}
			return nil, fmt.Errorf("the foreign keys of tables %s form a cycle: no copy order satisfies them", strings.Join(left, ", "))
		}
	}
	return order, nil
}
