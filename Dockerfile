# kluis appliance image: a static binary on Debian slim with the PostgreSQL
# and MariaDB client tools (pg_dump is used for schema snapshots), running
# as an unprivileged user and working with a read-only root filesystem:
#
#   docker build -t kluis .
#   docker run --read-only --tmpfs /tmp \
#     -v /etc/kluis:/etc/kluis:ro -v /var/lib/kluis:/var/lib/kluis \
#     kluis daemon --config /etc/kluis/kluis.yaml

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/kluis ./cmd/kluis

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates postgresql-client mariadb-client \
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
