// Package web holds the dashboard: its React + TypeScript source (src/,
// built with Vite) and, for the server binary, the build output in dist/.
// internal/webui serves it. With only dist/.keep present (no Node.js at
// build time) the server answers a short page that says how to build it.
package web

import "embed"

// Dist is the Vite build output under "dist/".
//
//go:embed all:dist
var Dist embed.FS
