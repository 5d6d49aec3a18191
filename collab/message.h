// Message and Transcript: who said what to whom, in which round and channel, as text or latent vectors.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace chorus::collab {

enum class MessageKind { text, latent };
std::string to_string(MessageKind kind);

// Latent content: a row-major float array and its shape (e.g. hidden states [tokens, width]).
struct LatentContent {
  std::vector<int64_t> shape;
  std::vector<float> values;  // product(shape) values
};

// One exchange. `channel` names the mechanism that carried it ("vote", "negotiation", "pipeline",
// "rules"); `receivers` empty means broadcast to every participant of the channel. `metadata` is a
// JSON object the mechanism fills (example index, log-probability, token count, prompt, decision).
struct Message {
  std::string channel;
  int64_t round = 0;
  std::string sender;
  std::vector<std::string> receivers;
  MessageKind kind = MessageKind::text;
  std::string text;      // kind == text
  LatentContent latent;  // kind == latent
  nlohmann::json metadata = nlohmann::json::object();

  static Message text_message(std::string channel, int64_t round, std::string sender,
                              std::vector<std::string> receivers, std::string text,
                              nlohmann::json metadata = nlohmann::json::object());
  static Message latent_message(std::string channel, int64_t round, std::string sender,
                                std::vector<std::string> receivers, LatentContent latent,
                                nlohmann::json metadata = nlohmann::json::object());
};

// One JSON object per message: {"channel","round","sender","receivers","kind","content","metadata"};
// content is the text, or {"shape": [...], "values": [...]} for latent messages.
nlohmann::json message_to_json(const Message& message);
// The inverse; `where` (a file and line) prefixes errors, which name the field and what was expected.
Message message_from_json(const nlohmann::json& json, const std::string& where);

// Every message of a run, in the order they were exchanged.
class Transcript {
 public:
  void append(Message message);
  const std::vector<Message>& messages() const { return messages_; }
  size_t size() const { return messages_.size(); }
  bool empty() const { return messages_.empty(); }
  // The messages of one channel, in order.
  std::vector<Message> channel(const std::string& name) const;

  // One message per line (JSON lines), written atomically.
  void save_jsonl(const std::filesystem::path& path) const;
  // Reads a file save_jsonl wrote; blank lines are skipped; errors name the file and line.
  static Transcript load_jsonl(const std::filesystem::path& path);

 private:
  std::vector<Message> messages_;
};

}  // namespace chorus::collab
