# inference-gateway: Deno + onnxruntime-node. Build: docker compose build (or docker build -t inference-gateway .)
FROM denoland/deno:2.9.6

WORKDIR /app

# Dependencies first, frozen against the lock file, so code changes reuse this layer.
COPY deno.json deno.lock ./
RUN deno install --frozen

COPY . .
# Compile the module graph now, not on the first request.
RUN deno cache main.ts model/inference_worker.ts image/preprocess_worker.ts \
 && mkdir -p /app/models \
 && chown -R deno:deno /app/models

# The model is obtained on first start into the /app/models volume: the zoo file is
# checksum-verified, or a synthetic model is built (announced loudly). To bake it in
# instead: RUN deno task model:fetch (needs network at build time).
ENV HOST=0.0.0.0 \
    PORT=8000 \
    MODEL_DIR=./models \
    NO_COLOR=1
USER deno
EXPOSE 8000
VOLUME ["/app/models"]

HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
  CMD ["deno", "run", "--allow-net=127.0.0.1:8000", "deploy/healthcheck.ts", "8000"]

# The same scoped permissions as everywhere else: the start task names them (no -A).
CMD ["deno", "task", "--quiet", "start"]
