import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// `npm run dev` answers the UI itself and hands /api to `microbank dev` on :8000, the same
// origin split the ingress makes.
export default defineConfig({
  plugins: [react()],
  build: {
    // Hashed names under /assets/ are what the server caches for a year.
    assetsDir: "assets",
    // Every asset stays a file: an inlined data: script or font would need a looser CSP.
    assetsInlineLimit: 0,
  },
  server: { proxy: { "/api": "http://127.0.0.1:8000" } },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
});
