// The demo page: built into dist/demo (not committed) and served by `create-sse-server demo`.
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  root: import.meta.dirname,
  plugins: [react()],
  build: { outDir: '../dist/demo', emptyOutDir: true },
  // `npm run dev` serves the page through Vite; /api goes to `create-sse-server demo` on 5173.
  server: { port: 5174, proxy: { '/api': 'http://127.0.0.1:5173' } },
});
