// HeldMessage: the text of one LMTP transaction, held once however many recipients
// it has, in a descriptor that delivery agents can be handed (SCM_RIGHTS) and read
// with pread: an anonymous memory file (memfd) while small, an unlinked temporary
// file (O_TMPFILE in tmp_dir) once past memory_limit, so that a 30 MB message
// costs the server no 30 MB of memory.
// Invariant: bytes [0, size()) of fd() are the text written, in order.
// Must never: leave a name in the file system, or grow memory past memory_limit.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "core/unique_fd.hpp"

namespace mailroom::smtp {

class HeldMessage {
public:
    static constexpr uint64_t default_memory_limit = 1024 * 1024;

    static core::Result<HeldMessage> create(std::string tmp_dir, uint64_t memory_limit = default_memory_limit);

    core::Result<void> write(std::string_view text);
    int fd() const { return fd_.get(); }
    uint64_t size() const { return size_; }
    bool in_memory() const { return in_memory_; }

private:
    HeldMessage(core::UniqueFd fd, std::string tmp_dir, uint64_t memory_limit)
        : fd_(std::move(fd)), tmp_dir_(std::move(tmp_dir)), memory_limit_(memory_limit) {}
    core::Result<void> spill();

    core::UniqueFd fd_;
    std::string tmp_dir_;
    uint64_t memory_limit_;
    uint64_t size_ = 0;
    bool in_memory_ = true;
};

}  // namespace mailroom::smtp
