#include "delivery/maildir_batch.hpp"

#include <sys/stat.h>

#include <cerrno>

#include "core/kernel_aio.hpp"

namespace mailroom::mail {

namespace {

core::Result<void> outcome_of(const core::SyncOrder& order, const std::string& shown) {
    if (order.error != 0) return core::unexpected_errno("fsync " + shown, order.error);
    return {};
}

}  // namespace

std::optional<Status> MaildirBatch::add(uint64_t tag, const Message& message, const DeliveryInfo& info) {
    MaildirDelivery delivery;
    if (Status staged = delivery.stage(message, info); !staged.is_ok()) return staged;
    staged_.emplace_back(tag, std::move(delivery));
    return std::nullopt;
}

std::vector<MaildirBatch::Outcome> MaildirBatch::finish() {
    auto batch = std::move(staged_);
    staged_.clear();
    folder_syncs_ = 0;
    std::vector<Outcome> outcomes;
    outcomes.reserve(batch.size());
    // The files, all at once; each linked into new/ only if its own sync succeeded.
    std::vector<core::SyncOrder> files;
    files.reserve(batch.size());
    for (auto& [tag, delivery] : batch) files.push_back({delivery.data_fd(), false});
    core::sync_all(files);
    std::vector<size_t> linked;  // indexes into batch
    for (size_t i = 0; i < batch.size(); ++i) {
        auto& delivery = batch[i].second;
        Status published = delivery.publish(outcome_of(files[i], delivery.tmp_shown()));
        if (published.is_ok()) {
            linked.push_back(i);
        } else {
            outcomes.push_back({batch[i].first, std::move(published)});
        }
    }
    // Each new/ once, for every link made into it (told apart by device and inode:
    // two deliveries to one Maildir hold descriptors of their own).
    std::vector<core::SyncOrder> folders;
    std::vector<std::pair<dev_t, ino_t>> folder_ids;
    std::vector<size_t> folder_of(batch.size(), 0);
    for (size_t i : linked) {
        const int fd = batch[i].second.new_folder_fd();
        struct stat st {};
        std::pair<dev_t, ino_t> id{0, 0};
        bool known = ::fstat(fd, &st) == 0;
        if (known) id = {st.st_dev, st.st_ino};
        size_t found = folder_ids.size();
        for (size_t f = 0; known && f < folder_ids.size(); ++f) {
            if (folder_ids[f] == id) found = f;
        }
        if (found == folder_ids.size()) {
            // Unknown (fstat failed): a sync of its own, never assumed shared.
            folder_ids.push_back(known ? id : std::pair<dev_t, ino_t>{0, 0});
            folders.push_back({fd, false});
        }
        folder_of[i] = found;
    }
    core::sync_all(folders);
    folder_syncs_ = folders.size();
    for (size_t i : linked) {
        auto& delivery = batch[i].second;
        outcomes.push_back(
            {batch[i].first, delivery.settle(outcome_of(folders[folder_of[i]], delivery.new_folder_shown()))});
    }
    return outcomes;
}

}  // namespace mailroom::mail
