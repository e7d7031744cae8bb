package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/redflaghq/redflag/internal/protocol"
)

// Body size limits (SPEC §3).
const (
	MaxBodyBytes       = 1 << 20
	MaxReportBodyBytes = 8 << 20
)

// apiError is an HTTP error in the SPEC §3 shape.
type apiError struct {
	Status  int
	Code    string
	Message string
	Header  http.Header
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true) // agent-supplied text may end up in a browser
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	for k, vs := range e.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	writeJSON(w, e.Status, protocol.ErrorBody{Error: protocol.ErrorDetail{Code: e.Code, Message: e.Message}})
}

// decodeJSON reads exactly one JSON object into dst, refusing unknown
// fields, wrong types, trailing data and bodies over limit.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, dst any) *apiError {
	body := http.MaxBytesReader(w, r.Body, limit)
	return decodeJSONReader(body, limit, dst)
}

func decodeJSONReader(body io.Reader, limit int64, dst any) *apiError {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err, limit)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return jsonError(err, limit)
		}
		return errf(http.StatusBadRequest, "invalid_json", "The request body must hold a single JSON object and nothing after it.")
	}
	return nil
}

func jsonError(err error, limit int64) *apiError {
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return errf(http.StatusRequestEntityTooLarge, "body_too_large", "The request body is larger than %d bytes.", limit)
	case errors.Is(err, io.EOF):
		return errf(http.StatusBadRequest, "invalid_json", "The request body is empty; send a JSON object.")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errf(http.StatusBadRequest, "invalid_json", "The request body is cut short; send a complete JSON object.")
	case errors.As(err, &se):
		return errf(http.StatusBadRequest, "invalid_json", "The request body is not valid JSON (at byte %d).", se.Offset)
	case errors.As(err, &te):
		if te.Field == "" {
			return errf(http.StatusBadRequest, "invalid_json", "The request body must be a JSON object.")
		}
		return errf(http.StatusBadRequest, "invalid_type", "Field %q must be of JSON type %s.", te.Field, jsonTypeName(te.Type.Kind().String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return errf(http.StatusBadRequest, "unknown_field", "The request has a field this route does not know: %s.", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return errf(http.StatusBadRequest, "invalid_json", "The request body could not be read as JSON.")
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "map", "struct":
		return "object"
	}
	return "number"
}

// field checks a text field with protocol.CheckText and names it on failure.
func field(name, v string, max int, required bool) *apiError {
	if required && strings.TrimSpace(v) == "" {
		return errf(http.StatusBadRequest, "missing_field", "Field %q is required.", name)
	}
	if err := protocol.CheckText(v, max, false); err != nil {
		return errf(http.StatusBadRequest, "invalid_field", "Field %q: %s.", name, strings.TrimPrefix(err.Error(), protocol.ErrBadText.Error()+": "))
	}
	return nil
}

// firstErr returns the first non-nil error.
func firstErr(errs ...*apiError) *apiError {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
