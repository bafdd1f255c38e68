import type { Codec, JpegInstance } from "./imagescript_codecs.d.ts";

declare const codec: Codec<JpegInstance>;
export default codec;
