// Python's str operations on UTF-8 text, by code point: strip, case mapping, replace, predicates.
#pragma once

#include <cstdint>
#include <string>

namespace keel::jinja {

// str.isspace() for one UTF-8 encoded character.
bool is_python_space(const std::string& ch);
// str.strip / lstrip / rstrip; `chars` null strips whitespace.
std::string python_strip(const std::string& s, const std::string* chars, bool left, bool right);
std::string python_upper(const std::string& s);
std::string python_lower(const std::string& s);
std::string python_title(const std::string& s);       // str.title()
std::string python_capitalize(const std::string& s);  // str.capitalize()
std::string python_replace(const std::string& s, const std::string& old, const std::string& repl, int64_t count);
// str.isdigit() / isalpha() / isalnum() / isspace() / isupper() / islower(), named by `which`.
bool python_is(const std::string& s, const std::string& which);

}  // namespace keel::jinja
