// HDF5 tensor files: exact round trips for every stored dtype, atomic replacement, clear errors.
#include <H5Cpp.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "common/error.h"
#include "model/io/hdf5_tensor_file.h"
#include "tests/foundation/test_paths.h"

namespace chorus::model {
namespace {

using chorus::testing::TemporaryFolder;

class Hdf5RoundTrip : public ::testing::TestWithParam<torch::ScalarType> {};

TEST_P(Hdf5RoundTrip, TensorComesBackBitIdentical) {
  TemporaryFolder dir;
  torch::manual_seed(7);
  const auto dtype = GetParam();
  torch::Tensor tensor;
  if (dtype == torch::kBool) {
    tensor = torch::rand({3, 5, 2}) > 0.5;
  } else if (c10::isFloatingType(dtype)) {
    tensor = torch::randn({3, 5, 2}).to(dtype);
  } else {
    tensor = torch::randint(-100, 100, {3, 5, 2}).to(dtype);
    if (dtype == torch::kUInt8) tensor = tensor.abs();
  }
  TensorFile file;
  file.tensors = {{"encoder.block.0.weight", tensor}, {"scalar", torch::tensor(3.5)},
                  {"empty", torch::empty({0, 4})}};
  file.metadata["config"] = R"({"d_model": 128})";
  save_tensor_file(dir / "t.h5", file);

  const TensorFile loaded = load_tensor_file(dir / "t.h5");
  ASSERT_EQ(loaded.tensors.size(), 3u);
  EXPECT_EQ(loaded.tensors[0].first, "encoder.block.0.weight");  // creation order kept
  const auto& back = loaded.at("encoder.block.0.weight");
  EXPECT_EQ(back.scalar_type(), dtype);
  EXPECT_EQ(back.sizes(), tensor.sizes());
  EXPECT_TRUE(torch::equal(back, tensor));
  EXPECT_EQ(loaded.at("scalar").dim(), 0);
  EXPECT_DOUBLE_EQ(loaded.at("scalar").item<double>(), 3.5);
  EXPECT_EQ(loaded.at("empty").sizes(), torch::IntArrayRef({0, 4}));
  EXPECT_EQ(loaded.metadata.at("config"), R"({"d_model": 128})");
}

INSTANTIATE_TEST_SUITE_P(AllStoredTypes, Hdf5RoundTrip,
                         ::testing::Values(torch::kFloat32, torch::kFloat64, torch::kFloat16,
                                           torch::kBFloat16, torch::kInt64, torch::kInt32,
                                           torch::kInt8, torch::kUInt8, torch::kBool),
                         [](const auto& info) { return std::string(c10::toString(info.param)); });

TEST(Hdf5TensorFile, NonContiguousInputIsStoredInLogicalOrder) {
  TemporaryFolder dir;
  auto base = torch::arange(12, torch::kFloat32).reshape({3, 4});
  auto transposed = base.t();  // strides (1, 4)
  ASSERT_FALSE(transposed.is_contiguous());
  save_tensor_file(dir / "t.h5", TensorFile{{{"w", transposed}}, {}});
  auto back = load_tensor_file(dir / "t.h5").at("w");
  EXPECT_TRUE(torch::equal(back, transposed));
  EXPECT_FLOAT_EQ(back[1][0].item<float>(), 1.0f);
}

TEST(Hdf5TensorFile, FileIsReadableByPlainHdf5) {
  TemporaryFolder dir;
  save_tensor_file(dir / "t.h5", TensorFile{{{"w", torch::tensor({1.5f, -2.0f})}}, {}});
  H5::H5File h5((dir / "t.h5").string(), H5F_ACC_RDONLY);
  H5::DataSet dataset = h5.openDataSet("/tensors/w");
  float values[2] = {0, 0};
  dataset.read(values, H5::PredType::NATIVE_FLOAT);
  EXPECT_FLOAT_EQ(values[0], 1.5f);
  EXPECT_FLOAT_EQ(values[1], -2.0f);
}

TEST(Hdf5TensorFile, FailedSaveLeavesPreviousFileIntact) {
  TemporaryFolder dir;
  const auto path = dir / "t.h5";
  save_tensor_file(path, TensorFile{{{"w", torch::ones({2})}}, {}});
  // An unsupported dtype is rejected; duplicate names too. Neither may touch the file.
  EXPECT_THROW(save_tensor_file(path, TensorFile{{{"c", torch::ones({2}, torch::kComplexFloat)}}, {}}),
               chorus::Error);
  EXPECT_THROW(save_tensor_file(path, TensorFile{{{"a", torch::ones({1})}, {"a", torch::ones({1})}}, {}}),
               chorus::Error);
  EXPECT_TRUE(torch::equal(load_tensor_file(path).at("w"), torch::ones({2})));
  // No temporary files are left behind.
  int entries = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 1);
}

TEST(Hdf5TensorFile, ErrorsNameTheFileAndWhatIsWrong) {
  TemporaryFolder dir;
  try {
    load_tensor_file(dir / "missing.h5");
    FAIL() << "expected an error";
  } catch (const chorus::Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.h5"), std::string::npos) << e.what();
  }
  std::ofstream(dir / "junk.h5") << "not hdf5 at all";
  try {
    load_tensor_file(dir / "junk.h5");
    FAIL() << "expected an error";
  } catch (const chorus::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not an HDF5 file"), std::string::npos) << e.what();
  }
  save_tensor_file(dir / "t.h5", TensorFile{{{"w", torch::ones({1})}}, {}});
  try {
    load_tensor_file(dir / "t.h5").at("v");
    FAIL() << "expected an error";
  } catch (const chorus::Error& e) {
    EXPECT_NE(std::string(e.what()).find("the file has: w"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace chorus::model
