#include "smtp/held_message.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "core/io.hpp"

namespace mailroom::smtp {

core::Result<HeldMessage> HeldMessage::create(std::string tmp_dir, uint64_t memory_limit) {
    int fd = ::memfd_create("lmtp-message", MFD_CLOEXEC);
    if (fd < 0) return core::unexpected_errno("memfd_create for a message");
    return HeldMessage(core::UniqueFd(fd), std::move(tmp_dir), memory_limit);
}

core::Result<void> HeldMessage::write(std::string_view text) {
    if (in_memory_ && size_ + text.size() > memory_limit_) {
        if (auto spilled = spill(); !spilled) return spilled;
    }
    if (auto written = core::pwrite_all(fd_.get(), text, size_, "write a message being received"); !written)
        return written;
    size_ += text.size();
    return {};
}

// The text so far moves from memory to a file nobody can open by name.
core::Result<void> HeldMessage::spill() {
    int file = ::open(tmp_dir_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (file < 0) return core::unexpected_errno("create a temporary file in " + tmp_dir_);
    core::UniqueFd spilled(file);
    // Read and write, not copy_file_range: the kernel refuses that from a memfd to
    // another file system. At most memory_limit bytes, once a message.
    std::string buffer(64 * 1024, '\0');
    for (uint64_t at = 0; at < size_;) {
        ssize_t n = ::pread(fd_.get(), buffer.data(), std::min<uint64_t>(buffer.size(), size_ - at), static_cast<off_t>(at));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return core::unexpected_errno("read back a message being received", n == 0 ? EIO : errno);
        if (auto written = core::pwrite_all(file, std::string_view(buffer.data(), static_cast<size_t>(n)), at,
                                            "copy a message into " + tmp_dir_);
            !written)
            return written;
        at += static_cast<uint64_t>(n);
    }
    fd_ = std::move(spilled);
    in_memory_ = false;
    return {};
}

}  // namespace mailroom::smtp
