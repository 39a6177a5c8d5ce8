#include "base/json_parse.h"

#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace keel {
namespace {

// Builds the value from nlohmann's SAX events, counting open arrays and objects: returning false from a SAX
// call stops the parser where it is, so a value deeper than the limit is never built. (nlohmann's own DOM
// builder has no depth bound, and through ordered_json's operator[] it finds each key by walking all keys
// before it: 50k keys in a 0.5 MB body took 34 s to parse. Each open object here keeps a hash index instead.)
template <typename Json>
class BoundedDomBuilder {
 public:
  using number_integer_t = typename Json::number_integer_t;
  using number_unsigned_t = typename Json::number_unsigned_t;
  using number_float_t = typename Json::number_float_t;
  using string_t = typename Json::string_t;
  using binary_t = typename Json::binary_t;

  BoundedDomBuilder(Json& root, int max_depth) : root_(root), max_depth_(max_depth) {}

  bool null() { return put(Json(nullptr)); }
  bool boolean(bool v) { return put(Json(v)); }
  bool number_integer(number_integer_t v) { return put(Json(v)); }
  bool number_unsigned(number_unsigned_t v) { return put(Json(v)); }
  bool number_float(number_float_t v, const string_t&) { return put(Json(v)); }
  bool string(string_t& v) { return put(Json(std::move(v))); }
  bool binary(binary_t& v) { return put(Json(std::move(v))); }
  bool start_object(std::size_t) { return open(Json::object()); }
  bool start_array(std::size_t) { return open(Json::array()); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool key(string_t& k) {
    Open& top = open_.back();
    auto& object = top.value->template get_ref<typename Json::object_t&>();
    if constexpr (requires { typename Json::object_t::Container; }) {  // ordered_json
      auto& members = static_cast<typename Json::object_t::Container&>(object);
      auto [at, added] = top.index.try_emplace(k, members.size());
      if (added) members.emplace_back(k, nullptr);
      top.member = &members[at->second].second;  // a repeated key: the last value wins, as in nlohmann
    } else {
      top.member = &object[k];
    }
    return true;
  }

  template <class Exception>
  bool parse_error(std::size_t, const std::string&, const Exception& ex) {
    syntax_error_ = ex.what();
    return false;
  }

  bool too_deep() const { return too_deep_; }
  const std::string& syntax_error() const { return syntax_error_; }

 private:
  struct Open {
    Json* value;
    std::unordered_map<string_t, size_t> index;  // ordered objects: key -> position
    Json* member = nullptr;                        // objects: where the value of the last key goes
  };

  // Puts `v` where the next value belongs (the root, the end of the open array, the open object's last key);
  // only the innermost open container ever grows, so pointers to the ones around it stay valid.
  Json* place(Json&& v) {
    if (open_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    Open& top = open_.back();
    if (top.value->is_array()) {
      auto& items = top.value->template get_ref<typename Json::array_t&>();
      items.push_back(std::move(v));
      return &items.back();
    }
    *top.member = std::move(v);
    return top.member;
  }
  bool put(Json&& v) {
    place(std::move(v));
    return true;
  }
  bool open(Json&& container) {
    if (static_cast<int>(open_.size()) >= max_depth_) {
      too_deep_ = true;
      return false;
    }
    Json* at = place(std::move(container));
    open_.push_back(Open{at, {}, nullptr});
    return true;
  }
  bool close() {
    open_.pop_back();
    return true;
  }

  Json& root_;
  int max_depth_;
  std::vector<Open> open_;
  bool too_deep_ = false;
  std::string syntax_error_;
};

}  // namespace

template <typename Json>
Result<Json> parse_json_bounded(std::string_view text, int max_depth, std::string_view what) {
  Json root;
  BoundedDomBuilder<Json> builder(root, max_depth);
  bool ok = false;
  try {
    ok = Json::sax_parse(text.begin(), text.end(), &builder, nlohmann::json::input_format_t::json, /*strict=*/true);
  } catch (const nlohmann::json::exception& e) {  // not expected from JSON text; kept as a value all the same
    return invalid_argument("{} is not valid JSON: {}", what, e.what());
  }
  if (builder.too_deep()) return invalid_argument("{} nests deeper than {} levels", what, max_depth);
  if (!ok) return invalid_argument("{} is not valid JSON: {}", what, builder.syntax_error());
  return root;
}

template Result<nlohmann::json> parse_json_bounded<nlohmann::json>(std::string_view, int, std::string_view);
template Result<nlohmann::ordered_json> parse_json_bounded<nlohmann::ordered_json>(std::string_view, int,
                                                                                   std::string_view);

}  // namespace keel
