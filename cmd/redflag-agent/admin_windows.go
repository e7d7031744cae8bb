//go:build windows

package main

// needAdmin returns "": the service control manager itself refuses a
// caller without administrator rights, with a clear error.
func needAdmin() string { return "" }
