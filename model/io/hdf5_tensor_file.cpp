#include "model/io/hdf5_tensor_file.h"

#include <H5Cpp.h>

#include <set>

#include "common/atomic_file.h"
#include "common/error.h"

namespace chorus::model {
namespace {

constexpr const char* kTensorGroup = "/tensors";
constexpr const char* kFormatKey = "chorus_format";
constexpr const char* kFormatValue = "chorus-tensors-1";
constexpr const char* kDtypeAttr = "dtype";

// How one torch dtype is stored: the HDF5 memory/file type and the name kept
// in the dataset's "dtype" attribute.
struct StoredType {
  H5::PredType h5;
  const char* name;
};

StoredType stored_type(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat32: return {H5::PredType::NATIVE_FLOAT, "float32"};
    case torch::kFloat64: return {H5::PredType::NATIVE_DOUBLE, "float64"};
    case torch::kInt64: return {H5::PredType::NATIVE_INT64, "int64"};
    case torch::kInt32: return {H5::PredType::NATIVE_INT32, "int32"};
    case torch::kInt8: return {H5::PredType::NATIVE_INT8, "int8"};
    case torch::kUInt8: return {H5::PredType::NATIVE_UINT8, "uint8"};
    case torch::kBool: return {H5::PredType::NATIVE_UINT8, "bool"};
    case torch::kBFloat16: return {H5::PredType::NATIVE_UINT16, "bfloat16"};
    case torch::kFloat16: return {H5::PredType::NATIVE_UINT16, "float16"};
    default:
      throw Error(detail::concat("HDF5 tensor files cannot store dtype ", c10::toString(type),
                                 " (supported: float32, float64, float16, bfloat16, int64, int32, "
                                 "int8, uint8, bool)"));
  }
}

torch::ScalarType scalar_type_from_name(const std::string& name, const std::string& where) {
  static const std::map<std::string, torch::ScalarType> kTypes = {
      {"float32", torch::kFloat32}, {"float64", torch::kFloat64}, {"int64", torch::kInt64},
      {"int32", torch::kInt32},     {"int8", torch::kInt8},       {"uint8", torch::kUInt8},
      {"bool", torch::kBool},       {"bfloat16", torch::kBFloat16}, {"float16", torch::kFloat16}};
  auto it = kTypes.find(name);
  CHORUS_CHECK(it != kTypes.end(), where, ": unknown dtype attribute '", name, "'");
  return it->second;
}

void write_string_attribute(H5::H5Object& object, const std::string& key, const std::string& value) {
  H5::StrType type(H5::PredType::C_S1, value.empty() ? 1 : value.size());
  H5::DataSpace scalar(H5S_SCALAR);
  H5::Attribute attribute = object.createAttribute(key, type, scalar);
  attribute.write(type, value.empty() ? std::string(1, '\0') : value);
}

std::string read_string_attribute(const H5::Attribute& attribute) {
  H5::StrType type = attribute.getStrType();
  std::string value;
  attribute.read(type, value);
  // Fixed-length strings written empty hold one NUL byte.
  while (!value.empty() && value.back() == '\0') value.pop_back();
  return value;
}

void write_tensor(H5::Group& group, const std::string& name, const torch::Tensor& tensor) {
  const StoredType stored = stored_type(tensor.scalar_type());
  torch::Tensor host = tensor.detach().to(torch::kCPU).contiguous();
  std::vector<hsize_t> dims(host.sizes().begin(), host.sizes().end());
  // HDF5 has no 0-d simple dataspace with data; a scalar dataspace is its equivalent.
  H5::DataSpace space = dims.empty() ? H5::DataSpace(H5S_SCALAR)
                                     : H5::DataSpace(static_cast<int>(dims.size()), dims.data());
  H5::DataSet dataset = group.createDataSet(name, stored.h5, space);
  if (host.numel() > 0) dataset.write(host.data_ptr(), stored.h5);
  write_string_attribute(dataset, kDtypeAttr, stored.name);
}

torch::Tensor read_tensor(const H5::Group& group, const std::string& name, const std::string& file) {
  const std::string where = file + ": dataset " + kTensorGroup + "/" + name;
  H5::DataSet dataset = group.openDataSet(name);
  CHORUS_CHECK(dataset.attrExists(kDtypeAttr), where, " has no '", kDtypeAttr,
               "' attribute (not written by Chorus?)");
  const torch::ScalarType type =
      scalar_type_from_name(read_string_attribute(dataset.openAttribute(kDtypeAttr)), where);
  const StoredType stored = stored_type(type);
  H5::DataSpace space = dataset.getSpace();
  const int rank = space.getSimpleExtentNdims();
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  if (rank > 0) space.getSimpleExtentDims(dims.data());
  std::vector<int64_t> sizes(dims.begin(), dims.end());
  // Check the stored element size before reading into a buffer sized from it.
  CHORUS_CHECK(dataset.getDataType().getSize() == stored.h5.getSize(), where, " stores elements of ",
               dataset.getDataType().getSize(), " bytes, expected ", stored.h5.getSize(), " for ",
               stored.name);
  torch::Tensor out = torch::empty(sizes, torch::TensorOptions().dtype(type));
  if (out.numel() > 0) dataset.read(out.data_ptr(), stored.h5);
  return out;
}

// HDF5 lists a group's members alphabetically unless the group tracks
// creation order; tracking it keeps a state dict's order (layer by layer).
H5::Group create_ordered_group(H5::H5File& file, const char* name) {
  hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
  H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
  hid_t id = H5Gcreate2(file.getId(), name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
  H5Pclose(gcpl);
  CHORUS_CHECK(id >= 0, "cannot create group ", name);
  H5::Group group(id);
  H5Gclose(id);  // H5::Group(id) took its own reference
  return group;
}

std::vector<std::string> names_in_creation_order(const H5::Group& group) {
  hid_t gcpl = H5Gget_create_plist(group.getId());
  unsigned flags = 0;
  H5Pget_link_creation_order(gcpl, &flags);
  H5Pclose(gcpl);
  const H5_index_t index = (flags & H5P_CRT_ORDER_INDEXED) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
  std::vector<std::string> names;
  for (hsize_t i = 0, n = group.getNumObjs(); i < n; ++i) {
    ssize_t length = H5Lget_name_by_idx(group.getId(), ".", index, H5_ITER_INC, i, nullptr, 0,
                                        H5P_DEFAULT);
    CHORUS_CHECK(length >= 0, "cannot read the name of member ", i, " of ", kTensorGroup);
    std::string name(static_cast<std::size_t>(length) + 1, '\0');
    H5Lget_name_by_idx(group.getId(), ".", index, H5_ITER_INC, i, name.data(), name.size(),
                       H5P_DEFAULT);
    name.resize(static_cast<std::size_t>(length));
    names.push_back(name);
  }
  return names;
}

}  // namespace

const torch::Tensor& TensorFile::at(const std::string& name) const {
  for (const auto& [key, value] : tensors) {
    if (key == name) return value;
  }
  std::string names;
  for (const auto& entry : tensors) names += (names.empty() ? "" : ", ") + entry.first;
  throw Error(detail::concat("no tensor named '", name, "' (the file has: ", names, ")"));
}

void save_tensor_file(const std::filesystem::path& path, const TensorFile& file) {
  std::set<std::string> seen;
  for (const auto& [name, tensor] : file.tensors) {
    CHORUS_CHECK(!name.empty() && name.find('/') == std::string::npos && name != "." ,
                 "cannot save tensor named '", name, "' to ", path.string(),
                 ": names must be non-empty and contain no '/'");
    CHORUS_CHECK(seen.insert(name).second, "cannot save ", path.string(), ": tensor name '", name,
                 "' appears twice");
    CHORUS_CHECK(tensor.defined(), "cannot save ", path.string(), ": tensor '", name,
                 "' is undefined");
    stored_type(tensor.scalar_type());  // reject unsupported dtypes before touching the disk
  }
  CHORUS_CHECK(file.metadata.count(kFormatKey) == 0, "metadata key '", kFormatKey,
               "' is reserved");
  write_file_atomically(path, [&](const std::filesystem::path& tmp) {
    try {
      H5::H5File h5(tmp.string(), H5F_ACC_TRUNC);
      H5::Group root = h5.openGroup("/");
      write_string_attribute(root, kFormatKey, kFormatValue);
      for (const auto& [key, value] : file.metadata) write_string_attribute(root, key, value);
      H5::Group group = create_ordered_group(h5, kTensorGroup);
      for (const auto& [name, tensor] : file.tensors) write_tensor(group, name, tensor);
      h5.close();
    } catch (const H5::Exception& e) {
      throw Error(detail::concat("writing ", path.string(), " failed: ", e.getDetailMsg()));
    }
  });
}

TensorFile load_tensor_file(const std::filesystem::path& path) {
  CHORUS_CHECK(std::filesystem::is_regular_file(path), "tensor file ", path.string(),
               " does not exist");
  TensorFile result;
  try {
    CHORUS_CHECK(H5::H5File::isHdf5(path.string()), path.string(), " is not an HDF5 file");
    H5::H5File h5(path.string(), H5F_ACC_RDONLY);
    H5::Group root = h5.openGroup("/");
    CHORUS_CHECK(root.attrExists(kFormatKey), path.string(), " is an HDF5 file but not a Chorus "
                 "tensor file (no '", kFormatKey, "' attribute)");
    for (int i = 0, n = root.getNumAttrs(); i < n; ++i) {
      H5::Attribute attribute = root.openAttribute(static_cast<unsigned>(i));
      const std::string key = attribute.getName();
      const std::string value = read_string_attribute(attribute);
      if (key == kFormatKey) {
        CHORUS_CHECK(value == kFormatValue, path.string(), ": format '", value,
                     "' is not supported (expected ", kFormatValue, ")");
      } else {
        result.metadata[key] = value;
      }
    }
    CHORUS_CHECK(h5.nameExists(kTensorGroup), path.string(), " has no ", kTensorGroup, " group");
    H5::Group group = h5.openGroup(kTensorGroup);
    for (const std::string& name : names_in_creation_order(group)) {
      result.tensors.emplace_back(name, read_tensor(group, name, path.string()));
    }
  } catch (const H5::Exception& e) {
    throw Error(detail::concat("reading ", path.string(), " failed: ", e.getFuncName(), ": ",
                               e.getDetailMsg()));
  }
  return result;
}

}  // namespace chorus::model
