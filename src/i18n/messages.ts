/**
 * The one ja/en table of what people read when something fails: a title and what to do, keyed by
 * error code. Typed as a `Record` over every {@link ErrorCode}, so adding a code without words is a
 * type error (and `npm run typecheck` fails the build).
 */
import type { NextAction } from '../contract.ts';
import type { ErrorCode } from '../errors.ts';
import { KitError } from '../errors.ts';

export type Lang = 'ja' | 'en';

export interface Words {
  /** What happened, in a few words. */
  readonly title: string;
  /** What the person should do next. */
  readonly action: string;
}

export type MessageTable = Readonly<Record<ErrorCode, Readonly<Record<Lang, Words>>>>;

export const ERROR_MESSAGES: MessageTable = {
  bug: {
    ja: { title: '内部エラーが発生しました', action: 'ログを保存して開発者に連絡してください。' },
    en: { title: 'Internal error', action: 'Save the log and contact the developers.' },
  },
  'usage/invalid-argument': {
    ja: { title: '指定内容に誤りがあります', action: 'コマンドの指定を確認してください（--help）。' },
    en: { title: 'Invalid argument', action: 'Check the command line (--help).' },
  },
  'usage/unknown-command': {
    ja: { title: '不明なコマンドです', action: '--help で使えるコマンドを確認してください。' },
    en: { title: 'Unknown command', action: 'See --help for the available commands.' },
  },
  'io/read-failed': {
    ja: { title: 'ファイルを読み込めません', action: 'ファイルの場所と権限を確認してください。' },
    en: { title: 'Cannot read the file', action: 'Check the path and its permissions.' },
  },
  'io/write-failed': {
    ja: { title: 'ファイルを書き込めません', action: '保存先の空き容量と権限を確認してください。' },
    en: { title: 'Cannot write the file', action: 'Check free space and permissions of the destination.' },
  },
  'io/not-found': {
    ja: { title: '見つかりません', action: '名前やIDを確認してください。' },
    en: { title: 'Not found', action: 'Check the name or ID.' },
  },
  'plist/malformed': {
    ja: {
      title: 'プロパティリストが壊れています',
      action: 'ファイルが正しい plist か確認してください（位置はメッセージに表示）。',
    },
    en: {
      title: 'Malformed property list',
      action: 'Check that the file is a valid plist (the position is in the message).',
    },
  },
  'plist/unsupported': {
    ja: {
      title: 'この plist の型には対応していません',
      action: '対応する型（辞書・配列・文字列・数値・日付・データ）に変換してください。',
    },
    en: { title: 'Unsupported plist value', action: 'Use supported types (dict, array, string, number, date, data).' },
  },
  'cms/malformed': {
    ja: { title: '署名付きデータが壊れています', action: '署名付き構成プロファイルを取得し直してください。' },
    en: { title: 'Malformed signed data', action: 'Get the signed configuration profile again.' },
  },
  // kitting/ blueprints, cloud configuration, naming
  'blueprint/invalid': {
    ja: {
      title: 'ブループリントの内容に誤りがあります',
      action: '表示された項目を修正してください（kitting blueprint validate で全項目を確認できます）。',
    },
    en: {
      title: 'The blueprint has invalid fields',
      action: 'Fix the fields shown (kitting blueprint validate lists them all).',
    },
  },
  'blueprint/not-json': {
    ja: {
      title: 'ブループリントのファイルが JSON として読めません',
      action: 'メッセージに表示された行・列の記述を確認してください。',
    },
    en: {
      title: 'The blueprint file is not valid JSON',
      action: 'Check the text at the line and column shown in the message.',
    },
  },
  'blueprint/duplicate-name': {
    ja: {
      title: '同じ名前のブループリントがすでにあります',
      action: '名前を変えるか、置き換える場合は --replace を指定してください。',
    },
    en: {
      title: 'A blueprint with this name already exists',
      action: 'Use another name, or give --replace to replace it.',
    },
  },
  'blueprint/not-found': {
    ja: {
      title: 'ブループリントが見つかりません',
      action: 'kitting blueprint list で名前を確認するか、ファイルのパスを指定してください。',
    },
    en: {
      title: 'Blueprint not found',
      action: 'Check the name with kitting blueprint list, or give a file path.',
    },
  },
  // csv/ serial plans
  'csv/too-many-rows': {
    ja: {
      title: 'CSVの行数が上限（10,000件）を超えています',
      action: 'ファイルを10,000件以下に分割して、それぞれ別の名前で取り込んでください。',
    },
    en: {
      title: 'The CSV has more than 10,000 rows',
      action: 'Split the file into parts of at most 10,000 rows and import each under its own name.',
    },
  },
  'csv/invalid-rows': {
    ja: {
      title: 'CSVに誤りのある行があるため、何も取り込んでいません',
      action: '表示された行番号の内容を修正して、もう一度取り込んでください。',
    },
    en: {
      title: 'The CSV has invalid rows; nothing was imported',
      action: 'Fix the rows at the line numbers shown and import the file again.',
    },
  },
  'csv/malformed': {
    ja: {
      title: 'CSVの形式が壊れています',
      action: '表示された行の引用符（"）の対応を確認してください。',
    },
    en: {
      title: 'The CSV file is malformed',
      action: 'Check the quotes (") around the line shown.',
    },
  },
  'csv/encoding': {
    ja: {
      title: 'CSVの文字コードを読み取れません',
      action: 'UTF-8 または Shift_JIS で保存し直すか、--encoding で正しい文字コードを指定してください。',
    },
    en: {
      title: 'The CSV text encoding cannot be read',
      action: 'Save the file as UTF-8 or Shift_JIS, or give the right --encoding.',
    },
  },
  'csv/empty': {
    ja: {
      title: 'CSVにデータ行がありません',
      action: '1行目はヘッダー行として読み飛ばします。2行目以降にシリアル番号を記入してください。',
    },
    en: {
      title: 'The CSV has no data rows',
      action: 'The first row is read as the header; put serial numbers from the second row on.',
    },
  },
  'csv/bad-header': {
    ja: {
      title: 'CSVのヘッダー行に誤りがあります',
      action: '同じ列名が重複していないか確認してください。',
    },
    en: {
      title: 'The CSV header row is invalid',
      action: 'Check that no column name appears twice.',
    },
  },
  'csv/unrepresentable': {
    ja: {
      title: 'Shift_JIS で表せない文字があります',
      action: '表示された行の文字を修正するか、--encoding utf-8 で書き出してください。',
    },
    en: {
      title: 'A character cannot be written in Shift_JIS',
      action: 'Change the character in the row shown, or export with --encoding utf-8.',
    },
  },
  'plan/not-found': {
    ja: { title: '端末リスト（プラン）が見つかりません', action: 'kitting plan list で名前を確認してください。' },
    en: { title: 'Plan not found', action: 'Check the name with kitting plan list.' },
  },
  'blueprint/shared-ipad-quota': {
    ja: {
      title: '共有iPadの1ユーザ当たりの割り当てサイズが大きすぎます',
      action: '端末のストレージ容量から26GBを除いた容量未満の値に変更してください（超えるとサインインに失敗します）。',
    },
    en: {
      title: 'The Shared iPad quota per user is too large',
      action: 'Use a quota below the device storage minus 26 GB (otherwise user sign-in fails).',
    },
  },
  'naming/invalid-template': {
    ja: {
      title: '端末名のテンプレートに誤りがあります',
      action: '使える差し込み項目は {serial} {model} {n} {n:3} {plan.name} {plan.assetTag} です。',
    },
    en: {
      title: 'Invalid device name template',
      action: 'Use only {serial}, {model}, {n}, {n:3}, {plan.name} and {plan.assetTag}.',
    },
  },
  'naming/missing-plan-field': {
    ja: {
      title: '端末名に使う計画の値がありません',
      action: 'シリアル番号の計画（CSV）に端末名または資産管理番号を入れるか、テンプレートを変更してください。',
    },
    en: {
      title: 'The plan has no value for the device name',
      action: 'Add the name or asset tag to the serial plan (CSV), or change the template.',
    },
  },
  'naming/too-long': {
    ja: {
      title: '端末名が長すぎます',
      action: '端末名が UTF-8 で255バイト以内になるようにテンプレートを短くしてください。',
    },
    en: {
      title: 'The device name is too long',
      action: 'Shorten the template so the name fits in 255 bytes of UTF-8.',
    },
  },
  'store/busy': {
    ja: { title: 'データベースが使用中です', action: 'しばらく待ってから、もう一度お試しください。' },
    en: { title: 'The database is busy', action: 'Wait a moment and retry.' },
  },
  'store/constraint': {
    ja: { title: 'データベースの整合性に反する変更です', action: '既存のデータと重複していないか確認してください。' },
    en: { title: 'The change conflicts with stored data', action: 'Check that it does not duplicate existing data.' },
  },
  'store/corrupt': {
    ja: { title: 'データベースが壊れています', action: 'バックアップからデータフォルダを復元してください。' },
    en: { title: 'The database is corrupt', action: 'Restore the data folder from a backup.' },
  },
  'store/io': {
    ja: { title: 'データベースを読み書きできません', action: 'データフォルダの空き容量と権限を確認してください。' },
    en: { title: 'Cannot read or write the database', action: 'Check free space and permissions of the data folder.' },
  },
  'store/newer-schema': {
    ja: {
      title: 'データベースが新しいバージョンのステーションで作成されています',
      action: 'キッティングステーションを最新版に更新してください。',
    },
    en: { title: 'The database was written by a newer station', action: 'Update the kitting station.' },
  },
  'vault/passphrase-required': {
    ja: {
      title: '秘密鍵の保管庫のパスフレーズが必要です',
      action: '--passphrase-file または環境変数 KITTING_PASSPHRASE でパスフレーズを指定してください。',
    },
    en: {
      title: 'The vault passphrase is required',
      action: 'Give it with --passphrase-file or the KITTING_PASSPHRASE environment variable.',
    },
  },
  'vault/wrong-passphrase': {
    ja: {
      title: '保管庫のパスフレーズが違います',
      action: 'このデータフォルダで設定したパスフレーズを指定してください。',
    },
    en: { title: 'Wrong vault passphrase', action: 'Give the passphrase this data folder was set up with.' },
  },
  'vault/corrupt': {
    ja: {
      title: '秘密鍵の保管庫が壊れているか改ざんされています',
      action: 'データフォルダ（vault.json と station.db）をバックアップから復元してください。',
    },
    en: {
      title: 'The key vault is corrupt or was tampered with',
      action: 'Restore the data folder (vault.json and station.db) from a backup.',
    },
  },
  'identity/not-found': {
    ja: { title: '監視用IDが見つかりません', action: '`kitting identity list` でIDを確認してください。' },
    en: { title: 'No such supervision identity', action: 'Check the ID with `kitting identity list`.' },
  },
  'identity/wrong-password': {
    ja: {
      title: 'ファイルのパスワードが違います',
      action: '書き出したときのパスワードを --password-file で指定してください。',
    },
    en: { title: 'Wrong password for the file', action: 'Give the export password with --password-file.' },
  },
  'identity/corrupt-file': {
    ja: {
      title: '監視用IDのファイルが壊れているか、形式が違います',
      action: '.p12、PEM、DER のいずれかのファイルを書き出し直してください。',
    },
    en: {
      title: 'The identity file is corrupt or in an unknown format',
      action: 'Export the identity again as .p12, PEM or DER.',
    },
  },
  'identity/missing-key': {
    ja: {
      title: 'ファイルに秘密鍵が含まれていません',
      action: '秘密鍵を含めて書き出すか、--key で秘密鍵のファイルを指定してください。',
    },
    en: {
      title: 'The file holds no private key',
      action: 'Export it with its private key, or give the key with --key.',
    },
  },
  'identity/missing-certificate': {
    ja: { title: 'ファイルに証明書が含まれていません', action: '証明書を含めて書き出したファイルを指定してください。' },
    en: { title: 'The file holds no certificate', action: 'Give a file exported with its certificate.' },
  },
  'identity/key-mismatch': {
    ja: { title: '秘密鍵が証明書と一致しません', action: 'この証明書と対になる秘密鍵を指定してください。' },
    en: {
      title: 'The private key does not match the certificate',
      action: 'Give the key that belongs to this certificate.',
    },
  },
  'identity/expired': {
    ja: {
      title: '証明書の有効期限が切れています',
      action: '有効な監視用IDを使ってください（新しいIDに変えると端末の消去と再準備が必要です）。',
    },
    en: {
      title: 'The certificate has expired',
      action: 'Use a valid supervision identity (a new one means erasing and preparing the devices again).',
    },
  },
  'identity/weak-key': {
    ja: {
      title: '鍵の長さが足りません（RSA 2048ビット以上が必要）',
      action: 'RSA 2048ビット以上の監視用IDを使ってください。',
    },
    en: {
      title: 'The key is too short (RSA 2048 bits or more needed)',
      action: 'Use an identity with an RSA key of 2048 bits or more.',
    },
  },
  'identity/unsupported-key': {
    ja: { title: 'この種類の鍵には対応していません（RSAのみ）', action: 'RSA 鍵の監視用IDを使ってください。' },
    en: { title: 'Unsupported key type (RSA only)', action: 'Use an identity with an RSA key.' },
  },
  'identity/duplicate': {
    ja: {
      title: 'この監視用IDはすでに登録されています',
      action: '`kitting identity list` で同じフィンガープリントのIDを確認してください。',
    },
    en: {
      title: 'This supervision identity is already stored',
      action: 'See `kitting identity list` for the identity with the same fingerprint.',
    },
  },
  'identity/in-use': {
    ja: {
      title: 'ブループリントで使用中の監視用IDは削除できません',
      action: '先にそのブループリントの監視用IDを変更するか、ブループリントを削除してください。',
    },
    en: {
      title: 'The identity is used by a blueprint and cannot be deleted',
      action: 'Change or delete the blueprints that use it first.',
    },
  },
  // device/ (usbmuxd, framing, lockdown, pairing, services)
  'usbmux/unavailable': {
    ja: {
      title: 'usbmuxd に接続できません',
      action: 'Apple Mobile Device サービス（usbmuxd）が動いているか、--usbmuxd の指定を確認してください。',
    },
    en: {
      title: 'Cannot reach usbmuxd',
      action: 'Check that usbmuxd (Apple Mobile Device Service) is running and the --usbmuxd address.',
    },
  },
  'usbmux/bad-command': {
    ja: { title: 'usbmuxd が要求を受け付けませんでした', action: 'ログを保存して開発者に連絡してください。' },
    en: { title: 'usbmuxd rejected the request', action: 'Save the log and contact the developers.' },
  },
  'usbmux/device-gone': {
    ja: { title: '端末が見つかりません（取り外されました）', action: '端末のケーブルを確認し、接続し直してください。' },
    en: { title: 'The device is gone (unplugged)', action: 'Check the cable and plug the device in again.' },
  },
  'usbmux/connection-refused': {
    ja: { title: '端末が接続を拒否しました', action: '端末の起動完了を待ってからやり直してください。' },
    en: {
      title: 'The device refused the connection',
      action: 'Wait until the device has finished starting up, then retry.',
    },
  },
  'usbmux/no-such-service': {
    ja: { title: '端末にそのサービスがありません', action: '端末の iOS バージョンを確認してください。' },
    en: { title: 'No such service on the device', action: 'Check the iOS version of the device.' },
  },
  'usbmux/bad-version': {
    ja: {
      title: 'usbmuxd のプロトコルバージョンが合いません',
      action: 'usbmuxd（Apple Mobile Device サービス）を更新してください。',
    },
    en: { title: 'usbmuxd protocol version mismatch', action: 'Update usbmuxd (Apple Mobile Device Service).' },
  },
  'usbmux/pair-record-failed': {
    ja: {
      title: 'ペアリング情報を usbmuxd に保存・削除できません',
      action: 'usbmuxd の権限とディスクの空き容量を確認してください。',
    },
    en: {
      title: 'usbmuxd could not store or delete the pairing record',
      action: 'Check usbmuxd permissions and free disk space.',
    },
  },
  'usbmux/failed': {
    ja: {
      title: 'usbmuxd がエラーを返しました',
      action: 'もう一度お試しください。続く場合はログを保存して開発者に連絡してください。',
    },
    en: {
      title: 'usbmuxd returned an error',
      action: 'Retry; if it persists, save the log and contact the developers.',
    },
  },
  'device/not-found': {
    ja: { title: '端末が接続されていません', action: 'UDID と USB ケーブルの接続を確認してください（kitting list）。' },
    en: { title: 'The device is not attached', action: 'Check the UDID and the USB cable (kitting list).' },
  },
  'device/timeout': {
    ja: { title: '端末から応答がありません', action: '端末の接続を確認し、もう一度お試しください。' },
    en: { title: 'The device did not answer in time', action: 'Check the connection and retry.' },
  },
  'device/frame-too-large': {
    ja: {
      title: '端末から異常な大きさのデータを受信しました',
      action: '端末を接続し直してください。続く場合は端末を再起動してください。',
    },
    en: {
      title: 'The device sent an oversized message',
      action: 'Plug the device in again; if it persists, restart the device.',
    },
  },
  'device/bad-reply': {
    ja: {
      title: '端末からの応答を読み取れません',
      action: '端末を接続し直してください。続く場合は端末を再起動してください。',
    },
    en: {
      title: 'Unreadable reply from the device',
      action: 'Plug the device in again; if it persists, restart the device.',
    },
  },
  'device/connection-lost': {
    ja: { title: '端末との接続が切れました', action: 'ケーブルを確認してください。自動で再試行します。' },
    en: {
      title: 'The connection to the device was lost',
      action: 'Check the cable; the station retries automatically.',
    },
  },
  'device/tls-failed': {
    ja: {
      title: '端末との暗号化通信を開始できません',
      action: '端末のペアリングを解除して、もう一度ペアリングしてください。',
    },
    en: { title: 'Secure session with the device failed', action: 'Unpair the device and pair it again.' },
  },
  'device/wrong-mode': {
    ja: {
      title: '端末が通常モードではありません',
      action: '端末を通常起動させてからやり直してください（リカバリーモード / DFUモードでは操作できません）。',
    },
    en: {
      title: 'The device is not in normal mode',
      action: 'Boot the device normally and retry (recovery/DFU mode cannot do this).',
    },
  },
  'pairing/invalid-record': {
    ja: {
      title: 'ペアリング情報が壊れています',
      action: '端末のペアリングを解除して、もう一度ペアリングしてください。',
    },
    en: { title: 'The pairing record is damaged', action: 'Unpair the device and pair it again.' },
  },
  'pairing/failed': {
    ja: { title: 'ペアリングに失敗しました', action: '端末を接続し直して、もう一度ペアリングしてください。' },
    en: { title: 'Pairing failed', action: 'Plug the device in again and pair once more.' },
  },
  'lockdown/invalid-response': {
    ja: { title: '端末が要求を理解できませんでした', action: 'ログを保存して開発者に連絡してください。' },
    en: { title: 'The device did not understand the request', action: 'Save the log and contact the developers.' },
  },
  'lockdown/missing-key': {
    ja: { title: '要求に必要な項目がありません', action: 'ログを保存して開発者に連絡してください。' },
    en: { title: 'A required key is missing from the request', action: 'Save the log and contact the developers.' },
  },
  'lockdown/missing-value': {
    ja: { title: '端末にその値がありません', action: 'キーとドメインの名前を確認してください。' },
    en: { title: 'The device has no such value', action: 'Check the key and domain names.' },
  },
  'lockdown/get-prohibited': {
    ja: { title: 'その値は読み取りが許可されていません', action: '端末とペアリングしてからやり直してください。' },
    en: { title: 'Reading this value is not allowed', action: 'Pair with the device, then retry.' },
  },
  'lockdown/set-prohibited': {
    ja: { title: 'その値は変更が許可されていません', action: 'キーとドメインの名前を確認してください。' },
    en: { title: 'Changing this value is not allowed', action: 'Check the key and domain names.' },
  },
  'lockdown/remove-prohibited': {
    ja: { title: 'その値は削除が許可されていません', action: 'キーとドメインの名前を確認してください。' },
    en: { title: 'Removing this value is not allowed', action: 'Check the key and domain names.' },
  },
  'lockdown/immutable-value': {
    ja: { title: 'その値は変更できません', action: 'キーとドメインの名前を確認してください。' },
    en: { title: 'This value cannot be changed', action: 'Check the key and domain names.' },
  },
  'lockdown/password-protected': {
    ja: { title: '端末がパスコードでロックされています', action: '端末のロックを解除してください。' },
    en: { title: 'The device is locked with a passcode', action: 'Unlock the device.' },
  },
  'lockdown/trust-denied': {
    ja: {
      title: '端末で「信頼しない」が選ばれました',
      action: '端末を接続し直し、「このコンピュータを信頼しますか?」で「信頼」をタップしてください。',
    },
    en: {
      title: 'Trust was declined on the device',
      action: 'Plug the device in again and tap "Trust" on "Trust This Computer?".',
    },
  },
  'lockdown/trust-pending': {
    ja: { title: '端末で信頼の確認を待っています', action: '端末で「信頼」をタップしてください。' },
    en: { title: 'Waiting for Trust on the device', action: 'Tap "Trust" on the device.' },
  },
  'lockdown/missing-host-id': {
    ja: {
      title: 'ペアリング情報にホストIDがありません',
      action: '端末のペアリングを解除して、もう一度ペアリングしてください。',
    },
    en: { title: 'The pairing record has no host ID', action: 'Unpair the device and pair it again.' },
  },
  'lockdown/invalid-host-id': {
    ja: {
      title: '端末側でペアリングが解除されています',
      action: 'もう一度ペアリングしてください（端末で「信頼」をタップしてください）。',
    },
    en: { title: 'The pairing was removed on the device', action: 'Pair again (tap "Trust" on the device).' },
  },
  'lockdown/session-active': {
    ja: { title: '端末とのセッションがすでに開始されています', action: 'もう一度お試しください。' },
    en: { title: 'A session with the device is already active', action: 'Retry.' },
  },
  'lockdown/session-inactive': {
    ja: { title: '端末とのセッションが開始されていません', action: 'もう一度お試しください。自動で接続し直します。' },
    en: { title: 'No session with the device', action: 'Retry; the station reconnects automatically.' },
  },
  'lockdown/missing-session-id': {
    ja: { title: 'セッションIDがありません', action: 'ログを保存して開発者に連絡してください。' },
    en: { title: 'The session ID is missing', action: 'Save the log and contact the developers.' },
  },
  'lockdown/invalid-session-id': {
    ja: { title: 'セッションIDが無効です', action: '端末を接続し直して、もう一度お試しください。' },
    en: { title: 'The session ID is invalid', action: 'Plug the device in again and retry.' },
  },
  'lockdown/missing-service': {
    ja: { title: 'サービス名が指定されていません', action: 'ログを保存して開発者に連絡してください。' },
    en: { title: 'No service name was given', action: 'Save the log and contact the developers.' },
  },
  'lockdown/invalid-service': {
    ja: { title: '端末がそのサービスを提供していません', action: '端末の iOS バージョンを確認してください。' },
    en: { title: 'The device does not offer that service', action: 'Check the iOS version of the device.' },
  },
  'lockdown/service-limit': {
    ja: { title: '端末のサービス数が上限に達しました', action: 'しばらく待ってからやり直してください。' },
    en: { title: 'Too many services started on the device', action: 'Wait a moment, then retry.' },
  },
  'lockdown/missing-pair-record': {
    ja: { title: 'ペアリング情報が送られていません', action: 'もう一度ペアリングしてください。' },
    en: { title: 'The pairing record is missing', action: 'Pair again.' },
  },
  'lockdown/save-pair-record-failed': {
    ja: {
      title: '端末がペアリング情報を保存できませんでした',
      action: '端末を再起動して、もう一度ペアリングしてください。',
    },
    en: { title: 'The device could not store the pairing', action: 'Restart the device and pair again.' },
  },
  'lockdown/invalid-pair-record': {
    ja: {
      title: '端末がペアリング情報を受け付けませんでした',
      action: '端末のペアリングを解除して、もう一度ペアリングしてください。',
    },
    en: { title: 'The device rejected the pairing record', action: 'Unpair the device and pair it again.' },
  },
  'lockdown/invalid-activation-record': {
    ja: { title: 'アクティベーション（Apple）の情報が無効です', action: 'もう一度アクティベーションしてください。' },
    en: { title: 'The activation record is invalid', action: 'Activate again.' },
  },
  'lockdown/missing-activation-record': {
    ja: { title: 'アクティベーション（Apple）の情報がありません', action: 'もう一度アクティベーションしてください。' },
    en: { title: 'The activation record is missing', action: 'Activate again.' },
  },
  'lockdown/service-prohibited': {
    ja: {
      title: '端末がそのサービスの開始を許可しませんでした',
      action: '端末のロックを解除して、もう一度お試しください。',
    },
    en: { title: 'The device does not allow that service', action: 'Unlock the device and retry.' },
  },
  'lockdown/escrow-locked': {
    ja: { title: '端末がロック中のためサービスを開始できません', action: '端末のロックを解除してください。' },
    en: { title: 'The device is locked; the service cannot start', action: 'Unlock the device.' },
  },
  'lockdown/pairing-prohibited': {
    ja: { title: 'この接続ではペアリングできません', action: 'USB ケーブルで接続してペアリングしてください。' },
    en: { title: 'Pairing is not allowed over this connection', action: 'Connect with a USB cable to pair.' },
  },
  'lockdown/fmip-protected': {
    ja: {
      title: '「探す」で保護されています',
      action: '端末の「探す」をオフにするか、アクティベーションロックを解除してください。',
    },
    en: { title: 'Protected by Find My', action: 'Turn off Find My on the device or clear Activation Lock.' },
  },
  'lockdown/mc-protected': {
    ja: {
      title: '構成プロファイルによりペアリングが禁止されています',
      action: '監視用ID（証明書と秘密鍵）でペアリングしてください。',
    },
    en: { title: 'Pairing is blocked by the device configuration', action: 'Pair with the supervision identity.' },
  },
  'lockdown/mc-challenge-required': {
    ja: {
      title: '監視対象の端末のため監視用IDが必要です',
      action: '監視用ID（証明書と秘密鍵）を指定してペアリングしてください。',
    },
    en: {
      title: 'Supervised device: the supervision identity is required',
      action: 'Pair with the supervision identity.',
    },
  },
  'lockdown/invalid-connection': {
    ja: { title: '端末が接続を受け付けませんでした', action: '端末を接続し直して、もう一度お試しください。' },
    en: { title: 'The device rejected the connection', action: 'Plug the device in again and retry.' },
  },
  'lockdown/unknown-error': {
    ja: { title: '端末が不明なエラーを返しました', action: 'メッセージのエラー名を添えて開発者に連絡してください。' },
    en: {
      title: 'The device returned an unknown error',
      action: 'Contact the developers with the error name from the message.',
    },
  },
  'lockdown/supervisor-rejected': {
    ja: {
      title: '端末がこの監視用ID（証明書と秘密鍵）でのペアリングを受け付けませんでした',
      action: 'この端末を監視している組織の監視用IDを指定してください（kitting identity list）。',
    },
    en: {
      title: 'The device refused pairing with this supervision identity',
      action: 'Use the supervision identity of the organization that supervises this device (kitting identity list).',
    },
  },
  'usb/not-loaded': {
    ja: {
      title: 'USB モジュールを読み込めません（ポート番号とリカバリーモード／DFUモードの検出は無効です）',
      action: 'npm ci をやり直してください。ほかの機能はそのまま使えます。',
    },
    en: {
      title: 'The USB module could not load (port numbers and recovery/DFU detection are off)',
      action: 'Run npm ci again. Everything else keeps working.',
    },
  },
  'usb/unavailable': {
    ja: {
      title: 'USB にアクセスできません（ポート番号とリカバリーモード／DFUモードの検出は無効です）',
      action: 'USB バスのないコンテナや仮想環境では使えません。ほかの機能はそのまま使えます。',
    },
    en: {
      title: 'No USB access here (port numbers and recovery/DFU detection are off)',
      action: 'Containers and VMs without a USB bus cannot see ports. Everything else keeps working.',
    },
  },
  'usb/permission-denied': {
    ja: {
      title: 'USB へのアクセスが許可されていません（ポート番号とリカバリーモード／DFUモードの検出は無効です）',
      action: 'Linux では Apple（05ac）の udev ルールを追加し、macOS ではアクセスを許可してください。',
    },
    en: {
      title: 'USB access is not permitted (port numbers and recovery/DFU detection are off)',
      action: 'On Linux add a udev rule for Apple (05ac) devices; on macOS allow the access.',
    },
  },
  'usb/not-found': {
    ja: {
      title: 'その ECID の端末がリカバリーモード／DFUモードで接続されていません',
      action: 'kitting usb list で ECID とケーブルを確認してください。',
    },
    en: {
      title: 'No device with that ECID is attached in recovery or DFU mode',
      action: 'Check the ECID and the cable with kitting usb list.',
    },
  },
  'usb/device-gone': {
    ja: { title: 'USB 通信中に端末が外れました', action: 'ケーブルを確認して、もう一度実行してください。' },
    en: { title: 'The device left the USB bus', action: 'Check the cable and try again.' },
  },
  'usb/transfer-failed': {
    ja: { title: 'USB 通信に失敗しました', action: 'ケーブルやハブを替えて、もう一度実行してください。' },
    en: { title: 'USB transfer failed', action: 'Try another cable or hub port, then try again.' },
  },
  'usb/recovery-not-confirmed': {
    ja: {
      title: '端末をリカバリーモードにします（作業中の処理は中断されます）',
      action: '実行するには --yes を付けてください。',
    },
    en: {
      title: 'This puts the device into recovery mode (anything running on it stops)',
      action: 'Add --yes to do it.',
    },
  },
  'diagnostics/failed': {
    ja: {
      title: '端末が再起動・システム終了の要求を実行できませんでした',
      action: '端末を接続し直して、もう一度お試しください。',
    },
    en: { title: 'The device could not restart or shut down', action: 'Plug the device in again and retry.' },
  },
  'mcinstall/cloud-config-present': {
    ja: {
      title: '端末にはすでに監視用の構成（クラウド構成）があります',
      action: '別の構成に変えるには、すべてのコンテンツと設定を消去してから準備し直してください。',
    },
    en: {
      title: 'The device already has a cloud configuration',
      action: 'To change it, erase all content and settings, then prepare the device again.',
    },
  },
  'mcinstall/not-activated': {
    ja: {
      title: '端末がアクティベーション（Apple）されていないため構成を書き込めません',
      action: '端末をアクティベーションしてから、もう一度準備してください。',
    },
    en: {
      title: 'The device is not activated, so it refused the configuration',
      action: 'Activate the device, then prepare it again.',
    },
  },
  'mcinstall/ade-assigned': {
    ja: {
      title: '端末は自動デバイス登録（DEP）に割り当てられています',
      action:
        '設定アシスタントで自動デバイス登録の手順で準備するか、Apple Business Manager で割り当てを解除してください。',
    },
    en: {
      title: 'The device is assigned to Automated Device Enrollment (DEP)',
      action: 'Set it up through Automated Device Enrollment, or remove the assignment in Apple Business Manager.',
    },
  },
  'mcinstall/device-locked': {
    ja: { title: '端末がロックされています', action: '端末のロックを解除してください。' },
    en: { title: 'The device is locked', action: 'Unlock the device.' },
  },
  'mcinstall/escalation-rejected': {
    ja: {
      title: '端末がこの監視用IDを受け付けませんでした',
      action: 'ブループリントの監視用ID（証明書と秘密鍵）が、この端末を監視している組織のものか確認してください。',
    },
    en: {
      title: 'The device rejected this supervision identity',
      action: "Check that the blueprint's supervision identity is the one that supervises this device.",
    },
  },
  'mcinstall/not-escalated': {
    ja: {
      title: '監視用IDでの認証前に、監視対象向けの操作をしようとしました',
      action: 'ログを保存して開発者に連絡してください。',
    },
    en: {
      title: 'A supervised operation was attempted before authenticating with the supervision identity',
      action: 'Save the log and contact the developers.',
    },
  },
  'mcinstall/profile-rejected': {
    ja: {
      title: '端末が構成プロファイルを受け付けませんでした',
      action: 'プロファイルの内容と署名を確認してください（理由はメッセージに表示）。',
    },
    en: {
      title: 'The device rejected the configuration profile',
      action: 'Check the profile and its signature (the reason is in the message).',
    },
  },
  'mcinstall/failed': {
    ja: {
      title: '端末が構成の要求を実行できませんでした',
      action: 'メッセージのエラー番号を確認し、もう一度お試しください。',
    },
    en: {
      title: 'The device could not carry out the configuration request',
      action: 'Check the error number in the message and retry.',
    },
  },
  'mcinstall/not-supervised': {
    ja: {
      title: '端末が監視対象ではないため、この操作はできません',
      action: '監視対象として準備した端末で実行するか、通常のインストール（端末で承認）を使ってください。',
    },
    en: {
      title: 'The device is not supervised, so this is not allowed',
      action: 'Run it on a supervised device, or use a normal install (approved on the device).',
    },
  },
  'mcinstall/profile-not-found': {
    ja: {
      title: '端末にその構成プロファイルはありません',
      action: 'kitting profiles list で識別子を確認してください。',
    },
    en: { title: 'No such profile on the device', action: 'Check the identifier with kitting profiles list.' },
  },
  'afc/not-found': {
    ja: { title: '端末上にそのファイルまたはフォルダはありません', action: 'パスを確認してください。' },
    en: { title: 'No such file or folder on the device', action: 'Check the path.' },
  },
  'afc/exists': {
    ja: {
      title: '端末上に同じ名前のファイルまたはフォルダがあります',
      action: '別の名前を使うか、先に削除してください。',
    },
    en: {
      title: 'A file or folder with that name exists on the device',
      action: 'Use another name or remove it first.',
    },
  },
  'afc/permission-denied': {
    ja: { title: '端末上のその場所には書き込めません', action: 'パスを確認してください。' },
    en: { title: 'The device does not allow access to that path', action: 'Check the path.' },
  },
  'afc/dir-not-empty': {
    ja: { title: '端末上のフォルダが空ではありません', action: '中身ごと削除する操作を使ってください。' },
    en: { title: 'The folder on the device is not empty', action: 'Remove it with its contents instead.' },
  },
  'afc/no-space': {
    ja: { title: '端末の空き容量が足りません', action: '端末の空き容量を確保してから、もう一度お試しください。' },
    en: { title: 'The device is out of space', action: 'Free up space on the device and retry.' },
  },
  'afc/failed': {
    ja: {
      title: '端末のファイル操作に失敗しました',
      action: 'メッセージのエラー番号を確認し、もう一度お試しください。',
    },
    en: { title: 'A file operation on the device failed', action: 'Check the error number in the message and retry.' },
  },
  'activation/offline': {
    ja: {
      title: 'インターネット接続待ち：アクティベーション（Apple）にはインターネットが必要です',
      action: 'キッティングステーションをインターネットに接続してください。接続されると続きから再開します。',
    },
    en: {
      title: "Waiting for internet: activation needs Apple's servers",
      action: 'Connect the station to the internet; the job resumes where it stopped.',
    },
  },
  'activation/locked': {
    ja: {
      title: '端末にアクティベーションロックがかかっています',
      action:
        '以前の所有者の Apple アカウントで「探す」をオフにするか、Apple Business Manager でロックを解除してください。',
    },
    en: {
      title: 'The device is Activation Locked',
      action: "Turn off Find My with the previous owner's Apple Account, or clear the lock in Apple Business Manager.",
    },
  },
  'activation/failed': {
    ja: { title: 'アクティベーション（Apple）に失敗しました', action: '端末を接続し直して、もう一度お試しください。' },
    en: { title: 'Activation failed', action: 'Plug the device in again and retry.' },
  },
  'activation/server-error': {
    ja: {
      title: 'アクティベーション（Apple）のサーバーがエラーを返しました',
      action: 'しばらく待ってから、もう一度お試しください（HTTP ステータスはメッセージに表示）。',
    },
    en: {
      title: "Apple's activation server returned an error",
      action: 'Wait a while and retry (the HTTP status is in the message).',
    },
  },
  'kitting/erase-unconfirmed': {
    ja: {
      title: '消去の指示のあと、端末が消去されないまま戻りました',
      action: 'ケーブルが抜けた可能性があります。端末をつないだままにしてください。消去をもう一度行います。',
    },
    en: {
      title: 'The device came back from the erase request without being erased',
      action:
        'The cable was probably pulled as the erase was sent. Keep the device connected; the erase is tried again.',
    },
  },
  'kitting/erase-needed': {
    ja: {
      title: '端末の構成がこのブループリントと異なるため、消去が必要です',
      action:
        '相違点を確認し、ブループリントで「必要に応じて消去」をオンにして、消去を確認したうえで準備してください。',
    },
    en: {
      title: 'The device is configured differently from this blueprint and must be erased',
      action: 'Review the differences, turn on "Erase if needed" in the blueprint, and confirm the erase.',
    },
  },
  'kitting/mdm-registered': {
    ja: {
      title: 'この端末はMDMに登録済みで有効です（同じ端末は二重に登録できません）',
      action:
        'MDMで先にインアクティベーションしてください。消去して再キッティングする端末で、MDMから端末に届かない場合だけ、確認のうえ強制インアクティベーションを依頼できます。',
    },
    en: {
      title: 'This device is registered and active in the MDM (a device cannot be registered twice)',
      action:
        'Inactivate it in the MDM first. Only for a device being erased for re-kitting that the MDM can no longer reach, you may request a forced inactivation with explicit confirmation.',
    },
  },
  'kitting/erase-not-allowed': {
    ja: {
      title: '消去が必要ですが、ブループリントで消去が許可されていません',
      action: 'ブループリントの「必要に応じて消去」をオンにするか、端末を手動で消去してください。',
    },
    en: {
      title: 'The device must be erased, but the blueprint does not allow it',
      action: 'Turn on "Erase if needed" in the blueprint, or erase the device by hand.',
    },
  },
  'kitting/erase-not-confirmed': {
    ja: {
      title: '端末の消去には確認が必要です',
      action: 'すべてのコンテンツと設定を消去してよいか確認してください（CLI では --yes を指定）。',
    },
    en: {
      title: 'Erasing the device needs your confirmation',
      action: 'Confirm that all content and settings may be erased (--yes on the command line).',
    },
  },
  'kitting/ade-assigned': {
    ja: {
      title: '端末は自動デバイス登録（DEP）に割り当てられているため、手動で構成できません',
      action:
        '設定アシスタントで自動デバイス登録の手順で準備するか、Apple Business Manager で割り当てを解除してください。',
    },
    en: {
      title: 'The device has an Automated Device Enrollment (DEP) assignment and cannot be configured by hand',
      action: 'Set it up through Automated Device Enrollment, or remove the assignment in Apple Business Manager.',
    },
  },
  'kitting/signer-required': {
    ja: {
      title: 'この手順には監視用ID（証明書と秘密鍵）が必要です',
      action: '監視用IDのパスフレーズを指定してください（--passphrase-file または KITTING_PASSPHRASE）。',
    },
    en: {
      title: 'This step needs the supervision identity',
      action: 'Give the vault passphrase (--passphrase-file or KITTING_PASSPHRASE).',
    },
  },
  'kitting/profile-unavailable': {
    ja: {
      title: 'ブループリントの構成プロファイルを読み込めません',
      action: 'プロファイルのファイルの場所、または MDM の設定を確認してください。',
    },
    en: {
      title: "The blueprint's configuration profile cannot be loaded",
      action: 'Check the profile file path or the MDM settings.',
    },
  },
  'kitting/cancelled': {
    ja: { title: 'キッティングが中止されました', action: '同じコマンドを実行すると続きから再開します。' },
    en: { title: 'Kitting was cancelled', action: 'Run the same command again to resume.' },
  },
  'batch/already-running': {
    ja: {
      title: '別のバッチが実行中です',
      action: '実行中のバッチを停止するか、終わるのを待ってから開始してください。',
    },
    en: {
      title: 'Another batch is running',
      action: 'Stop the running batch, or wait for it to end, then start again.',
    },
  },
  'batch/not-running': {
    ja: { title: '実行中のバッチがありません', action: 'バッチまたは監視モードを開始してから操作してください。' },
    en: { title: 'No batch is running', action: 'Start a batch or watch mode first.' },
  },
  'job/not-found': {
    ja: { title: 'ジョブが見つかりません', action: 'kitting jobs でジョブ ID を確認してください。' },
    en: { title: 'No such job', action: 'Check the job id with kitting jobs.' },
  },
  'sim/unknown-device': {
    ja: { title: '仮想端末が見つかりません', action: 'sim-ctl list で UDID を確認してください。' },
    en: { title: 'No such virtual device', action: 'Check the UDID with sim-ctl list.' },
  },
  'sim/invalid-state': {
    ja: { title: '仮想端末が今の状態ではその操作を受け付けません', action: 'sim-ctl state で状態を確認してください。' },
    en: {
      title: 'The virtual device cannot do that in its current state',
      action: 'Check its state with sim-ctl state.',
    },
  },
  'sim/control-unreachable': {
    ja: {
      title: 'シミュレーターの制御ソケットに接続できません',
      action: 'kitting sim が起動しているか、--control の指定を確認してください。',
    },
    en: {
      title: 'Cannot reach the simulator control socket',
      action: 'Check that kitting sim is running and the --control address.',
    },
  },
  'sim/start-failed': {
    ja: {
      title: 'シミュレーターを起動できませんでした',
      action: 'ソケットのパスやポートが使用中でないか確認してください。',
    },
    en: { title: 'The simulator could not start', action: 'Check that the socket path or port is free.' },
  },
  'sim/setup-needs-credentials': {
    ja: {
      title: '仮想端末のリモートマネジメント画面がユーザ名とパスワードを求めています',
      action: 'sim-ctl setup に --username と --password を付けて実行してください。',
    },
    en: {
      title: 'The virtual device’s Remote Management pane asks for a user name and password',
      action: 'Run sim-ctl setup again with --username and --password.',
    },
  },
  'sim/setup-failed': {
    ja: {
      title: '仮想端末のセットアップ（MDM 登録）に失敗しました',
      action: 'メッセージの HTTP 応答と ConfigurationURL を確認してください。',
    },
    en: {
      title: 'The virtual device could not finish Setup Assistant (MDM enrollment failed)',
      action: 'Check the HTTP answer in the message and the ConfigurationURL.',
    },
  },
  'ipc/untrusted-sender': {
    ja: {
      title: 'アプリ以外の画面からの操作を拒否しました',
      action: 'アプリのウィンドウから操作してください。繰り返す場合はアプリを再起動してください。',
    },
    en: {
      title: 'A call from outside the app window was refused',
      action: 'Use the app window. If this repeats, restart the app.',
    },
  },
  'mdm-server/start-failed': {
    ja: {
      title: '参照 MDM サーバーを起動できません',
      action: 'ポートが使用中でないか、--db と --device-ca のファイルを確認してください。',
    },
    en: {
      title: 'The reference MDM server could not start',
      action: 'Check that the port is free and the --db and --device-ca files.',
    },
  },
  'mdm/unconfigured': {
    ja: {
      title: 'MDM との同期が設定されていません',
      action: 'kitting sync config --url URL --token-file F で設定してください。',
    },
    en: { title: 'MDM sync is not configured', action: 'Run kitting sync config --url URL --token-file F.' },
  },
  'mdm/offline': {
    ja: {
      title: 'MDM サーバーに接続できません（オフライン）',
      action: '結果は送信待ちとして保存されています。ネットワークを確認してください。自動で再試行します。',
    },
    en: {
      title: 'The MDM server cannot be reached (offline)',
      action: 'Results are kept as queued. Check the network; the station retries by itself.',
    },
  },
  'mdm/timeout': {
    ja: {
      title: 'MDM サーバーが時間内に応答しません',
      action: '自動で再試行します。続く場合はネットワークとサーバーの状態を確認してください。',
    },
    en: {
      title: 'The MDM server did not answer in time',
      action: 'The station retries by itself; if it goes on, check the network and the server.',
    },
  },
  'mdm/server-error': {
    ja: {
      title: 'MDM サーバーでエラーが発生しました',
      action: '自動で再試行します。続く場合は MDM の管理者に連絡してください。',
    },
    en: {
      title: 'The MDM server failed',
      action: 'The station retries by itself; if it goes on, contact the MDM administrator.',
    },
  },
  'mdm/auth-required': {
    ja: {
      title: 'MDM のトークンが無効です',
      action: '新しいトークンを kitting sync config --token-file で設定してください。同期は停止しています。',
    },
    en: {
      title: 'The MDM token was refused',
      action: 'Set a new token with kitting sync config --token-file; sync is stopped until then.',
    },
  },
  'mdm/bad-response': {
    ja: { title: 'MDM サーバーの応答を解釈できません', action: 'サーバーの URL とバージョンを確認してください。' },
    en: {
      title: 'The MDM server gave an answer the station does not understand',
      action: 'Check the server URL and its version.',
    },
  },
  'mdm/rejected': {
    ja: { title: 'MDM サーバーが内容を受け付けませんでした', action: '理由を確認し、データを修正してください。' },
    en: { title: 'The MDM server refused the request', action: 'Read the reason and correct the data.' },
  },
  'mdm/not-found': {
    ja: { title: 'MDM に登録されていません', action: 'シリアル番号やグループを確認してください。' },
    en: { title: 'Not found on the MDM', action: 'Check the serial number or the group.' },
  },
  'mdm/conflict': {
    ja: { title: 'MDM 上の状態と矛盾しています', action: 'MDM 上の端末の状態を確認してください。' },
    en: { title: 'The MDM refused the change in its current state', action: 'Check the device state on the MDM.' },
  },
  'mdm/wrong-credentials': {
    ja: {
      title: 'グループの登録ユーザー ID またはパスワードが違います',
      action: 'MDM のグループ設定を確認してブループリントを修正してください。',
    },
    en: {
      title: 'Wrong group enrollment user ID or password',
      action: 'Check the group on the MDM and correct the blueprint.',
    },
  },
  'mdm/credentials-expired': {
    ja: {
      title: 'グループの登録用認証情報の有効期限が切れています',
      action: 'MDM でグループの認証情報を更新してください。',
    },
    en: { title: 'The group enrollment credentials expired', action: 'Renew the group credentials on the MDM.' },
  },
  'mdm/group-closed': {
    ja: {
      title: 'このグループは新しい MDM登録を受け付けていません',
      action: '別のグループを選ぶか、MDM で認証情報を設定してください。',
    },
    en: { title: 'This group takes no new enrollments', action: 'Choose another group or set credentials on the MDM.' },
  },
  'mdm/already-registered': {
    ja: { title: 'この端末は MDM に登録済みです', action: '先にインアクティベーションしてください。' },
    en: { title: 'The device is already registered on the MDM', action: 'Inactivate it first.' },
  },
  'mdm/no-license': {
    ja: { title: 'MDM のライセンスが足りません', action: '不要な端末を削除してライセンスを解放してください。' },
    en: { title: 'No MDM license left', action: 'Delete unused devices to free licenses.' },
  },
  'mdm/device-unreachable': {
    ja: {
      title: '端末に通常のインアクティベーションができません',
      action: '強制インアクティベーションを使ってください。',
    },
    en: { title: 'The device cannot be inactivated normally', action: 'Use forced inactivation.' },
  },
  'mdm/force-not-allowed': {
    ja: {
      title: '端末に接続できるため強制インアクティベーションはできません',
      action: '通常のインアクティベーションを使ってください。',
    },
    en: { title: 'Forced inactivation is not allowed: the device is reachable', action: 'Use normal inactivation.' },
  },
  'mdm/already-inactive': {
    ja: {
      title: '端末はすでにインアクティベーション済みです',
      action: '必要なら端末を削除してライセンスを解放してください。',
    },
    en: { title: 'The device is already inactive', action: 'Delete it if the license should be freed.' },
  },
  'mdm/device-active': {
    ja: { title: '有効な端末は削除できません', action: '先にインアクティベーションしてください。' },
    en: { title: 'An active device cannot be deleted', action: 'Inactivate it first.' },
  },
};

/**
 * Words for what a person must do at a port (`NextAction` of `src/contract.ts`, shown next to a
 * device's state): short labels the UI puts on the port tile.
 */
export const NEXT_ACTION_WORDS: Readonly<Record<NextAction, Readonly<Record<Lang, string>>>> = {
  'tap-trust': { ja: '「信頼」をタップ', en: 'Tap Trust' },
  unlock: { ja: 'パスコードを解除', en: 'Unlock' },
  'needs-internet': { ja: 'インターネット接続が必要', en: 'Needs internet' },
  'activation-lock': { ja: 'アクティベーションロック', en: 'Activation Lock' },
  'confirm-erase': { ja: '消去の確認が必要', en: 'Confirm erase' },
  reconnect: { ja: 'ケーブルを接続し直す', en: 'Plug it back in' },
  'leave-recovery': { ja: 'リカバリーモードを終了', en: 'Leave recovery mode' },
};

/** The words for an error (KitError or anything thrown) in the given language. */
export function describeError(err: unknown, lang: Lang): Words & { code: ErrorCode } {
  const code: ErrorCode = err instanceof KitError ? err.code : 'bug';
  return { code, ...ERROR_MESSAGES[code][lang] };
}

/** The language from an explicit choice, else the OS locale (LC_ALL, LC_MESSAGES, LANG, Intl). */
export function resolveLang(explicit?: string, env: NodeJS.ProcessEnv = process.env): Lang {
  if (explicit === 'ja' || explicit === 'en') return explicit;
  const fromEnv = env.LC_ALL ?? env.LC_MESSAGES ?? env.LANG;
  const locale =
    fromEnv !== undefined && fromEnv !== '' && fromEnv !== 'C' && fromEnv !== 'POSIX'
      ? fromEnv
      : Intl.DateTimeFormat().resolvedOptions().locale;
  return locale.toLowerCase().startsWith('ja') ? 'ja' : 'en';
}
