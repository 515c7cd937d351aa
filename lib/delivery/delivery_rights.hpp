// Who this process may deliver as. A runner started as root may write any local
// user's mailbox (it switches to that user in a child); one started as a user
// (sendmail -odi, mta -q run by a user) may deliver only as itself, and leaves
// the rest to a runner with more rights. The decision is read once, in main,
// and passed down, so no library code asks geteuid() on its own and a test can
// play either side without being root.
// Invariant: a process that is not root never claims to switch users.
#pragma once

#include <sys/types.h>

namespace mailroom::mail {

class DeliveryRights {
public:
    // The effective uid of this process, read now.
    static DeliveryRights of_this_process();
    static DeliveryRights root() { return DeliveryRights(0, true); }
    static DeliveryRights only_as(uid_t uid) { return DeliveryRights(uid, uid == 0); }

    // True when a delivery as `uid` can happen in this process or its children.
    bool may_deliver_as(uid_t uid) const { return switches_users_ || uid == uid_; }
    // True when deliveries fork and switch to the target's user (the process is root).
    bool switches_users() const { return switches_users_; }
    // Whom files this process creates belong to before any hand-over.
    uid_t uid() const { return uid_; }

private:
    DeliveryRights(uid_t uid, bool switches_users) : uid_(uid), switches_users_(switches_users) {}
    uid_t uid_;
    bool switches_users_;
};

}  // namespace mailroom::mail
