# smsbridge: a static binary on a distroless base, running as non-root.
#   docker build -t smsbridge .
#   docker run -p 2525:2525 -p 8025:8025 -v smsbridge-data:/data smsbridge \
#     --trusted-networks 172.16.0.0/12 --smsc smsc.example.net:2775 ...
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
# go.mod replaces go-smtp with this patched copy (see its PATCHES.md).
COPY third_party/go-smtp/go.mod third_party/go-smtp/
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/smsbridge ./cmd/smsbridge \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/smsbridge /usr/local/bin/smsbridge
# The store (bbolt) and the report outbox live here; keep it on a volume.
COPY --from=build --chown=65532:65532 /out/data /data
VOLUME /data
# 2525: SMTP; 8025: admin HTTP (/healthz, /readyz, /metrics, /api), once published.
EXPOSE 2525 8025
USER nonroot:nonroot
# The image has no shell or curl: the binary checks itself. The admin
# listener stays on the container's loopback unless you publish it with
# --admin-addr=0.0.0.0:8025 and a token (env SMSBRIDGE_ADMIN_TOKEN), which
# smsbridge then requires; /healthz never asks for it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
  CMD ["/usr/local/bin/smsbridge", "healthcheck", "--admin-addr", "127.0.0.1:8025"]
ENTRYPOINT ["/usr/local/bin/smsbridge", "serve", "--data-dir=/data", "--smtp-addr=0.0.0.0:2525", "--admin-addr=127.0.0.1:8025"]
