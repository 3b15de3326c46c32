/** What each sandbox node has installed after `up` or `reset` (pure data). */
export type ScenarioName = 'golden' | 'converged' | 'behind' | 'ahead' | 'missing';

/** Fleet nodes (node02..) cycle through these, in this order. */
export const FLEET_CYCLE: readonly ScenarioName[] = ['converged', 'behind', 'ahead', 'missing'];

export interface PackageRef {
  name: string;
  version: string;
  /** Installed from the local .deb that no repository serves. */
  local?: boolean;
}

const GOLDEN_EXTRA: PackageRef = { name: 'golden-extra', version: '1.0-1', local: true };

function fleet(version: string): PackageRef[] {
  return [
    { name: 'libfleet1', version },
    { name: 'fleet-bin', version },
  ];
}

export const SCENARIOS: Readonly<Record<ScenarioName, readonly PackageRef[]>> = {
  golden: [
    ...fleet('2.31-0ubuntu9.14'),
    { name: 'libepoch0', version: '1:1.0-1' },
    { name: 'libtilde0', version: '3.0~rc2-1' },
    GOLDEN_EXTRA,
  ],
  converged: [
    ...fleet('2.31-0ubuntu9.14'),
    { name: 'libepoch0', version: '1:1.0-1' },
    { name: 'libtilde0', version: '3.0~rc2-1' },
    GOLDEN_EXTRA,
  ],
  behind: [
    ...fleet('2.31-0ubuntu9.9'),
    { name: 'libepoch0', version: '1.9-1' },
    { name: 'libtilde0', version: '3.0~rc1-1' },
    GOLDEN_EXTRA,
  ],
  ahead: [
    ...fleet('2.31-0ubuntu9.16'),
    { name: 'libepoch0', version: '1:1.0-1' },
    { name: 'libtilde0', version: '3.0-1' },
    GOLDEN_EXTRA,
    { name: 'fleet-doc', version: '1.0-1' },
  ],
  missing: [{ name: 'libepoch0', version: '1:1.0-1' }],
};

/** With `up --libc-drift`, nodes of this scenario also get the other real libc6 build. */
export const LIBC_DRIFT_SCENARIO: ScenarioName = 'behind';

/** node01 (index 1) is golden; the rest cycle through FLEET_CYCLE. */
export function scenarioFor(index: number): ScenarioName {
  if (index <= 1) return 'golden';
  return FLEET_CYCLE[(index - 2) % FLEET_CYCLE.length] ?? 'converged';
}

/** Packages that may be present in a node that this scenario does not list (they get purged). */
export const ALL_SYNTHETIC = [
  'fleet-bin',
  'libfleet1',
  'libepoch0',
  'libtilde0',
  'fleet-doc',
  'golden-extra',
] as const;
