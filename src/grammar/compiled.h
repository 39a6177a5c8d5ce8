// What grammar.h's Compiled holds (xgrammar's types): for grammar.cpp and the tests that drive xgrammar's matcher
// directly as the oracle of the masks.
#pragma once

#include <cstdint>
#include <vector>

#include <xgrammar/xgrammar.h>

namespace keel::grammar {

struct Compiled {
  xgrammar::CompiledGrammar grammar;
  std::vector<int32_t> stop_ids;
  int vocab_size;
};

}  // namespace keel::grammar
