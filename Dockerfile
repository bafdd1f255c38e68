# inference-gateway: Deno + onnxruntime-node. Build: docker compose build (or docker build -t inference-gateway .)
FROM denoland/deno:2.9.6

WORKDIR /app

# Dependencies first, frozen against the lock file, so code changes reuse this layer.
# onnxruntime-node ships its native binaries for every OS and CPU (288 MB); keep only this
# image's (45 MB), and drop sharp's musl builds (this base image is glibc). TARGETARCH is set
# by BuildKit and buildah/podman; without it the build machine's architecture is used.
# Deno's npm cache is dropped too: node_modules is what runs, and the cache held a second
# copy of every package (node_modules links to it, so pruning one alone saves nothing).
COPY deno.json deno.lock ./
ARG TARGETARCH
RUN deno install --frozen \
 && arch="${TARGETARCH:-$(dpkg --print-architecture)}" \
 && case "$arch" in amd64) ort=x64 ;; arm64) ort=arm64 ;; *) echo "unsupported architecture $arch" >&2; exit 1 ;; esac \
 && for bin in node_modules/.deno/onnxruntime-node@*/node_modules/onnxruntime-node/bin/napi-v*; do \
      find "$bin" -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} + \
      && find "$bin/linux" -mindepth 1 -maxdepth 1 ! -name "$ort" -exec rm -rf {} + \
      && test -e "$bin/linux/$ort/onnxruntime_binding.node"; \
    done \
 && rm -rf node_modules/.deno/@img+sharp-linuxmusl-* node_modules/.deno/@img+sharp-libvips-linuxmusl-* \
 && rm -rf "${DENO_DIR:-/deno-dir}/npm"

COPY . .
# Compile the module graph now, not on the first request, nor on every health check: the
# root filesystem may be read-only at run time, so nothing can be cached then.
RUN deno cache main.ts server/guard_worker.ts model/runtime/inference_worker.ts model/quantize/int8_worker.ts image/preprocess_worker.ts deploy/healthcheck.ts \
 && mkdir -p /app/models \
 && chown -R deno:deno /app/models

# The model is obtained on first start into the /app/models volume: the zoo file is
# checksum-verified, or a synthetic model is built (announced loudly). To bake it in
# instead: RUN deno task model:fetch (needs network at build time). A bind mount for
# /app/models must belong to uid 1993.
ENV HOST=0.0.0.0 \
    PORT=8000 \
    MODEL_DIR=./models \
    NO_COLOR=1
# The image's deno user, by number: Kubernetes' runAsNonRoot can only verify a numeric user.
USER 1993:1993
EXPOSE 8000
VOLUME ["/app/models"]

HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
  CMD ["deno", "run", "--allow-net=127.0.0.1:8000", "deploy/healthcheck.ts", "8000"]

# The same scoped permissions as everywhere else: the start task names them (no -A).
CMD ["deno", "task", "--quiet", "start"]
