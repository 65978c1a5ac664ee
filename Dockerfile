# kluis appliance image: a static binary on Debian slim with pg_dump (used
# for PostgreSQL schema snapshots; MariaDB and SQLite need no client tool),
# running as an unprivileged user with a read-only root filesystem, no
# capabilities and no privilege escalation:
#
#   docker build -t kluis .
#   docker run --read-only --cap-drop ALL --security-opt no-new-privileges \
#     --tmpfs /tmp \
#     -v /etc/kluis:/etc/kluis:ro -v /var/lib/kluis:/var/lib/kluis \
#     kluis daemon --config /etc/kluis/kluis.yaml
#
# Base images are pinned by the digest of their multi-platform index, as
# docker-library/repo-info records it (repos/golang/remote/1.26.8-trixie.md
# and repos/debian/remote/trixie-slim.md); docs/ops.md "Container" says how
# to check and update them. Debian 13 (trixie) is the newest Debian release
# with the newest pg_dump Debian ships (PostgreSQL 17): pg_dump must be at
# least the server's major version, and pg_dump 17 dumps every server from
# 9.2 on, so every PostgreSQL tenant kluis supports (9.6 to 17) can be
# backed up from this image.

FROM golang:1.26.8-trixie@sha256:771f3162219f7a66bb6be3fea1ba31f418932946a99ad9eac26ffd555dfcf393 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/kluis ./cmd/kluis

FROM debian:trixie-slim@sha256:3a39a0592364683e6bab97937b72cad5a8fa6dcbbee90edb3bb48c7f8e94f258
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates postgresql-client-17 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 kluis \
 && useradd --system --uid 10001 --gid kluis --home-dir /var/lib/kluis --shell /usr/sbin/nologin kluis \
 && install -d -o kluis -g kluis -m 0700 /var/lib/kluis
COPY --from=build /out/kluis /usr/local/bin/kluis
USER 10001:10001
WORKDIR /var/lib/kluis
ENV KLUIS_CONFIG=/etc/kluis/kluis.yaml
VOLUME ["/var/lib/kluis"]
ENTRYPOINT ["/usr/local/bin/kluis"]
CMD ["daemon"]
