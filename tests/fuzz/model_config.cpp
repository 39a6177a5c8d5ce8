// config.json → ModelConfig. A config the parser accepts must describe a model the forward pass can be built
// for: positive sizes, a layer spec per layer, whole heads sharing whole KV heads.
#include "fuzz.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  keel::Result<keel::model::ModelConfig> c =
      keel::model::parse_config(std::string(keel::fuzz::text(data, size)), "config.json");
  if (!c.ok()) return 0;
  KEEL_FUZZ_CHECK(c->layers.size() == static_cast<size_t>(c->num_layers));
  (void)c->rotary_dim();
  (void)c->q_size();
  (void)c->kv_size();
  (void)keel::model::arch_name(c->arch);
  (void)keel::model::rope_type_name(c->rope.type);
  return 0;
}
