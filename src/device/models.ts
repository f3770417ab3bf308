/**
 * Catalogue of Apple product types (the lockdown `ProductType`, e.g. `iPad13,18`) with the names
 * people know them by. Pure data, no imports: the device client uses it to show a human model name,
 * and the simulator uses it to give virtual devices believable identities.
 *
 * Field notes:
 * - `hardwareModel` is the lockdown `HardwareModel` (board name, e.g. `J271AP`).
 * - `chipId` is the SoC's CPID (lockdown `ChipID`); devices with `chipId >= 0x8020` (A12 and later)
 *   use the 25-character UDID form `0000CCCC-EEEEEEEEEEEEEEEE` (CPID, ECID), older ones a 40-hex UDID.
 * - `usbProductId` is the normal-mode USB idProduct (0x12A8 iPhone, 0x12AB iPad).
 * - `firstMajor` / `lastMajor` bound the iOS/iPadOS major versions the device ships with or supports.
 */

/** What the catalogue knows about one product type. */
export interface ProductModel {
  /** Marketing name, e.g. "iPad (10th generation)", "iPad Air 11-inch (M2)". */
  readonly name: string;
  readonly deviceClass: 'iPad' | 'iPhone';
  /** Board name, lockdown `HardwareModel`. */
  readonly hardwareModel: string;
  /** SoC chip id (CPID), lockdown `ChipID`. */
  readonly chipId: number;
  /** Normal-mode USB idProduct. */
  readonly usbProductId?: number;
  /** First major OS version the device shipped with. */
  readonly firstMajor: number;
  /** Last major OS version supported, when support has ended. */
  readonly lastMajor?: number;
}

const IPAD_PID = 0x12ab;
const IPHONE_PID = 0x12a8;

/** Recent iPads and iPhones by lockdown `ProductType`. */
export const PRODUCT_MODELS: Readonly<Record<string, ProductModel>> = {
  // iPad
  'iPad7,11': {
    name: 'iPad (7th generation)',
    deviceClass: 'iPad',
    hardwareModel: 'J171AP',
    chipId: 0x8010,
    usbProductId: IPAD_PID,
    firstMajor: 13,
    lastMajor: 18,
  },
  'iPad7,12': {
    name: 'iPad (7th generation)',
    deviceClass: 'iPad',
    hardwareModel: 'J172AP',
    chipId: 0x8010,
    usbProductId: IPAD_PID,
    firstMajor: 13,
    lastMajor: 18,
  },
  'iPad11,6': {
    name: 'iPad (8th generation)',
    deviceClass: 'iPad',
    hardwareModel: 'J171aAP',
    chipId: 0x8020,
    usbProductId: IPAD_PID,
    firstMajor: 14,
  },
  'iPad11,7': {
    name: 'iPad (8th generation)',
    deviceClass: 'iPad',
    hardwareModel: 'J172aAP',
    chipId: 0x8020,
    usbProductId: IPAD_PID,
    firstMajor: 14,
  },
  'iPad12,1': {
    name: 'iPad (9th generation)',
    deviceClass: 'iPad',
    hardwareModel: 'J181AP',
    chipId: 0x8030,
    usbProductId: IPAD_PID,
    firstMajor: 15,
  },
  'iPad12,2': {
    name: 'iPad (9th generation)',
    deviceClass: 'iPad',
    hardwareModel: 'J182AP',
    chipId: 0x8030,
    usbProductId: IPAD_PID,
    firstMajor: 15,
  },
  'iPad13,18': {
    name: 'iPad (10th generation)',
    deviceClass: 'iPad',
    hardwareModel: 'J271AP',
    chipId: 0x8101,
    usbProductId: IPAD_PID,
    firstMajor: 16,
  },
  'iPad13,19': {
    name: 'iPad (10th generation)',
    deviceClass: 'iPad',
    hardwareModel: 'J272AP',
    chipId: 0x8101,
    usbProductId: IPAD_PID,
    firstMajor: 16,
  },
  'iPad15,7': {
    name: 'iPad (A16)',
    deviceClass: 'iPad',
    hardwareModel: 'J481AP',
    chipId: 0x8120,
    usbProductId: IPAD_PID,
    firstMajor: 18,
  },
  'iPad15,8': {
    name: 'iPad (A16)',
    deviceClass: 'iPad',
    hardwareModel: 'J482AP',
    chipId: 0x8120,
    usbProductId: IPAD_PID,
    firstMajor: 18,
  },
  'iPad14,1': {
    name: 'iPad mini (6th generation)',
    deviceClass: 'iPad',
    hardwareModel: 'J310AP',
    chipId: 0x8110,
    usbProductId: IPAD_PID,
    firstMajor: 15,
  },
  'iPad14,2': {
    name: 'iPad mini (6th generation)',
    deviceClass: 'iPad',
    hardwareModel: 'J311AP',
    chipId: 0x8110,
    usbProductId: IPAD_PID,
    firstMajor: 15,
  },
  'iPad16,1': {
    name: 'iPad mini (A17 Pro)',
    deviceClass: 'iPad',
    hardwareModel: 'J410AP',
    chipId: 0x8130,
    usbProductId: IPAD_PID,
    firstMajor: 18,
  },
  'iPad16,2': {
    name: 'iPad mini (A17 Pro)',
    deviceClass: 'iPad',
    hardwareModel: 'J411AP',
    chipId: 0x8130,
    usbProductId: IPAD_PID,
    firstMajor: 18,
  },
  'iPad13,16': {
    name: 'iPad Air (5th generation)',
    deviceClass: 'iPad',
    hardwareModel: 'J407AP',
    chipId: 0x8103,
    usbProductId: IPAD_PID,
    firstMajor: 15,
  },
  'iPad13,17': {
    name: 'iPad Air (5th generation)',
    deviceClass: 'iPad',
    hardwareModel: 'J408AP',
    chipId: 0x8103,
    usbProductId: IPAD_PID,
    firstMajor: 15,
  },
  'iPad14,8': {
    name: 'iPad Air 11-inch (M2)',
    deviceClass: 'iPad',
    hardwareModel: 'J507AP',
    chipId: 0x8112,
    usbProductId: IPAD_PID,
    firstMajor: 17,
  },
  'iPad14,9': {
    name: 'iPad Air 11-inch (M2)',
    deviceClass: 'iPad',
    hardwareModel: 'J508AP',
    chipId: 0x8112,
    usbProductId: IPAD_PID,
    firstMajor: 17,
  },
  'iPad14,10': {
    name: 'iPad Air 13-inch (M2)',
    deviceClass: 'iPad',
    hardwareModel: 'J537AP',
    chipId: 0x8112,
    usbProductId: IPAD_PID,
    firstMajor: 17,
  },
  'iPad14,11': {
    name: 'iPad Air 13-inch (M2)',
    deviceClass: 'iPad',
    hardwareModel: 'J538AP',
    chipId: 0x8112,
    usbProductId: IPAD_PID,
    firstMajor: 17,
  },
  'iPad15,3': {
    name: 'iPad Air 11-inch (M3)',
    deviceClass: 'iPad',
    hardwareModel: 'J607AP',
    chipId: 0x8122,
    usbProductId: IPAD_PID,
    firstMajor: 18,
  },
  'iPad15,5': {
    name: 'iPad Air 13-inch (M3)',
    deviceClass: 'iPad',
    hardwareModel: 'J637AP',
    chipId: 0x8122,
    usbProductId: IPAD_PID,
    firstMajor: 18,
  },
  'iPad14,3': {
    name: 'iPad Pro 11-inch (4th generation)',
    deviceClass: 'iPad',
    hardwareModel: 'J617AP',
    chipId: 0x8112,
    usbProductId: IPAD_PID,
    firstMajor: 16,
  },
  'iPad14,5': {
    name: 'iPad Pro 12.9-inch (6th generation)',
    deviceClass: 'iPad',
    hardwareModel: 'J620AP',
    chipId: 0x8112,
    usbProductId: IPAD_PID,
    firstMajor: 16,
  },
  'iPad16,3': {
    name: 'iPad Pro 11-inch (M4)',
    deviceClass: 'iPad',
    hardwareModel: 'J717AP',
    chipId: 0x8132,
    usbProductId: IPAD_PID,
    firstMajor: 17,
  },
  'iPad16,5': {
    name: 'iPad Pro 13-inch (M4)',
    deviceClass: 'iPad',
    hardwareModel: 'J720AP',
    chipId: 0x8132,
    usbProductId: IPAD_PID,
    firstMajor: 17,
  },
  // iPhone
  'iPhone12,8': {
    name: 'iPhone SE (2nd generation)',
    deviceClass: 'iPhone',
    hardwareModel: 'D79AP',
    chipId: 0x8030,
    usbProductId: IPHONE_PID,
    firstMajor: 13,
  },
  'iPhone14,6': {
    name: 'iPhone SE (3rd generation)',
    deviceClass: 'iPhone',
    hardwareModel: 'D49AP',
    chipId: 0x8110,
    usbProductId: IPHONE_PID,
    firstMajor: 15,
  },
  'iPhone14,5': {
    name: 'iPhone 13',
    deviceClass: 'iPhone',
    hardwareModel: 'D17AP',
    chipId: 0x8110,
    usbProductId: IPHONE_PID,
    firstMajor: 15,
  },
  'iPhone14,7': {
    name: 'iPhone 14',
    deviceClass: 'iPhone',
    hardwareModel: 'D27AP',
    chipId: 0x8110,
    usbProductId: IPHONE_PID,
    firstMajor: 16,
  },
  'iPhone15,2': {
    name: 'iPhone 14 Pro',
    deviceClass: 'iPhone',
    hardwareModel: 'D73AP',
    chipId: 0x8120,
    usbProductId: IPHONE_PID,
    firstMajor: 16,
  },
  'iPhone15,4': {
    name: 'iPhone 15',
    deviceClass: 'iPhone',
    hardwareModel: 'D37AP',
    chipId: 0x8120,
    usbProductId: IPHONE_PID,
    firstMajor: 17,
  },
  'iPhone16,1': {
    name: 'iPhone 15 Pro',
    deviceClass: 'iPhone',
    hardwareModel: 'D83AP',
    chipId: 0x8130,
    usbProductId: IPHONE_PID,
    firstMajor: 17,
  },
  'iPhone16,2': {
    name: 'iPhone 15 Pro Max',
    deviceClass: 'iPhone',
    hardwareModel: 'D84AP',
    chipId: 0x8130,
    usbProductId: IPHONE_PID,
    firstMajor: 17,
  },
  'iPhone17,3': {
    name: 'iPhone 16',
    deviceClass: 'iPhone',
    hardwareModel: 'D47AP',
    chipId: 0x8140,
    usbProductId: IPHONE_PID,
    firstMajor: 18,
  },
  'iPhone17,1': {
    name: 'iPhone 16 Pro',
    deviceClass: 'iPhone',
    hardwareModel: 'D93AP',
    chipId: 0x8140,
    usbProductId: IPHONE_PID,
    firstMajor: 18,
  },
  'iPhone17,5': {
    name: 'iPhone 16e',
    deviceClass: 'iPhone',
    hardwareModel: 'V59AP',
    chipId: 0x8140,
    usbProductId: IPHONE_PID,
    firstMajor: 18,
  },
};

/** The human model name for a product type, or the product type itself when unknown. */
export function modelName(productType: string): string {
  return PRODUCT_MODELS[productType]?.name ?? productType;
}
