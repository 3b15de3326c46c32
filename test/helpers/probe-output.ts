/** The first lines every hand-written probe answer of the tests starts with: an Ubuntu 20.04 host. */
import { PROBE_VERSION } from '../../src/facts/probe-script.js';

export const FOCAL_PROBE_HEAD: readonly string[] = [
  `@@probe ${PROBE_VERSION}`,
  '@@os-release',
  'ID=ubuntu',
  'VERSION_ID="20.04"',
  'VERSION_CODENAME=focal',
];
