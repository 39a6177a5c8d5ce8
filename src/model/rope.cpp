#include "model/rope.h"

#include <algorithm>
#include <cmath>

namespace keel::model {

namespace {

std::vector<float> default_inv_freq(double base, int dim) {
  std::vector<float> inv(dim / 2);
  const float b = static_cast<float>(base);
  for (int i = 0; i < dim / 2; i++) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
    inv[i] = 1.0f / std::pow(b, exponent);
  }
  return inv;
}

double yarn_mscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

}  // namespace

backend::RopeTable make_rope_table(const RopeConfig& rope, int head_dim, int max_position_embeddings, int seq_len) {
  const int dim = static_cast<int>(head_dim * rope.partial_rotary_factor);
  backend::RopeTable t;
  switch (rope.type) {
    case RopeType::kDefault:
      t.inv_freq = default_inv_freq(rope.theta, dim);
      break;
    case RopeType::kLinear:
      t.inv_freq = default_inv_freq(rope.theta, dim);
      for (auto& f : t.inv_freq) f /= static_cast<float>(rope.factor);
      break;
    case RopeType::kDynamic: {
      // NTK-aware: the base grows once the sequence outgrows the trained context.
      const double len = std::max(seq_len, max_position_embeddings);
      const double base =
          rope.theta * std::pow(rope.factor * len / max_position_embeddings - (rope.factor - 1.0),
                                static_cast<double>(dim) / (dim - 2));
      t.inv_freq = default_inv_freq(base, dim);
      break;
    }
    case RopeType::kLlama3: {
      t.inv_freq = default_inv_freq(rope.theta, dim);
      const double old_len = rope.original_max_position_embeddings;
      const double low_wavelen = old_len / rope.low_freq_factor;
      const double high_wavelen = old_len / rope.high_freq_factor;
      const float factor = static_cast<float>(rope.factor);
      for (auto& f : t.inv_freq) {
        const float wavelen = static_cast<float>(2 * M_PI) / f;
        if (wavelen > low_wavelen) {
          f = f / factor;
        } else if (wavelen >= high_wavelen) {  // medium band: interpolate
          const float smooth = static_cast<float>((old_len / wavelen - rope.low_freq_factor) /
                                                  (rope.high_freq_factor - rope.low_freq_factor));
          f = (1.0f - smooth) * f / factor + smooth * f;
        }
      }
      break;
    }
    case RopeType::kYarn: {
      double attention = rope.attention_factor;
      if (attention == 0.0) {
        attention = (rope.mscale != 0.0 && rope.mscale_all_dim != 0.0)
                        ? yarn_mscale(rope.factor, rope.mscale) / yarn_mscale(rope.factor, rope.mscale_all_dim)
                        : yarn_mscale(rope.factor, 1.0);
      }
      t.attention_factor = static_cast<float>(attention);
      auto correction_dim = [&](double rotations) {
        return (dim * std::log(rope.original_max_position_embeddings / (rotations * 2 * M_PI))) /
               (2 * std::log(rope.theta));
      };
      double low = correction_dim(rope.beta_fast), high = correction_dim(rope.beta_slow);
      if (rope.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, static_cast<double>(dim - 1));
      if (low == high) high += 0.001;  // avoid a zero-width ramp
      const float b = static_cast<float>(rope.theta);
      t.inv_freq.resize(dim / 2);
      for (int i = 0; i < dim / 2; i++) {
        const float pos_freq = std::pow(b, static_cast<float>(2 * i) / static_cast<float>(dim));
        const float extrapolation = 1.0f / pos_freq;
        const float interpolation = 1.0f / (static_cast<float>(rope.factor) * pos_freq);
        const float ramp = std::clamp(static_cast<float>((i - low) / (high - low)), 0.0f, 1.0f);
        const float extrapolation_factor = 1.0f - ramp;
        t.inv_freq[i] = interpolation * (1.0f - extrapolation_factor) + extrapolation * extrapolation_factor;
      }
      break;
    }
  }
  return t;
}

}  // namespace keel::model
