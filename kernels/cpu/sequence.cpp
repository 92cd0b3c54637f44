// CPU sequence ops over a volume's tokens. An orientation is applied by index
// (token_at), never by copying the sequence into another order.
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/activation_math.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/vector_exp.h"
#include "kernels/op_checks.h"

namespace voxmamba::kernels::cpu {
namespace {

Tensor permute_tokens(const Tensor& x, TokenOrder order, const VolumeShape& volume, bool inverse,
                      const char* op) {
  check_sequence(x, volume, op);
  check_f32_cpu(x, op, "input");
  const std::int64_t N = x.dim(0), L = x.dim(1), F = x.dim(2);
  Tensor y = Tensor::empty(x.shape());
  const float* xd = x.data<float>();
  float* yd = y.data<float>();
  parallel_for(N * L, 1024, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const std::int64_t n = r / L, i = r % L, t = n * L + token_at(i, order, volume);
      const std::int64_t from = inverse ? r : t, to = inverse ? t : r;
      std::memcpy(yd + to * F, xd + from * F, sizeof(float) * F);
    }
  });
  return y;
}

// Channels scanned together: they share each token's B and C rows and dt computation.
constexpr std::int64_t kScanChannelBlock = 8;
constexpr std::int64_t kMaxStates = 64;

}  // namespace

Tensor reorder_tokens(const Tensor& x, TokenOrder order, const VolumeShape& volume) {
  return permute_tokens(x, order, volume, false, "reorder_tokens");
}

Tensor restore_tokens(const Tensor& x, TokenOrder order, const VolumeShape& volume) {
  return permute_tokens(x, order, volume, true, "restore_tokens");
}

Tensor causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, TokenOrder order,
                     const VolumeShape& volume, bool apply_silu) {
  check_causal_conv1d_args(x, weight, bias, volume);
  check_f32_cpu(x, "causal_conv1d", "input");
  const std::int64_t N = x.dim(0), L = x.dim(1), E = x.dim(2), K = weight.dim(0);
  Tensor y = Tensor::empty(x.shape());
  const float* xd = x.data<float>();
  const float* wd = weight.data<float>();
  const float* bd = bias.defined() ? bias.data<float>() : nullptr;
  float* yd = y.data<float>();
  parallel_for(N * L, 256, [&](std::int64_t r0, std::int64_t r1) {
    std::vector<float> acc(static_cast<std::size_t>(E));
    for (std::int64_t r = r0; r < r1; ++r) {
      const std::int64_t n = r / L, i = r % L;
      for (std::int64_t e = 0; e < E; ++e) acc[e] = bd ? bd[e] : 0.0f;
      for (std::int64_t j = 0; j < K; ++j) {
        const std::int64_t source = i - (K - 1) + j;
        if (source < 0) continue;  // the causal zero padding before the first token
        const float* xs = xd + (n * L + token_at(source, order, volume)) * E;
        const float* wj = wd + j * E;
        for (std::int64_t e = 0; e < E; ++e) acc[e] += wj[e] * xs[e];
      }
      float* out = yd + (n * L + token_at(i, order, volume)) * E;
      for (std::int64_t e = 0; e < E; ++e) out[e] = apply_silu ? silu_of(acc[e]) : acc[e];
    }
  });
  return y;
}

namespace {

// One task: the whole sequence for channels [e0, e1) of sample n. States is a template
// parameter for the common d_state = 16 so the state loop is unrolled into one vector
// register per channel; 0 means "runtime S" for every other size.
template <int kStates>
void scan_channel_block(const ScanInputs& in, TokenOrder order, const VolumeShape& volume, std::int64_t n,
                        std::int64_t e0, std::int64_t e1, float* yd) {
  const std::int64_t L = in.u.dim(1), E = in.u.dim(2);
  const std::int64_t S = kStates > 0 ? kStates : in.A.dim(1);
  const float* u = in.u.data<float>();
  const float* delta_bias = in.delta_bias.data<float>();
  const float* A = in.A.data<float>();
  const float* D = in.D.data<float>();
  const float* sum = in.sum.defined() ? in.sum.data<float>() : nullptr;
  const float* gate = in.gate.defined() ? in.gate.data<float>() : nullptr;
  // The projected form (ops.h): B and C in place in x_proj's rows, delta formed here.
  const bool projected = in.is_projected();
  const float* delta = projected ? nullptr : in.delta.data<float>();
  const float* rows = projected ? in.projected.data<float>() : nullptr;
  const float* dt_weight = projected ? in.dt_weight.data<float>() : nullptr;
  const std::int64_t R = projected ? in.dt_weight.dim(0) : 0,
                     row_stride = projected ? in.projected.dim(2) : S;
  const float* B = projected ? rows + row_stride - 2 * S : in.B.data<float>();
  const float* C = projected ? rows + row_stride - S : in.C.data<float>();
  float h[kScanChannelBlock][kMaxStates] = {};
  float deltas[kScanChannelBlock];
  for (std::int64_t i = 0; i < L; ++i) {
    const std::int64_t token = n * L + token_at(i, order, volume);
    const float* b_row = B + token * row_stride;
    const float* c_row = C + token * row_stride;
    if (projected) {
      std::fill(deltas, deltas + (e1 - e0), 0.0f);
      for (std::int64_t r = 0; r < R; ++r) {
        const float dt_in = rows[token * row_stride + r];
        const float* w = dt_weight + r * E;
        for (std::int64_t e = e0; e < e1; ++e) deltas[e - e0] += dt_in * w[e];
      }
    } else {
      std::copy(delta + token * E + e0, delta + token * E + e1, deltas);
    }
    for (std::int64_t e = e0; e < e1; ++e) {
      const float x = u[token * E + e];
      const float dt = softplus_of(deltas[e - e0] + delta_bias[e]);
      const float dt_x = dt * x;
      const float* a_row = A + e * S;
      float* state = h[e - e0];
      float out = 0.0f;
      for (std::int64_t s = 0; s < S; ++s) {
        state[s] = vector_exp(dt * a_row[s]) * state[s] + dt_x * b_row[s];
        out += c_row[s] * state[s];
      }
      float value = out + D[e] * x;
      if (sum) value += sum[token * E + e];
      if (gate) value *= silu_of(gate[token * E + e]);
      yd[token * E + e] = value;
    }
  }
}

}  // namespace

Tensor selective_scan(const ScanInputs& in, TokenOrder order, const VolumeShape& volume) {
  check_scan_args(in, volume);
  check_f32_cpu(in.u, "selective_scan", "u");
  check_f32_cpu(in.delta, "selective_scan", "delta");  // absent ones pass
  check_f32_cpu(in.projected, "selective_scan", "projected");
  check_f32_cpu(in.dt_weight, "selective_scan", "dt_weight");
  check_f32_cpu(in.sum, "selective_scan", "sum");  // absent ones pass
  check_f32_cpu(in.gate, "selective_scan", "gate");
  const std::int64_t N = in.u.dim(0), E = in.u.dim(2), S = in.A.dim(1);
  if (S > kMaxStates) throw Error("selective_scan: at most 64 states are supported on the CPU");
  Tensor y = Tensor::empty(in.u.shape());
  float* yd = y.data<float>();
  const std::int64_t blocks_per_sample = (E + kScanChannelBlock - 1) / kScanChannelBlock;
  // The recurrence is sequential along the sequence and independent across (n, e).
  parallel_for(N * blocks_per_sample, 1, [&](std::int64_t t0, std::int64_t t1) {
    for (std::int64_t task = t0; task < t1; ++task) {
      const std::int64_t n = task / blocks_per_sample;
      const std::int64_t e0 = (task % blocks_per_sample) * kScanChannelBlock;
      const std::int64_t e1 = std::min(E, e0 + kScanChannelBlock);
      if (S == 16) {
        scan_channel_block<16>(in, order, volume, n, e0, e1, yd);
      } else {
        scan_channel_block<0>(in, order, volume, n, e0, e1, yd);
      }
    }
  });
  return y;
}

}  // namespace voxmamba::kernels::cpu
