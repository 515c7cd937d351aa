#include "core/io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "core/unique_fd.hpp"

namespace mailroom::core {

Result<void> write_all(int fd, std::string_view data, std::string_view context) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return unexpected_errno("write " + std::string(context));
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
    return {};
}

Result<void> pwrite_all(int fd, std::string_view data, uint64_t offset, std::string_view context) {
    while (!data.empty()) {
        ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
        if (n < 0) {
            if (errno == EINTR) continue;
            return unexpected_errno("write " + std::string(context));
        }
        data.remove_prefix(static_cast<size_t>(n));
        offset += static_cast<uint64_t>(n);
    }
    return {};
}

Result<size_t> read_some(int fd, char* buf, size_t size, std::string_view context) {
    for (;;) {
        ssize_t n = ::read(fd, buf, size);
        if (n >= 0) return static_cast<size_t>(n);
        if (errno != EINTR) return unexpected_errno("read " + std::string(context));
    }
}

Result<std::string> read_up_to(int fd, size_t limit, std::string_view context) {
    std::string text;
    char buf[1 << 16];
    while (text.size() <= limit) {
        auto n = read_some(fd, buf, sizeof buf, context);
        if (!n) return unexpected(n.error());
        if (*n == 0) break;
        text.append(buf, *n);
    }
    return text;
}

Result<size_t> pread_full(int fd, char* buf, size_t size, off_t offset, std::string_view context) {
    size_t done = 0;
    while (done < size) {
        ssize_t n = ::pread(fd, buf + done, size - done, offset + static_cast<off_t>(done));
        if (n < 0) {
            if (errno == EINTR) continue;
            return unexpected_errno("read " + std::string(context));
        }
        if (n == 0) break;
        done += static_cast<size_t>(n);
    }
    return done;
}

Result<void> fsync_fd(int fd, std::string_view context) {
    if (::fsync(fd) != 0) return unexpected_errno("fsync " + std::string(context));
    return {};
}

Result<void> fsync_dir(const std::string& dir) {
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) return unexpected_errno("open folder " + dir);
    return fsync_fd(fd.get(), "folder " + dir);
}

std::string dir_of(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

}  // namespace mailroom::core
