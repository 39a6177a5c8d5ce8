// UTF-8 and Unicode helpers shared by the tokenizer pieces. Strings are UTF-8 bytes in std::string.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace keel::tokenizer {

// Length of the UTF-8 sequence that starts with `lead` in a valid string (1 for a stray byte).
inline size_t utf8_len(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;
}

// Decodes the character at s[i] of a valid UTF-8 string and advances i past it.
char32_t next_char(std::string_view s, size_t& i);
void append_utf8(std::string& out, char32_t cp);

bool is_valid_utf8(std::string_view s);
// Rust's String::from_utf8_lossy: each maximal invalid subpart becomes one U+FFFD (what HF decoders do).
std::string utf8_lossy(std::string_view bytes);

// Rust char::is_whitespace (the Unicode White_Space property), as HF uses for lstrip/rstrip.
bool is_whitespace(char32_t c);
// Rust regex `\w`: letters, marks, decimal digits, letter numbers, connector punctuation, ZWJ/ZWNJ.
bool is_word_char(char32_t c);

// Assigned after Unicode 9.0 and would be changed or moved by NFC: HF's NFC (Unicode 9.0 tables) treats
// these as inert starters (nfc_unicode9.cpp, generated).
bool nfc_unknown_to_unicode9(char32_t c);

// GPT-2's byte-level alphabet: every byte is shown as a printable character (UTF-8 encoded here).
const std::array<std::string, 256>& byte_to_char();
// The reverse mapping for a code point, or -1 when `c` is not one of the 256 byte characters.
int char_to_byte(char32_t c);

}  // namespace keel::tokenizer
