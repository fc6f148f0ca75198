import { createHmac, timingSafeEqual } from 'node:crypto';

/** Headers of every webhook request. */
export const WEBHOOK_HEADERS = Object.freeze({
  signature: 'x-mlplane-signature',
  eventId: 'x-mlplane-event-id',
  eventType: 'x-mlplane-event-type',
  timestamp: 'x-mlplane-timestamp',
});

/**
 * The exact string that is signed: `<timestamp>.<event id>.<event type>.<raw body>`, with the timestamp in
 * Unix seconds as sent in `x-mlplane-timestamp`. Binding id, type and time into the MAC means a captured
 * request can be neither replayed later nor relabelled as another event.
 */
export function signedContent(timestamp: string, eventId: string, eventType: string, body: string): string {
  return `${timestamp}.${eventId}.${eventType}.${body}`;
}

/** `sha256=<hex HMAC-SHA256 of signedContent(...) under secret>`, the value of `x-mlplane-signature`. */
export function signWebhook(
  secret: string,
  timestamp: string,
  eventId: string,
  eventType: string,
  body: string,
): string {
  const mac = createHmac('sha256', secret)
    .update(signedContent(timestamp, eventId, eventType, body))
    .digest('hex');
  return `sha256=${mac}`;
}

export interface VerifyWebhookInput {
  readonly secret: string;
  /** The raw request body exactly as received (before any JSON parsing). */
  readonly body: string;
  /** Request headers, lower-case names (node:http's `req.headers` fits). */
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>;
  /** How old a timestamp may be, and how far in the future (default 300 s). */
  readonly toleranceSeconds?: number;
  /** Unix seconds "now" (default the clock). */
  readonly now?: number;
}

export type VerifyWebhookResult = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** What a receiver runs: checks the signature in constant time and refuses stale or future timestamps. */
export function verifyWebhook(input: VerifyWebhookInput): VerifyWebhookResult {
  const header = (name: string) => {
    const v = input.headers[name];
    return typeof v === 'string' ? v : undefined;
  };
  const signature = header(WEBHOOK_HEADERS.signature);
  const timestamp = header(WEBHOOK_HEADERS.timestamp);
  const eventId = header(WEBHOOK_HEADERS.eventId);
  const eventType = header(WEBHOOK_HEADERS.eventType);
  if (!signature || !timestamp || !eventId || !eventType) return { ok: false, reason: 'missing mlplane headers' };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'malformed timestamp' };
  const now = input.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - Number(timestamp)) > (input.toleranceSeconds ?? 300)) {
    return { ok: false, reason: 'timestamp outside the tolerance' };
  }
  const expected = Buffer.from(signWebhook(input.secret, timestamp, eventId, eventType, input.body));
  const given = Buffer.from(signature);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return { ok: false, reason: 'signature mismatch' };
  }
  return { ok: true };
}
