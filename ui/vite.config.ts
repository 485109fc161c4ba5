import { defineConfig } from "vite";

// The app loads the built files (no dev server) through Tauri's custom protocol; `--mode mock`
// builds the same UI with a fake backend for the browser tests and screenshots.
export default defineConfig({
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: { target: "es2022", sourcemap: false },
  test: {
    environment: "happy-dom",
    include: ["src/**/*.test.ts"],
  },
});
