#!/usr/bin/env bash
# Builds the demo model's training corpus from Debian packages into .demo-corpus/ (git-ignored via
# .git/info/exclude):
#   fortunes, fortunes-min   fortune-mod's cookie files (/usr/share/games/fortunes/*.u8)
#   bible-kjv-text           King James Version (1611), public domain; read with bible-kjv's `bible` tool
# Output: .demo-corpus/corpus.txt, one record per fortune or per Bible chapter, each introduced by a header line
#   %% fortune
#   %% kjv <Book> <chapter>        (then one "<verse> <text>" line per verse)
# Usage: tools/make_demo_corpus.sh [OUT_DIR]   (needs apt-get download, dpkg-deb; no root, no install)
set -euo pipefail

root_dir=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root_dir/.demo-corpus}
mkdir -p "$out/debs" "$out/root"

cd "$out/debs"
for pkg in fortunes fortunes-min bible-kjv-text bible-kjv; do
  ls "${pkg}"_*.deb >/dev/null 2>&1 || apt-get download "$pkg"
done
for deb in "$out"/debs/*.deb; do dpkg-deb -x "$deb" "$out/root"; done

corpus="$out/corpus.txt"
: >"$corpus"

# Fortunes: records separated by a line holding only "%". Skip ASCII art and the translation puzzles.
fortunes_dir="$out/root/usr/share/games/fortunes"
n_files=0
for f in "$fortunes_dir"/*.u8; do
  name=$(basename "$f" .u8)
  case "$name" in ascii-art | translate-me) continue ;; esac
  awk '
    BEGIN { rec = "" }
    function flush() {
      sub(/^\n+/, "", rec); sub(/\n+$/, "", rec)
      if (length(rec) > 0 && length(rec) < 1500) printf "%%%% fortune\n%s\n", rec
      rec = ""
    }
    /^%$/ { flush(); next }
    { gsub(/\r/, ""); rec = rec $0 "\n" }
    END { flush() }
  ' "$f" >>"$corpus"
  n_files=$((n_files + 1))
done

# King James Version: the whole text, one line per verse, chapters headed "Book N".
"$out/root/usr/bin/bible" -p "$out/root/usr/lib" -l 100000 "gen1:1-rev22:21" 2>/dev/null | awk '
  /^[1-3]? ?[A-Z][A-Za-z ]+ [0-9]+$/ { printf "%%%% kjv %s\n", $0; next }
  /^ +[0-9]+ / { sub(/^ +/, ""); print; next }
' >>"$corpus"

echo "corpus: $corpus ($(wc -c <"$corpus") bytes, $(grep -c '^%% fortune$' "$corpus") fortunes from $n_files files," \
  "$(grep -c '^%% kjv ' "$corpus") chapters)"
