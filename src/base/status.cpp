#include "base/status.h"

namespace keel {

const char* code_name(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kNotFound: return "not found";
    case Code::kCorruption: return "corruption";
    case Code::kUnsupported: return "unsupported";
    case Code::kIOError: return "I/O error";
    case Code::kResourceExhausted: return "resource exhausted";
    case Code::kInternal: return "internal error";
  }
  return "unknown";
}

}  // namespace keel
