// The generation routes' common path: parse → prompt ids → admission (the engine's context check) → Completion →
// one JSON response or an SSE stream. Also /tokenize and /detokenize, which share the prompt building.
#include <fmt/ranges.h>

#include <httplib.h>

#include "server/anthropic.h"
#include "server/chat_messages.h"
#include "server/openai.h"
#include "server/request_fields.h"
#include "server/responses.h"
#include "server/server.h"
#include "server/structured_output.h"

namespace keel::server {

namespace {

// How long a stream writer waits for tokens before looking at the connection again.
constexpr std::chrono::milliseconds kStreamPoll{100};

// Registers a request as in flight for as long as its Completion is being written.
class InFlight {
 public:
  InFlight(std::atomic<int>* count, std::mutex* mu, std::set<uint64_t>* active)
      : count_(count), mu_(mu), active_(active) {
    count_->fetch_add(1);
  }
  ~InFlight() {
    {
      std::lock_guard lock(*mu_);
      for (uint64_t id : ids_) active_->erase(id);
    }
    count_->fetch_sub(1);
  }
  void add_id(uint64_t id) {
    ids_.push_back(id);
    std::lock_guard lock(*mu_);
    active_->insert(id);
  }

 private:
  std::atomic<int>* count_;
  std::mutex* mu_;
  std::set<uint64_t>* active_;
  std::vector<uint64_t> ids_;
};

ApiError too_many_in_flight(int limit) {
  return ApiError::overloaded(
      429, fmt::format("too many requests in flight (limit {}, --max-concurrent-requests); retry shortly", limit));
}

}  // namespace

// Chat routes split the output into text, reasoning and tool calls when the request has tools (and tool_choice
// is not "none") or the model reasons; otherwise the text goes out as generated.
std::unique_ptr<OutputParser> Server::output_parser(const GenerationSpec& spec, const std::string& rendered,
                                                    Route route) const {
  if (!spec.is_chat) return nullptr;
  OutputParserOptions o;
  const bool tools = spec.tools.is_array() && !spec.tools.empty() && spec.tool_choice.mode != ToolChoice::Mode::kNone;
  o.tools = tools ? model_.tool_call_format.value_or(ToolCallFormat::kNone) : ToolCallFormat::kNone;
  o.reasoning = model_.reasoning_format.value_or(ReasoningFormat::kNone);
  if (o.tools == ToolCallFormat::kNone && o.reasoning == ReasoningFormat::kNone) return nullptr;
  o.starts_in_reasoning = o.reasoning != ReasoningFormat::kNone && prompt_opens_reasoning(rendered);
  o.parallel_calls = spec.parallel_tool_calls;
  o.tools_json = spec.tools;
  o.id_prefix = route == Route::kMessages ? "toolu_" : "call_";
  return std::make_unique<OutputParser>(std::move(o));
}

namespace {

bool failed(const Piece& p) {
  return p.finish == engine::FinishReason::kCancelled || p.finish == engine::FinishReason::kError;
}

// The prompt once (every choice has the same one), the completion tokens of all choices.
Usage usage_of(const std::vector<std::shared_ptr<Completion>>& choices) {
  Usage u;
  u.prompt_tokens = choices.at(0)->prompt_tokens();
  u.cached_tokens = choices.at(0)->cached_tokens();
  for (const auto& c : choices) u.completion_tokens += c->completion_tokens();
  return u;
}

// A stream of n choices as the SSE writer drains it: whichever choice has something goes next.
struct ChoiceStream {
  std::vector<std::shared_ptr<Completion>> choices;
  std::shared_ptr<Bell> bell;
  std::vector<bool> ended;
  int left = 0;
  bool started = false;
};

ApiError finish_error(const Piece& last) {
  if (last.finish == engine::FinishReason::kCancelled) {
    return ApiError::overloaded(503, "the request was cancelled (the server is shutting down)");
  }
  return ApiError::internal("generation failed: " + last.error);
}

}  // namespace

void Server::chat(const httplib::Request& req, httplib::Response& res) { generate(req, res, Route::kChat); }
void Server::completions(const httplib::Request& req, httplib::Response& res) {
  generate(req, res, Route::kCompletions);
}
void Server::messages(const httplib::Request& req, httplib::Response& res) { generate(req, res, Route::kMessages); }
void Server::responses(const httplib::Request& req, httplib::Response& res) {
  generate(req, res, Route::kResponses);
}

void Server::get_response(const httplib::Request& req, httplib::Response& res) {
  const std::string id = req.matches.size() > 1 ? std::string(req.matches[1]) : "";
  std::optional<StoredResponse> stored = responses_->get(id);
  if (!stored) {
    return send_error(res, ApiError::not_found(fmt::format("Response with id '{}' not found.", id)),
                      ApiFlavor::kOpenAI);
  }
  send_json(res, stored->response);
}

void Server::delete_response(const httplib::Request& req, httplib::Response& res) {
  const std::string id = req.matches.size() > 1 ? std::string(req.matches[1]) : "";
  if (!responses_->erase(id)) {
    return send_error(res, ApiError::not_found(fmt::format("Response with id '{}' not found.", id)),
                      ApiFlavor::kOpenAI);
  }
  send_json(res, json{{"id", id}, {"object", "response"}, {"deleted", true}});
}

Result<std::vector<int32_t>> Server::prompt_ids(const GenerationSpec& spec, std::string* rendered) const {
  if (spec.is_chat) {
    if (!model_.chat_template) {
      return invalid_argument("messages: the model has no chat template; use /v1/completions with a prompt");
    }
    Result<std::string> text =
        render_chat(*model_.chat_template, spec.messages, spec.tools, spec.add_generation_prompt, spec.template_kwargs);
    if (!text.ok()) return invalid_argument("messages: the chat template failed: {}", text.status().message());
    if (rendered) *rendered = *text;
    // The template writes the special tokens itself, as apply_chat_template(tokenize=True) does.
    return model_.tokenizer->encode(*text, /*add_special=*/false);
  }
  if (spec.prompt_is_ids) return spec.request.prompt;
  return model_.tokenizer->encode(spec.prompt_text, /*add_special=*/true);
}

grammar::GrammarCompiler& Server::grammar_compiler() {
  std::call_once(grammar_once_, [this] {
    // The special tokens the model's tool calls are written with (Mistral's [TOOL_CALLS]) may be forced.
    const ToolCallFormat format = model_.tool_call_format.value_or(ToolCallFormat::kNone);
    grammar_ = std::make_unique<grammar::GrammarCompiler>(*model_.tokenizer, model_.tokenizer->eos_ids(),
                                                          tool_call_syntax(format).special_markers);
  });
  return *grammar_;
}

Status Server::apply_constraint(GenerationSpec& spec) {
  apply_tool_choice(&spec);
  if (!spec.constraint) return Status();
  KEEL_ASSIGN_OR_RETURN(spec.request.mask, new_mask(spec));
  return Status();
}

Result<std::shared_ptr<engine::TokenMask>> Server::new_mask(const GenerationSpec& spec) {
  grammar::ToolCallForm form;
  if (spec.constraint->kind == OutputConstraint::Kind::kToolCall) {
    KEEL_ASSIGN_OR_RETURN(form, tool_call_form(model_.tool_call_format.value_or(ToolCallFormat::kHermes)));
  }
  return constraint_mask(*spec.constraint, spec.tools, form, grammar_compiler());
}

void Server::generate(const httplib::Request& req, httplib::Response& res, Route route) {
  const ApiFlavor flavor = route == Route::kMessages ? ApiFlavor::kAnthropic : ApiFlavor::kOpenAI;
  auto fail = [&](const ApiError& e) { send_error(res, e, flavor); };
  if (draining_) return fail(ApiError::overloaded(503, "the server is shutting down"));
  // Parsing, templating and tokenizing count against the in-flight limit as generating does.
  auto in_flight = std::make_shared<InFlight>(&in_flight_, &mu_, &active_);
  if (in_flight_ > options_.max_concurrent) return fail(too_many_in_flight(options_.max_concurrent));

  Result<json> body = parse_request_body(req.body);
  if (!body.ok()) return fail(ApiError::from_status(body.status()));
  ResponsesRequest responses;  // the Responses route's request beyond its GenerationSpec
  auto parse = [&]() -> Result<GenerationSpec> {
    switch (route) {
      case Route::kChat: return parse_chat_request(*body);
      case Route::kCompletions: return parse_completion_request(*body, model_.tokenizer->vocab_size());
      case Route::kMessages: return parse_messages_request(*body);
      case Route::kResponses: break;
    }
    KEEL_ASSIGN_OR_RETURN(responses, parse_responses_request(*body, *responses_));
    return std::move(responses.spec);
  };
  Result<GenerationSpec> parsed = parse();
  if (!parsed.ok()) {
    ApiError error = ApiError::from_status(parsed.status());
    if (parsed.status().code() == Code::kNotFound) {
      // OpenAI's answer for an unknown previous_response_id.
      error.message = parsed.status().message().substr(std::string("previous_response_id: ").size());
      error.param = "previous_response_id";
      error.code = "previous_response_not_found";
    }
    return fail(error);
  }
  GenerationSpec& spec = *parsed;
  Result<std::string> model_name = check_model(spec.model);
  if (!model_name.ok()) return fail(ApiError::not_found(model_name.status().message(), "model_not_found"));

  std::string rendered;
  Result<std::vector<int32_t>> prompt = prompt_ids(spec, &rendered);
  if (!prompt.ok()) return fail(ApiError::from_status(prompt.status()));
  if (prompt->empty()) return fail(ApiError::bad_request("prompt: empty after tokenization", "prompt"));

  // max_tokens is a cap, not a demand: agents send 32,000 or 128,000 whatever the model's context. A request gets at
  // most what the context leaves after its prompt and finishes with `length` there; a prompt that leaves nothing
  // asks for 1, which the context check at admission refuses with the numbers.
  const int left = std::max(1, model_.generator->max_model_len() - static_cast<int>(prompt->size()));
  const int max_tokens = std::min(spec.max_tokens.value_or(left), left);
  for (auto [token, bias] : spec.request.sampling.logit_bias) {
    if (token >= model_.tokenizer->vocab_size()) {
      const int vocab = model_.tokenizer->vocab_size();
      return fail(ApiError::bad_request(
          fmt::format("logit_bias: token id {} is outside the vocabulary [0, {})", token, vocab), "logit_bias"));
    }
  }

  if (Status s = apply_constraint(spec); !s.ok()) return fail(ApiError::from_status(s));

  engine::Request request = std::move(spec.request);
  // Without a seed a request draws one: identical prompts must not sample identical completions (sampling is a
  // function of the seed and the position, docs/HTTP.md "Sampling").
  if (!body->contains("seed") || (*body)["seed"].is_null()) {
    std::lock_guard lock(mu_);
    request.sampling.seed = rng_();
  }
  request.prompt = std::move(*prompt);
  request.max_tokens = max_tokens;
  ResponseContext ctx;
  ctx.model = *model_name;
  ctx.created = static_cast<int64_t>(std::time(nullptr));
  ctx.tokenizer = model_.tokenizer;
  ctx.include_usage = spec.include_usage;
  ctx.logprobs = request.top_logprobs >= 0;
  if (spec.echo) ctx.echo = spec.prompt_is_ids ? model_.tokenizer->decode(request.prompt, false) : spec.prompt_text;
  if (request.prompt_logprobs >= 0) ctx.echo_ids = request.prompt;

  ctx.n = spec.n;

  // n > 1: choice i draws with seed + i (each reproducible alone), and every choice after the first waits for
  // the first's prefill, so the prefix cache gives it the prompt's full blocks (engine::Request::prefill_after).
  auto bell = std::make_shared<Bell>();
  std::vector<std::shared_ptr<Completion>> choices;
  for (int i = 0; i < spec.n; i++) {
    engine::Request one = request;
    one.sampling.seed = request.sampling.seed + static_cast<uint64_t>(i);
    if (i > 0) {
      one.prefill_after = choices[0]->id();
      one.prompt_logprobs = -1;  // choice 0's serve every choice
      // A mask is a matcher that follows one sequence: shared, it would roll back and replay a sibling's tokens at
      // every step. The compiled grammar is cached, so this is a new matcher, not a new compile.
      if (spec.constraint) {
        Result<std::shared_ptr<engine::TokenMask>> mask = new_mask(spec);
        if (!mask.ok()) return fail(ApiError::from_status(mask.status()));
        one.mask = std::move(*mask);
      }
    }
    Result<std::shared_ptr<Completion>> started =
        Completion::start(model_.generator, model_.tokenizer, std::move(one), spec.stop, metrics_,
                          output_parser(spec, rendered, route), i, bell);
    if (!started.ok()) {
      const Status& s = started.status();
      // Admission's kInvalidArgument is the context check: every other field was checked above.
      if (s.code() == Code::kInvalidArgument) return fail(ApiError::context_length(s.message()));
      if (s.code() == Code::kResourceExhausted) return fail(ApiError::overloaded(503, s.message()));
      return fail(ApiError::internal(s.message()));
    }
    in_flight->add_id((*started)->id());
    choices.push_back(std::move(*started));
  }

  std::shared_ptr<ResponseWriter> writer;
  switch (route) {
    case Route::kChat:
      ctx.id = new_id("chatcmpl-");
      writer = make_chat_writer(std::move(ctx));
      break;
    case Route::kCompletions:
      ctx.id = new_id("cmpl-");
      writer = make_completion_writer(std::move(ctx));
      break;
    case Route::kMessages:
      ctx.id = new_id("msg_");
      writer = make_messages_writer(std::move(ctx));
      break;
    case Route::kResponses:
      ctx.id = new_id("resp_");
      writer = make_responses_writer(std::move(ctx), std::move(responses), responses_.get());
      break;
  }

  if (!spec.stream) {
    // A client that hangs up stops its generation (within Completion::kAbandonPoll and one engine step).
    std::vector<Piece> all;
    for (auto& c : choices) {
      all.push_back(c->wait([&req] { return req.is_connection_closed(); }));
      if (failed(all.back())) return fail(finish_error(all.back()));
    }
    send_json(res, writer->response(all, usage_of(choices)));
    return;
  }

  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  auto stream = std::make_shared<ChoiceStream>();
  stream->choices = std::move(choices);
  stream->bell = bell;
  stream->ended.assign(stream->choices.size(), false);
  stream->left = static_cast<int>(stream->choices.size());
  auto last_write = std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
  const std::chrono::milliseconds keepalive = options_.sse_keepalive;
  res.set_chunked_content_provider(
      "text/event-stream",
      [stream, writer, last_write, keepalive](size_t, httplib::DataSink& sink) {
        // A failed write means the client went away: returning false ends the stream, and the releaser below
        // cancels the generation.
        auto send = [&](const std::string& bytes) {
          if (bytes.empty()) return true;
          *last_write = std::chrono::steady_clock::now();
          return sink.write(bytes.data(), bytes.size());
        };
        if (!stream->started) {
          stream->started = true;
          Usage prompt;
          prompt.prompt_tokens = stream->choices[0]->prompt_tokens();
          if (!send(writer->stream_start(prompt))) return false;
        }
        const uint64_t seen = stream->bell->count();
        bool any = false;
        for (size_t i = 0; i < stream->choices.size(); i++) {
          if (stream->ended[i]) continue;
          Piece piece = stream->choices[i]->next(std::chrono::milliseconds(0));
          if (!piece.text.empty() || !piece.logprobs.empty() || !piece.events.empty() ||
              !piece.prompt_logprobs.empty()) {
            any = true;
            if (!send(writer->stream_piece(piece))) return false;
          }
          if (!piece.finished) continue;
          any = true;
          if (failed(piece)) {
            const bool ok = send(writer->stream_error(finish_error(piece)));
            if (ok) sink.done();
            return ok;
          }
          stream->ended[i] = true;
          stream->left--;
          if (!send(writer->stream_choice_end(piece))) return false;
          if (stream->left == 0) {
            if (!send(writer->stream_end(piece, usage_of(stream->choices)))) return false;
            sink.done();
            return true;
          }
        }
        if (!any) {
          stream->bell->wait(seen, kStreamPoll);
          // Nothing sent for a while (a long prefill): a comment line, which SSE parsers skip.
          if (keepalive.count() > 0 && std::chrono::steady_clock::now() - *last_write >= keepalive &&
              !send(": keep-alive\n\n")) {
            return false;
          }
        }
        return sink.is_writable();
      },
      [stream, in_flight](bool) {
        for (auto& c : stream->choices) c->cancel();
      });
}

void Server::tokenize(const httplib::Request& req, httplib::Response& res) {
  auto fail = [&](const ApiError& e) { send_error(res, e, ApiFlavor::kOpenAI); };
  InFlight in_flight(&in_flight_, &mu_, &active_);
  if (in_flight_ > options_.max_concurrent) return fail(too_many_in_flight(options_.max_concurrent));
  Result<json> body = parse_request_body(req.body);
  if (!body.ok()) return fail(ApiError::from_status(body.status()));
  std::string model;
  if (Status s = read_string(*body, "model", &model); !s.ok()) return fail(ApiError::from_status(s));
  if (Result<std::string> m = check_model(model); !m.ok()) {
    return fail(ApiError::not_found(m.status().message(), "model_not_found"));
  }

  std::vector<int32_t> ids;
  if (has(*body, "messages")) {
    Result<GenerationSpec> spec = parse_chat_request(*body);
    if (!spec.ok()) return fail(ApiError::from_status(spec.status()));
    Result<std::vector<int32_t>> p = prompt_ids(*spec);
    if (!p.ok()) return fail(ApiError::from_status(p.status()));
    ids = std::move(*p);
  } else if (has(*body, "prompt")) {
    std::string prompt;
    bool add_special = true;
    if (Status s = read_string(*body, "prompt", &prompt); !s.ok()) return fail(ApiError::from_status(s));
    if (Status s = read_bool(*body, "add_special_tokens", &add_special); !s.ok()) {
      return fail(ApiError::from_status(s));
    }
    ids = model_.tokenizer->encode(prompt, add_special);
  } else {
    return fail(ApiError::bad_request("prompt: required (or messages)", "prompt"));
  }
  // Written directly: a JSON array of a 25 MB prompt's ids would take 16 bytes an id (docs/MEMORY.md, http line).
  std::string out = fmt::format(R"({{"count":{},"max_model_len":{},"tokens":[{}]}})", ids.size(),
                                model_.generator->max_model_len(), fmt::join(ids, ","));
  res.status = 200;
  res.set_content(std::move(out), "application/json");
}

// The prompt of a /v1/messages request, rendered and tokenized as generate() does: its length is the input_tokens
// that request reports (plus cache_read_input_tokens when the prefix cache supplied some).
void Server::count_tokens(const httplib::Request& req, httplib::Response& res) {
  auto fail = [&](const ApiError& e) { send_error(res, e, ApiFlavor::kAnthropic); };
  InFlight in_flight(&in_flight_, &mu_, &active_);
  if (in_flight_ > options_.max_concurrent) return fail(too_many_in_flight(options_.max_concurrent));
  Result<json> body = parse_request_body(req.body);
  if (!body.ok()) return fail(ApiError::from_status(body.status()));
  Result<GenerationSpec> spec = parse_count_tokens_request(*body);
  if (!spec.ok()) return fail(ApiError::from_status(spec.status()));
  if (Result<std::string> m = check_model(spec->model); !m.ok()) {
    return fail(ApiError::not_found(m.status().message(), "model_not_found"));
  }
  Result<std::vector<int32_t>> ids = prompt_ids(*spec);
  if (!ids.ok()) return fail(ApiError::from_status(ids.status()));
  send_json(res, json{{"input_tokens", ids->size()}});
}

void Server::detokenize(const httplib::Request& req, httplib::Response& res) {
  auto fail = [&](const ApiError& e) { send_error(res, e, ApiFlavor::kOpenAI); };
  InFlight in_flight(&in_flight_, &mu_, &active_);
  if (in_flight_ > options_.max_concurrent) return fail(too_many_in_flight(options_.max_concurrent));
  Result<json> body = parse_request_body(req.body);
  if (!body.ok()) return fail(ApiError::from_status(body.status()));
  std::string model;
  if (Status s = read_string(*body, "model", &model); !s.ok()) return fail(ApiError::from_status(s));
  if (Result<std::string> m = check_model(model); !m.ok()) {
    return fail(ApiError::not_found(m.status().message(), "model_not_found"));
  }
  if (!has(*body, "tokens")) return fail(ApiError::bad_request("tokens: required", "tokens"));
  std::vector<int32_t> ids;
  if (Status s = read_token_ids((*body)["tokens"], "tokens", model_.tokenizer->vocab_size(), &ids); !s.ok()) {
    return fail(ApiError::from_status(s));
  }
  send_json(res, json{{"prompt", model_.tokenizer->decode(ids, /*skip_special=*/false)}});
}

}  // namespace keel::server
