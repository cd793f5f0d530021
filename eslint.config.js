// ESLint for the TypeScript sources (npm run lint). Formatting is Prettier's job (.prettierrc.json);
// these rules catch mistakes. Long string literals are allowed: a message is easier to read, grep and
// translate in one piece.
import path from 'node:path';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The plugin boundary (docs/architecture.md): a plugin never imports another plugin's files (domain code
// two plugins need goes to src/core), and nothing under src/ but the shell, which loads the plugins,
// imports a plugin. Checked on every import, export-from and dynamic import() with a literal path.
const root = path.dirname(new URL(import.meta.url).pathname);
const pluginOf = (file) => /^plugins\/([^/]+)\//.exec(file)?.[1];
const boundaryRule = {
  meta: { type: 'problem', schema: [] },
  create(context) {
    const from = path.relative(root, context.filename).split(path.sep).join('/');
    const check = (node, source) => {
      if (typeof source !== 'string' || !source.startsWith('.')) return;
      const to = path.relative(root, path.resolve(path.dirname(context.filename), source)).split(path.sep).join('/');
      const target = pluginOf(to);
      if (target === undefined) return;
      const own = pluginOf(from);
      if (own !== undefined && own !== target)
        context.report({ node, message: `The ${own} plugin imports the ${target} plugin's ${to}: plugins never import each other's files. Move what both need into src/core, or register it as a hook or an event (docs/architecture.md).` });
      else if (from.startsWith('src/') && !from.startsWith('src/shell/'))
        context.report({ node, message: `${from} imports the plugin file ${to}: only src/shell loads plugins. The core takes plain values; a plugin that changes a core policy registers it (configureJob, hooks, events).` });
    };
    const literal = (node) => (node?.type === 'Literal' ? node.value : undefined);
    return {
      ImportDeclaration: (node) => check(node, node.source.value),
      ExportNamedDeclaration: (node) => node.source && check(node, node.source.value),
      ExportAllDeclaration: (node) => check(node, node.source.value),
      ImportExpression: (node) => check(node, literal(node.source)),
    };
  },
};

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
    plugins: { boundaries: { rules: { 'plugin-boundary': boundaryRule } } },
    rules: { 'boundaries/plugin-boundary': 'error' },
  },
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
