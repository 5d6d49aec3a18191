// How the process heap serves tensor work: glibc's malloc by default hands blocks above its mmap
// threshold to fresh mappings and trims the top of the heap when it is freed, so a loop that
// allocates and frees the same large tensors every step (a training step's activations and
// gradients, a decoding step's logits) pays page faults and the kernel's zeroing of every page,
// every step. Keeping such blocks in the heap for reuse removes that cost.
#pragma once

#include <string>

namespace chorus {

// Sets glibc's mmap threshold to 256 MiB and its trim threshold to 1 GiB (mallopt), so blocks below
// 256 MiB come from the heap and freed memory is kept for the next step instead of returned to the
// kernel. The price: the process holds on to the memory its largest step needed. Does nothing when
// the environment already sets malloc tunables (GLIBC_TUNABLES with a malloc entry,
// MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_), when CHORUS_SYSTEM_MALLOC=1, or when the C
// library is not glibc. Returns what it did, in words (for logs and benchmark headers).
std::string configure_heap_for_tensor_work();

}  // namespace chorus
