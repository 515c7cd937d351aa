#include "delivery/delivery_rights.hpp"

#include <unistd.h>

namespace mailroom::mail {

DeliveryRights DeliveryRights::of_this_process() { return only_as(::geteuid()); }

}  // namespace mailroom::mail
