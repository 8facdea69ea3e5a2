// Fuzz targets for what the cluster listener reads from clients before anything is trusted:
// the HPACK decoder on its own, and raw bytes after the HTTP/2 preface on a real connection
// to an in-process wire::GrpcServer (frames, header blocks, gRPC messages). Each returns 0;
// a crash, a sanitizer report or a hang is the failure.
#pragma once

#include <cstddef>
#include <cstdint>

namespace portico::fuzz {

// The input's first byte picks how many header blocks (1-4) the rest is cut into; all go
// through one decoder, so the dynamic table carries from block to block as on a connection.
int fuzzHpack(const uint8_t* data, size_t size);

// Sends the client preface and then the input on a fresh connection to a server started
// once per process, half-closes, and reads until the server closes or 300 ms pass.
int fuzzH2Frames(const uint8_t* data, size_t size);

}  // namespace portico::fuzz
