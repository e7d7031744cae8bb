//go:build !windows

package main

import "os"

// needAdmin explains why the service commands cannot run, or returns "".
func needAdmin() string {
	if os.Geteuid() != 0 {
		return "installing or removing the service needs root; run it with sudo"
	}
	return ""
}
