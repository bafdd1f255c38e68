import assert from "node:assert/strict";
import { CROP_SIZE, TENSOR_SIZE } from "../../image/preprocess.ts";
import { CalibrationError, loadCalibrationSet, mirror, sceneOf, splitScenes } from "./calibration_set.ts";

const TMP = "./tests/tmp";

Deno.test("calibration set", async (t) => {
  await t.step("variants of one photo share a scene and a side of the split", () => {
    assert.equal(sceneOf("chelsea_cmyk.jpg"), "chelsea");
    assert.equal(sceneOf("Coffee-1920.PNG"), "coffee");
    const photos = splitScenes(["b_2.png", "a.jpg", "c_x.jpg", "c_y.jpg", "d.png", "e.png", "f.png"]);
    assert.deepEqual(photos.filter((p) => p.heldOut).map((p) => p.file), ["c_x.jpg", "c_y.jpg", "f.png"]);
    assert.deepEqual(splitScenes(["a.png", "b.png"]).map((p) => p.heldOut), [false, true]);
  });

  await t.step("the shipped photos: four scenes held out, nine to calibrate on", async () => {
    const set = await loadCalibrationSet("./model/quantize/calibration");
    const held = set.photos.filter((p) => p.heldOut).map((p) => p.scene);
    assert.deepEqual(held, ["camera", "coffee", "ihc", "retina"]);
    assert.equal(set.calibration.length, 2 * 9);
    assert.equal(set.heldOut.length, 10 * 4);
    assert.equal(set.heldOutPhotos, 4);
    assert.ok(set.heldOut.every((v) => v.length === TENSOR_SIZE && v.every(Number.isFinite)));
    assert.match(set.fingerprint, /^[0-9a-f]{64}$/);
  });

  await t.step("mirroring reverses each row", () => {
    const t = Float32Array.from({ length: TENSOR_SIZE }, (_, i) => i % CROP_SIZE);
    const m = mirror(t);
    assert.equal(m[0], CROP_SIZE - 1);
    assert.equal(m[CROP_SIZE * 5 + 3], CROP_SIZE - 4);
    assert.deepEqual(mirror(m), t);
  });

  await t.step("the fingerprint changes when a photo changes", async () => {
    const dir = `${TMP}/calset-${crypto.randomUUID().slice(0, 8)}`;
    await Deno.mkdir(dir, { recursive: true });
    try {
      for (const f of ["coffee.jpg", "rocket.jpg"]) {
        await Deno.copyFile(`./tests/fixtures/images/${f}`, `${dir}/${f}`);
      }
      const first = await loadCalibrationSet(dir);
      assert.deepEqual(first.photos.map((p) => p.heldOut), [false, true]);
      await Deno.copyFile("./tests/fixtures/images/chelsea.jpg", `${dir}/rocket.jpg`);
      assert.notEqual((await loadCalibrationSet(dir)).fingerprint, first.fingerprint);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  await t.step("one scene, a missing directory and a corrupt photo fail clearly", async () => {
    const dir = `${TMP}/calset-${crypto.randomUUID().slice(0, 8)}`;
    await Deno.mkdir(dir, { recursive: true });
    try {
      await Deno.copyFile("./tests/fixtures/images/coffee.jpg", `${dir}/coffee.jpg`);
      await assert.rejects(
        loadCalibrationSet(dir),
        (e) => e instanceof CalibrationError && /two scenes/.test(e.message),
      );
      await Deno.writeFile(`${dir}/zzz.png`, new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]));
      await assert.rejects(loadCalibrationSet(dir), /zzz.png/);
      await assert.rejects(loadCalibrationSet(`${dir}/none`), /CALIBRATION_DIR .* cannot be read/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});
