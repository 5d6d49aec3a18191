// LibTorch works here: arithmetic, softmax and autograd against hand-computed values.
#include <gtest/gtest.h>
#include <torch/torch.h>

namespace {

TEST(TorchSmoke, MatmulMatchesHandComputedProduct) {
  auto a = torch::tensor({1.0f, 2.0f, 3.0f, 4.0f}).reshape({2, 2});
  auto b = torch::tensor({5.0f, 6.0f, 7.0f, 8.0f}).reshape({2, 2});
  auto c = torch::matmul(a, b);
  // [[1*5+2*7, 1*6+2*8], [3*5+4*7, 3*6+4*8]]
  EXPECT_FLOAT_EQ(c[0][0].item<float>(), 19.0f);
  EXPECT_FLOAT_EQ(c[0][1].item<float>(), 22.0f);
  EXPECT_FLOAT_EQ(c[1][0].item<float>(), 43.0f);
  EXPECT_FLOAT_EQ(c[1][1].item<float>(), 50.0f);
}

TEST(TorchSmoke, SoftmaxOfLogThreeGivesQuarterAndThreeQuarters) {
  auto p = torch::softmax(torch::tensor({0.0, std::log(3.0)}, torch::kFloat64), 0);
  EXPECT_NEAR(p[0].item<double>(), 0.25, 1e-15);
  EXPECT_NEAR(p[1].item<double>(), 0.75, 1e-15);
}

TEST(TorchSmoke, AutogradOfCubeIsThreeXSquared) {
  auto x = torch::tensor({2.0, -1.0}, torch::requires_grad().dtype(torch::kFloat64));
  (x * x * x).sum().backward();
  EXPECT_DOUBLE_EQ(x.grad()[0].item<double>(), 12.0);
  EXPECT_DOUBLE_EQ(x.grad()[1].item<double>(), 3.0);
}

TEST(TorchSmoke, IntraOpThreadCountIsSettable) {
  const int before = at::get_num_threads();
  at::set_num_threads(1);
  EXPECT_EQ(at::get_num_threads(), 1);
  at::set_num_threads(before);
  EXPECT_EQ(at::get_num_threads(), before);
}

}  // namespace
