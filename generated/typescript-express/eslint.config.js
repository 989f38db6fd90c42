import js from "@eslint/js";
import { defineConfig, globalIgnores } from "eslint/config";
import tseslint from "typescript-eslint";

export default defineConfig([
  globalIgnores(["dist/"]),
  js.configs.recommended,
  {
    files: ["**/*.ts"],
    extends: [tseslint.configs.strictTypeChecked, tseslint.configs.stylisticTypeChecked],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // An empty environment variable counts as unset: `process.env.PORT || DEFAULT_PORT` is meant.
      "@typescript-eslint/prefer-nullish-coalescing": ["error", { ignorePrimitives: { string: true } }],
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true }],
      // Handlers end early with `return fail(res, ...)`, as Express code usually does.
      "@typescript-eslint/no-confusing-void-expression": "off",
    },
  },
  { linterOptions: { reportUnusedDisableDirectives: "error" } },
]);
