//go:build windows

package agent

import (
	"fmt"
	"time"

	"golang.org/x/sys/windows/svc/mgr"
)

// setRecoveryActions sets the SCM's recovery actions of the service: restart
// after 5 s, then 10 s, then every 30 s (the SCM repeats the last action),
// the failure count reset after a day without failures, and the actions
// taken also when the service stops with a failure exit code rather than a
// crash (the agent's ExitRestart).
func setRecoveryActions(name string) error {
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connecting to the service control manager: %w", err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(name)
	if err != nil {
		return fmt.Errorf("opening the service %s: %w", name, err)
	}
	defer s.Close()
	actions := []mgr.RecoveryAction{
		{Type: mgr.ServiceRestart, Delay: 5 * time.Second},
		{Type: mgr.ServiceRestart, Delay: 10 * time.Second},
		{Type: mgr.ServiceRestart, Delay: 30 * time.Second},
	}
	if err := s.SetRecoveryActions(actions, 24*60*60); err != nil {
		return fmt.Errorf("setting the recovery actions: %w", err)
	}
	if err := s.SetRecoveryActionsOnNonCrashFailures(true); err != nil {
		return fmt.Errorf("setting the recovery actions for failure exits: %w", err)
	}
	return nil
}
