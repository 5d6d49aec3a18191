// A CUDA kernel compiled by nvcc runs and gives the right answer when a GPU is visible.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <vector>

namespace {

__global__ void axpy_kernel(int n, float a, const float* x, float* y) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}

bool gpu_visible(std::string* reason) {
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    *reason = cudaGetErrorString(status);
    cudaGetLastError();
    return false;
  }
  if (count == 0) *reason = "zero CUDA devices";
  return count > 0;
}

TEST(CudaSmoke, AxpyOnTheGpuMatchesTheCpu) {
  std::string reason;
  if (!gpu_visible(&reason)) GTEST_SKIP() << "no GPU visible (" << reason << "): CUDA test skipped";

  const int n = 100003;  // not a multiple of the block size: tests the bounds check
  std::vector<float> x(n), y(n);
  for (int i = 0; i < n; ++i) {
    x[i] = 0.5f * static_cast<float>(i % 97);
    y[i] = static_cast<float>(i % 13) - 6.0f;
  }
  float *dx = nullptr, *dy = nullptr;
  ASSERT_EQ(cudaMalloc(&dx, n * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dy, n * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(dx, x.data(), n * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(dy, y.data(), n * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  axpy_kernel<<<(n + 255) / 256, 256>>>(n, 3.0f, dx, dy);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  std::vector<float> out(n);
  ASSERT_EQ(cudaMemcpy(out.data(), dy, n * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
  cudaFree(dx);
  cudaFree(dy);
  for (int i = 0; i < n; ++i) {
    ASSERT_FLOAT_EQ(out[i], 3.0f * x[i] + y[i]) << "at " << i;
  }
}

}  // namespace
