// Small jobs side by side, one intra-op thread each.
#include "train/parallel_jobs.h"

#include <ATen/Parallel.h>

#include <exception>
#include <thread>

namespace chorus::train {

void run_jobs(const std::vector<std::function<void()>>& jobs, bool parallel) {
  if (!parallel || jobs.size() < 2) {
    for (const auto& job : jobs) job();
    return;
  }
  const int threads = at::get_num_threads();
  std::vector<std::exception_ptr> errors(jobs.size());
  std::vector<std::thread> workers;
  for (size_t i = 0; i < jobs.size(); ++i) {
    workers.emplace_back([&, i] {
      try {
        at::set_num_threads(1);
        jobs[i]();
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  }
  for (auto& w : workers) w.join();
  at::set_num_threads(threads);
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace chorus::train
