// The chorus::attention op: argument checks, device dispatch and autograd over the kernel core.
#include "kernels/torch/attention_op.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <cmath>
#include <sstream>
#include <string>

#include "chorus/config.h"
#include "common/error.h"
#include "kernels/attention.h"

#if CHORUS_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "kernels/cuda/attention_cuda.h"
#endif

namespace chorus {
namespace {

using kernels::AttentionParams;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::string shape_of(const torch::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

std::string describe(const torch::Tensor& t) {
  std::ostringstream out;
  out << t.sizes() << " (strides " << t.strides() << ", " << t.scalar_type() << ", " << t.device()
      << ")";
  return out.str();
}

// Every user-facing check, before any kernel runs.
void check_arguments(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     const AttentionOptions& o) {
  CHORUS_CHECK(q.defined() && k.defined() && v.defined(), "attention: q, k and v must be defined");
  CHORUS_CHECK(q.dim() == 4, "attention: q must have shape [B, H, Nq, D], got ", describe(q));
  CHORUS_CHECK(k.dim() == 4, "attention: k must have shape [B, H, Nk, D], got ", describe(k));
  CHORUS_CHECK(v.dim() == 4, "attention: v must have shape [B, H, Nk, Dv], got ", describe(v));
  const auto dtype = q.scalar_type();
  if (q.is_cuda()) {
    CHORUS_CHECK(dtype == torch::kFloat32 || dtype == torch::kBFloat16 || dtype == torch::kFloat16,
                 "attention: q on CUDA must be float32, bfloat16 or float16, got ", describe(q));
  } else {
    CHORUS_CHECK(dtype == torch::kFloat32 || dtype == torch::kBFloat16,
                 "attention: q must be float32 or bfloat16, got ", describe(q));
  }
  CHORUS_CHECK(k.scalar_type() == dtype && v.scalar_type() == dtype,
               "attention: q, k and v must share a dtype, got q ", q.scalar_type(), ", k ",
               k.scalar_type(), ", v ", v.scalar_type());
  CHORUS_CHECK(k.device() == q.device() && v.device() == q.device(),
               "attention: q, k and v must be on one device, got q on ", q.device(), ", k on ",
               k.device(), ", v on ", v.device());
  const int64_t B = q.size(0), H = q.size(1), Nq = q.size(2), D = q.size(3);
  const int64_t Nk = k.size(2);
  CHORUS_CHECK(k.size(0) == B && k.size(1) == H && k.size(3) == D,
               "attention: k must have shape [B, H, Nk, D] = [", B, ", ", H, ", Nk, ", D,
               "] to match q ", shape_of(q), ", got ", shape_of(k));
  CHORUS_CHECK(v.size(0) == B && v.size(1) == H && v.size(2) == Nk,
               "attention: v must have shape [B, H, Nk, Dv] = [", B, ", ", H, ", ", Nk,
               ", Dv] to match q ", shape_of(q), " and k ", shape_of(k), ", got ", shape_of(v));
  if (o.scale) {
    CHORUS_CHECK(std::isfinite(*o.scale), "attention: scale must be finite, got ", *o.scale);
  }
  auto check_integral = [](const torch::Tensor& t, const char* name) {
    CHORUS_CHECK(!at::isFloatingType(t.scalar_type()) && !at::isComplexType(t.scalar_type()) &&
                     t.scalar_type() != torch::kBool,
                 "attention: ", name, " must hold integers (int64), got ", describe(t));
  };
  if (o.key_lengths.defined()) {
    CHORUS_CHECK(o.key_lengths.dim() == 1 && o.key_lengths.size(0) == B,
                 "attention: key_lengths must have shape [B] = [", B, "], got ",
                 describe(o.key_lengths));
    check_integral(o.key_lengths, "key_lengths");
  }
  const bool any_group =
      o.query_groups.defined() || o.key_groups.defined() || o.group_visibility.defined();
  if (any_group) {
    CHORUS_CHECK(o.query_groups.defined() && o.key_groups.defined() && o.group_visibility.defined(),
                 "attention: a group mask needs query_groups, key_groups and group_visibility "
                 "together");
    const auto& qg = o.query_groups;
    const auto& kg = o.key_groups;
    const auto& vis = o.group_visibility;
    CHORUS_CHECK((qg.dim() == 1 && qg.size(0) == Nq) ||
                     (qg.dim() == 2 && qg.size(0) == B && qg.size(1) == Nq),
                 "attention: query_groups must have shape [B, Nq] = [", B, ", ", Nq,
                 "] or [Nq] = [", Nq, "], got ", describe(qg));
    CHORUS_CHECK((kg.dim() == 1 && kg.size(0) == Nk) ||
                     (kg.dim() == 2 && kg.size(0) == B && kg.size(1) == Nk),
                 "attention: key_groups must have shape [B, Nk] = [", B, ", ", Nk, "] or [Nk] = [",
                 Nk, "], got ", describe(kg));
    check_integral(qg, "query_groups");
    check_integral(kg, "key_groups");
    CHORUS_CHECK(vis.dim() == 2 && vis.size(0) == vis.size(1) && vis.size(0) > 0,
                 "attention: group_visibility must have shape [G, G] with G > 0, got ",
                 describe(vis));
    CHORUS_CHECK(vis.scalar_type() == torch::kBool,
                 "attention: group_visibility must be bool, got ", describe(vis));
    const int64_t G = vis.size(0);
    for (const auto* ids : {&qg, &kg}) {
      if (ids->numel() == 0) continue;
      const int64_t lo = ids->min().item<int64_t>(), hi = ids->max().item<int64_t>();
      CHORUS_CHECK(lo >= 0 && hi < G, "attention: ", ids == &qg ? "query_groups" : "key_groups",
                   " ids must lie in [0, G) = [0, ", G, ") for group_visibility ", shape_of(vis),
                   ", got values in [", lo, ", ", hi, "]");
    }
  }
  if (o.bias.defined()) {
    const auto& b = o.bias;
    CHORUS_CHECK(b.dim() == 4 && (b.size(0) == B || b.size(0) == 1) &&
                     (b.size(1) == H || b.size(1) == 1) && b.size(2) == Nq && b.size(3) == Nk,
                 "attention: bias must have shape [B|1, H|1, Nq, Nk] = [", B, "|1, ", H, "|1, ", Nq,
                 ", ", Nk, "], got ", describe(b));
    CHORUS_CHECK(at::isFloatingType(b.scalar_type()),
                 "attention: bias must be a floating-point tensor, got ", describe(b));
    CHORUS_CHECK(b.device() == q.device(), "attention: bias must be on ", q.device(),
                 " like q, got ", b.device());
  }
  for (const auto* t : {&o.key_lengths, &o.query_groups, &o.key_groups, &o.group_visibility}) {
    if (t->defined()) {
      CHORUS_CHECK(t->device().is_cpu() || t->device() == q.device(),
                   "attention: mask tensors must be on the CPU or on ", q.device(), ", got one on ",
                   t->device());
    }
  }
  if (q.is_cuda()) {
    CHORUS_CHECK(CHORUS_WITH_CUDA, "attention: this build has no CUDA kernels (q is on ",
                 q.device(), "); configure with CHORUS_CUDA=ON or move the inputs to the CPU");
    return;
  }
  CHORUS_CHECK(q.is_cpu(), "attention: unsupported device ", q.device(), " (expected cpu or cuda)");
}

// The masks in the layout the kernels read, kept alive with the autograd node.
struct MaskTensors {
  torch::Tensor key_lengths;       // int64 [B], contiguous
  torch::Tensor query_groups;      // int64 [B|1, Nq], contiguous
  torch::Tensor key_groups;        // int64 [B|1, Nk], contiguous
  torch::Tensor group_visibility;  // uint8 [G, G], contiguous
};

// On q's device: the CUDA kernels read the masks from device memory.
MaskTensors prepare_masks(const AttentionOptions& o, const torch::Device& device) {
  MaskTensors m;
  auto as_int64 = [&](const torch::Tensor& t) {
    return t.defined() ? t.to(device, torch::kInt64).contiguous() : t;
  };
  m.key_lengths = as_int64(o.key_lengths);
  m.query_groups = as_int64(o.query_groups);
  m.key_groups = as_int64(o.key_groups);
  if (o.group_visibility.defined()) {
    m.group_visibility = o.group_visibility.to(device, torch::kUInt8).contiguous();
  }
  return m;
}

kernels::ConstTensorView const_view(const torch::Tensor& t) {
  kernels::ConstTensorView view;
  view.data = t.data_ptr();
  for (int i = 0; i < 4; ++i) view.strides[i] = t.stride(i);
  return view;
}

kernels::TensorView view_of(const torch::Tensor& t) {
  kernels::TensorView view;
  view.data = t.data_ptr();
  for (int i = 0; i < 4; ++i) view.strides[i] = t.stride(i);
  return view;
}

// bias_f32 is the bias as float32 expanded to [B, H, Nq, Nk] (zero strides where broadcast).
AttentionParams make_params(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            double scale, bool causal, const MaskTensors& m,
                            const torch::Tensor& bias_f32) {
  AttentionParams p;
  p.dtype = q.scalar_type() == torch::kBFloat16  ? kernels::ElementType::kBFloat16
            : q.scalar_type() == torch::kFloat16 ? kernels::ElementType::kFloat16
                                                 : kernels::ElementType::kFloat32;
  p.batch = q.size(0);
  p.heads = q.size(1);
  p.nq = q.size(2);
  p.d = q.size(3);
  p.nk = k.size(2);
  p.dv = v.size(3);
  p.q = const_view(q);
  p.k = const_view(k);
  p.v = const_view(v);
  p.scale = static_cast<float>(scale);
  p.mask.causal = causal;
  if (m.key_lengths.defined()) p.mask.key_lengths = m.key_lengths.data_ptr<int64_t>();
  if (m.group_visibility.defined()) {
    p.mask.query_groups = m.query_groups.data_ptr<int64_t>();
    p.mask.query_groups_batch_stride = m.query_groups.dim() == 2 ? p.nq : 0;
    p.mask.key_groups = m.key_groups.data_ptr<int64_t>();
    p.mask.key_groups_batch_stride = m.key_groups.dim() == 2 ? p.nk : 0;
    p.mask.group_visibility = m.group_visibility.data_ptr<uint8_t>();
    p.mask.num_groups = m.group_visibility.size(0);
  }
  if (bias_f32.defined()) {
    p.mask.bias = bias_f32.data_ptr<float>();
    for (int i = 0; i < 4; ++i) p.mask.bias_strides[i] = bias_f32.stride(i);
  }
  // LibTorch's intra-op pool, so torch::set_num_threads governs the kernels.
  p.parallel_for = [](int64_t n, const std::function<void(int64_t, int64_t)>& body) {
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) { body(begin, end); });
  };
  return p;
}

torch::Tensor expanded_bias(const torch::Tensor& bias, const torch::Tensor& q, int64_t nk) {
  if (!bias.defined()) return bias;
  return bias.detach().to(torch::kFloat32).expand({q.size(0), q.size(1), q.size(2), nk});
}

#if CHORUS_WITH_CUDA
// The CUDA kernels on the current stream of q's device. The reference flag selects the naive
// version (the CUDA counterpart of the CPU reference); otherwise the dispatcher's choice, which
// CHORUS_ATTENTION_CUDA_VERSION overrides. Scratch memory comes from LibTorch's allocator.
namespace cuda_kernels = kernels::cuda;

cuda_kernels::AttentionVersion cuda_version(const AttentionParams& p, bool reference,
                                            bool backward) {
  if (reference) return cuda_kernels::AttentionVersion::kNaive;
  return cuda_kernels::requested_version(cuda_kernels::current_device_traits(), p.dtype, p.d, p.dv,
                                         backward);
}

torch::Tensor workspace_on(const torch::Device& device, size_t bytes) {
  if (bytes == 0) return torch::Tensor();
  return torch::empty({static_cast<int64_t>(bytes)},
                      torch::TensorOptions().dtype(torch::kUInt8).device(device));
}

void forward_cuda(const AttentionParams& p, const kernels::AttentionForwardOutputs& outputs,
                  bool reference, const torch::Device& device) {
  const c10::cuda::CUDAGuard guard(device);
  const auto version = cuda_version(p, reference, false);
  const size_t bytes = cuda_kernels::attention_forward_cuda_workspace_bytes(p, version);
  torch::Tensor workspace = workspace_on(device, bytes);
  cuda_kernels::attention_forward_cuda(p, outputs, version, at::cuda::getCurrentCUDAStream(),
                                       bytes ? workspace.data_ptr() : nullptr, bytes);
}

void backward_cuda(const AttentionParams& p, const kernels::AttentionBackwardArgs& args,
                   bool reference, const torch::Device& device) {
  const c10::cuda::CUDAGuard guard(device);
  const auto version = cuda_version(p, reference, true);
  const size_t bytes = cuda_kernels::attention_backward_cuda_workspace_bytes(p, version);
  torch::Tensor workspace = workspace_on(device, bytes);
  cuda_kernels::attention_backward_cuda(p, args, version, at::cuda::getCurrentCUDAStream(),
                                        bytes ? workspace.data_ptr() : nullptr, bytes);
}
#endif

MaskTensors masks_from(AutogradContext* ctx) {
  MaskTensors m;
  m.key_lengths = ctx->saved_data["key_lengths"].toTensor();
  m.query_groups = ctx->saved_data["query_groups"].toTensor();
  m.key_groups = ctx->saved_data["key_groups"].toTensor();
  m.group_visibility = ctx->saved_data["group_visibility"].toTensor();
  return m;
}

class AttentionFunction : public torch::autograd::Function<AttentionFunction> {
 public:
  // Returns {output, logsumexp, probabilities (empty unless requested)}.
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const std::optional<torch::Tensor>& bias_in,
                               double scale, bool causal, bool probabilities, bool reference,
                               const MaskTensors& masks) {
    // An absent bias travels as nullopt: autograd records no input for it.
    const torch::Tensor bias = bias_in.value_or(torch::Tensor());
    const torch::Tensor bias_f32 = expanded_bias(bias, q, k.size(2));
    const AttentionParams p = make_params(q, k, v, scale, causal, masks, bias_f32);
    auto out = torch::empty({p.batch, p.heads, p.nq, p.dv}, q.options());
    auto lse = torch::empty({p.batch, p.heads, p.nq}, q.options().dtype(torch::kFloat32));
    torch::Tensor probs = probabilities
                              ? torch::empty({p.batch, p.heads, p.nq, p.nk}, lse.options())
                              : torch::empty({0}, lse.options());
    kernels::AttentionForwardOutputs outputs;
    outputs.out = view_of(out);
    outputs.logsumexp = lse.data_ptr<float>();
    outputs.probabilities = probabilities ? probs.data_ptr<float>() : nullptr;
    if (q.is_cuda()) {
#if CHORUS_WITH_CUDA
      forward_cuda(p, outputs, reference, q.device());
#endif
    } else if (reference) {
      kernels::attention_forward_reference(p, outputs);
    } else {
      kernels::attention_forward_cpu(p, outputs);
    }
    ctx->save_for_backward({q, k, v, bias, out, lse});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["reference"] = reference;
    ctx->saved_data["key_lengths"] = masks.key_lengths;
    ctx->saved_data["query_groups"] = masks.query_groups;
    ctx->saved_data["key_groups"] = masks.key_groups;
    ctx->saved_data["group_visibility"] = masks.group_visibility;
    ctx->mark_non_differentiable({lse, probs});
    return {out, lse, probs};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &bias = saved[3],
                        &out = saved[4], &lse = saved[5];
    torch::Tensor dout = grads[0].defined() ? grads[0].to(q.scalar_type()) : torch::zeros_like(out);
    const MaskTensors masks = masks_from(ctx);
    const torch::Tensor bias_f32 = expanded_bias(bias, q, k.size(2));
    const AttentionParams p = make_params(q, k, v, ctx->saved_data["scale"].toDouble(),
                                          ctx->saved_data["causal"].toBool(), masks, bias_f32);
    auto dq = torch::empty_like(q, torch::MemoryFormat::Contiguous);
    auto dk = torch::empty_like(k, torch::MemoryFormat::Contiguous);
    auto dv = torch::empty_like(v, torch::MemoryFormat::Contiguous);
    const bool want_dbias = bias.defined() && bias.requires_grad();
    torch::Tensor dbias_full;
    if (want_dbias) dbias_full = torch::zeros({p.batch, p.heads, p.nq, p.nk}, lse.options());
    kernels::AttentionBackwardArgs args;
    args.out = const_view(out);
    args.dout = const_view(dout);
    args.logsumexp = lse.data_ptr<float>();
    args.dq = view_of(dq);
    args.dk = view_of(dk);
    args.dv = view_of(dv);
    args.dbias = want_dbias ? dbias_full.data_ptr<float>() : nullptr;
    if (q.is_cuda()) {
#if CHORUS_WITH_CUDA
      backward_cuda(p, args, ctx->saved_data["reference"].toBool(), q.device());
#endif
    } else if (ctx->saved_data["reference"].toBool()) {
      kernels::attention_backward_reference(p, args);
    } else {
      kernels::attention_backward_cpu(p, args);
    }
    torch::Tensor dbias;
    if (want_dbias) {
      dbias = dbias_full;
      if (bias.size(1) == 1) dbias = dbias.sum(1, /*keepdim=*/true);
      if (bias.size(0) == 1) dbias = dbias.sum(0, /*keepdim=*/true);
      dbias = dbias.to(bias.scalar_type());
    }
    return {dq,
            dk,
            dv,
            dbias,
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor()};
  }
};

// The CPU forward with no autograd node: what AttentionFunction::forward computes.
AttentionOutput forward_without_autograd(AttentionCpuKernel kernel, const torch::Tensor& q,
                                         const torch::Tensor& k, const torch::Tensor& v,
                                         const torch::Tensor& bias, double scale, bool causal,
                                         bool probabilities, const MaskTensors& masks) {
  const torch::Tensor bias_f32 = expanded_bias(bias, q, k.size(2));
  const AttentionParams p = make_params(q, k, v, scale, causal, masks, bias_f32);
  AttentionOutput result;
  result.output = torch::empty({p.batch, p.heads, p.nq, p.dv}, q.options());
  result.logsumexp = torch::empty({p.batch, p.heads, p.nq}, q.options().dtype(torch::kFloat32));
  if (probabilities) result.probabilities = torch::empty({p.batch, p.heads, p.nq, p.nk}, result.logsumexp.options());
  kernels::AttentionForwardOutputs outputs;
  outputs.out = view_of(result.output);
  outputs.logsumexp = result.logsumexp.data_ptr<float>();
  outputs.probabilities = probabilities ? result.probabilities.data_ptr<float>() : nullptr;
  if (kernel == AttentionCpuKernel::kReference) {
    kernels::attention_forward_reference(p, outputs);
  } else {
    kernels::attention_forward_cpu(p, outputs);
  }
  return result;
}

}  // namespace

AttentionOutput attention_forward_with(AttentionCpuKernel kernel, const torch::Tensor& q,
                                       const torch::Tensor& k, const torch::Tensor& v,
                                       const AttentionOptions& options) {
  check_arguments(q, k, v, options);
  const double scale =
      options.scale.value_or(q.size(3) > 0 ? 1.0 / std::sqrt(static_cast<double>(q.size(3))) : 1.0);
  const MaskTensors masks = prepare_masks(options, q.device());
  std::optional<torch::Tensor> bias;
  if (options.bias.defined()) bias = options.bias;
  const bool differentiable =
      torch::GradMode::is_enabled() &&
      (q.requires_grad() || k.requires_grad() || v.requires_grad() ||
       (options.bias.defined() && options.bias.requires_grad()));
  if (!differentiable && q.is_cpu()) {
    // Inference (every decoding step): the kernel alone, without an autograd node and the
    // tensors it would save.
    return forward_without_autograd(kernel, q, k, v, options.bias, scale, options.causal,
                                    options.return_probabilities, masks);
  }
  auto results =
      AttentionFunction::apply(q, k, v, bias, scale, options.causal, options.return_probabilities,
                               kernel == AttentionCpuKernel::kReference, masks);
  AttentionOutput output;
  output.output = results[0];
  output.logsumexp = results[1];
  if (options.return_probabilities) output.probabilities = results[2];
  return output;
}

AttentionOutput attention_forward(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v, const AttentionOptions& options) {
  return attention_forward_with(AttentionCpuKernel::kFast, q, k, v, options);
}

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const AttentionOptions& options) {
  return attention_forward(q, k, v, options).output;
}

void attention_forward_into(kernels::AttentionParams params, const kernels::AttentionForwardOutputs& outputs) {
  CHORUS_CHECK(params.dtype == kernels::ElementType::kFloat32, "attention_forward_into: expected float32 views, got ",
               kernels::element_type_name(params.dtype));
  CHORUS_CHECK(params.batch > 0 && params.heads > 0 && params.nq > 0 && params.nk >= 0 && params.d > 0 &&
                   params.dv > 0,
               "attention_forward_into: shape B=", params.batch, " H=", params.heads, " Nq=", params.nq,
               " Nk=", params.nk, " D=", params.d, " Dv=", params.dv, " (expected positive sizes)");
  CHORUS_CHECK(params.q.data != nullptr && params.k.data != nullptr && params.v.data != nullptr &&
                   outputs.out.data != nullptr,
               "attention_forward_into: a null view");
  // LibTorch's intra-op pool, as the op itself runs the kernel.
  params.parallel_for = [](int64_t n, const std::function<void(int64_t, int64_t)>& body) {
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) { body(begin, end); });
  };
  kernels::attention_forward_cpu(params, outputs);
}

}  // namespace chorus
