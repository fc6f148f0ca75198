import { ValidationError } from '../../ports/errors.js';

/** Longest media type accepted: type and subtype are at most 127 chars each (RFC 6838), parameters take the rest. */
export const MEDIA_TYPE_MAX_LENGTH = 255;

// RFC 9110 §8.3.1 and §5.6: media-type = type "/" subtype *( OWS ";" OWS [ name "=" ( token / quoted-string ) ] ).
// Written out here rather than taken from a package because @mlplane/core keeps its runtime dependencies to a few.
const TOKEN = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+";
/** Printable ASCII, space and tab, with `"` and `\` only escaped; no obs-text, so the header stays ASCII. */
const QUOTED_STRING = '"(?:[\\t \\x21\\x23-\\x5b\\x5d-\\x7e]|\\\\[\\t \\x21-\\x7e])*"';
/** A media type as an HTTP Content-Type header carries it: `type/subtype` tokens, then `; name=value` parameters. */
export const MEDIA_TYPE_PATTERN = new RegExp(
  `^${TOKEN}/${TOKEN}(?:[ \\t]*;[ \\t]*(?:${TOKEN}=(?:${TOKEN}|${QUOTED_STRING}))?)*$`,
);

/** Whether `value` is a media type such as `text/csv; charset=utf-8`, within MEDIA_TYPE_MAX_LENGTH. */
export function isMediaType(value: unknown): value is string {
  return typeof value === 'string' && value.length <= MEDIA_TYPE_MAX_LENGTH && MEDIA_TYPE_PATTERN.test(value);
}

/**
 * ValidationError naming `field` unless `value` is a media type (`isMediaType`). Content types travel as an HTTP
 * header (S3, MLflow's artifact proxy, downloads), so a CR or LF in one could add headers of its own.
 */
export function validateMediaType(value: unknown, field = 'contentType'): asserts value is string {
  if (isMediaType(value)) return;
  const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 80)) : typeof value;
  throw new ValidationError(
    `${field} ${shown} is not a media type: use type/subtype with optional '; name=value' parameters (printable ASCII, no line breaks, at most ${MEDIA_TYPE_MAX_LENGTH} chars), e.g. 'text/csv; charset=utf-8'`,
    { field },
  );
}
