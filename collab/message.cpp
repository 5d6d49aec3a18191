// Messages as JSON objects and transcripts as JSON lines.
#include "collab/message.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "common/atomic_file.h"
#include "common/error.h"

namespace chorus::collab {
namespace {

void check_latent(const LatentContent& latent, const std::string& where) {
  int64_t count = 1;
  for (int64_t d : latent.shape) {
    CHORUS_CHECK(d >= 0, where, "latent shape has a negative dimension ", d);
    count *= d;
  }
  CHORUS_CHECK(static_cast<size_t>(count) == latent.values.size(), where, "latent content of shape [",
               [&] {
                 std::ostringstream s;
                 for (size_t i = 0; i < latent.shape.size(); ++i) s << (i ? ", " : "") << latent.shape[i];
                 return s.str();
               }(),
               "] needs ", count, " values but has ", latent.values.size());
}

const nlohmann::json& field(const nlohmann::json& json, const char* key, const std::string& where) {
  const auto it = json.find(key);
  CHORUS_CHECK(it != json.end(), where, "message lacks the field '", key, "'");
  return *it;
}

}  // namespace

std::string to_string(MessageKind kind) { return kind == MessageKind::text ? "text" : "latent"; }

Message Message::text_message(std::string channel, int64_t round, std::string sender,
                              std::vector<std::string> receivers, std::string text, nlohmann::json metadata) {
  Message m;
  m.channel = std::move(channel);
  m.round = round;
  m.sender = std::move(sender);
  m.receivers = std::move(receivers);
  m.kind = MessageKind::text;
  m.text = std::move(text);
  m.metadata = std::move(metadata);
  return m;
}

Message Message::latent_message(std::string channel, int64_t round, std::string sender,
                                std::vector<std::string> receivers, LatentContent latent, nlohmann::json metadata) {
  check_latent(latent, "latent message from '" + sender + "': ");
  Message m;
  m.channel = std::move(channel);
  m.round = round;
  m.sender = std::move(sender);
  m.receivers = std::move(receivers);
  m.kind = MessageKind::latent;
  m.latent = std::move(latent);
  m.metadata = std::move(metadata);
  return m;
}

nlohmann::json message_to_json(const Message& message) {
  nlohmann::json out;
  out["channel"] = message.channel;
  out["round"] = message.round;
  out["sender"] = message.sender;
  out["receivers"] = message.receivers;
  out["kind"] = to_string(message.kind);
  if (message.kind == MessageKind::text) {
    out["content"] = message.text;
  } else {
    for (float v : message.latent.values) {
      CHORUS_CHECK(std::isfinite(v), "latent message from '", message.sender,
                   "' holds a non-finite value (JSON lines store finite numbers only)");
    }
    out["content"] = {{"shape", message.latent.shape}, {"values", message.latent.values}};
  }
  out["metadata"] = message.metadata;
  return out;
}

Message message_from_json(const nlohmann::json& json, const std::string& where) {
  const std::string at = where.empty() ? "" : where + ": ";
  CHORUS_CHECK(json.is_object(), at, "expected a JSON object per message, got ", json.type_name());
  Message m;
  try {
    m.channel = field(json, "channel", at).get<std::string>();
    m.round = field(json, "round", at).get<int64_t>();
    m.sender = field(json, "sender", at).get<std::string>();
    m.receivers = field(json, "receivers", at).get<std::vector<std::string>>();
    const auto kind = field(json, "kind", at).get<std::string>();
    const auto& content = field(json, "content", at);
    if (kind == "text") {
      m.kind = MessageKind::text;
      m.text = content.get<std::string>();
    } else if (kind == "latent") {
      m.kind = MessageKind::latent;
      CHORUS_CHECK(content.is_object(), at, "latent content must be an object {\"shape\", \"values\"}");
      m.latent.shape = field(content, "shape", at).get<std::vector<int64_t>>();
      m.latent.values = field(content, "values", at).get<std::vector<float>>();
      check_latent(m.latent, at);
    } else {
      throw Error(detail::concat(at, "message kind '", kind, "' is neither 'text' nor 'latent'"));
    }
    if (json.contains("metadata")) m.metadata = json.at("metadata");
    CHORUS_CHECK(m.metadata.is_object(), at, "message metadata must be a JSON object, got ", m.metadata.type_name());
  } catch (const nlohmann::json::exception& e) {
    throw Error(detail::concat(at, "malformed message: ", e.what()));
  }
  return m;
}

void Transcript::append(Message message) { messages_.push_back(std::move(message)); }

std::vector<Message> Transcript::channel(const std::string& name) const {
  std::vector<Message> out;
  for (const auto& m : messages_) {
    if (m.channel == name) out.push_back(m);
  }
  return out;
}

void Transcript::save_jsonl(const std::filesystem::path& path) const {
  std::string text;
  for (const auto& m : messages_) {
    text += message_to_json(m).dump();
    text += '\n';
  }
  write_file_atomically(path, text);
}

Transcript Transcript::load_jsonl(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  CHORUS_CHECK(in.good(), "cannot open transcript ", path.string());
  Transcript transcript;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path.string() + ":" + std::to_string(number);
    nlohmann::json json;
    try {
      json = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(detail::concat(where, ": not valid JSON (expected one message object per line): ", e.what()));
    }
    transcript.append(message_from_json(json, where));
  }
  return transcript;
}

}  // namespace chorus::collab
