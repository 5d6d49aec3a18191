// Entry point of the chorus program: parses the verb and hands over to it.
#include <iostream>

#include "chorus/config.h"
#include "cli/commands.h"
#include "common/error.h"
#include "common/heap.h"

int main(int argc, char** argv) {
  chorus::configure_heap_for_tensor_work();
  CLI::App app{"Chorus: learned collaboration between frozen seq2seq language models", "chorus"};
  app.set_version_flag("--version", std::string("chorus ") + CHORUS_VERSION_STRING);
  app.require_subcommand(1);
  // On a usage error print the message and the full help, like argparse.
  app.failure_message(CLI::FailureMessage::help);

  chorus::cli::add_info_command(app);
  chorus::cli::add_convert_command(app);
  chorus::cli::add_score_command(app);
  chorus::cli::add_generate_command(app);
  chorus::cli::add_train_command(app);
  chorus::cli::add_pretrain_command(app);
  chorus::cli::add_eval_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const chorus::Error& e) {
    std::cerr << "chorus: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "chorus: internal error: " << e.what() << "\n";
    return 3;
  }
  return 0;
}
