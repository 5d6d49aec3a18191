// safetensors: exact round trips, every malformed file rejected with a clear error, parity with the
// reference package.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <fstream>

#include "common/error.h"
#include "model/io/safetensors.h"
#include "tests/foundation/test_paths.h"
#include "tests/model/fixtures_io/python_reference.h"

namespace chorus::model {
namespace {

using chorus::testing::TemporaryFolder;

torch::Tensor sample_tensor(torch::ScalarType dtype, at::IntArrayRef shape) {
  const int64_t numel = c10::multiply_integers(shape);
  torch::Tensor values = torch::arange(numel, torch::kFloat64).reshape(shape);
  if (dtype == torch::kBool) return (values.remainder(3) == 0);
  if (c10::isFloatingType(dtype)) return (values / 8 - 1).to(dtype);
  if (dtype == torch::kUInt8 || dtype == torch::kUInt16 || dtype == torch::kUInt32 ||
      dtype == torch::kUInt64)
    return values.to(torch::kInt64).remainder(200).to(dtype);
  return (values - numel / 2).to(torch::kInt64).to(dtype);
}

bool bit_equal(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const torch::Tensor ca = a.contiguous(), cb = b.contiguous();
  return ca.nbytes() == cb.nbytes() && std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0;
}

void expect_error_containing(const std::function<void()>& action,
                             const std::vector<std::string>& parts) {
  try {
    action();
    ADD_FAILURE() << "expected a chorus::Error";
  } catch (const Error& e) {
    for (const std::string& part : parts)
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << "message '" << e.what() << "' lacks '" << part << "'";
  }
}

// --- Round trips -------------------------------------------------------------------------------

// Each dtype is a case of one test (not a test per dtype): a test process
// costs a LibTorch start-up, which dominates these millisecond checks.
const torch::ScalarType kEveryDtype[] = {
    torch::kFloat32, torch::kFloat16, torch::kBFloat16, torch::kFloat64,       torch::kInt64,
    torch::kInt32,   torch::kInt16,   torch::kInt8,     torch::kUInt8,         torch::kUInt16,
    torch::kUInt32,  torch::kUInt64,  torch::kBool,     torch::kFloat8_e4m3fn, torch::kFloat8_e5m2};

void expect_round_trip(torch::ScalarType dtype) {
  TemporaryFolder dir;
  WeightMap weights;
  weights.insert("encoder.block.0.layer.0.SelfAttention.q.weight", sample_tensor(dtype, {3, 5, 2}));
  weights.insert("scalar", sample_tensor(dtype, {}));
  weights.insert("empty", sample_tensor(dtype, {0, 4}));
  // A non-contiguous view is written by value.
  weights.insert("transposed", sample_tensor(dtype, {4, 3}).t());
  save_safetensors(dir / "w.safetensors", weights, {{"format", "pt"}, {"note", "round trip"}});

  const SafetensorsContents loaded = read_safetensors(dir / "w.safetensors");
  EXPECT_EQ(loaded.metadata,
            (std::map<std::string, std::string>{{"format", "pt"}, {"note", "round trip"}}));
  ASSERT_EQ(loaded.weights.size(), weights.size());
  for (const auto& [name, tensor] : weights) {
    EXPECT_TRUE(bit_equal(loaded.weights.at(name), tensor)) << name;
    EXPECT_TRUE(loaded.weights.at(name).device().is_cpu());
  }
  // The data buffer starts 8-byte aligned, as the reference writer arranges.
  std::ifstream in(dir / "w.safetensors", std::ios::binary);
  uint64_t header = 0;
  in.read(reinterpret_cast<char*>(&header), 8);
  EXPECT_EQ(header % 8, 0u);
}

TEST(Safetensors, EveryDtypeRoundTripsBitIdenticalWithMetadata) {
  for (torch::ScalarType dtype : kEveryDtype) {
    SCOPED_TRACE(c10::toString(dtype));
    expect_round_trip(dtype);
  }
}

TEST(Safetensors, WeightsKeepTheirFileOrderAndAnEmptyFileRoundTrips) {
  TemporaryFolder dir;
  WeightMap none;
  save_safetensors(dir / "none.safetensors", none);
  EXPECT_TRUE(load_safetensors(dir / "none.safetensors").empty());

  WeightMap weights;
  for (const char* name : {"z", "a", "m"}) weights.insert(name, torch::ones({2}));
  save_safetensors(dir / "w.safetensors", weights);
  EXPECT_EQ(load_safetensors(dir / "w.safetensors").names(),
            (std::vector<std::string>{"z", "a", "m"}));
}

TEST(Safetensors, RefusesWhatTheFormatCannotHold) {
  TemporaryFolder dir;
  WeightMap complex;
  complex.insert("c", torch::zeros({2}, torch::kComplexFloat));
  expect_error_containing([&] { save_safetensors(dir / "c.safetensors", complex); },
                          {"'c'", "cannot store"});
  EXPECT_FALSE(std::filesystem::exists(dir / "c.safetensors"));
}

// --- Malformed files ---------------------------------------------------------------------------

// Builds a file from a header text and a data buffer, with an optional lie in the length field.
std::string make_file(const std::string& header, const std::string& data,
                      int64_t length_delta = 0) {
  std::string bytes(8, '\0');
  const uint64_t length = static_cast<uint64_t>(static_cast<int64_t>(header.size()) + length_delta);
  std::memcpy(bytes.data(), &length, 8);
  return bytes + header + data;
}

struct CorruptCase {
  const char* name;
  std::string bytes;
  std::vector<std::string> message;  // parts the error must contain
};

std::vector<CorruptCase> corrupt_cases() {
  const std::string f32x2 = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string eight(8, '\x01');
  return {
      {"Empty", "", {"too short"}},
      {"ShortLength", std::string("\x05\x00\x00", 3), {"too short"}},
      {"LengthPastEnd", make_file(f32x2, eight, 100), {"header length", "past the end"}},
      {"HugeLength", make_file(f32x2, eight, int64_t{1} << 40), {"exceeds"}},
      {"NotJson", make_file("{not json", ""), {"not valid JSON"}},
      {"NotAnObject", make_file("[1, 2]", ""), {"does not start with '{'"}},
      {"TruncatedJson", make_file(f32x2.substr(0, 20), ""), {"not valid JSON"}},
      {"DeepNesting",
       make_file(std::string(1, '{') + std::string(5000, '[') + std::string(5000, ']') + "}", ""),
       {"nested deeper"}},
      {"EntryNotObject", make_file(R"({"t": 3})", ""), {"'t'", "expected an object"}},
      {"UnknownDtype",
       make_file(R"({"t":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}})", std::string(16, 0)),
       {"'t'", "unknown dtype 'F128'"}},
      {"MissingDtype",
       make_file(R"({"t":{"shape":[1],"data_offsets":[0,4]}})", std::string(4, 0)),
       {"'dtype'"}},
      {"NegativeShape",
       make_file(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight),
       {"shape entry -2"}},
      {"FractionalShape",
       make_file(R"({"t":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", eight),
       {"shape entry 2.5"}},
      {"OverflowingShape",
       make_file(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})",
                 eight),
       {"too large"}},
      {"ShapeDisagreesWithBytes",
       make_file(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight),
       {"'t'", "hold 8 bytes", "need 12"}},
      {"DtypeDisagreesWithBytes",
       make_file(R"({"t":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}})", eight),
       {"need 16"}},
      {"ReversedOffsets",
       make_file(R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", eight),
       {"reversed"}},
      {"OneOffset",
       make_file(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", eight),
       {"data_offsets"}},
      {"OffsetsPastBuffer",
       make_file(R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", eight),
       {"past the end of the data buffer"}},
      {"Overlapping",
       make_file(
           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
           std::string(12, 0)),
       {"overlap"}},
      {"Gap",
       make_file(
           R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
           std::string(12, 0)),
       {"gap"}},
      {"TrailingBytes", make_file(f32x2, eight + "xx"), {"cover 8 bytes of a 10-byte"}},
      {"DuplicateName",
       make_file(
           R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
           eight),
       {"'t' twice"}},
      {"MetadataNotStrings",
       make_file(R"({"__metadata__":{"n":1}})", ""),
       {"'__metadata__'", "expected a string"}},
      {"BadBool",
       make_file(R"({"t":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", "\x01\x07"),
       {"byte 7"}},
      {"EmptyName",
       make_file(R"({"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", std::string(4, 0)),
       {"empty name"}},
  };
}

TEST(Safetensors, EveryDefectIsAnErrorNamingTheFileAndTheProblem) {
  TemporaryFolder dir;
  for (const CorruptCase& defect : corrupt_cases()) {
    SCOPED_TRACE(defect.name);
    const auto file = dir / (std::string(defect.name) + ".safetensors");
    {
      std::ofstream out(file, std::ios::binary);
      out << defect.bytes;
    }
    std::vector<std::string> parts = defect.message;
    parts.push_back(file.string());
    expect_error_containing([&] { load_safetensors(file); }, parts);
  }
}

TEST(Safetensors, TruncatingAValidFileAnywhereIsAnError) {
  WeightMap weights;
  weights.insert("a", sample_tensor(torch::kFloat32, {3, 4}));
  weights.insert("b", sample_tensor(torch::kBFloat16, {5}));
  TemporaryFolder dir;
  save_safetensors(dir / "w.safetensors", weights);
  std::ifstream in(dir / "w.safetensors", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (std::size_t size = 0; size < bytes.size(); ++size)
    EXPECT_THROW(parse_safetensors(std::string_view(bytes.data(), size), "truncated"), Error)
        << size;
  EXPECT_EQ(parse_safetensors(bytes, "whole").weights.size(), 2u);
}

TEST(Safetensors, MissingFileAndFolderAreErrors) {
  TemporaryFolder dir;
  expect_error_containing([&] { load_safetensors(dir / "absent.safetensors"); },
                          {"absent.safetensors", "cannot open"});
  expect_error_containing([&] { load_safetensors(dir.path()); }, {"not a regular file"});
}

// --- WeightMap ---------------------------------------------------------------------------------

TEST(WeightMap, LookupErrorsNameTheClosestTensors) {
  WeightMap weights("model.safetensors");
  weights.insert("encoder.block.0.layer.0.SelfAttention.q.weight", torch::zeros({2, 2}));
  weights.insert("encoder.block.0.layer.0.SelfAttention.k.weight", torch::zeros({2, 2}));
  weights.insert("shared.weight", torch::zeros({4, 2}));
  expect_error_containing([&] { weights.at("encoder.block.0.layer.0.SelfAttention.v.weight"); },
                          {"model.safetensors", "SelfAttention.v.weight",
                           "closest: encoder.block.0.layer.0.SelfAttention"});
  expect_error_containing([&] { weights.at("shared.weight", {5, 2}); }, {"[4, 2]", "[5, 2]"});
  EXPECT_EQ(weights.at("shared.weight", {4, 2}).size(0), 4);
  expect_error_containing([&] { weights.insert("shared.weight", torch::zeros({1})); },
                          {"duplicate"});
}

TEST(WeightMap, CheckExpectedWeightsListsMissingAndUnexpected) {
  WeightMap weights("folder");
  weights.insert("a", torch::zeros({1}));
  weights.insert("b", torch::zeros({1}));
  weights.insert("lm_head.weight", torch::zeros({1}));
  EXPECT_NO_THROW(check_expected_weights(weights, {"a", "b"}, {"lm_head.weight"}));
  expect_error_containing(
      [&] {
        check_expected_weights(weights, {"a", "c", "d"});
      },
      {"folder", "missing 2: c, d", "unexpected 2: b, lm_head.weight"});
}

// --- Parity with the reference package ----------------------------------------------------------

WeightMap expected_reference_tensors() {
  // Mirrors expected_tensors() in fixtures_io/safetensors_reference.py.
  WeightMap out;
  const torch::Tensor base = torch::arange(24, torch::kFloat64).reshape({2, 3, 4}) / 8 - 1;
  out.insert("weights.f32", base.to(torch::kFloat32));
  out.insert("weights.f16", base.to(torch::kFloat16));
  out.insert("weights.bf16", base.to(torch::kBFloat16));
  out.insert("weights.f64", base);
  const torch::Tensor ints = torch::arange(-12, 12, torch::kInt64).reshape({4, 6});
  out.insert("ints.i64", ints);
  out.insert("ints.i32", ints.to(torch::kInt32));
  out.insert("ints.i16", ints.to(torch::kInt16));
  out.insert("ints.i8", ints.to(torch::kInt8));
  out.insert("ints.u8", torch::arange(0, 250, 10, torch::kInt64).to(torch::kUInt8));
  out.insert("mask.bool", torch::arange(10).remainder(3) == 0);
  out.insert("scalar", torch::tensor(2.5f));
  out.insert("empty", torch::zeros({0, 5}));
  return out;
}

TEST(SafetensorsParity, ReferenceFilesReadIdenticallyAndOursReadByTheReference) {
  const std::string python = chorus::testing::reference_python();
  if (python.empty())
    GTEST_SKIP() << "CHORUS_PYTHON is not set to the reference venv (safetensors package)";
  TemporaryFolder dir;
  const auto script = chorus::testing::fixture_scripts() / "safetensors_reference.py";
  const WeightMap expected = expected_reference_tensors();

  std::string output;
  ASSERT_EQ(chorus::testing::run_python(python, script,
                                        {"write", (dir / "ref.safetensors").string()}, output),
            0)
      << output;
  const SafetensorsContents ref = read_safetensors(dir / "ref.safetensors");
  EXPECT_EQ(ref.metadata,
            (std::map<std::string, std::string>{{"format", "pt"}, {"source", "reference"}}));
  ASSERT_EQ(ref.weights.size(), expected.size());
  for (const auto& [name, tensor] : expected)
    EXPECT_TRUE(bit_equal(ref.weights.at(name), tensor)) << name;

  save_safetensors(dir / "ours.safetensors", expected, {{"format", "pt"}, {"source", "chorus"}});
  output.clear();
  EXPECT_EQ(chorus::testing::run_python(python, script,
                                        {"check", (dir / "ours.safetensors").string()}, output),
            0)
      << output;
}

}  // namespace
}  // namespace chorus::model
