// Small jobs side by side: each experiment phase trains or evaluates several tiny models at once.
#pragma once

#include <functional>
#include <vector>

namespace chorus::train {

// Runs `jobs` one per thread, each thread with one intra-op thread (tiny models: two
// single-threaded jobs beat one job with two threads), or one after the other with the caller's
// threads. The first job's exception (in job order) is rethrown once every job has finished.
void run_jobs(const std::vector<std::function<void()>>& jobs, bool parallel);

}  // namespace chorus::train
