// Package e2e holds the end-to-end tests of RedFlag: they build the real
// redflag-server and redflag-agent binaries once (TestMain), run them as
// separate processes against every database engine of storetest, and drive
// them over HTTP, sometimes through an in-test reverse proxy that tampers
// with or blocks the agent's traffic. The package has no non-test code.
package e2e
