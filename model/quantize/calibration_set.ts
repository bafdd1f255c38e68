/**
 * The photos int8 quantization is calibrated and judged on (CALIBRATION_DIR).
 *
 * Photos are split by scene so that variants of one photo (chelsea.jpg,
 * chelsea_gray.jpg, chelsea_cmyk.jpg) never sit on both sides: the scene is
 * the file name up to its first `_`, `-` or `.`. Scenes are sorted and every
 * third one (the 3rd, 6th, ...) is held out of calibration; the quality gate
 * measures on those only. Each held-out photo is turned into ten views, as
 * ten-crop evaluation does (whole image and four corner crops of 80%, each
 * also mirrored), so a dozen photos still give the gate enough samples;
 * each calibration photo gives two (whole and mirrored).
 * Every view goes through the gateway's own decoding and preprocessing.
 */
import { createHash } from "node:crypto";
import { decodeImage } from "../../image/decode.ts";
import type { RawImage } from "../../image/raw_image.ts";
import { readImageHeader } from "../../image/image_header.ts";
import { JPEG_MIN_DECODE_SHORT_SIDE } from "../../image/prepare.ts";
import { CROP_SIZE, preprocess } from "../../image/preprocess.ts";
import { CodedError, errorMessage } from "../../core/errors.ts";

/**
 * Below this many held-out photos the gate's agreement moves in steps of 5% or
 * more per photo (its ten views are not independent samples), so it is logged
 * as a small sample.
 */
export const MIN_HELD_OUT_PHOTOS = 20;
/** Fewer photos are read, so a huge directory cannot make startup unbounded. */
export const MAX_CALIBRATION_PHOTOS = 64;
/** Side of the corner crops, as a share of the photo's sides. */
const CORNER_CROP = 0.8;
/** Changes whenever views or the split change, so cached int8 models are rebuilt. */
const VIEWS_VERSION = "views-v1:calibration=full,mirrored;held-out=full+4corners80,mirrored;every-3rd-scene";

export interface CalibrationPhoto {
  file: string;
  scene: string;
  heldOut: boolean;
}

export interface CalibrationSet {
  dir: string;
  photos: CalibrationPhoto[];
  /** Preprocessed views (3x224x224) of the calibration photos. */
  calibration: Float32Array[];
  /** Preprocessed views of the held-out photos (ten per photo), for the quality gate. */
  heldOut: Float32Array[];
  /** How many photos those views come from: the gate's real sample size. */
  heldOutPhotos: number;
  /** sha256 over the file names, their contents, the split and the views: part of the int8 cache key. */
  fingerprint: string;
}

export class CalibrationError extends CodedError {
  constructor(message: string) {
    super("calibration_failed", message);
  }
}

export function sceneOf(file: string): string {
  return file.toLowerCase().split(/[_.-]/)[0] || file.toLowerCase();
}

/** The split: every third scene in name order is held out; with two scenes, the second. */
export function splitScenes(files: readonly string[]): CalibrationPhoto[] {
  const scenes = [...new Set(files.map(sceneOf))].sort();
  const held = new Set(
    scenes.length === 2 ? [scenes[1]] : scenes.filter((_, i) => i % 3 === 2),
  );
  return [...files].sort().map((file) => ({ file, scene: sceneOf(file), heldOut: held.has(sceneOf(file)) }));
}

function crop(image: RawImage, left: number, top: number, width: number, height: number): RawImage {
  const { channels } = image;
  const data = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) {
    const from = ((top + y) * image.width + left) * channels;
    data.set(image.data.subarray(from, from + width * channels), y * width * channels);
  }
  return { width, height, channels, data };
}

/** The same tensor, left-right mirrored (each CHW row reversed). */
export function mirror(tensor: Float32Array): Float32Array {
  const out = new Float32Array(tensor.length);
  for (let row = 0; row < tensor.length; row += CROP_SIZE) {
    for (let x = 0; x < CROP_SIZE; x++) out[row + x] = tensor[row + CROP_SIZE - 1 - x];
  }
  return out;
}

/** Ten views of one decoded photo: whole and four 80% corner crops, each as is and mirrored. */
export function views(image: RawImage): Float32Array[] {
  const w = Math.max(1, Math.round(image.width * CORNER_CROP));
  const h = Math.max(1, Math.round(image.height * CORNER_CROP));
  const crops = [
    image,
    crop(image, 0, 0, w, h),
    crop(image, image.width - w, 0, w, h),
    crop(image, 0, image.height - h, w, h),
    crop(image, image.width - w, image.height - h, w, h),
  ];
  return crops.flatMap((c) => {
    const t = preprocess(c);
    return [t, mirror(t)];
  });
}

/** Reads and splits the photos of `dir` (.jpg, .jpeg, .png, .webp; other files are skipped). */
export async function loadCalibrationSet(dir: string): Promise<CalibrationSet> {
  const entries: Array<{ file: string; bytes: Uint8Array }> = [];
  let names: string[];
  try {
    names = (await Array.fromAsync(Deno.readDir(dir))).filter((e) => e.isFile).map((e) => e.name).sort();
  } catch (err) {
    throw new CalibrationError(
      `CALIBRATION_DIR ${dir} cannot be read: ${errorMessage(err)}`,
    );
  }
  for (const file of names) {
    if (entries.length >= MAX_CALIBRATION_PHOTOS) break;
    if (!/\.(jpe?g|png|webp)$/i.test(file)) continue;
    entries.push({ file, bytes: await Deno.readFile(`${dir}/${file}`) });
  }
  const photos = splitScenes(entries.map((e) => e.file));
  if (!photos.some((p) => p.heldOut) || photos.every((p) => p.heldOut)) {
    throw new CalibrationError(
      `CALIBRATION_DIR ${dir} needs photos (JPEG, PNG or WebP) of at least two scenes (the part of the name before ` +
        `the first _, - or .): one to calibrate on and one held out to measure; it has ${photos.length}`,
    );
  }
  const hash = createHash("sha256").update(VIEWS_VERSION);
  const calibration: Float32Array[] = [];
  const heldOut: Float32Array[] = [];
  for (const photo of photos) {
    const { bytes } = entries.find((e) => e.file === photo.file)!;
    hash.update(`\n${photo.file}\t${photo.heldOut ? "held-out" : "calibration"}\t`).update(bytes);
    let image: RawImage;
    try {
      // Decoded as requests are: large JPEGs at a reduced DCT scale, turned upright by their EXIF tag.
      image = await decodeImage(bytes, readImageHeader(bytes), { minShortSide: JPEG_MIN_DECODE_SHORT_SIDE });
    } catch (err) {
      throw new CalibrationError(
        `Calibration photo ${dir}/${photo.file} cannot be decoded: ${errorMessage(err)}`,
      );
    }
    const all = views(image);
    // Calibration runs the model twice per view with every activation as an output, so it
    // takes the whole photo and its mirror; the gate takes all ten views (more samples).
    if (photo.heldOut) heldOut.push(...all);
    else calibration.push(all[0], all[1]);
  }
  const heldOutPhotos = photos.filter((p) => p.heldOut).length;
  return { dir, photos, calibration, heldOut, heldOutPhotos, fingerprint: hash.digest("hex") };
}
