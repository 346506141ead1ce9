# syntax=docker/dockerfile:1
# The ngrok-events-operator image: the stripped release binary on distroless, nothing else.
#   docker build -t ngrok-events-operator:0.1.0 --build-arg VERSION=0.1.0 .
# Only public base images and this repository are used.

FROM docker.io/library/rust:1.89-bookworm AS builder
WORKDIR /src
COPY . .
# --locked: exactly the dependencies of Cargo.lock. The release profile strips the binary.
RUN cargo build --release --locked --bin ngrok-events-operator \
 && strip target/release/ngrok-events-operator \
 && cp target/release/ngrok-events-operator /ngrok-events-operator

# distroless/cc: glibc and CA certificates, no shell, no package manager; :nonroot runs as 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="ngrok-events-operator" \
      org.opencontainers.image.description="Manage ngrok Event Destinations as Kubernetes resources" \
      org.opencontainers.image.source="https://github.com/ngrok-events-operator/ngrok-events-operator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /ngrok-events-operator /usr/local/bin/ngrok-events-operator
# The license travels with the binary it covers.
COPY --from=builder /src/LICENSE /licenses/LICENSE
# The chart's runAsUser / runAsGroup.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/ngrok-events-operator"]
CMD ["run"]
