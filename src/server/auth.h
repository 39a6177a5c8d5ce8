// Secrets: the API key a server requires, where it may come from, and how it is compared. A key on the command
// line is visible to every user of the machine (ps, /proc/PID/cmdline), so it can come from a file or the
// environment instead; a key is compared in time that does not depend on where it differs from what was sent.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"
#include "env/env.h"

namespace keel::server {

// True when `given` equals `secret`. Every byte of `given` is looked at whatever the contents: the time depends
// on the length of `given` only (known to whoever sent it), never on how much of the secret it matched.
bool secret_equal(std::string_view given, std::string_view secret);

// The key from --api-key (`flag`), --api-key-file (`file`: its first line, surrounding whitespace trimmed; must
// not be empty) or else the KEEL_API_KEY environment variable (`environment`, null when unset); "" for none.
// Giving both flags is an error.
Result<std::string> resolve_api_key(const std::string& flag, const std::string& file, const char* environment,
                                    env::Env& env);

// True for an address only this machine can reach (127.0.0.0/8, ::1, localhost).
bool is_loopback_host(const std::string& host);

}  // namespace keel::server
