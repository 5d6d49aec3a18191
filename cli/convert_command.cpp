// `chorus convert SRC DST`: a Hugging Face model folder to a Chorus HDF5 checkpoint, and back.
#include <iostream>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "model/io/model_conversion.h"

namespace chorus::cli {

void add_convert_command(CLI::App& app) {
  auto* command =
      app.add_subcommand("convert",
                         "Convert a model: a Hugging Face folder (config.json + safetensors) to a "
                         "Chorus .h5 checkpoint, "
                         "or a .h5 checkpoint to a folder (config.json + model.safetensors). The "
                         "folder's generation_config.json and tokenizer files travel inside the "
                         "checkpoint and come back out unchanged");
  auto source = std::make_shared<std::string>();
  auto destination = std::make_shared<std::string>();
  command->add_option("SRC", *source, "Hugging Face model folder or Chorus .h5 checkpoint")
      ->required();
  command->add_option("DST", *destination, "Where to write the other form")->required();
  command->callback([source, destination] {
    const model::ConversionSummary summary = model::convert_model(*source, *destination);
    std::string carried;
    for (const auto& name : summary.carried_files) carried += (carried.empty() ? "" : ", ") + name;
    std::cout << summary.direction << ": " << summary.tensors << " tensors, " << summary.bytes
              << " bytes, " << *source << " -> " << *destination
              << " (carried files: " << (carried.empty() ? "none" : carried) << ")\n";
  });
}

}  // namespace chorus::cli
