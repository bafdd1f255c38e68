/**
 * Runs two npm tools on an OpenAPI document, for routes/openapi_test.ts:
 * Redocly's linter (`recommended` rules) and openapi-typescript's generator.
 * A separate process because both read environment variables far outside
 * the gateway's permission set (colour detection, CA bundles, TypeScript's
 * settings); routes/openapi_test.ts starts it with an empty environment.
 *
 * Usage: deno run --allow-read=. --allow-write=./tests/tmp --allow-env tests/openapi_tools.ts DOC.json TYPES.d.ts
 * Prints the lint problems as JSON; writes the generated types to TYPES.d.ts.
 */
import { createConfig, lintFromString } from "@redocly/openapi-core";
import openapiTS, { astToString } from "openapi-typescript";

const [docPath, typesPath] = Deno.args;
const source = await Deno.readTextFile(docPath);
const config = await createConfig({ extends: ["recommended"] });
const problems = await lintFromString({ source, absoluteRef: "openapi.json", config });
await Deno.writeTextFile(typesPath, astToString(await openapiTS(JSON.parse(source))));
console.log(JSON.stringify(problems.map((p) => ({
  severity: p.severity,
  ruleId: p.ruleId,
  message: p.message,
  pointer: p.location[0]?.pointer ?? "",
}))));
