/**
 * A fake of Apple's activation server (albert.apple.com/deviceservices) on loopback HTTP, with the
 * request and response shapes the real one has (libideviceactivation src/activation.c,
 * pymobiledevice3 services/mobile_activation.py):
 *
 * - `POST /deviceservices/drmHandshake`, body an XML (or binary) plist of the session blob →
 *   `application/xml` plist `{HandshakeResponseMessage, serverKP, FDRBlob, SUInfo}`.
 * - `POST /deviceservices/deviceActivation`, form field `activation-info` (multipart/form-data as
 *   libideviceactivation sends it, or x-www-form-urlencoded as pymobiledevice3 and go-ios do; the
 *   field may be a whole XML plist or libideviceactivation's stripped `<dict>…</dict>`):
 *   - session mode (the info carries the handshake's `serverKP`) → `text/xml` plist
 *     `{ActivationRecord: {unbrick, AccountTokenCertificate, DeviceCertificate, RegulatoryInfo,
 *     FairPlayKeyData, AccountToken, AccountTokenSignature, UniqueDeviceCertificate}}`;
 *   - legacy (lockdown `ActivationInfo`) → `text/html` with
 *     `<script id="protocol" type="text/x-apple-plist"><plist>{iphone-activation: {ack-received,
 *     activation-record, show-settings}}</plist></script>`;
 *   - a device with Activation Lock → `application/x-buddyml` `<xmlui>` page titled "Activation Lock"
 *     with Apple ID / password `editableTextRow`s and `<serverInfo isAuthRequired="true" …>`;
 *     answering that form (credentials, no activation-info) → an `<alert title=…>` (the lock is never
 *     lifted here);
 *   - anything unreadable → `text/html` error page, status 400.
 * - With {@link AppleActivationServer.setFailure} every request answers that HTTP status (500 …).
 */
import { createHmac, randomBytes } from 'node:crypto';
import http from 'node:http';
import { decodePlist, encodeXml, isPlistDict, type PlistDict, type PlistValue } from '../plist/index.ts';
import { createLogger } from '../log.ts';
import { handshakeDigest } from './mobileactivation.ts';

const log = createLogger('simulator/apple-activation');

/** What the server asks the fleet about a device. */
export interface ActivationDirectory {
  /** Whether Activation Lock is on for the device with this UDID (undefined: unknown device). */
  isActivationLocked(udid: string): boolean | undefined;
}

/** One request the server answered (for tests and logs). */
export interface ActivationExchange {
  path: string;
  udid: string | null;
  outcome: 'handshake' | 'activated' | 'locked' | 'failure' | 'bad-request' | 'credentials-refused';
  status: number;
  at: string;
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 8 * 1024 * 1024) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** The form fields of a multipart/form-data or x-www-form-urlencoded body. */
export function formFields(contentType: string, body: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  if (/multipart\/form-data/i.test(contentType) && boundary !== null) {
    const b = Buffer.from(`--${boundary[1] ?? boundary[2] ?? ''}`);
    let at = body.indexOf(b);
    while (at >= 0) {
      const next = body.indexOf(b, at + b.length);
      if (next < 0) break;
      const part = body.subarray(at + b.length, next);
      const headEnd = part.indexOf('\r\n\r\n');
      if (headEnd >= 0) {
        const head = part.subarray(0, headEnd).toString('utf8');
        const name = /name="([^"]*)"/i.exec(head)?.[1];
        let value = part.subarray(headEnd + 4);
        if (value.subarray(-2).toString() === '\r\n') value = value.subarray(0, -2);
        if (name !== undefined) out.set(name, Buffer.from(value));
      }
      at = next;
    }
    return out;
  }
  for (const [k, v] of new URLSearchParams(body.toString('utf8'))) out.set(k, Buffer.from(v, 'utf8'));
  return out;
}

/** Decodes the `activation-info` field (a plist, or libideviceactivation's stripped `<dict>`). */
function decodeActivationInfo(raw: Buffer): PlistDict | undefined {
  const text = raw.toString('utf8').trim();
  const candidates = [raw, Buffer.from(`<plist version="1.0">${text}</plist>`, 'utf8')];
  for (const c of candidates) {
    try {
      const v = decodePlist(c);
      if (isPlistDict(v)) return v;
    } catch {
      // try the next form
    }
  }
  return undefined;
}

function udidOf(info: PlistDict): string | undefined {
  const xml = info.ActivationInfoXML;
  if (!Buffer.isBuffer(xml)) return undefined;
  let inner: PlistValue;
  try {
    inner = decodePlist(xml);
  } catch {
    return undefined;
  }
  if (!isPlistDict(inner) || !isPlistDict(inner.DeviceID)) return undefined;
  const u = inner.DeviceID.UniqueDeviceID;
  return typeof u === 'string' ? u : undefined;
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** The fake activation server; see the module comment. */
export class AppleActivationServer {
  private readonly server: http.Server;
  private readonly directory: ActivationDirectory;
  private readonly secret = randomBytes(32);
  private failure: number | undefined;
  /** Every answered request, oldest first. */
  readonly exchanges: ActivationExchange[] = [];
  /** `http://127.0.0.1:PORT`. */
  readonly origin: string;

  private constructor(server: http.Server, directory: ActivationDirectory, origin: string) {
    this.server = server;
    this.directory = directory;
    this.origin = origin;
  }

  /** Starts the server on 127.0.0.1 (a free port). */
  static async start(directory: ActivationDirectory): Promise<AppleActivationServer> {
    const holder: { self?: AppleActivationServer } = {};
    const server = http.createServer((req, res) => {
      if (holder.self === undefined) {
        res.writeHead(503).end();
        return;
      }
      void holder.self.serve(req, res);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const a = server.address();
    const port = a !== null && typeof a === 'object' ? a.port : 0;
    const self = new AppleActivationServer(server, directory, `http://127.0.0.1:${port}`);
    holder.self = self;
    return self;
  }

  /** The deviceActivation URL (what `--activation-url` names). */
  get activationUrl(): string {
    return `${this.origin}/deviceservices/deviceActivation`;
  }

  /** The drmHandshake URL. */
  get drmHandshakeUrl(): string {
    return `${this.origin}/deviceservices/drmHandshake`;
  }

  /** From now on answer every request with `status` (e.g. 500); null answers normally again. */
  setFailure(status: number | null): void {
    this.failure = status ?? undefined;
  }

  /** The failure status in force, or null. */
  get failureStatus(): number | null {
    return this.failure ?? null;
  }

  /** Stops the server. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }

  private record(e: Omit<ActivationExchange, 'at'>): void {
    this.exchanges.push({ ...e, at: new Date().toISOString() });
    if (this.exchanges.length > 1000) this.exchanges.shift();
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', this.origin).pathname;
    const send = (status: number, type: string, body: Buffer | string): void => {
      const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
      res.writeHead(status, { 'Content-Type': type, 'Content-Length': b.length, Server: 'Apple' });
      res.end(b);
    };
    let body: Buffer;
    try {
      body = await readBody(req);
    } catch {
      send(400, 'text/html', '<html><body>Bad Request</body></html>');
      return;
    }
    if (this.failure !== undefined) {
      this.record({ path, udid: null, outcome: 'failure', status: this.failure });
      send(
        this.failure,
        'text/html',
        `<html><head><title>Error</title></head><body>Error ${this.failure}</body></html>`,
      );
      return;
    }
    if (req.method !== 'POST') {
      send(405, 'text/html', '<html><body>Method Not Allowed</body></html>');
      return;
    }
    if (path.endsWith('/drmHandshake')) {
      this.handshake(path, body, send);
      return;
    }
    if (path.endsWith('/deviceActivation')) {
      this.activation(path, req.headers['content-type'] ?? '', body, send);
      return;
    }
    send(404, 'text/html', '<html><body>Not Found</body></html>');
  }

  private handshake(path: string, body: Buffer, send: (s: number, t: string, b: Buffer | string) => void): void {
    let blob: PlistValue | undefined;
    try {
      blob = decodePlist(body);
    } catch {
      blob = undefined;
    }
    const message = blob !== undefined && isPlistDict(blob) ? blob.HandshakeRequestMessage : undefined;
    if (!Buffer.isBuffer(message)) {
      this.record({ path, udid: null, outcome: 'bad-request', status: 400 });
      send(400, 'text/html', '<html><body>Bad Request</body></html>');
      return;
    }
    const udid =
      blob !== undefined && isPlistDict(blob) && typeof blob.UniqueDeviceID === 'string' ? blob.UniqueDeviceID : null;
    this.record({ path, udid, outcome: 'handshake', status: 200 });
    log.debug('drmHandshake', { udid });
    send(
      200,
      'application/xml',
      encodeXml({
        FDRBlob: randomBytes(64),
        HandshakeResponseMessage: Buffer.concat([handshakeDigest(message), randomBytes(16)]),
        SUInfo: randomBytes(32),
        serverKP: randomBytes(16),
      }),
    );
  }

  private activation(
    path: string,
    contentType: string,
    body: Buffer,
    send: (s: number, t: string, b: Buffer | string) => void,
  ): void {
    const fields = formFields(contentType, body);
    const raw = fields.get('activation-info');
    if (raw === undefined) {
      if (fields.has('login') || fields.has('password') || fields.has('isAuthRequired')) {
        this.record({ path, udid: null, outcome: 'credentials-refused', status: 200 });
        send(
          200,
          'application/x-buddyml',
          '<xmlui><alert title="Activation Error" message="The Apple ID or password is incorrect."/></xmlui>',
        );
        return;
      }
      this.record({ path, udid: null, outcome: 'bad-request', status: 400 });
      send(400, 'text/html', '<html><body>Missing activation-info</body></html>');
      return;
    }
    const info = decodeActivationInfo(raw);
    const udid = info === undefined ? undefined : udidOf(info);
    if (info === undefined || udid === undefined) {
      this.record({ path, udid: null, outcome: 'bad-request', status: 400 });
      send(400, 'text/html', '<html><body>Invalid activation-info</body></html>');
      return;
    }
    if (this.directory.isActivationLocked(udid) === true) {
      this.record({ path, udid, outcome: 'locked', status: 200 });
      send(200, 'application/x-buddyml', lockPage(raw));
      return;
    }
    const record = this.activationRecord(udid);
    this.record({ path, udid, outcome: 'activated', status: 200 });
    if (Buffer.isBuffer(info.serverKP)) {
      send(200, 'text/xml', encodeXml({ ActivationRecord: record }));
      return;
    }
    const plist = encodeXml({
      'iphone-activation': { 'ack-received': true, 'activation-record': record, 'show-settings': true },
    })
      .toString('utf8')
      .replace(/^<\?xml[^>]*>\s*/, '')
      .replace(/<!DOCTYPE[^>]*>\s*/, '');
    send(
      200,
      'text/html',
      `<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>iPhone Activation</title>` +
        `<script id="protocol" type="text/x-apple-plist">${plist}</script></head><body></body></html>`,
    );
  }

  private activationRecord(udid: string): PlistDict {
    const token = Buffer.from(
      `{\n\t"ActivationRandomness" = "${randomBytes(16).toString('hex').toUpperCase()}";\n` +
        `\t"ActivityURL" = "https://albert.apple.com/deviceservices/activity";\n` +
        `\t"UniqueDeviceID" = "${udid}";\n` +
        `\t"ActivationTicket" = "${randomBytes(24).toString('base64')}";\n}`,
      'utf8',
    );
    const pem = (label: string, bytes: Buffer): Buffer =>
      Buffer.from(`-----BEGIN ${label}-----\n${bytes.toString('base64')}\n-----END ${label}-----\n`);
    return {
      unbrick: true,
      AccountTokenCertificate: pem('CERTIFICATE', randomBytes(96)),
      DeviceCertificate: pem('CERTIFICATE', randomBytes(96)),
      RegulatoryInfo: Buffer.from('{"elabel":{"bis":{"regulatory":"R-00000000"}}}'),
      FairPlayKeyData: pem('CONTAINER', randomBytes(128)),
      AccountToken: token,
      AccountTokenSignature: createHmac('sha256', this.secret).update(token).digest(),
      UniqueDeviceCertificate: pem('CERTIFICATE', randomBytes(96)),
    };
  }
}

function lockPage(activationInfo: Buffer): string {
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n<xmlui>\n<page>\n` +
    `<navigationBar title="Activation Lock" hidesBackButton="false"/>\n<tableView>\n<section>\n` +
    `<footer>This iPad is linked to an Apple ID. Enter the Apple ID and password that were used to set up this iPad.</footer>\n` +
    `<editableTextRow id="login" label="Apple ID" placeholder="example@icloud.com" keyboardType="emailAddress"/>\n` +
    `<editableTextRow id="password" label="Password" placeholder="Required" secure="true"/>\n` +
    `</section>\n</tableView>\n</page>\n` +
    `<serverInfo isAuthRequired="true" activation-info-base64="${escapeXml(activationInfo.toString('base64'))}"/>\n</xmlui>\n`
  );
}
