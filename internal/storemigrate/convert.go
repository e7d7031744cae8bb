package storemigrate

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// kind is the sort of value a target column takes.
type kind int

const (
	kindAny   kind = iota // passed through as read
	kindBool              // PostgreSQL BOOLEAN
	kindInt               // INTEGER, BIGINT, …
	kindFloat             // REAL, DOUBLE PRECISION
	kindText              // TEXT, VARCHAR
	kindBytes             // BYTEA, BLOB
	kindTime              // TIMESTAMPTZ; SQLite DATETIME (stored as text)
	kindJSON              // JSON, JSONB
)

func (k kind) String() string {
	return [...]string{"any", "boolean", "integer", "float", "text", "bytes", "timestamp", "JSON"}[k]
}

// postgresKind maps information_schema.columns.data_type.
func postgresKind(dataType string) kind {
	switch strings.ToLower(dataType) {
	case "boolean":
		return kindBool
	case "smallint", "integer", "bigint":
		return kindInt
	case "real", "double precision":
		return kindFloat
	case "text", "character varying", "character", "uuid":
		return kindText
	case "bytea":
		return kindBytes
	case "timestamp with time zone", "timestamp without time zone", "date":
		return kindTime
	case "json", "jsonb":
		return kindJSON
	}
	return kindAny
}

// sqliteKind maps a declared SQLite column type, after SQLite's own
// affinity rules (https://www.sqlite.org/datatype3.html §3.1), except that
// the date and time types the store declares come first: the driver reads
// and writes them as time values. SQLite has no boolean or JSON type; the
// store keeps those as INTEGER 0/1 and TEXT.
func sqliteKind(declared string) kind {
	t := strings.ToUpper(declared)
	switch {
	case strings.Contains(t, "DATE"), strings.Contains(t, "TIME"):
		return kindTime
	case strings.Contains(t, "BOOL"):
		return kindInt // 0/1, as the store writes booleans
	case strings.Contains(t, "INT"):
		return kindInt
	case strings.Contains(t, "CHAR"), strings.Contains(t, "CLOB"), strings.Contains(t, "TEXT"):
		return kindText
	case strings.Contains(t, "REAL"), strings.Contains(t, "FLOA"), strings.Contains(t, "DOUB"):
		return kindFloat
	}
	return kindAny
}

// convert turns a value read from the source into one the target column
// of kind k accepts. NULL stays NULL.
func convert(v any, k kind) (any, error) {
	if v == nil {
		return nil, nil
	}
	v = widen(v)
	switch k {
	case kindBool:
		switch x := v.(type) {
		case bool:
			return x, nil
		case int64:
			if x == 0 || x == 1 {
				return x == 1, nil
			}
		case float64:
			if x == 0 || x == 1 {
				return x == 1, nil
			}
		case string:
			return parseBool(x)
		case []byte:
			return parseBool(string(x))
		}
	case kindInt:
		switch x := v.(type) {
		case int64:
			return x, nil
		case bool:
			if x {
				return int64(1), nil
			}
			return int64(0), nil
		case float64:
			if x == float64(int64(x)) {
				return int64(x), nil
			}
		case string:
			if n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
				return n, nil
			}
		case []byte:
			if n, err := strconv.ParseInt(strings.TrimSpace(string(x)), 10, 64); err == nil {
				return n, nil
			}
		}
	case kindFloat:
		switch x := v.(type) {
		case float64:
			return x, nil
		case int64:
			return float64(x), nil
		case string:
			if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
				return f, nil
			}
		}
	case kindText:
		switch x := v.(type) {
		case string:
			return x, nil
		case []byte: // JSON from PostgreSQL, or text SQLite kept as a blob
			return string(x), nil
		case int64:
			return strconv.FormatInt(x, 10), nil
		case float64:
			return strconv.FormatFloat(x, 'g', -1, 64), nil
		case bool:
			return strconv.FormatBool(x), nil
		case time.Time:
			return x.UTC().Format(time.RFC3339Nano), nil
		}
	case kindBytes:
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	case kindTime:
		switch x := v.(type) {
		case time.Time:
			return x.UTC(), nil
		case string:
			return parseTime(x)
		case []byte:
			return parseTime(string(x))
		case int64: // Unix seconds, SQLite's other usual form
			return time.Unix(x, 0).UTC(), nil
		}
	case kindJSON:
		switch x := v.(type) {
		case string:
			if json.Valid([]byte(x)) {
				return x, nil
			}
			return nil, fmt.Errorf("%q is not valid JSON", clip(x))
		case []byte:
			if json.Valid(x) {
				return string(x), nil
			}
			return nil, fmt.Errorf("%q is not valid JSON", clip(string(x)))
		case int64, float64, bool:
			b, _ := json.Marshal(x)
			return string(b), nil
		}
	default:
		return v, nil
	}
	return nil, fmt.Errorf("cannot store %T value %s as %s", v, clip(fmt.Sprint(v)), k)
}

// widen maps the narrower Go types a driver may return to the ones convert
// handles.
func widen(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int32:
		return int64(x)
	case int16:
		return int64(x)
	case int8:
		return int64(x)
	case uint32:
		return int64(x)
	case float32:
		return float64(x)
	}
	return v
}

func parseBool(s string) (any, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "t", "true":
		return true, nil
	case "0", "f", "false":
		return false, nil
	}
	return nil, fmt.Errorf("%q is not a boolean", clip(s))
}

// timeLayouts are the text forms a SQLite column may hold a time in: the
// driver's (_time_format=sqlite, and Go's time.String default), SQLite's
// own date functions', and RFC 3339.
var timeLayouts = []string{
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02T15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999 -0700 MST",
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02T15:04",
	"2006-01-02",
}

// parseTime reads a text timestamp; one without a zone is UTC.
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, " m="); i > 0 { // monotonic clock suffix of time.String
		s = s[:i]
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("cannot read " + strconv.Quote(clip(s)) + " as a timestamp")
}

// clip shortens a value quoted in an error message.
func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
