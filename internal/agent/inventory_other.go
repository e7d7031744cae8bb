//go:build !linux && !windows && !darwin

package agent

import (
	"context"

	"github.com/redflaghq/redflag/internal/protocol"
)

func osVersion() string { return "" }

// platformInventory has no platform sources here: the report carries only
// what CollectInventory fills in for every platform.
func platformInventory(ctx context.Context) protocol.SystemReport { return protocol.SystemReport{} }
