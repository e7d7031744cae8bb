import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import tailwindcss from '@tailwindcss/vite'
import react from '@vitejs/plugin-react'
import { defineConfig, type Plugin } from 'vite'

// The Go package web/ embeds dist/ with //go:embed, which needs at least one
// file there even before a build; dist/.keep is that file (committed), and
// the build, which empties dist/, puts it back.
function keepDistPlaceholder(): Plugin {
  return {
    name: 'redflag-keep-dist',
    apply: 'build',
    closeBundle() {
      writeFileSync(fileURLToPath(new URL('./dist/.keep', import.meta.url)), '')
    },
  }
}

// `npm run dev` proxies the API to a running server (make run), by default
// http://localhost:8080; REDFLAG_URL points it elsewhere.
const target = process.env['REDFLAG_URL'] ?? 'http://localhost:8080'

export default defineConfig({
  plugins: [react(), tailwindcss(), keepDistPlaceholder()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    // Everything as files: the Content-Security-Policy allows no inline
    // script, style or font.
    assetsInlineLimit: 0,
    sourcemap: false,
    chunkSizeWarningLimit: 1500,
  },
  server: {
    port: 5173,
    proxy: {
      '/api': { target, changeOrigin: false },
      '/install': { target, changeOrigin: false },
      '/health': { target, changeOrigin: false },
    },
  },
})
