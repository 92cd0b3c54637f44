// Plain-loop sequence ops. The reference applies an orientation by materialising the
// reordered sequence and walking it in order: the most obvious reading of network.md.
#include <cmath>
#include <vector>

#include "kernels/activation_math.h"
#include "kernels/op_checks.h"
#include "kernels/reference/reference_ops.h"

namespace voxmamba::kernels::reference {

namespace {
// y[i] = x[token_at(i)] (reorder), or y[token_at(i)] = x[i] (restore).
Tensor permute(const Tensor& x, TokenOrder order, const VolumeShape& volume, bool restore, const char* op) {
  check_sequence(x, volume, op);
  const std::int64_t N = x.dim(0), L = x.dim(1), F = x.dim(2);
  Tensor y = Tensor::empty(x.shape());
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t i = 0; i < L; ++i) {
      const std::int64_t sequence_row = n * L + i, token_row = n * L + token_at(i, order, volume);
      const std::int64_t from = restore ? sequence_row : token_row, to = restore ? token_row : sequence_row;
      for (std::int64_t f = 0; f < F; ++f) y.data<float>()[to * F + f] = x.data<float>()[from * F + f];
    }
  return y;
}

// The projected form's delta, B and C (ops.h) as tensors of their own: delta = dt_in @
// dt_weight, B and C the last 2S columns of each row.
ScanInputs expand_projected(const ScanInputs& in) {
  ScanInputs full = in;
  const std::int64_t N = in.u.dim(0), L = in.u.dim(1), E = in.u.dim(2), S = in.A.dim(1);
  const std::int64_t P = in.projected.dim(2), R = in.dt_weight.dim(0);
  const float* rows = in.projected.data<float>();
  const float* dt_weight = in.dt_weight.data<float>();
  full.delta = Tensor::empty({N, L, E});
  full.B = Tensor::empty({N, L, S});
  full.C = Tensor::empty({N, L, S});
  for (std::int64_t row = 0; row < N * L; ++row) {
    const float* projected = rows + row * P;
    for (std::int64_t e = 0; e < E; ++e) {
      double delta = 0;
      for (std::int64_t r = 0; r < R; ++r) delta += static_cast<double>(projected[r]) * dt_weight[r * E + e];
      full.delta.data<float>()[row * E + e] = static_cast<float>(delta);
    }
    for (std::int64_t s = 0; s < S; ++s) {
      full.B.data<float>()[row * S + s] = projected[P - 2 * S + s];
      full.C.data<float>()[row * S + s] = projected[P - S + s];
    }
  }
  full.projected = full.dt_weight = Tensor();
  return full;
}
}  // namespace

Tensor reorder_tokens(const Tensor& x, TokenOrder order, const VolumeShape& volume) {
  return permute(x, order, volume, false, "reorder_tokens");
}

Tensor restore_tokens(const Tensor& x, TokenOrder order, const VolumeShape& volume) {
  return permute(x, order, volume, true, "restore_tokens");
}

Tensor causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, TokenOrder order,
                     const VolumeShape& volume, bool apply_silu) {
  check_causal_conv1d_args(x, weight, bias, volume);
  const Tensor seq = reference::reorder_tokens(x, order, volume);
  const std::int64_t N = x.dim(0), L = x.dim(1), E = x.dim(2), K = weight.dim(0);
  Tensor out = Tensor::empty(x.shape());
  const float* s = seq.data<float>();
  const float* w = weight.data<float>();
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t i = 0; i < L; ++i)
      for (std::int64_t e = 0; e < E; ++e) {
        double sum = bias.defined() ? bias.data<float>()[e] : 0.0;
        for (std::int64_t j = 0; j < K; ++j) {
          const std::int64_t source = i - (K - 1) + j;
          if (source >= 0) sum += static_cast<double>(w[j * E + e]) * s[(n * L + source) * E + e];
        }
        out.data<float>()[(n * L + i) * E + e] = static_cast<float>(apply_silu ? silu_of(sum) : sum);
      }
  return reference::restore_tokens(out, order, volume);
}

Tensor selective_scan(const ScanInputs& given, TokenOrder order, const VolumeShape& volume) {
  check_scan_args(given, volume);
  const ScanInputs in = given.is_projected() ? expand_projected(given) : given;
  const Tensor u = reference::reorder_tokens(in.u, order, volume), delta = reference::reorder_tokens(in.delta, order, volume);
  const Tensor B = reference::reorder_tokens(in.B, order, volume), C = reference::reorder_tokens(in.C, order, volume);
  const std::int64_t N = u.dim(0), L = u.dim(1), E = u.dim(2), S = in.A.dim(1);
  Tensor y = Tensor::empty(u.shape());
  std::vector<double> h(S);
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t e = 0; e < E; ++e) {
      std::fill(h.begin(), h.end(), 0.0);
      for (std::int64_t i = 0; i < L; ++i) {
        const std::int64_t row = n * L + i;
        const double dt = softplus_of(static_cast<double>(delta.data<float>()[row * E + e]) +
                                      in.delta_bias.data<float>()[e]);
        const double x = u.data<float>()[row * E + e];
        double out = in.D.data<float>()[e] * x;
        for (std::int64_t s = 0; s < S; ++s) {
          h[s] = std::exp(dt * in.A.data<float>()[e * S + s]) * h[s] + dt * B.data<float>()[row * S + s] * x;
          out += C.data<float>()[row * S + s] * h[s];
        }
        y.data<float>()[row * E + e] = static_cast<float>(out);
      }
    }
  y = reference::restore_tokens(y, order, volume);
  // The epilogue, in token order as sum and gate are.
  for (std::int64_t i = 0; i < y.numel(); ++i) {
    double value = y.data<float>()[i];
    if (in.sum.defined()) value += in.sum.data<float>()[i];
    if (in.gate.defined()) value *= silu_of(static_cast<double>(in.gate.data<float>()[i]));
    y.data<float>()[i] = static_cast<float>(value);
  }
  return y;
}

}  // namespace voxmamba::kernels::reference
