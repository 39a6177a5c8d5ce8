// keel bench serve (like `vllm bench serve`): N prompts of fixed input/output lengths sent by C concurrent
// streaming clients to /v1/completions, against an in-process server (the default) or --url. Reports request
// throughput, output tokens/s, and TTFT / TPOT / ITL mean, p50 and p99.
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <sstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "cli/flags.h"

namespace keel::cli {

namespace {

using Clock = std::chrono::steady_clock;

struct BenchServeArgs {
  runtime::ServeOptions serving;
  std::string url;  // "": start a server in this process
  std::string model;
  int num_prompts = 64;
  int concurrency = 8;
  int input_len = 128;
  int output_len = 32;
  uint64_t seed = 0;
  float temperature = 0;  // 0: greedy
  float top_p = 1;
  bool json = false;
};

struct RequestResult {
  bool ok = false;
  std::string error;
  double latency = 0, ttft = 0;
  std::vector<double> itl;  // seconds between consecutive content chunks
  int64_t output_tokens = 0;
};

struct Target {
  std::string host;
  int port = 0;
  std::string model;
};

Result<Target> parse_url(const std::string& url) {
  std::string rest = url;
  if (rest.starts_with("http://")) rest = rest.substr(7);
  else if (rest.find("://") != std::string::npos) return invalid_argument("--url {}: only http:// is supported", url);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos) return Target{rest, 80, ""};
  try {
    return Target{rest.substr(0, colon), std::stoi(rest.substr(colon + 1)), ""};
  } catch (const std::exception&) {
    return invalid_argument("--url {}: expected http://HOST:PORT", url);
  }
}

// One streamed completion; times every SSE chunk that carries text.
RequestResult send_one(const Target& t, const BenchServeArgs& a, const std::vector<int32_t>& prompt, uint64_t seed) {
  RequestResult r;
  httplib::Client cli(t.host, t.port);
  cli.set_read_timeout(600, 0);
  nlohmann::json body = {{"model", t.model},       {"prompt", prompt},           {"max_tokens", a.output_len},
                         {"stream", true},         {"ignore_eos", true},         {"temperature", a.temperature},
                         {"top_p", a.top_p},       {"seed", seed},
                         {"stream_options", {{"include_usage", true}}}};
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  if (!a.serving.api_key.empty()) req.set_header("Authorization", "Bearer " + a.serving.api_key);
  const Clock::time_point start = Clock::now();
  Clock::time_point last{};
  std::string buffer;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    buffer.append(data, n);
    size_t end;
    while ((end = buffer.find("\n\n")) != std::string::npos) {
      std::string event = buffer.substr(0, end);
      buffer.erase(0, end + 2);
      if (!event.starts_with("data: ") || event == "data: [DONE]") continue;
      auto j = nlohmann::json::parse(event.substr(6), nullptr, false);
      if (j.is_discarded()) continue;
      if (j.contains("usage") && j["usage"].is_object()) r.output_tokens = j["usage"].value("completion_tokens", 0);
      if (!j.contains("choices") || j["choices"].empty()) continue;
      const Clock::time_point now = Clock::now();
      if (last == Clock::time_point{}) r.ttft = std::chrono::duration<double>(now - start).count();
      else r.itl.push_back(std::chrono::duration<double>(now - last).count());
      last = now;
    }
    return true;
  };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  if (!cli.send(req, res, err)) {
    r.error = httplib::to_string(err);
    return r;
  }
  if (res.status != 200) {
    r.error = fmt::format("HTTP {}: {}", res.status, buffer.empty() ? res.body : buffer);
    return r;
  }
  r.latency = std::chrono::duration<double>(Clock::now() - start).count();
  r.ok = last != Clock::time_point{};
  if (!r.ok) r.error = "no tokens in the stream";
  return r;
}

// The engine's step counters from /metrics (keel_engine_*); empty when the server does not export them.
std::map<std::string, double> engine_counters(const Target& t, const std::string& api_key) {
  httplib::Client cli(t.host, t.port);
  httplib::Headers h;
  if (!api_key.empty()) h.emplace("Authorization", "Bearer " + api_key);
  std::map<std::string, double> out;
  auto res = cli.Get("/metrics", h);
  if (!res || res->status != 200) return out;
  std::istringstream in(res->body);
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("keel_engine_")) continue;
    const size_t space = line.find(' ');
    if (space == std::string::npos) continue;
    try {
      out[line.substr(0, space)] = std::stod(line.substr(space + 1));
    } catch (const std::exception&) {
    }
  }
  return out;
}

struct Summary {
  double mean = 0, p50 = 0, p99 = 0;
};

Summary summarize(std::vector<double> v) {
  Summary s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / v.size();
  auto pct = [&](double p) {
    const double pos = p * (v.size() - 1);
    const size_t lo = static_cast<size_t>(pos);
    const size_t hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (v[hi] - v[lo]) * (pos - lo);
  };
  s.p50 = pct(0.5);
  s.p99 = pct(0.99);
  return s;
}

int run_bench_serve(BenchServeArgs a) {
  std::unique_ptr<runtime::Serving> serving;
  std::thread server_thread;
  Target target;
  if (a.url.empty()) {
    a.serving.host = "127.0.0.1";
    a.serving.port = 0;
    a.serving.max_num_seqs = std::max(a.serving.max_num_seqs, 1);
    auto started = runtime::Serving::start(a.serving);
    if (!started.ok()) return report(started.status());
    serving = std::move(started).value();
    server_thread = std::thread([&] { serving->run(); });
    target = {"127.0.0.1", serving->port(), serving->model_name()};
    // The clients start once the server accepts: 64 connections arriving before its accept loop runs overflow
    // the listen backlog, and the kernel's retries show up as TTFT (or as failed reads).
    httplib::Client probe(target.host, target.port);
    for (int i = 0; i < 600 && !probe.Get("/health"); i++) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } else {
    auto t = parse_url(a.url);
    if (!t.ok()) return report(t.status());
    target = *t;
    target.model = a.model;
    if (target.model.empty()) {
      httplib::Client cli(target.host, target.port);
      httplib::Headers h;
      if (!a.serving.api_key.empty()) h.emplace("Authorization", "Bearer " + a.serving.api_key);
      auto res = cli.Get("/v1/models", h);
      if (!res || res->status != 200)
        return report(io_error("--url {}: GET /v1/models failed ({})", a.url,
                               res ? fmt::format("HTTP {}", res->status) : httplib::to_string(res.error())));
      auto j = nlohmann::json::parse(res->body, nullptr, false);
      if (j.is_discarded() || !j.contains("data") || j["data"].empty())
        return report(invalid_argument("{}/v1/models lists no model; pass --model", a.url));
      target.model = j["data"][0].value("id", "");
    }
  }

  // Random token ids, as vllm's random dataset: exact input lengths, no tokenizer round trip. Ids below 256 are
  // the demo model's byte tokens; any model's vocabulary holds them.
  std::mt19937_64 rng(a.seed);
  std::uniform_int_distribution<int32_t> id(0, 255);
  std::vector<std::vector<int32_t>> prompts(a.num_prompts);
  for (auto& p : prompts) {
    p.resize(a.input_len);
    for (auto& t : p) t = id(rng);
  }

  const std::map<std::string, double> engine_before = engine_counters(target, a.serving.api_key);
  std::vector<RequestResult> results(a.num_prompts);
  std::atomic<int> next{0};
  const Clock::time_point start = Clock::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < std::min(a.concurrency, a.num_prompts); c++) {
    clients.emplace_back([&] {
      for (int i; (i = next++) < a.num_prompts;)
        results[i] = send_one(target, a, prompts[i], a.seed + i);
    });
  }
  for (auto& t : clients) t.join();
  const double duration = std::chrono::duration<double>(Clock::now() - start).count();
  // Where the server's time went during the run: steps, and within them the model's forward.
  std::map<std::string, double> engine = engine_counters(target, a.serving.api_key);
  for (auto& [name, value] : engine)
    if (auto it = engine_before.find(name); it != engine_before.end()) value -= it->second;
  const double steps = engine["keel_engine_steps_total"];
  const double step_ms = steps > 0 ? 1000 * engine["keel_engine_step_seconds_total"] / steps : 0;
  const double forward_ms = steps > 0 ? 1000 * engine["keel_engine_forward_seconds_total"] / steps : 0;
  const double batch = steps > 0 ? engine["keel_engine_batch_tokens_total"] / steps : 0;
  const double busy = duration > 0 ? engine["keel_engine_step_seconds_total"] / duration : 0;

  if (serving) {
    serving->shutdown();
    server_thread.join();
    if (Status s = serving->finish(); !s.ok()) return report(s);
  }

  std::vector<double> ttft, tpot, itl;
  int completed = 0;
  int64_t output_tokens = 0;
  std::string first_error;
  for (const RequestResult& r : results) {
    if (!r.ok) {
      if (first_error.empty()) first_error = r.error;
      continue;
    }
    completed++;
    output_tokens += r.output_tokens;
    ttft.push_back(r.ttft);
    if (r.output_tokens > 1) tpot.push_back((r.latency - r.ttft) / (r.output_tokens - 1));
    itl.insert(itl.end(), r.itl.begin(), r.itl.end());
  }
  const Summary st = summarize(ttft), sp = summarize(tpot), si = summarize(itl);
  const double ms = 1000.0;
  if (a.json) {
    auto j3 = [&](const Summary& s) { return nlohmann::json{{"mean", s.mean * ms}, {"p50", s.p50 * ms}, {"p99", s.p99 * ms}}; };
    nlohmann::ordered_json j = {{"model", target.model},
                                {"num_prompts", a.num_prompts},
                                {"concurrency", a.concurrency},
                                {"input_len", a.input_len},
                                {"output_len", a.output_len},
                                {"temperature", a.temperature},
                                {"top_p", a.top_p},
                                {"completed", completed},
                                {"failed", a.num_prompts - completed},
                                {"duration_s", duration},
                                {"request_throughput", completed / duration},
                                {"output_tokens", output_tokens},
                                {"output_throughput", output_tokens / duration},
                                {"ttft_ms", j3(st)},
                                {"tpot_ms", j3(sp)},
                                {"itl_ms", j3(si)},
                                {"engine", {{"steps", steps},
                                            {"step_ms", step_ms},
                                            {"forward_ms", forward_ms},
                                            {"batch_tokens", batch},
                                            {"busy_fraction", busy}}}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("============ keel bench serve ============\n");
    std::printf("%-34s %s\n", "Model:", target.model.c_str());
    std::printf("%-34s %d x %d in / %d out, concurrency %d\n", "Prompts:", a.num_prompts, a.input_len, a.output_len,
                a.concurrency);
    std::printf("%-34s %s\n", "Sampling:",
                a.temperature == 0 ? "greedy" : fmt::format("temperature {:g}, top_p {:g}", a.temperature, a.top_p).c_str());
    std::printf("%-34s %d\n", "Successful requests:", completed);
    std::printf("%-34s %d\n", "Failed requests:", a.num_prompts - completed);
    std::printf("%-34s %.2f\n", "Benchmark duration (s):", duration);
    std::printf("%-34s %lld\n", "Total generated tokens:", static_cast<long long>(output_tokens));
    std::printf("%-34s %.2f\n", "Request throughput (req/s):", completed / duration);
    std::printf("%-34s %.2f\n", "Output token throughput (tok/s):", output_tokens / duration);
    auto block = [&](const char* name, const Summary& s) {
      std::printf("---------- %s ----------\n", name);
      std::printf("%-34s %.2f\n", fmt::format("Mean {} (ms):", name).c_str(), s.mean * ms);
      std::printf("%-34s %.2f\n", fmt::format("Median {} (ms):", name).c_str(), s.p50 * ms);
      std::printf("%-34s %.2f\n", fmt::format("P99 {} (ms):", name).c_str(), s.p99 * ms);
    };
    block("TTFT", st);
    block("TPOT", sp);
    block("ITL", si);
    if (steps > 0) {
      std::printf("---------- Engine ----------\n");
      std::printf("%-34s %.0f\n", "Steps:", steps);
      std::printf("%-34s %.1f\n", "Mean tokens per step:", batch);
      std::printf("%-34s %.2f\n", "Mean step (ms):", step_ms);
      std::printf("%-34s %.2f (%.0f%% of the step)\n", "Mean forward (ms):", forward_ms,
                  step_ms > 0 ? 100 * forward_ms / step_ms : 0.0);
      std::printf("%-34s %.0f%%\n", "Engine busy (steps / duration):", 100 * busy);
    }
  }
  if (completed < a.num_prompts) {
    std::fprintf(stderr, "error: %d of %d requests failed; first: %s\n", a.num_prompts - completed, a.num_prompts,
                 first_error.c_str());
    return 1;
  }
  return 0;
}

}  // namespace

void add_bench_serve(CLI::App& app, Context& ctx) {
  CLI::App* bench = app.get_subcommand("bench");
  auto* cmd = bench->add_subcommand("serve", "Serving benchmark: concurrent streaming clients against keel serve");
  static BenchServeArgs a;
  runtime::ServeOptions& o = a.serving;
  cmd->add_option("MODEL_DIR", o.dir, "Model to serve in process (default: the bundled demo model)");
  cmd->add_option("--synthetic", o.synthetic,
                  "Serve a synthetic model of this shape (random bf16 weights, byte tokenizer) instead of MODEL_DIR");
  cmd->add_option("--url", a.url, "Benchmark a running server (http://HOST:PORT) instead of starting one");
  cmd->add_option("--model", a.model, "Model name to request with --url (default: the first in /v1/models)");
  cmd->add_option("--api-key", o.api_key, "Key sent as Authorization: Bearer");
  cmd->add_option("--backend", o.backend, "auto|cpu|cuda (in-process server)")->capture_default_str();
  cmd->add_option("--num-prompts", a.num_prompts, "Requests to send")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--concurrency", a.concurrency, "Clients sending at once")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--input-len", a.input_len, "Prompt tokens per request")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--output-len", a.output_len, "Tokens generated per request (ignore_eos)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a.seed, "Seed of the random prompts")->capture_default_str();
  cmd->add_option("--temperature", a.temperature, "Sampling temperature of every request (0: greedy)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", a.top_p, "top_p of every request")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_flag("--json", a.json, "Print the results as JSON");
  add_memory_flags(cmd, o);
  o.quiet = true;
  cmd->callback([&ctx] { ctx.exit_code = run_bench_serve(a); });
}

}  // namespace keel::cli
