#include "model/io/model_conversion.h"

#include <H5Cpp.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "model/io/hf_folder.h"
#include "model/io/model_checkpoint.h"

namespace chorus::model {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFilesGroup = "/files";

std::string read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  CHORUS_CHECK(in.good(), file.string(), ": cannot open");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// The carried files present in `folder`, in carried_file_names() order.
std::vector<std::pair<std::string, std::string>> collect_carried_files(const fs::path& folder) {
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto& name : carried_file_names()) {
    if (fs::is_regular_file(folder / name)) files.emplace_back(name, read_bytes(folder / name));
  }
  return files;
}

void write_carried_files(const fs::path& checkpoint, const std::vector<std::pair<std::string, std::string>>& files) {
  try {
    H5::H5File h5(checkpoint.string(), H5F_ACC_RDWR);
    H5::Group group = h5.createGroup(kFilesGroup);
    for (const auto& [name, bytes] : files) {
      const hsize_t size = bytes.size();
      H5::DataSpace space(1, &size);
      H5::DataSet dataset = group.createDataSet(name, H5::PredType::NATIVE_UINT8, space);
      if (size > 0) dataset.write(bytes.data(), H5::PredType::NATIVE_UINT8);
    }
    h5.close();
  } catch (const H5::Exception& e) {
    throw Error(detail::concat("writing the carried files into ", checkpoint.string(), " failed: ",
                               e.getDetailMsg()));
  }
}

}  // namespace

const std::vector<std::string>& carried_file_names() {
  static const std::vector<std::string> names = {
      "generation_config.json", "spiece.model",          "vocab.json",
      "merges.txt",             "tokenizer.json",        "word_vocab.txt",
      "tokenizer_config.json",  "special_tokens_map.json", "added_tokens.json"};
  return names;
}

std::map<std::string, std::string> read_carried_files(const fs::path& checkpoint) {
  std::map<std::string, std::string> files;
  try {
    CHORUS_CHECK(H5::H5File::isHdf5(checkpoint.string()), checkpoint.string(), " is not an HDF5 file");
    H5::H5File h5(checkpoint.string(), H5F_ACC_RDONLY);
    if (!h5.nameExists(kFilesGroup)) return files;
    H5::Group group = h5.openGroup(kFilesGroup);
    for (hsize_t i = 0, n = group.getNumObjs(); i < n; ++i) {
      const std::string name = group.getObjnameByIdx(i);
      const auto& known = carried_file_names();
      CHORUS_CHECK(std::find(known.begin(), known.end(), name) != known.end(), checkpoint.string(), ": ",
                   kFilesGroup, "/", name, " is not a file conversions carry");
      H5::DataSet dataset = group.openDataSet(name);
      H5::DataSpace space = dataset.getSpace();
      CHORUS_CHECK(space.getSimpleExtentNdims() == 1 && dataset.getDataType().getSize() == 1,
                   checkpoint.string(), ": ", kFilesGroup, "/", name, " is not a byte array");
      hsize_t size = 0;
      space.getSimpleExtentDims(&size);
      std::string bytes(static_cast<std::size_t>(size), '\0');
      if (size > 0) dataset.read(bytes.data(), H5::PredType::NATIVE_UINT8);
      files.emplace(name, std::move(bytes));
    }
  } catch (const H5::Exception& e) {
    throw Error(detail::concat("reading the carried files of ", checkpoint.string(), " failed: ",
                               e.getDetailMsg()));
  }
  return files;
}

ConversionSummary convert_model(const fs::path& source, const fs::path& destination) {
  CHORUS_CHECK(fs::exists(source), source.string(),
               ": not found (expected a Hugging Face model folder or a .h5 checkpoint)");
  std::error_code error;
  CHORUS_CHECK(!fs::exists(destination) || !fs::equivalent(source, destination, error),
               destination.string(), ": the destination is the source");
  const ModelFiles model = load_model_files(source);
  ConversionSummary summary;
  summary.tensors = model.weights.size();
  for (const auto& entry : model.weights) summary.bytes += entry.second.nbytes();
  if (fs::is_directory(source)) {
    CHORUS_CHECK(!fs::is_directory(destination), destination.string(),
                 ": is a folder; converting a Hugging Face folder writes one .h5 checkpoint file");
    const auto files = collect_carried_files(source);
    write_file_atomically(destination, [&](const fs::path& tmp) {
      save_model_checkpoint(tmp, model);
      write_carried_files(tmp, files);
    });
    for (const auto& entry : files) summary.carried_files.push_back(entry.first);
    summary.direction = "huggingface-folder -> chorus-checkpoint";
  } else {
    CHORUS_CHECK(!fs::exists(destination) || fs::is_directory(destination), destination.string(),
                 ": is a file; converting a checkpoint writes a Hugging Face folder");
    save_hf_folder(destination, model.config, model.weights);
    for (const auto& [name, bytes] : read_carried_files(source)) {
      write_file_atomically(destination / name, bytes);
      summary.carried_files.push_back(name);
    }
    summary.direction = "chorus-checkpoint -> huggingface-folder";
  }
  return summary;
}

}  // namespace chorus::model
