/**
 * Media types and multipart/form-data bodies, read the way RFC 9110 §8.3.1
 * and RFC 7578 say: type, subtype and parameter names are case-insensitive,
 * parameter values (the boundary above all) are kept exactly as sent. Browsers
 * send mixed-case boundaries (`----WebKitFormBoundary…`), so lowercasing the
 * header refuses every browser upload.
 */

export interface MediaType {
  /** `type/subtype`, lowercased. */
  essence: string;
  /** Parameters by lowercased name; values unquoted, otherwise as sent. */
  params: Map<string, string>;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Parses `; name=value; name="quoted value"` starting at `i` (a `;` or the end). Values keep their
 * case. `escapes`: whether a backslash in a quoted string escapes the next
 * character (RFC 9110); HTML form submission does not escape, it percent-encodes `"`.
 *
 * One pass: every character is looked at once, whatever the input (a header of `;;;;…` searched for
 * `=` from each `;` to the end used to take time quadratic in its length).
 */
function parseParameters(header: string, i: number, escapes: boolean): Map<string, string> | undefined {
  const params = new Map<string, string>();
  const n = header.length;
  while (i < n) {
    i++; // past ";"
    const nameStart = i;
    while (i < n && header[i] !== "=" && header[i] !== ";") i++;
    // A parameter without a value (or an empty one between ";;"): skipped, as browsers do.
    if (i >= n || header[i] === ";") continue;
    const name = header.slice(nameStart, i).trim().toLowerCase();
    i++; // past "="
    let value: string;
    if (header[i] === '"') {
      i++;
      const pieces: string[] = [];
      let from = i;
      while (i < n && header[i] !== '"') {
        if (escapes && header[i] === "\\" && i + 1 < n) {
          pieces.push(header.slice(from, i));
          from = i + 1;
          i += 2;
        } else {
          i++;
        }
      }
      if (i >= n) return undefined; // unterminated quoted-string
      pieces.push(header.slice(from, i));
      value = pieces.join("");
      i++; // past the closing quote
      // Only whitespace may follow it before the next ";".
      const after = i;
      while (i < n && header[i] !== ";") i++;
      if (header.slice(after, i).trim() !== "") return undefined;
    } else {
      const valueStart = i;
      while (i < n && header[i] !== ";") i++;
      value = header.slice(valueStart, i).trim();
    }
    // The first occurrence wins; a repeated parameter is ambiguous.
    if (TOKEN.test(name) && !params.has(name)) params.set(name, value);
  }
  return params;
}

/** Parses a Content-Type value; undefined when it is not `type/subtype` followed by parameters. */
export function parseMediaType(header: string): MediaType | undefined {
  const semi = header.indexOf(";");
  const end = semi < 0 ? header.length : semi;
  const essence = header.slice(0, end).trim().toLowerCase();
  const [type, subtype, ...rest] = essence.split("/");
  if (rest.length || !type || !subtype || !TOKEN.test(type) || !TOKEN.test(subtype)) return undefined;
  const params = parseParameters(header, end, true);
  return params && { essence, params };
}

export interface Part {
  /** The form field name. */
  name: string;
  /** Set when the part is a file upload (filename or filename* present, even empty). */
  filename?: string;
  /** The part's declared Content-Type, if any (informational: images are judged by their bytes). */
  contentType?: string;
  bytes: Uint8Array;
}

export class MultipartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MultipartError";
  }
}

/**
 * The most a part's headers may take, up to their blank line. Browsers and HTTP clients send a
 * Content-Disposition and a Content-Type of well under 1 KiB; a file name is at most a few hundred bytes.
 */
export const MAX_PART_HEADER_BYTES = 8 * 1024;

const encoder = new TextEncoder();
const BLANK_LINE = new Uint8Array([13, 10, 13, 10]);
/** Header bytes are ISO-8859-1 on the wire; browsers put UTF-8 file names there raw, so decode as UTF-8. */
const headerDecoder = new TextDecoder("utf-8");

function indexOf(haystack: Uint8Array, needle: Uint8Array, from: number): number {
  const first = needle[0];
  const last = haystack.length - needle.length;
  for (let i = haystack.indexOf(first, from); i >= 0 && i <= last; i = haystack.indexOf(first, i + 1)) {
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}

/** RFC 8187 ext-value (`UTF-8''caf%C3%A9.jpg`), which RFC 7578 §4.2 tolerates for file names. */
function decodeExtValue(value: string): string | undefined {
  const m = /^([A-Za-z0-9!#$%&+^_`{}~-]+)'[^']*'(.*)$/.exec(value);
  if (!m) return undefined;
  const charset = m[1].toLowerCase();
  if (charset !== "utf-8" && charset !== "iso-8859-1") return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < m[2].length; i++) {
    if (m[2][i] === "%" && /^[0-9A-Fa-f]{2}$/.test(m[2].slice(i + 1, i + 3))) {
      bytes.push(parseInt(m[2].slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      const code = m[2].charCodeAt(i);
      if (code > 0x7e) return undefined;
      bytes.push(code);
    }
  }
  try {
    return new TextDecoder(charset === "utf-8" ? "utf-8" : "latin1", { fatal: true }).decode(
      new Uint8Array(bytes),
    );
  } catch {
    return undefined;
  }
}

function parsePartHeaders(text: string): { name?: string; filename?: string; contentType?: string } {
  let disposition: Map<string, string> | undefined;
  let contentType: string | undefined;
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) throw new MultipartError("A part header line has no name");
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "content-disposition") {
      const semi = value.indexOf(";");
      const type = value.slice(0, semi < 0 ? value.length : semi).trim().toLowerCase();
      disposition = type === "form-data"
        ? parseParameters(value, semi < 0 ? value.length : semi, false)
        : undefined;
      if (!disposition) throw new MultipartError("A part's Content-Disposition is not form-data");
    } else if (name === "content-type") {
      contentType = value;
    }
  }
  if (!disposition) throw new MultipartError("A part has no Content-Disposition");
  const star = disposition.get("filename*");
  const filename = (star !== undefined ? decodeExtValue(star) : undefined) ?? disposition.get("filename");
  return { name: disposition.get("name"), filename, contentType };
}

/**
 * Splits a multipart body into its parts (RFC 2046 §5.1.1): a preamble, then
 * `--boundary` lines (transport padding allowed), each part's headers, a blank
 * line and its bytes, ended by `--boundary--`. Part bytes are views into `body`.
 */
export function parseMultipart(body: Uint8Array, boundary: string, maxParts = 1000): Part[] {
  if (boundary.length < 1 || boundary.length > 70) {
    throw new MultipartError("The multipart boundary must be 1 to 70 characters");
  }
  const dashBoundary = encoder.encode(`--${boundary}`);
  const delimiter = encoder.encode(`\r\n--${boundary}`);
  // The first boundary opens the body or follows a preamble.
  let at = 0;
  if (!dashBoundary.every((b, i) => body[i] === b)) {
    const first = indexOf(body, delimiter, 0);
    if (first < 0) throw new MultipartError("The body does not contain the declared boundary");
    at = first + 2;
  }
  const parts: Part[] = [];
  while (true) {
    let i = at + dashBoundary.length;
    if (body[i] === 45 && body[i + 1] === 45) return parts; // "--": the close delimiter
    while (body[i] === 32 || body[i] === 9) i++; // transport padding
    if (body[i] !== 13 || body[i + 1] !== 10) {
      throw new MultipartError("A boundary line is not followed by CRLF");
    }
    const headersStart = i + 2;
    // Searched only as far as the cap allows: past it, the part is refused whatever follows.
    const window = Math.min(body.length, headersStart + MAX_PART_HEADER_BYTES + BLANK_LINE.length);
    const headersEnd = indexOf(body.subarray(0, window), BLANK_LINE, headersStart - 2);
    if (headersEnd < 0) {
      throw new MultipartError(
        window < body.length
          ? `A part's headers exceed ${MAX_PART_HEADER_BYTES / 1024} KiB`
          : "A part's headers are not terminated",
      );
    }
    const next = indexOf(body, delimiter, headersEnd + 4);
    if (next < 0) throw new MultipartError("The body ends without the closing boundary");
    const text = headerDecoder.decode(body.subarray(headersStart, Math.max(headersStart, headersEnd)));
    const headers = text.length ? parsePartHeaders(text) : {};
    if (headers.name === undefined) throw new MultipartError("A part has no field name");
    if (parts.length >= maxParts) throw new MultipartError(`The form has more than ${maxParts} parts`);
    parts.push({
      name: headers.name,
      ...(headers.filename !== undefined ? { filename: headers.filename } : {}),
      ...(headers.contentType !== undefined ? { contentType: headers.contentType } : {}),
      bytes: body.subarray(headersEnd + 4, next),
    });
    at = next + 2;
  }
}
