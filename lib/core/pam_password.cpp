#include "core/pam_password.hpp"

#include <security/pam_appl.h>
#include <string.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace mailroom::core {

namespace {

// What the conversation answers with; both outlive the PAM transaction.
struct Answers {
    std::string_view user;
    std::string_view password;
};

// A malloc'd NUL-terminated copy, as PAM frees its responses with free().
char* malloc_copy(std::string_view text) {
    auto* copy = static_cast<char*>(std::malloc(text.size() + 1));
    if (copy == nullptr) return nullptr;
    std::memcpy(copy, text.data(), text.size());
    copy[text.size()] = '\0';
    return copy;
}

void drop_responses(pam_response* responses, int count) {
    for (int i = 0; i < count; ++i) {
        if (char* text = responses[i].resp) {
            ::explicit_bzero(text, std::strlen(text));
            std::free(text);
        }
    }
    std::free(responses);
}

// Linux-PAM's layout: `messages` is an array of `count` pointers. Nobody is asked
// anything: the password answers a hidden prompt, the user a visible one (a module
// that asks for the name itself), and text for a person to read is dropped. A
// binary or unknown prompt fails the conversation, which fails the check as
// unavailable: the configuration wants something SMTP cannot give.
int converse(int count, const pam_message** messages, pam_response** out, void* data) {
    if (out == nullptr || messages == nullptr || count <= 0 || count > PAM_MAX_NUM_MSG) return PAM_CONV_ERR;
    *out = nullptr;
    const auto* answers = static_cast<const Answers*>(data);
    auto* responses = static_cast<pam_response*>(std::calloc(static_cast<size_t>(count), sizeof(pam_response)));
    if (responses == nullptr) return PAM_BUF_ERR;
    for (int i = 0; i < count; ++i) {
        const pam_message* message = messages[i];
        if (message == nullptr) {
            drop_responses(responses, count);
            return PAM_CONV_ERR;
        }
        switch (message->msg_style) {
            case PAM_PROMPT_ECHO_OFF: responses[i].resp = malloc_copy(answers->password); break;
            case PAM_PROMPT_ECHO_ON: responses[i].resp = malloc_copy(answers->user); break;
            case PAM_ERROR_MSG:
            case PAM_TEXT_INFO: continue;
            default:
                drop_responses(responses, count);
                return PAM_CONV_ERR;
        }
        if (responses[i].resp == nullptr) {
            drop_responses(responses, count);
            return PAM_BUF_ERR;
        }
    }
    *out = responses;
    return PAM_SUCCESS;
}

// PAM_FAIL_DELAY: modules ask for a delay after a failure (pam_unix 2 s), which
// libpam would spend sleeping inside pam_authenticate. Here that sleep would hold
// one of the root side's few check slots (mta/password_service.hpp runs a handful
// at once): a guesser's failures would fill them and make every other client's
// AUTH wait in line. The sessions process slows a failed AUTH itself instead, per
// session and without blocking anything (net::ServerSettings::auth_failure_delay).
void no_fail_delay(int, unsigned, void*) {}

bool has_nul(std::string_view text) { return text.find('\0') != std::string_view::npos; }

// A refusal: the user or password is wrong, unknown, or not allowed in.
bool is_refusal(int rc) {
    switch (rc) {
        case PAM_AUTH_ERR:
        case PAM_USER_UNKNOWN:
        case PAM_MAXTRIES:
        case PAM_CRED_INSUFFICIENT:
        case PAM_PERM_DENIED:
        case PAM_ACCT_EXPIRED:
        case PAM_NEW_AUTHTOK_REQD:  // the password has expired: SMTP cannot change it
            return true;
        default:
            return false;
    }
}

PasswordCheck verdict_of(pam_handle_t* handle, const char* step, int rc) {
    PasswordCheck check;
    check.verdict = is_refusal(rc) ? PasswordVerdict::refused : PasswordVerdict::unavailable;
    check.why = std::string(step) + ": " + ::pam_strerror(handle, rc);
    return check;
}

}  // namespace

PasswordCheck check_password(const std::string& service, const std::string& user, std::string_view password,
                             const std::string& remote) {
    if (service.empty() || has_nul(service)) return {PasswordVerdict::unavailable, "no PAM service"};
    if (user.empty() || has_nul(user)) return {PasswordVerdict::refused, "no user name"};
    if (password.empty() || has_nul(password)) return {PasswordVerdict::refused, "no password"};

    Answers answers{user, password};
    const pam_conv conversation{converse, &answers};
    pam_handle_t* handle = nullptr;
    int rc = ::pam_start(service.c_str(), user.c_str(), &conversation, &handle);
    if (rc != PAM_SUCCESS) {
        PasswordCheck failed{PasswordVerdict::unavailable, std::string("pam_start: ") + ::pam_strerror(handle, rc)};
        if (handle != nullptr) ::pam_end(handle, rc);
        return failed;
    }
    PasswordCheck check;
    rc = ::pam_set_item(handle, PAM_FAIL_DELAY, reinterpret_cast<const void*>(&no_fail_delay));
    if (rc == PAM_SUCCESS && !remote.empty() && !has_nul(remote)) rc = ::pam_set_item(handle, PAM_RHOST, remote.c_str());
    if (rc != PAM_SUCCESS) {
        check = {PasswordVerdict::unavailable, std::string("pam_set_item: ") + ::pam_strerror(handle, rc)};
    } else if (rc = ::pam_authenticate(handle, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK); rc != PAM_SUCCESS) {
        check = verdict_of(handle, "pam_authenticate", rc);
    } else if (rc = ::pam_acct_mgmt(handle, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK); rc != PAM_SUCCESS) {
        check = verdict_of(handle, "pam_acct_mgmt", rc);
    } else {
        check.verdict = PasswordVerdict::accepted;
    }
    ::pam_end(handle, rc);
    return check;
}

std::string secret_copy(std::string_view bytes) {
    std::string copy;
    // Past the inline buffer's size (15 bytes in libstdc++, 22 in libc++): always
    // on the heap, whatever the length.
    copy.reserve(std::max<size_t>(bytes.size(), 32));
    copy.assign(bytes);
    return copy;
}

void wipe(std::string& secret) {
    // Grown to its capacity (no reallocation), so every byte the buffer holds is
    // ours to zero, including what a shorter content left behind.
    secret.resize(secret.capacity());
    ::explicit_bzero(secret.data(), secret.size());
    secret.clear();
}

}  // namespace mailroom::core
