// EINTR-safe whole-buffer reads and writes, and fsync helpers. Every other file in
// the project goes through these instead of calling read/write/fsync by hand, so
// short writes and EINTR are handled in exactly one place.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace mailroom::core {

// Writes all of data or fails; the context names the file for the error line.
Result<void> write_all(int fd, std::string_view data, std::string_view context);
// Writes all of data at offset (the file position is not used) or fails.
Result<void> pwrite_all(int fd, std::string_view data, uint64_t offset, std::string_view context);
// Reads up to size bytes, retrying EINTR; 0 means end of file.
Result<size_t> read_some(int fd, char* buf, size_t size, std::string_view context);
// Reads the rest of the file, but stops once it holds more than `limit` bytes (a
// file that grew while read): the caller sees size() > limit and refuses it.
Result<std::string> read_up_to(int fd, size_t limit, std::string_view context);
// Reads up to size bytes at offset, retrying EINTR and short reads until EOF.
Result<size_t> pread_full(int fd, char* buf, size_t size, off_t offset, std::string_view context);
Result<void> fsync_fd(int fd, std::string_view context);
// Opens the folder and fsyncs it, so that a create/rename/unlink inside survives a crash.
Result<void> fsync_dir(const std::string& dir);
// The folder part of a path ("." when there is none).
std::string dir_of(const std::string& path);

}  // namespace mailroom::core
