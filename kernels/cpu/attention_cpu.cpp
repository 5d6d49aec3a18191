// The CPU attention dispatcher: checks the parameters, picks the ISA build, owns the buffers and
// spreads blocks over the caller's thread pool.
#include <vector>

#include "common/error.h"
#include "kernels/attention.h"
#include "kernels/cpu/attention_cpu_isa.h"
#include "kernels/cpu/cpu_isa.h"

namespace chorus::kernels {
namespace {

using cpu::IsaKernels;

const IsaKernels& kernels_for(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512:
      return cpu::avx512_kernels();
    case CpuIsa::kAvx2:
      return cpu::avx2_kernels();
    case CpuIsa::kGeneric:
      break;
  }
  return cpu::generic_kernels();
}

// Calls below this many FLOPs (DESIGN.md's 4·B·H·Nq·Nk·D, with Dv for the values) run on the
// calling thread, where a parallel region would cost more than it saves: t5-small's decoding steps
// at batch 1 (under 0.15 MFLOP per layer and step) stay serial. At batch 16 (about 1 MFLOP) the
// keys and values no longer sit in cache after the step's weight products, the call is bound by
// memory bandwidth, and spreading its heads over both cores made greedy decoding 8% faster
// (t5-small shape, 2 threads, idle machine). With another process holding the second core,
// decoding collapsed by the same factor either way: the weight products' parallel regions
// dominate.
constexpr double kSerialFlops = 256.0 * 1024;

double call_flops(const AttentionParams& p) {
  return 2.0 * static_cast<double>(p.batch) * static_cast<double>(p.heads) *
         static_cast<double>(p.nq) * static_cast<double>(p.nk) * static_cast<double>(p.d + p.dv);
}

void run(const AttentionParams& p, int64_t n, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  if (p.parallel_for && n > 1 && call_flops(p) >= kSerialFlops) {
    p.parallel_for(n, body);
  } else {
    body(0, n);
  }
}

// Grows a per-thread buffer and returns it; buffers are kept for the next call, so steady-state
// calls neither allocate nor fault pages in.
float* thread_buffer(std::vector<float>& buffer, int64_t floats) {
  if (static_cast<int64_t>(buffer.size()) < floats) buffer.resize(static_cast<size_t>(floats));
  return buffer.data();
}

void check_params(const AttentionParams& p) {
  CHORUS_CHECK(p.batch >= 0 && p.heads >= 0 && p.nq >= 0 && p.nk >= 0 && p.d >= 0 && p.dv >= 0,
               "attention: sizes must be non-negative, got B=", p.batch, " H=", p.heads,
               " Nq=", p.nq, " Nk=", p.nk, " D=", p.d, " Dv=", p.dv);
  CHORUS_CHECK(p.q.data != nullptr && p.k.data != nullptr && p.v.data != nullptr,
               "attention: q, k and v need data pointers");
  const AttentionMask& m = p.mask;
  const bool any_group =
      m.query_groups != nullptr || m.key_groups != nullptr || m.group_visibility != nullptr;
  CHORUS_CHECK(!any_group || (m.query_groups != nullptr && m.key_groups != nullptr &&
                              m.group_visibility != nullptr && m.num_groups > 0),
               "attention: a group mask needs query_groups, key_groups and a [G, G] visibility "
               "matrix with G > 0");
}

}  // namespace

void attention_forward_cpu(const AttentionParams& p, const AttentionForwardOutputs& out) {
  check_params(p);
  CHORUS_CHECK(out.out.data != nullptr && out.logsumexp != nullptr,
               "attention forward: out and logsumexp need data pointers");
  const int64_t heads = p.batch * p.heads;
  if (heads == 0 || p.nq == 0) return;
  const IsaKernels& kernels = kernels_for(active_cpu_isa());
  const cpu::PackedDims dims = cpu::packed_dims(p);
  // fp32 K is read in place whatever its strides; fp32 V too when its rows hold dv_pad floats
  // contiguously. Anything else is converted into per-head fp32 copies first.
  const bool fp32 = p.dtype == ElementType::kFloat32;
  const bool direct_k = fp32;
  const bool direct_v = fp32 && p.v.strides[3] == 1 && p.dv == dims.dv_pad;
  const int64_t k_floats = direct_k ? 0 : cpu::forward_k_floats(p);
  const int64_t v_floats = direct_v ? 0 : cpu::forward_v_floats(p, dims);
  thread_local std::vector<float> packed_buffer;
  float* packed = thread_buffer(packed_buffer, heads * (k_floats + v_floats));
  if (!direct_k || !direct_v) {
    run(p, heads, [&](int64_t begin, int64_t end) {
      for (int64_t bh = begin; bh < end; ++bh) {
        float* own = packed + bh * (k_floats + v_floats);
        kernels.pack_kv(p, bh, direct_k ? nullptr : own, direct_v ? nullptr : own + k_floats);
      }
    });
  }
  auto source = [&](int64_t bh) {
    const int64_t b = bh / p.heads, h = bh % p.heads;
    cpu::KeyValueSource kv{};
    const float* own = packed + bh * (k_floats + v_floats);
    if (direct_k) {
      kv.k = static_cast<const float*>(p.k.data) + b * p.k.strides[0] + h * p.k.strides[1];
      kv.k_row = p.k.strides[2];
      kv.k_col = p.k.strides[3];
    } else {
      kv.k = own;
      kv.k_row = p.d;
      kv.k_col = 1;
    }
    if (direct_v) {
      kv.v = static_cast<const float*>(p.v.data) + b * p.v.strides[0] + h * p.v.strides[1];
      kv.v_row = p.v.strides[2];
    } else {
      kv.v = own + k_floats;
      kv.v_row = dims.dv_pad;
    }
    return kv;
  };
  if (p.nq <= cpu::kFewQueries) {
    const int64_t scratch_floats = cpu::forward_rows_scratch_floats(dims);
    run(p, heads, [&](int64_t begin, int64_t end) {
      thread_local std::vector<float> scratch_buffer;
      float* scratch = thread_buffer(scratch_buffer, scratch_floats);
      for (int64_t bh = begin; bh < end; ++bh) kernels.forward_rows(p, out, bh, source(bh), scratch);
    });
    return;
  }
  const int64_t query_blocks = (p.nq + cpu::kBlockQ - 1) / cpu::kBlockQ;
  const int64_t scratch_floats = cpu::forward_scratch_floats(p, dims);
  // Consecutive tasks share a head, so a thread's tasks reuse the same keys and values in cache.
  run(p, heads * query_blocks, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> scratch_buffer;
    float* scratch = thread_buffer(scratch_buffer, scratch_floats);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t bh = task / query_blocks;
      kernels.forward_block(p, out, bh, (task % query_blocks) * cpu::kBlockQ, source(bh), scratch);
    }
  });
}

void attention_backward_cpu(const AttentionParams& p, const AttentionBackwardArgs& args) {
  check_params(p);
  CHORUS_CHECK(args.out.data != nullptr && args.dout.data != nullptr && args.logsumexp != nullptr &&
                   args.dq.data != nullptr && args.dk.data != nullptr && args.dv.data != nullptr,
               "attention backward: out, dout, logsumexp, dq, dk and dv need data pointers");
  const int64_t heads = p.batch * p.heads;
  if (heads == 0) return;
  const IsaKernels& kernels = kernels_for(active_cpu_isa());
  const int64_t scratch_floats = cpu::backward_scratch_floats(p, cpu::packed_dims(p));
  run(p, heads, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> scratch_buffer;
    float* scratch = thread_buffer(scratch_buffer, scratch_floats);
    for (int64_t bh = begin; bh < end; ++bh) kernels.backward_head(p, args, bh, scratch);
  });
}

}  // namespace chorus::kernels
