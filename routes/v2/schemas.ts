/**
 * The zod schemas of the Open Inference Protocol's bodies and parameters, as
 * the spec and Triton's extensions spell them; the routes validate with them
 * and the OpenAPI document is generated from them.
 */
import { VERSION_STATES } from "../../model/repository/version_state.ts";
import { z } from "@hono/zod-openapi";

const parameters = z.record(z.string(), z.unknown());

export const v2InferInput = z.object({
  // Bounded: a name is echoed in error messages.
  name: z.string().min(1).max(256),
  shape: z.array(z.number().int().nonnegative()).min(1),
  datatype: z.string().min(1).max(32),
  parameters: z.object({
    binary_data_size: z.number().int().nonnegative().optional().meta({
      description: "Binary tensor data extension: the input's bytes follow the JSON header in the body",
    }),
  }).catchall(z.unknown()).optional(),
  data: z.array(z.unknown()).optional().meta({
    description: "Row-major values, flat or nested to the tensor's shape; absent when sent as binary data",
  }),
}).meta({ id: "InferenceInput" });

export const v2RequestedOutput = z.object({
  name: z.string().min(1).max(256),
  parameters: z.object({
    classification: z.number().int().min(1).max(1000).optional().meta({
      description: "Classification extension: the top k as BYTES strings `logit:index:label`",
    }),
    binary_data: z.boolean().optional().meta({
      description: "Binary tensor data extension: return this output as binary data after the JSON",
    }),
  }).catchall(z.unknown()).optional(),
}).meta({ id: "InferenceRequestedOutput" });

export const v2InferRequest = z.object({
  id: z.string().optional(),
  parameters: z.object({
    binary_data_output: z.boolean().optional().meta({
      description: "Binary tensor data extension: return every output as binary data",
    }),
  }).catchall(z.unknown()).optional(),
  inputs: z.array(v2InferInput).min(1),
  outputs: z.array(v2RequestedOutput).optional(),
}).meta({ id: "InferenceRequest" });

export type V2InferRequest = z.infer<typeof v2InferRequest>;

export const v2InferOutput = z.object({
  name: z.string(),
  shape: z.array(z.number().int()),
  datatype: z.string(),
  parameters: parameters.optional(),
  data: z.array(z.union([z.number(), z.string()])).optional().meta({
    description: "Row-major values, always finite (an input that drives the model to NaN or Infinity is a " +
      "400); absent when the output is sent as binary data (parameters.binary_data_size)",
  }),
}).meta({ id: "InferenceOutput" });

export const v2InferResponse = z.object({
  model_name: z.string(),
  model_version: z.string().optional(),
  id: z.string().optional(),
  parameters: parameters.optional(),
  outputs: z.array(v2InferOutput),
}).meta({ id: "InferenceResponse" });

const tensorMetadata = z.object({ name: z.string(), datatype: z.string(), shape: z.array(z.number().int()) })
  .meta({ id: "TensorMetadata" });

export const v2ServerMetadata = z.object({
  name: z.string(),
  version: z.string(),
  extensions: z.array(z.string()),
}).meta({ id: "ServerMetadata" });

export const v2ModelMetadata = z.object({
  name: z.string(),
  versions: z.array(z.string()),
  platform: z.string(),
  parameters: z.object({
    precision: z.enum(["fp32", "int8"]),
    weights: z.enum(["pretrained", "synthetic"]),
  }).meta({ description: "Arithmetic of the served model and whether its weights are pretrained" }),
  inputs: z.array(tensorMetadata),
  outputs: z.array(tensorMetadata),
}).meta({ id: "ModelMetadata" });

export const v2Error = z.object({ error: z.string() }).meta({
  id: "InferenceError",
  description: "The Open Inference Protocol's error body",
});

export const v2ModelParams = z.object({
  name: z.string().meta({
    description: "The model: MODEL_NAME for tensors, MODEL_NAME-image for encoded images",
    example: "resnet50",
  }),
});

export const v2VersionParams = v2ModelParams.extend({
  version: z.string().meta({
    description: "The model version: the first 12 hex digits of its sha256, as the model metadata lists",
  }),
});

export const v2ServerLive = z.object({ live: z.boolean() }).meta({ id: "ServerLive" });
export const v2ServerReady = z.object({ ready: z.boolean() }).meta({ id: "ServerReady" });
export const v2ModelReady = z.object({ name: z.string(), ready: z.boolean() }).meta({ id: "ModelReady" });

const tensorConfig = z.object({
  name: z.string(),
  data_type: z.string().meta({ example: "TYPE_FP32" }),
  format: z.string().optional().meta({ example: "FORMAT_NCHW" }),
  dims: z.array(z.number().int()),
  label_filename: z.string().optional(),
});

export const v2ModelConfig = z.object({
  name: z.string(),
  platform: z.string(),
  backend: z.string().optional(),
  max_batch_size: z.number().int().meta({
    description: "MAX_IMAGES_PER_REQUEST: the items one request may carry",
  }),
  input: z.array(tensorConfig),
  output: z.array(tensorConfig),
  dynamic_batching: z.object({
    preferred_batch_size: z.array(z.number().int()),
    max_queue_delay_microseconds: z.number().int(),
    default_queue_policy: z.object({
      timeout_action: z.string(),
      default_timeout_microseconds: z.number().int(),
      allow_timeout_override: z.boolean(),
      max_queue_size: z.number().int(),
    }),
  }),
  instance_group: z.array(z.object({ name: z.string(), kind: z.string(), count: z.number().int() })),
  parameters: z.record(z.string(), z.object({ string_value: z.string() })),
}).meta({
  id: "ModelConfig",
  description: "Triton's model configuration extension, in the JSON form Triton's HTTP endpoint answers",
});

const duration = z.object({ count: z.number().int(), ns: z.number().int() });

export const v2ModelStats = z.object({
  model_stats: z.array(z.object({
    name: z.string(),
    version: z.string(),
    last_inference: z.number().int(),
    inference_count: z.number().int(),
    execution_count: z.number().int(),
    inference_stats: z.object({
      success: duration,
      fail: duration,
      queue: duration,
      compute_input: duration,
      compute_infer: duration,
      compute_output: duration,
      cache_hit: duration,
      cache_miss: duration,
    }),
    batch_stats: z.array(z.object({
      batch_size: z.number().int(),
      compute_input: duration,
      compute_infer: duration,
      compute_output: duration,
    })),
    memory_usage: z.array(z.unknown()),
  })),
}).meta({ id: "ModelStatistics", description: "Triton's statistics extension" });

export const v2RepositoryIndexRequest = z.object({
  ready: z.boolean().optional().meta({ description: "Only the models that are ready" }),
}).meta({ id: "RepositoryIndexRequest" });

export const v2RepositoryIndex = z.array(z.object({
  name: z.string(),
  version: z.string().optional(),
  state: z.enum(VERSION_STATES),
  reason: z.string(),
})).meta({ id: "RepositoryIndex", description: "Triton's model repository extension: the models served" });

export const v2ModelList = z.object({ models: z.array(z.string()) }).meta({
  id: "ModelList",
  description: "KServe's model list: the names of the models served",
});
