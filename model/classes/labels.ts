/** The 1000 ImageNet class names, in the index order every ImageNet classifier uses. */

export const LABELS_URL = new URL("./imagenet_classes.txt", import.meta.url);

/** Parses a labels file: one class name a line, blank trailing lines ignored. */
export function parseLabels(text: string): string[] {
  const labels = text.split(/\r?\n/).map((l) => l.trim());
  while (labels.length && labels[labels.length - 1] === "") labels.pop();
  return labels;
}

/** Loads the shipped ImageNet labels and checks there are exactly `expected`. */
export async function loadLabels(url: URL = LABELS_URL, expected = 1000): Promise<string[]> {
  const labels = parseLabels(await Deno.readTextFile(url));
  if (labels.length !== expected) {
    throw new Error(
      `Labels file ${url.pathname} has ${labels.length} classes; the model outputs ${expected}`,
    );
  }
  return labels;
}
