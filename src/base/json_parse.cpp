#include "base/json_parse.h"

namespace keel {
namespace {

// nlohmann's own DOM builder behind a SAX handler that counts open arrays and objects; returning false from
// a SAX call stops the parser where it is, so a value deeper than the limit is never built.
template <typename Json>
class BoundedDomBuilder {
 public:
  using number_integer_t = typename Json::number_integer_t;
  using number_unsigned_t = typename Json::number_unsigned_t;
  using number_float_t = typename Json::number_float_t;
  using string_t = typename Json::string_t;
  using binary_t = typename Json::binary_t;

  BoundedDomBuilder(Json& root, int max_depth) : dom_(root, /*allow_exceptions=*/false), max_depth_(max_depth) {}

  bool null() { return dom_.null(); }
  bool boolean(bool v) { return dom_.boolean(v); }
  bool number_integer(number_integer_t v) { return dom_.number_integer(v); }
  bool number_unsigned(number_unsigned_t v) { return dom_.number_unsigned(v); }
  bool number_float(number_float_t v, const string_t& s) { return dom_.number_float(v, s); }
  bool string(string_t& v) { return dom_.string(v); }
  bool binary(binary_t& v) { return dom_.binary(v); }
  bool key(string_t& v) { return dom_.key(v); }
  bool start_object(std::size_t n) { return open() && dom_.start_object(n); }
  bool start_array(std::size_t n) { return open() && dom_.start_array(n); }
  bool end_object() {
    --depth_;
    return dom_.end_object();
  }
  bool end_array() {
    --depth_;
    return dom_.end_array();
  }
  template <class Exception>
  bool parse_error(std::size_t position, const std::string& token, const Exception& ex) {
    syntax_error_ = ex.what();
    return dom_.parse_error(position, token, ex);
  }

  bool too_deep() const { return too_deep_; }
  const std::string& syntax_error() const { return syntax_error_; }

 private:
  bool open() {
    if (++depth_ > max_depth_) too_deep_ = true;
    return !too_deep_;
  }

  nlohmann::detail::json_sax_dom_parser<Json> dom_;
  int max_depth_;
  int depth_ = 0;
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
  } catch (const nlohmann::json::exception& e) {  // the DOM builder's size checks still throw
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
