#include "models/graphed_forward.h"

namespace voxmamba::models {

GraphedForward::GraphedForward(const VoxMambaNet& net, bool record) : net_(net), record_(record) {}

Tensor GraphedForward::forward(const Tensor& x) {
  replayed_ = false;
  if (!record_ || net_.device().is_cpu()) return net_.forward(x);
  if (graph_ && x.shape() == input_.shape() && x.dtype() == input_.dtype() && x.device() == input_.device()) {
    input_.copy_from(x);
    graph_->replay();
    replayed_ = true;
    // A copy: the next replay overwrites output_ while the caller may still hold these logits.
    return output_.clone();
  }
  net_.check_input_shape(x.shape());
  graph_.reset();  // its buffers go back to the cache before a new recording takes its own
  output_ = Tensor();
  Tensor logits = net_.forward(x);
  input_ = x.clone();
  graph_ = kernels::record_gpu_graph(net_.device(), [&] { output_ = net_.forward(input_); });
  return logits;
}

}  // namespace voxmamba::models
