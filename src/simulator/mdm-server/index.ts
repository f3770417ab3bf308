/**
 * The reference MDM server (station ↔ MDM contract, device enrollment and check-in) for demos and
 * tests; see README.md beside this file and `resources/mdm-contract.openapi.json`.
 *
 * ```ts
 * const mdm = await startMdmServer({ dbFile, deviceCaPem: sim.deviceCaPem });
 * mdm.admin.putGroup({ id: 'g1', name: 'Grade 1', credentials: { userId: 'g1', password: 'pw' } });
 * await fetch(`${mdm.url}/v1/groups`, { headers: { Authorization: `Bearer ${mdm.token}` } });
 * await mdm.stop();
 * ```
 */
export {
  DEFAULT_CREDENTIALS_VALIDITY_MS,
  startMdmServer,
  type AdminState,
  type DeviceJson,
  type FaultConfig,
  type GroupInput,
  type GroupJson,
  type MdmAdmin,
  type MdmErrorCode,
  type MdmServer,
  type MdmServerOptions,
} from './server.ts';
export { PROFILE_IDENTIFIER } from './profile.ts';
export { chainsTo, signCms, verifyCms, type CmsVerdict, type VerifiedCms } from '../cms.ts';
