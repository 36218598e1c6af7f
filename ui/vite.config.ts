import { resolve } from "node:path";
import { defineConfig } from "vite";

// Two pages, one bundle: the dashboard (index.html) and the settings window (settings.html).
// Relative asset paths would also work, but the shell and the control API both serve from `/`.
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // No inline <script>/<style>: everything is an external file, so a strict CSP holds.
    assetsInlineLimit: 0,
    // No preload helper or <link rel=modulepreload>: two small pages need neither.
    modulePreload: false,
    rollupOptions: {
      input: {
        dashboard: resolve(import.meta.dirname, "index.html"),
        settings: resolve(import.meta.dirname, "settings.html"),
      },
    },
  },
  server: { port: 1420, strictPort: true },
});
