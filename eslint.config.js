// ESLint flat config. Besides the TypeScript rules it enforces the three code roots and the layers
// of src/ (architecture.md): src/ never imports electron/react/the DOM, device/ never reaches up
// into kitting/ or sideways into the simulator, the simulator never imports the real client, and
// renderer/ sees the core only through type imports of src/contract.ts and src/errors.ts.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

const uiPackages = ['electron', 'electron/*', 'react', 'react/*', 'react-dom', 'react-dom/*'];

export default tseslint.config(
  {
    ignores: ['node_modules/', 'dist/', 'dist-electron/', 'release/', 'coverage/', 'bench/results/', 'test-results/'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2024, sourceType: 'module', globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': [
        'error',
        { selector: 'TSEnumDeclaration', message: 'Use a union of string literals (type stripping cannot run enums).' },
      ],
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: uiPackages
            .filter((p) => !p.includes('*'))
            .map((name) => ({ name, message: 'src/ is plain Node: no UI packages.' })),
          patterns: [
            { group: ['electron/*', 'react/*', 'react-dom/*'], message: 'src/ is plain Node: no UI packages.' },
            { group: ['**/renderer/**', '**/electron/**'], message: 'src/ never imports the shell or the UI.' },
          ],
        },
      ],
    },
  },
  {
    files: ['src/device/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ['electron', 'react', 'react-dom'],
          patterns: [
            {
              group: [
                '**/kitting/**',
                '**/store/**',
                '**/mdm/**',
                '**/simulator/**',
                '**/station.ts',
                '**/server/**',
                '**/cli/**',
              ],
              message: 'device/ knows nothing of the layers above it, nor of the simulator.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/simulator/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ['electron', 'react', 'react-dom'],
          patterns: [
            {
              group: ['**/device/**', '!**/device/models.ts', '**/kitting/**', '**/station.ts', '**/mdm/**'],
              message: 'The simulator never imports the client (only the data file device/models.ts).',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['renderer/**/*.{ts,tsx}'],
    languageOptions: { globals: { ...globals.browser } },
    rules: {
      'no-restricted-imports': 'off',
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/src/contract.ts', '**/src/errors.ts'],
              allowTypeImports: true,
              message: 'renderer/ imports only types from src/contract.ts and src/errors.ts.',
            },
            {
              group: ['**/src/**', '!**/src/contract.ts', '!**/src/errors.ts'],
              message: 'renderer/ talks to the station only through the API client.',
            },
            { group: ['node:*', 'electron', 'electron/*'], message: 'renderer/ runs in the browser sandbox.' },
          ],
        },
      ],
    },
  },
  {
    files: ['electron/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['**/renderer/**', 'react', 'react/*'], message: 'The shell never imports the UI code.' },
          ],
        },
      ],
    },
  },
);
