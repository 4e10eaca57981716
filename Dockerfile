# One image with both binaries: /tollgate (the default) and /mockllm (the demo upstream).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags="-s -w" -o /tollgate . \
 && go build -trimpath -ldflags="-s -w" -o /mockllm ./examples/mockllm/cmd/mockllm \
 && mkdir /data

FROM gcr.io/distroless/static:nonroot
COPY --from=build /tollgate /mockllm /
# A named volume mounted here starts as a copy of this directory, so it is
# writable by the nonroot user.
COPY --from=build --chown=65532:65532 /data /data
EXPOSE 50051 4001 8081
CMD ["/tollgate", "--data-dir", "/data"]
