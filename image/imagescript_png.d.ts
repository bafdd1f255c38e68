import type { Codec, PngInstance } from "./imagescript_codecs.d.ts";

declare const codec: Codec<PngInstance>;
export default codec;
