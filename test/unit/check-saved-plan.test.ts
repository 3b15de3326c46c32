import { describe, expect, it } from 'vitest';
import { savedPlanProblems, savedPlanRefusal } from '../../src/plan/check-saved-plan.js';
import type { HostPlan } from '../../src/plan/plan-file.js';
import { renderPins, sha256Hex } from '../../src/plan/pins.js';
import { planHost } from '../../src/plan/planner.js';
import { makeFacts, makeLock, pv } from './core-fixtures.js';

const LOCK = makeLock({
  packages: {
    'libc6:amd64': { version: '2.31-0ubuntu9.14' },
    'zlib1g:amd64': { version: '1:1.2.11.dfsg-2ubuntu1.5' },
  },
});
const PINS = renderPins(LOCK);

/** The fresh plan of a host one upgrade behind the lock, pins not yet written. */
function fresh(): HostPlan {
  const facts = makeFacts({
    packages: { 'libc6:amd64': '2.31-0ubuntu9.9', 'zlib1g:amd64': '1:1.2.11.dfsg-2ubuntu1.5' },
    policies: {
      'libc6:amd64': [pv('2.31-0ubuntu9.14'), pv('2.31-0ubuntu9.9', 100, { installed: true })],
      'zlib1g:amd64': [pv('1:1.2.11.dfsg-2ubuntu1.5', 500, { installed: true })],
    },
  });
  return planHost(LOCK, facts, PINS);
}

const copy = (p: HostPlan): HostPlan => JSON.parse(JSON.stringify(p)) as HostPlan;

describe('apply PLANFILE: a saved host plan is checked, not trusted', () => {
  it('the fixture is a plan with pins and one upgrade', () => {
    const p = fresh();
    expect(p.status).toBe('changes');
    expect(p.actions.map((a) => a.type)).toEqual(['write-pins', 'upgrade']);
  });

  it('accepts a saved plan equal to the fresh one', () => {
    expect(savedPlanRefusal(LOCK, copy(fresh()), fresh())).toBeUndefined();
  });

  it.each<[string, (p: HostPlan) => void, RegExp]>([
    [
      "a `to` that is not the lock's version",
      (p) => void ((p.actions[1] as { to: string }).to = '2.31-0ubuntu9.16'),
      /upgrade libc6:amd64 to 2\.31-0ubuntu9\.16: the lock has 2\.31-0ubuntu9\.14/,
    ],
    [
      'a `to` that is dpkg-equal but not the same string',
      (p) => void ((p.actions[1] as { to: string }).to = '0:2.31-0ubuntu9.14'),
      /the lock has 2\.31-0ubuntu9\.14/,
    ],
    [
      'a package not in the lock',
      (p) => void p.actions.push({ type: 'install', package: 'netcat:amd64', from: null, to: '1.0-1' }),
      /install netcat:amd64: the package is not in the lock/,
    ],
    [
      'another pin path',
      (p) => void ((p.actions[0] as { path: string }).path = '/etc/apt/preferences.d/zz-evil'),
      /write-pins path \/etc\/apt\/preferences\.d\/zz-evil is not \/etc\/apt\/preferences\.d\/criu-lock\.pref/,
    ],
  ])('refuses %s, whatever the host looks like', (_what, edit, why) => {
    const saved = copy(fresh());
    edit(saved);
    expect(savedPlanProblems(LOCK, saved).join('; ')).toMatch(why);
    expect(savedPlanRefusal(LOCK, saved, fresh())).toMatch(why);
  });

  it.each<[string, (p: HostPlan) => void]>([
    [
      'another pin sha256',
      (p) =>
        void ((p.actions[0] as { sha256: string }).sha256 = sha256Hex(
          'Package: *\nPin: release *\nPin-Priority: -1\n',
        )),
    ],
    ['a dropped action', (p) => void p.actions.splice(1, 1)],
    ['a dropped write-pins', (p) => void p.actions.splice(0, 1)],
    ['another `from`', (p) => void ((p.actions[1] as { from: string }).from = '2.31-0ubuntu9.8')],
    ['another action type', (p) => void ((p.actions[1] as { type: string }).type = 'reinstall')],
    ['a removed blocked entry', (p) => void (p.blocked = [])],
    [
      'an added blocked entry',
      (p) =>
        void p.blocked.push({
          package: 'libc6:amd64',
          version: '2.31-0ubuntu9.14',
          reason: 'held',
          detail: 'x',
        }),
    ],
    ['another status', (p) => void (p.status = 'ok')],
    ['apt extras hidden', (p) => void delete p.aptExtra],
    [
      'apt extras added',
      (p) => void (p.aptExtra = [{ action: 'install', package: 'libfoo:amd64', from: null, to: '1.0-1' }]),
    ],
  ])('refuses a saved plan with %s', (_what, edit) => {
    const base = fresh();
    if (_what === 'apt extras hidden' || _what === 'a removed blocked entry') {
      base.aptExtra = [{ action: 'install', package: 'libdep1:amd64', from: null, to: '2.0-1' }];
      base.blocked = [{ package: 'libc6:amd64', version: '2.31-0ubuntu9.14', reason: 'held', detail: 'x' }];
      base.status = 'blocked';
    }
    const saved = copy(base);
    edit(saved);
    expect(savedPlanProblems(LOCK, saved)).toEqual([]);
    expect(savedPlanRefusal(LOCK, saved, base)).toMatch(
      /^the saved plan differs from a fresh plan for the host \(saved .*; now .*\)$/,
    );
  });

  it('a saved `ok` never skips verification: it must equal a fresh `ok`', () => {
    const saved: HostPlan = { ...copy(fresh()), status: 'ok', actions: [] };
    expect(savedPlanRefusal(LOCK, saved, fresh())).toMatch(
      /saved ok: no actions; now changes: write-pins .*, upgrade libc6:amd64 2\.31-0ubuntu9\.9→2\.31-0ubuntu9\.14/,
    );
    const converged = planHost(
      LOCK,
      makeFacts({
        packages: { 'libc6:amd64': '2.31-0ubuntu9.14', 'zlib1g:amd64': '1:1.2.11.dfsg-2ubuntu1.5' },
        pinSha256: sha256Hex(PINS),
      }),
      PINS,
    );
    expect(converged.status).toBe('ok');
    expect(
      savedPlanRefusal(LOCK, { ...saved, fingerprint: converged.fingerprint }, converged),
    ).toBeUndefined();
  });
});
