#include "tokenizer/stream_decoder.h"

namespace keel::tokenizer {

namespace {

// While the decoded window ends in U+FFFD its last character may still be incomplete. That can chain
// (rare Hangul in Llama 3: each token ends inside the next character), so wait for up to 64 ids; past that,
// the bytes are taken as really invalid and the U+FFFD is sent, bounding the re-decoding work.
constexpr size_t kMaxPending = 64;

bool ends_with_replacement(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}

}  // namespace

std::string StreamDecoder::step(int32_t id) {
  // Ids that decode to nothing must not count towards kMaxPending.
  if ((skip_special_ && tokenizer_->is_special(id)) || !tokenizer_->id_to_token(id)) return "";
  ids_.push_back(id);
  std::string text = tokenizer_->decode(ids_, skip_special_);
  bool grew = text.size() > prefix_.size();
  if ((grew && !ends_with_replacement(text)) || ids_.size() - prefix_ids_ >= kMaxPending) return emit(text);
  return "";
}

std::string StreamDecoder::flush() {
  if (ids_.size() == prefix_ids_) return "";
  return emit(tokenizer_->decode(ids_, skip_special_));
}

std::string StreamDecoder::emit(const std::string& text) {
  // Decoders only append as tokens are added, so `text` extends `prefix_`; should one ever rewrite
  // earlier text, emit from the first byte that differs rather than repeat what was sent.
  size_t common = 0;
  while (common < prefix_.size() && common < text.size() && prefix_[common] == text[common]) ++common;
  while (common > 0 && common < text.size() && (static_cast<unsigned char>(text[common]) & 0xC0) == 0x80) --common;
  std::string out = text.substr(common);
  // Keep the ids just emitted as context for the next step (Metaspace strips a first token's space).
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(prefix_ids_));
  prefix_ids_ = ids_.size();
  prefix_ = tokenizer_->decode(ids_, skip_special_);
  return out;
}

}  // namespace keel::tokenizer
