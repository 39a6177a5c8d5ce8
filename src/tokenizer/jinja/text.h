// Python's str operations on UTF-8 text, by code point: strip, case mapping, replace, predicates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "tokenizer/jinja/budget.h"

namespace keel::jinja {

// str.isspace() for one UTF-8 encoded character.
bool is_python_space(const std::string& ch);
// str.strip / lstrip / rstrip; `chars` null strips whitespace.
std::string python_strip(const std::string& s, const std::string* chars, bool left, bool right);
std::string python_upper(const std::string& s);
std::string python_lower(const std::string& s);
std::string python_title(const std::string& s);       // str.title()
std::string python_capitalize(const std::string& s);  // str.capitalize()
// str.replace; stops building once past `max_bytes` (the caller's string-bytes check then fails on the size).
std::string python_replace(const std::string& s, const std::string& old, const std::string& repl, int64_t count,
                           size_t max_bytes = SIZE_MAX);
// A format spec ("{:>999999999}", "%0999999999d") whose width would build a field past `max_bytes` fails
// with the string-bytes budget before fmt allocates it.
Status check_format_width(const std::string& spec, size_t max_bytes);
// str.isdigit() / isalpha() / isalnum() / isspace() / isupper() / islower(), named by `which`.
bool python_is(const std::string& s, const std::string& which);

}  // namespace keel::jinja
