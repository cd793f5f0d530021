// ESLint for the TypeScript sources (npm run lint). Formatting is Prettier's job (.prettierrc.json);
// these rules catch mistakes. Long string literals are allowed: a message is easier to read, grep and
// translate in one piece.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const nodeGlobals = Object.fromEntries(
  ['process', 'console', 'URL', 'Buffer', 'performance', 'AbortController', 'AbortSignal', 'NodeJS',
    'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'fetch']
    .map((name) => [name, 'readonly']),
);

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: nodeGlobals },
    rules: {
      // Plugin descriptors hold commands of different data types; `any` is confined to that registry.
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', caughtErrors: 'none' }],
      'max-len': ['error', {
        code: 120, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true, ignoreUrls: true,
      }],
    },
  },
);
