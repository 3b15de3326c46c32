/**
 * The single place where argument lists become shell text. Every command sent to a
 * host is an argv array rendered here; callers never concatenate shell strings.
 */
const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

export function quote(arg: string): string {
  if (arg.includes('\0')) throw new Error('refusing to quote an argument containing a NUL byte');
  if (arg !== '' && SAFE.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function renderCommand(argv: readonly string[]): string {
  if (argv.length === 0) throw new Error('empty command');
  return argv.map(quote).join(' ');
}
