/**
 * `npm run check:cycles` (part of `npm test`): no import cycles anywhere in the product or the
 * tools, type-only imports included; and the product never imports the dev tools.
 * @type {import('dependency-cruiser').IConfiguration}
 */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import cycle: split the shared part into its own module.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'product-not-tools',
      severity: 'error',
      comment: 'src/ is what users install; tools/ (sandbox, bench) is not shipped.',
      from: { path: '^src/' },
      to: { path: '^tools/' },
    },
    {
      name: 'commands-not-siblings',
      severity: 'error',
      comment: 'A command does not import another command; shared host work lives in a non-command module.',
      from: { path: '^src/commands/(generate|plan|apply|check|checkpoint|inventory|vendor|history|rollback|export)\\.ts$' },
      to: { path: '^src/commands/(generate|plan|apply|check|checkpoint|inventory|vendor|history|rollback|export)\\.ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
