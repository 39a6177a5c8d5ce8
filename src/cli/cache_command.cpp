// keel cache ls|stats|verify|clear --ssd-cache-dir DIR: look into, check and empty an SSD cache directory.
#include <cstdio>
#include <memory>

#include "cache/ssd_inspect.h"
#include "cli/commands.h"

namespace keel::cli {

namespace {

using cache::ssd::DirReport;

std::string fingerprint_list(const std::map<std::string, cache::ssd::FingerprintUsage>& usage) {
  std::string out;
  for (const auto& [fp, u] : usage) out += fmt::format("{}{}:{}", out.empty() ? "" : " ", fp, u.records);
  return out.empty() ? "-" : out;
}

void print_ls(const DirReport& r) {
  std::printf("%-20s %14s %9s %8s  %s\n", "segment", "bytes", "records", "damaged", "fingerprint:records");
  for (const auto& s : r.segments) {
    std::printf("%-20s %14llu %9llu %8zu  %s\n", s.file.name.c_str(), static_cast<unsigned long long>(s.bytes),
                static_cast<unsigned long long>(s.records), s.problems.size(),
                fingerprint_list(s.by_fingerprint).c_str());
  }
  std::printf("%zu segments, %llu records, %llu bytes, %llu damaged, %llu torn tails\n", r.segments.size(),
              static_cast<unsigned long long>(r.records()), static_cast<unsigned long long>(r.bytes()),
              static_cast<unsigned long long>(r.problems()), static_cast<unsigned long long>(r.torn_tails()));
}

void print_stats(const DirReport& r) {
  std::printf("directory     %s\n", r.dir.c_str());
  std::printf("segments      %zu\n", r.segments.size());
  std::printf("bytes         %llu\n", static_cast<unsigned long long>(r.bytes()));
  std::printf("records       %llu\n", static_cast<unsigned long long>(r.records()));
  std::printf("damaged       %llu (headers only; `keel cache verify` checks payloads)\n",
              static_cast<unsigned long long>(r.problems()));
  std::printf("torn tails    %llu (records cut short by a crash; skipped)\n",
              static_cast<unsigned long long>(r.torn_tails()));
  if (r.old_format() > 0)
    std::printf("old format    %llu (records of an older format version; never served, `keel cache clear` removes them)\n",
                static_cast<unsigned long long>(r.old_format()));
  auto newest = r.newest_fingerprint();
  for (const auto& [fp, u] : r.by_fingerprint()) {
    std::printf("fingerprint   %s  %llu records  %llu bytes%s\n", fp.c_str(), static_cast<unsigned long long>(u.records),
                static_cast<unsigned long long>(u.bytes), newest && newest->hex() == fp ? "  (newest)" : "");
  }
}

// Exit code 1 when any record is damaged. A torn tail (the record a crash cut short at the end of the segment
// it was writing) is reported and skipped like damage, but is what a kill leaves behind: exit code 0.
int print_verify(const DirReport& r) {
  for (const auto& s : r.segments) {
    for (const auto& p : s.problems) {
      std::printf("%s offset %llu: %s\n", s.file.path.c_str(), static_cast<unsigned long long>(p.offset),
                  cache::ssd::problem_name(p.problem));
    }
    if (s.torn_tail) {
      std::printf("%s offset %llu: torn tail (%s; a write cut short, skipped)\n", s.file.path.c_str(),
                  static_cast<unsigned long long>(s.torn_tail->offset), cache::ssd::problem_name(s.torn_tail->problem));
    }
  }
  // Records of an older format are sound, only keyed by another hash: reported, not damage.
  if (r.old_format() > 0)
    std::printf("%llu records of an older format version (never served; `keel cache clear` removes them)\n",
                static_cast<unsigned long long>(r.old_format()));
  std::printf("verified %llu records in %zu segments: %llu damaged, %llu torn tails\n",
              static_cast<unsigned long long>(r.records()), r.segments.size(),
              static_cast<unsigned long long>(r.problems()), static_cast<unsigned long long>(r.torn_tails()));
  if (r.problems() > 0) {
    std::fprintf(stderr, "error: %llu damaged records in %s (keel skips them; `keel cache clear` removes them)\n",
                 static_cast<unsigned long long>(r.problems()), r.dir.c_str());
    return 1;
  }
  return 0;
}

}  // namespace

void add_cache(CLI::App& app, Context& ctx) {
  struct Flags {
    std::string dir;
    bool other_models = false;
    std::string keep;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("cache", "Inspect, verify or clear the SSD prefix cache");
  cmd->require_subcommand(1);
  auto add_dir = [&](CLI::App* sub) {
    sub->add_option("--ssd-cache-dir", flags->dir, "The SSD cache directory")->required();
  };

  CLI::App* ls = cmd->add_subcommand("ls", "List segments: records, bytes, damaged records, fingerprints");
  add_dir(ls);
  ls->callback([flags, &ctx] {
    auto r = cache::ssd::inspect_dir(env::Env::posix(), flags->dir, /*verify_payloads=*/false);
    if (!r.ok()) {
      ctx.exit_code = report(r.status());
      return;
    }
    print_ls(*r);
  });

  CLI::App* stats = cmd->add_subcommand("stats", "Totals: segments, records, bytes, per model fingerprint");
  add_dir(stats);
  stats->callback([flags, &ctx] {
    auto r = cache::ssd::inspect_dir(env::Env::posix(), flags->dir, /*verify_payloads=*/false);
    if (!r.ok()) {
      ctx.exit_code = report(r.status());
      return;
    }
    print_stats(*r);
  });

  CLI::App* verify = cmd->add_subcommand(
      "verify", "Check every record's checksums; exit 1 if any is damaged (a torn tail left by a crash is not)");
  add_dir(verify);
  verify->callback([flags, &ctx] {
    auto r = cache::ssd::inspect_dir(env::Env::posix(), flags->dir, /*verify_payloads=*/true);
    if (!r.ok()) {
      ctx.exit_code = report(r.status());
      return;
    }
    ctx.exit_code = print_verify(*r);
  });

  CLI::App* clear = cmd->add_subcommand("clear", "Remove keel's segment files (stop the server first)");
  add_dir(clear);
  clear->add_flag("--other-models", flags->other_models,
                  "Keep segments holding the --keep fingerprint (default: the newest written); remove the rest");
  clear->add_option("--keep", flags->keep, "Fingerprint (32 hex digits) to keep with --other-models");
  clear->callback([flags, &ctx] {
    env::Env* env = env::Env::posix();
    if (!flags->keep.empty() && !flags->other_models) {
      ctx.exit_code = report(invalid_argument("--keep only applies with --other-models"));
      return;
    }
    std::optional<cache::ModelFingerprint> keep;
    if (flags->other_models) {
      if (!flags->keep.empty()) {
        auto fp = cache::Hash128::parse_hex(flags->keep);
        if (!fp.ok()) {
          ctx.exit_code = report(fp.status().with_context("--keep"));
          return;
        }
        keep = *fp;
      } else {
        auto r = cache::ssd::inspect_dir(env, flags->dir, /*verify_payloads=*/false);
        if (!r.ok()) {
          ctx.exit_code = report(r.status());
          return;
        }
        keep = r->newest_fingerprint();
        if (!keep) {
          std::printf("no records: nothing to keep\n");
        } else {
          std::printf("keeping fingerprint %s (the newest written)\n", keep->hex().c_str());
        }
      }
    }
    auto r = cache::ssd::clear_dir(env, flags->dir, keep);
    if (!r.ok()) {
      ctx.exit_code = report(r.status());
      return;
    }
    std::printf("removed %llu segments (%llu bytes), kept %llu\n", static_cast<unsigned long long>(r->segments_removed),
                static_cast<unsigned long long>(r->bytes_removed), static_cast<unsigned long long>(r->segments_kept));
  });
}

}  // namespace keel::cli
