// Replacing a file so that a reader, or the system after a crash, sees either the
// whole old content or the whole new content, never a mix or an empty file.
// TempFile owns one temporary file beside its destination until commit() renames
// it into place; a TempFile destroyed uncommitted removes its file.
// Invariants: the temp file lives in the destination's folder (rename is atomic only
// within one file system) and is created with O_EXCL under a fresh name, so it never
// opens a file someone else planted. Must never: leave a temp file behind on a
// failure it saw, or rename data that has not reached the disk.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "core/result.hpp"
#include "core/unique_fd.hpp"

namespace mailroom::core {

class TempFile {
public:
    // Creates ".NAME.tmp.PID.RANDOM" beside final_path, with exactly mode (not
    // masked by the umask: a compiled database must be readable as documented).
    static Result<TempFile> create_for(const std::string& final_path, mode_t mode);

    TempFile(TempFile&& other) noexcept;
    TempFile& operator=(TempFile&& other) noexcept;
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    ~TempFile();

    int fd() const { return fd_.get(); }
    const std::string& path() const { return temp_path_; }
    const std::string& final_path() const { return final_path_; }

    Result<void> write(std::string_view data);
    // fsync, close, rename over final_path, fsync the folder. After a failure
    // before the rename the temp file is removed; after the rename it is gone anyway.
    Result<void> commit();
    // Removes the temp file now (the destructor does the same, silently).
    void discard();

private:
    TempFile(UniqueFd fd, std::string temp_path, std::string final_path)
        : fd_(std::move(fd)), temp_path_(std::move(temp_path)), final_path_(std::move(final_path)) {}

    UniqueFd fd_;
    std::string temp_path_;  // empty once committed or discarded: nothing to remove
    std::string final_path_;
};

// The whole dance for content already in memory (newaliases' database, state files).
Result<void> write_file_atomically(const std::string& path, std::string_view content, mode_t mode);

}  // namespace mailroom::core
