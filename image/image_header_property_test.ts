/**
 * Properties of the header reader on generated files: any legal order of JPEG
 * segments (fill bytes, tables before the frame, several APP1 blocks of which
 * only the first Exif one counts), WebP files whose chunks have odd lengths and
 * pad bytes, VP8 dimensions with scale bits set, VP8L's packed size bits, and
 * PNGs with ancillary chunks before eXIf. Each generated file states what it
 * is, so the reader is checked against the generator, not against itself.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { readImageHeader } from "./image_header.ts";
import { concat } from "../tests/support/bytes.ts";

const RUNS = { numRuns: 300 };
const u16be = (v: number) => [v >> 8, v & 0xff];
const u32le = (v: number) => [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];
const ascii = (s: string) => Array.from(s, (c) => c.charCodeAt(0));

/** TIFF data holding one Orientation entry, little- or big-endian. */
function tiff(orientation: number, little: boolean): number[] {
  const u16 = (v: number) => little ? [v & 0xff, v >> 8] : [v >> 8, v & 0xff];
  const u32 = (v: number) => little ? u32le(v) : [v >>> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff];
  return [
    ...(little ? ascii("II") : ascii("MM")),
    ...u16(42),
    ...u32(8),
    ...u16(1), // one entry
    ...u16(0x0112),
    ...u16(3), // SHORT
    ...u32(1),
    ...u16(orientation),
    0,
    0,
    ...u32(0), // no next IFD
  ];
}

const exif = (orientation: number, little: boolean) => [...ascii("Exif\0\0"), ...tiff(orientation, little)];

const orientation = fc.integer({ min: 1, max: 8 });
const payload = (max = 40) => fc.uint8Array({ maxLength: max });

// ---- JPEG

type Segment = { marker: number; data: number[] };

/** A segment before the frame header that a reader must skip (or, for the first Exif APP1, read). */
const jpegSegment: fc.Arbitrary<Segment> = fc.oneof(
  // APP0..APP15 with junk (APP1 junk is neither Exif nor counted)
  fc.tuple(fc.integer({ min: 0xe0, max: 0xef }), payload()).map(([marker, d]) => ({
    marker,
    data: marker === 0xe1 ? [...ascii("http://ns.adobe.com/xap/1.0/\0"), ...d] : [...d],
  })),
  // an Exif APP1
  fc.tuple(orientation, fc.boolean()).map(([o, little]) => ({ marker: 0xe1, data: exif(o, little) })),
  // comment, quantization table, Huffman table (C4: not a frame), restart interval, arithmetic table (CC)
  fc.tuple(fc.constantFrom(0xfe, 0xdb, 0xc4, 0xdd, 0xcc), payload()).map(([marker, d]) => ({
    marker,
    data: [...d],
  })),
);

const sof = fc.record({
  marker: fc.constantFrom(0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf),
  width: fc.integer({ min: 1, max: 65535 }),
  height: fc.integer({ min: 1, max: 65535 }),
  components: fc.constantFrom(1, 3, 4),
  precision: fc.constantFrom(8, 12),
});

Deno.test("JPEG: any order of segments before the frame, fill bytes, several APP1 blocks", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(jpegSegment, fc.integer({ min: 0, max: 3 })), { maxLength: 8 }),
      sof,
      (segments, frame) => {
        const bytes: number[] = [0xff, 0xd8];
        let expected = 1;
        let sawExif = false;
        for (const [s, fill] of segments) {
          // Any number of 0xFF fill bytes may precede a marker.
          bytes.push(...new Array(fill).fill(0xff), 0xff, s.marker, ...u16be(s.data.length + 2), ...s.data);
          const isExif = s.marker === 0xe1 && s.data.length >= 6 && s.data[0] === 0x45 && s.data[4] === 0;
          if (isExif && !sawExif) {
            sawExif = true;
            expected = s.data[6] === 0x49 ? s.data[6 + 18] : s.data[6 + 19];
          }
        }
        const c = frame.components;
        bytes.push(0xff, frame.marker, ...u16be(8 + 3 * c), frame.precision, ...u16be(frame.height));
        bytes.push(...u16be(frame.width), c, ...new Array(3 * c).fill(0x11));
        bytes.push(0xff, 0xda, 0, 8, 1, 1, 0, 0, 63, 0); // start of scan
        const h = readImageHeader(Uint8Array.from(bytes));
        assert.deepEqual(
          [h.format, h.width, h.height, h.components, h.bitDepth, h.orientation],
          ["jpeg", frame.width, frame.height, c, frame.precision, expected],
        );
        assert.equal(h.progressive, [0xc2, 0xc6, 0xca, 0xce].includes(frame.marker));
      },
    ),
    RUNS,
  );
});

// ---- WebP

/** A chunk: FourCC, size, data, and the pad byte an odd size takes. */
const chunk = (fourcc: string, data: number[]) => [
  ...ascii(fourcc),
  ...u32le(data.length),
  ...data,
  ...(data.length & 1 ? [0] : []),
];

const riff = (chunks: number[][]) => {
  const body = chunks.flat();
  return Uint8Array.from([...ascii("RIFF"), ...u32le(4 + body.length), ...ascii("WEBP"), ...body]);
};

const side14 = fc.integer({ min: 1, max: 16383 });

Deno.test("WebP VP8: 14-bit dimensions, the 2 scale bits above them ignored", () => {
  fc.assert(
    fc.property(
      side14,
      side14,
      fc.integer({ min: 0, max: 3 }),
      fc.integer({ min: 0, max: 3 }),
      (w, h, sx, sy) => {
        const frame = [
          0x10,
          0x02,
          0x00,
          0x9d,
          0x01,
          0x2a,
          ...u16le(w | (sx << 14)),
          ...u16le(h | (sy << 14)),
        ];
        const header = readImageHeader(riff([chunk("VP8 ", [...frame, 0, 0])]));
        assert.deepEqual([header.width, header.height, header.components], [w, h, 3]);
      },
    ),
    RUNS,
  );
});

function u16le(v: number) {
  return [v & 0xff, v >> 8];
}

Deno.test("WebP VP8L: width-1 and height-1 in 14 bits each, then the alpha bit", () => {
  fc.assert(
    fc.property(side14, side14, fc.boolean(), (w, h, alpha) => {
      const bits = ((w - 1) | ((h - 1) << 14) | ((alpha ? 1 : 0) << 28)) >>> 0;
      const header = readImageHeader(riff([chunk("VP8L", [0x2f, ...u32le(bits), 0, 0, 0, 0, 0])]));
      assert.deepEqual([header.width, header.height, header.components], [w, h, alpha ? 4 : 3]);
    }),
    RUNS,
  );
});

Deno.test("WebP VP8X: 24-bit canvas size; EXIF found past chunks of odd length and their pad bytes", () => {
  const side24 = fc.integer({ min: 1, max: 1 << 24 });
  const extra = fc.tuple(fc.constantFrom("ICCP", "ALPH", "ANIM", "XMP ", "ZZZZ"), payload(21)).map((
    [id, d],
  ) => chunk(id, [...d]));
  fc.assert(
    fc.property(
      side24,
      side24,
      fc.boolean(),
      fc.array(extra, { maxLength: 5 }),
      fc.option(fc.tuple(orientation, fc.boolean(), fc.boolean())),
      (w, h, alpha, extras, exifChunk) => {
        const u24 = (v: number) => [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff];
        const vp8x = chunk("VP8X", [alpha ? 0x10 : 0, 0, 0, 0, ...u24(w - 1), ...u24(h - 1)]);
        const image = chunk("VP8L", [0x2f, 0, 0, 0, 0, 0]);
        const chunks = [vp8x, ...extras, image];
        // Some writers prefix WebP's EXIF with "Exif\0\0" as JPEG does; both are read.
        if (exifChunk) {
          const [o, little, prefixed] = exifChunk;
          chunks.push(chunk("EXIF", prefixed ? exif(o, little) : tiff(o, little)));
        }
        const header = readImageHeader(riff(chunks));
        assert.deepEqual(
          [header.width, header.height, header.components, header.orientation],
          [w, h, alpha ? 4 : 3, exifChunk ? exifChunk[0] : 1],
        );
      },
    ),
    RUNS,
  );
});

// ---- PNG

function crc32(bytes: number[]): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}
const u32be = (v: number) => [v >>> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff];
const pngChunk = (type: string, data: number[]) => [
  ...u32be(data.length),
  ...ascii(type),
  ...data,
  ...u32be(crc32([...ascii(type), ...data])),
];

Deno.test("PNG: IHDR's size, colour type and depth; eXIf found past other chunks", () => {
  const colour = fc.constantFrom(
    [0, 1, 1],
    [0, 16, 1],
    [2, 8, 3],
    [2, 16, 3],
    [3, 4, 3],
    [4, 8, 2],
    [6, 8, 4],
    [6, 16, 4],
  );
  const side = fc.integer({ min: 1, max: 2 ** 31 - 1 });
  const ancillary = fc.tuple(fc.constantFrom("tEXt", "pHYs", "gAMA", "iCCP"), payload(17)).map((
    [t, d],
  ) => pngChunk(t, [...d]));
  fc.assert(
    fc.property(
      side,
      side,
      colour,
      fc.boolean(),
      fc.array(ancillary, { maxLength: 4 }),
      fc.option(fc.tuple(orientation, fc.boolean())),
      (w, h, [type, depth, channels], interlaced, extras, ex) => {
        const ihdr = pngChunk("IHDR", [...u32be(w), ...u32be(h), depth, type, 0, 0, interlaced ? 1 : 0]);
        const chunks = [ihdr, ...extras];
        if (ex) chunks.push(pngChunk("eXIf", tiff(ex[0], ex[1])));
        chunks.push(pngChunk("IDAT", [0]), pngChunk("IEND", []));
        const png = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, ...chunks.flat()]);
        const header = readImageHeader(png);
        assert.deepEqual(
          [
            header.format,
            header.width,
            header.height,
            header.bitDepth,
            header.components,
            header.progressive,
          ],
          ["png", w, h, depth, channels, interlaced],
        );
        assert.equal(header.orientation, ex ? ex[0] : 1);
      },
    ),
    RUNS,
  );
});

Deno.test("truncating a generated JPEG anywhere before its frame never yields a size", () => {
  fc.assert(
    fc.property(fc.array(jpegSegment, { maxLength: 4 }), sof, fc.nat(), (segments, frame, cut) => {
      const head = concat(
        Uint8Array.of(0xff, 0xd8),
        ...segments.map((s) => Uint8Array.from([0xff, s.marker, ...u16be(s.data.length + 2), ...s.data])),
      );
      const sofStart = head.length;
      const full = concat(
        head,
        Uint8Array.from([
          0xff,
          frame.marker,
          ...u16be(11),
          8,
          ...u16be(frame.height),
          ...u16be(frame.width),
          1,
          1,
          0x11,
          0,
        ]),
      );
      const at = 3 + (cut % (sofStart + 8 - 3));
      // Cut inside the segments or the frame header: refused, never a made-up size.
      assert.throws(() => readImageHeader(full.subarray(0, at)));
    }),
    RUNS,
  );
});
