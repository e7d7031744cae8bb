package jobs

import (
	"context"
	"time"

	"github.com/redflaghq/redflag/internal/store"
)

// agentUpgrades settles upgrades whose update_agent command ended (a
// result the API did not settle, a time-out, an expiry) and queues the
// automatic upgrades the min_agent_version setting asks for, at its rate.
// It runs under the jobs' lock.
func (r *Runner) agentUpgrades(ctx context.Context, now time.Time, set store.Settings) error {
	settled, err := r.Store.SettleUpgrades(ctx, now)
	if err != nil {
		return err
	}
	for _, u := range settled {
		r.Log.Info("agent upgrade settled", "agent_id", u.AgentID, "status", u.Status, "target_version", u.TargetVersion,
			"auto_upgrade_blocked", u.AutoUpgradeBlocked, "reason", u.FailureReason)
	}
	if r.Upgrades == nil {
		return nil
	}
	res, err := r.Upgrades.QueueAuto(ctx, set.MinAgentVersion, set.AgentUpgradesPerMinute, time.Duration(set.CommandExpirySeconds)*time.Second)
	if err != nil {
		return err
	}
	if len(res.AgentIDs) > 0 && r.Wake != nil {
		r.Wake(res.AgentIDs...)
	}
	return nil
}
