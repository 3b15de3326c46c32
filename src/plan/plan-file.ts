import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { DebPackageKey, DebVersion } from '../debian/schemas.js';
import { CriuLockError, type SourceLocation } from '../errors.js';
import { HostError } from '../fleet/host-error.js';
import { jsonErrorLine } from '../input/json-position.js';
import { parseYamlSource } from '../input/yaml-source.js';
import { parseWith } from '../input/zod-error.js';

export const PLAN_VERSION = 1;

const PackageKey = DebPackageKey;
const Version = DebVersion;

export const PackageAction = z.strictObject({
  type: z.enum(['install', 'upgrade', 'downgrade', 'reinstall']),
  package: PackageKey,
  from: Version.nullable(),
  to: Version,
  /** Installed from the package store: a .deb uploaded to the host, named by this sha256. */
  source: z.literal('store').optional(),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
});
export type PackageAction = z.infer<typeof PackageAction>;

export const WritePinsAction = z.strictObject({
  type: z.literal('write-pins'),
  path: z.string().regex(/^\/etc\/apt\/preferences\.d\/[A-Za-z0-9_.-]+$/),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
export type WritePinsAction = z.infer<typeof WritePinsAction>;

export const Action = z.discriminatedUnion('type', [PackageAction, WritePinsAction]);
export type Action = z.infer<typeof Action>;

export const BlockReason = z.enum([
  'version-unavailable',
  'platform-mismatch',
  'conflicting-pin',
  'held',
  'broken-dpkg-state',
  'file-mismatch',
  'would-remove',
]);
export type BlockReason = z.infer<typeof BlockReason>;

export const Blocked = z.strictObject({
  package: z.string().nullable(),
  version: z.string().nullable(),
  reason: BlockReason,
  detail: z.string(),
});
export type Blocked = z.infer<typeof Blocked>;

export const Note = z.strictObject({
  type: z.literal('extra-package'),
  package: z.string(),
  version: z.string(),
});
export type Note = z.infer<typeof Note>;

/** A package apt's simulated transaction moves beyond the plan's own actions (a new dependency, say). */
export const AptExtra = z.strictObject({
  action: z.enum(['install', 'upgrade', 'downgrade', 'reinstall']),
  package: PackageKey,
  from: Version.nullable(),
  to: Version,
});
export type AptExtra = z.infer<typeof AptExtra>;

export const HostStatus = z.enum(['ok', 'changes', 'blocked', 'unreachable', 'failed']);
export type HostStatus = z.infer<typeof HostStatus>;

export const HostPlan = z.strictObject({
  name: z.string(),
  status: HostStatus,
  fingerprint: z
    .string()
    .regex(/^sha256:[0-9a-f]{64}$/)
    .nullable(),
  actions: z.array(Action),
  blocked: z.array(Blocked),
  notes: z.array(Note),
  /** What apt-get -s would do beyond `actions`; absent when nothing (or not simulated). */
  aptExtra: z.array(AptExtra).optional(),
  error: HostError.optional(),
});
export type HostPlan = z.infer<typeof HostPlan>;

export const PlanFile = z.strictObject({
  planVersion: z.literal(PLAN_VERSION),
  lock: z.strictObject({ path: z.string(), digest: z.string().regex(/^sha256:[0-9a-f]{64}$/) }),
  hosts: z.array(HostPlan),
});
export type PlanFile = z.infer<typeof PlanFile>;

export function serializePlan(plan: PlanFile): string {
  return JSON.stringify(plan, null, 2) + '\n';
}

const EDITED = 'plans are written by `criu-lock plan -o FILE`; do not edit them';

export async function loadPlan(file: string): Promise<PlanFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new CriuLockError('plan', `cannot read plan: ${e.code === 'ENOENT' ? 'no such file' : e.message}`, {
      hint: 'create one with `criu-lock plan -o FILE`',
      location: { file },
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    const line = jsonErrorLine(text, err);
    throw new CriuLockError('plan', `not valid JSON: ${(err as Error).message}`, {
      hint: EDITED,
      location: line === undefined ? { file } : { file, line },
    });
  }
  // Positions only on the way to an error: a plan of 1,000 hosts is parsed fast without them.
  const locate = (path: ReadonlyArray<PropertyKey>, key?: string): SourceLocation =>
    parseYamlSource(text, file, { code: 'plan', hint: EDITED }).locate(path, key);
  const version = (raw as { planVersion?: unknown } | null)?.planVersion;
  if (version !== PLAN_VERSION) {
    throw new CriuLockError(
      'plan',
      version === undefined
        ? 'not a criu-lock plan: no planVersion'
        : `unsupported planVersion ${JSON.stringify(version)} (this criu-lock reads version ${PLAN_VERSION})`,
      {
        hint: 're-create the plan with this criu-lock: `criu-lock plan -o FILE`',
        location: version === undefined ? { file, line: 1 } : locate(['planVersion']),
      },
    );
  }
  const plan = parseWith(PlanFile, raw, { code: 'plan', what: 'plan', hint: EDITED, file, locate });
  // plan -o writes each host once; a host twice would be applied by whichever entry came first.
  const seen = new Set<string>();
  plan.hosts.forEach((h, i) => {
    if (seen.has(h.name))
      throw new CriuLockError('plan', `host ${JSON.stringify(h.name)} is in the plan twice`, {
        hint: EDITED,
        location: locate(['hosts', i, 'name']),
      });
    seen.add(h.name);
  });
  return plan;
}
