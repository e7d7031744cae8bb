package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
)

// Register enrols this machine with a registration token
// (POST /api/v1/agents/register, 201). It does not set the credentials.
func (c *Client) Register(ctx context.Context, req protocol.RegisterRequest) (*protocol.RegisterResponse, error) {
	var out protocol.RegisterResponse
	err := c.do(ctx, request{method: http.MethodPost, path: "/api/v1/agents/register", body: req,
		want: http.StatusCreated, out: &out})
	if err != nil {
		return nil, err
	}
	if out.AgentID == "" || out.Token == "" || out.RefreshToken == "" {
		return nil, errors.New("client: the registration answer lacks agent_id, token or refresh_token")
	}
	return &out, nil
}

// Renew exchanges the refresh token for a new agent JWT and a new refresh
// token (POST /api/v1/agents/renew with X-Machine-ID, 200). The old refresh
// token stops working, so the caller must persist the answer. It does not
// set the credentials.
func (c *Client) Renew(ctx context.Context, agentID, refreshToken string) (*protocol.RenewResponse, error) {
	var out protocol.RenewResponse
	err := c.do(ctx, request{method: http.MethodPost, path: "/api/v1/agents/renew", machine: true,
		body: protocol.RenewRequest{AgentID: agentID, RefreshToken: refreshToken}, want: http.StatusOK, out: &out})
	if err != nil {
		return nil, err
	}
	if out.Token == "" || out.RefreshToken == "" {
		return nil, errors.New("client: the renewal answer lacks token or refresh_token")
	}
	return &out, nil
}

// CheckIn fetches the agent's due commands
// (GET /api/v1/agents/{id}/commands, 200). With wait > 0 it asks the server
// to hold the request up to wait seconds (capped at MaxLongPollWait) until a
// command exists; the call's timeout is then wait plus the long-poll margin.
func (c *Client) CheckIn(ctx context.Context, wait int) (*protocol.CheckInResponse, error) {
	return c.CheckInAck(ctx, wait, nil)
}

// CheckInAck is CheckIn carrying acknowledgements: the ids of commands
// received in earlier answers (at most protocol.MaxAcksPerCheckIn, command
// ids only; the caller keeps the rest for later). Only a nil error means the
// server recorded them.
func (c *Client) CheckInAck(ctx context.Context, wait int, acks []string) (*protocol.CheckInResponse, error) {
	id, token, err := c.credentials()
	if err != nil {
		return nil, err
	}
	if len(acks) > protocol.MaxAcksPerCheckIn {
		return nil, fmt.Errorf("client: at most %d acknowledgements per check-in, got %d", protocol.MaxAcksPerCheckIn, len(acks))
	}
	r := request{method: http.MethodGet, path: "/api/v1/agents/" + url.PathEscape(id) + "/commands",
		bearer: token, machine: true, want: http.StatusOK, limit: maxCheckInBody}
	q := url.Values{}
	if wait > 0 {
		wait = min(wait, MaxLongPollWait)
		q.Set("wait", strconv.Itoa(wait))
		r.timeout = time.Duration(wait)*time.Second + c.margin
	}
	if len(acks) > 0 {
		q.Set(protocol.QueryAck, strings.Join(acks, ","))
	}
	if len(q) > 0 {
		r.query = q
	}
	var out protocol.CheckInResponse
	r.out = &out
	if err := c.do(ctx, r); err != nil {
		return nil, err
	}
	return &out, nil
}

// SendResult reports a command's result
// (POST /api/v1/agents/{id}/commands/{command_id}/result). nil means the
// server acknowledged it (200). An error wrapping ErrCommandGone means the
// server answered 404 or 409 with an error body: the command is unknown or
// closed there, so the result is settled and must be dropped, not retried.
func (c *Client) SendResult(ctx context.Context, commandID string, res protocol.CommandResult) error {
	id, token, err := c.credentials()
	if err != nil {
		return err
	}
	err = c.do(ctx, request{method: http.MethodPost,
		path:   "/api/v1/agents/" + url.PathEscape(id) + "/commands/" + url.PathEscape(commandID) + "/result",
		bearer: token, machine: true, body: res, want: http.StatusOK})
	var ae *APIError
	// A 404 without an error body is a server that lacks the route, not an
	// unknown command: keep the result and retry later.
	if errors.As(err, &ae) && ae.Code != "" && (ae.StatusCode == http.StatusNotFound || ae.StatusCode == http.StatusConflict) {
		return fmt.Errorf("%w: %w", ErrCommandGone, err)
	}
	return err
}

// SendSystemReport sends the system inventory
// (POST /api/v1/agents/{id}/reports/system, 204).
func (c *Client) SendSystemReport(ctx context.Context, rep protocol.SystemReport) error {
	id, token, err := c.credentials()
	if err != nil {
		return err
	}
	return c.do(ctx, request{method: http.MethodPost, path: "/api/v1/agents/" + url.PathEscape(id) + "/reports/system",
		bearer: token, machine: true, body: rep, want: http.StatusNoContent})
}

// ErrReportHashUnknown means the server does not know the unchanged_hash
// of a hash-only report (409 report_hash_unknown): send the full report.
var ErrReportHashUnknown = errors.New("the server asks for the full update report")

// updateReportBody carries the updates as raw JSON so that the hash the
// agent computes covers exactly the bytes the server receives.
type updateReportBody struct {
	Scanner         string               `json:"scanner"`
	ScannedAt       time.Time            `json:"scanned_at"`
	Updates         json.RawMessage      `json:"updates,omitempty"`
	Errors          []protocol.ScanError `json:"errors,omitempty"`
	UnchangedHash   string               `json:"unchanged_hash,omitempty"`
	IntervalSeconds int                  `json:"interval_seconds,omitempty"`
}

// EncodeUpdates returns the report encoding of updates (never null: an
// empty list is []) and its SPEC §4 hash.
func EncodeUpdates(updates []protocol.Update) (json.RawMessage, string, error) {
	if updates == nil {
		updates = []protocol.Update{}
	}
	b, err := json.Marshal(updates)
	if err != nil {
		return nil, "", fmt.Errorf("encoding the update report: %w", err)
	}
	return b, protocol.UpdatesHash(b), nil
}

// SendUpdateReport sends a full scan report of one scanner
// (POST /api/v1/agents/{id}/reports/updates). updates is the output of
// EncodeUpdates; for a failed scan it is nil and errs says why.
func (c *Client) SendUpdateReport(ctx context.Context, scannerName string, scannedAt time.Time, updates json.RawMessage,
	errs []protocol.ScanError, interval time.Duration) error {
	return c.sendReport(ctx, updateReportBody{Scanner: scannerName, ScannedAt: scannedAt.UTC(), Updates: updates,
		Errors: errs, IntervalSeconds: int(interval / time.Second)})
}

// SendUnchangedReport sends a hash-only report: the scan found exactly
// what the last accepted report said. An error wrapping
// ErrReportHashUnknown asks for the full report.
func (c *Client) SendUnchangedReport(ctx context.Context, scannerName string, scannedAt time.Time, hash string, interval time.Duration) error {
	err := c.sendReport(ctx, updateReportBody{Scanner: scannerName, ScannedAt: scannedAt.UTC(), UnchangedHash: hash,
		IntervalSeconds: int(interval / time.Second)})
	var ae *APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusConflict && ae.Code == "report_hash_unknown" {
		return fmt.Errorf("%w: %w", ErrReportHashUnknown, err)
	}
	return err
}

func (c *Client) sendReport(ctx context.Context, body updateReportBody) error {
	id, token, err := c.credentials()
	if err != nil {
		return err
	}
	var out protocol.UpdateReportResponse
	return c.do(ctx, request{method: http.MethodPost, path: "/api/v1/agents/" + url.PathEscape(id) + "/reports/updates",
		bearer: token, machine: true, body: body, want: http.StatusOK, out: &out, timeout: 2 * time.Minute})
}
