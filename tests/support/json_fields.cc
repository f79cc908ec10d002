#include "json_fields.h"

#include <charconv>

namespace ft::testing {
namespace {

template <typename T>
T Integer(const nlohmann::json& obj, const std::string& key, T absent) {
  if (!obj.is_object()) return absent;
  auto it = obj.find(key);
  if (it == obj.end()) return absent;
  if (it->is_number_integer()) return it->get<T>();
  if (!it->is_string()) return absent;
  const auto& text = it->get_ref<const std::string&>();
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return absent;
  return value;
}

}  // namespace

uint64_t U64(const nlohmann::json& obj, const std::string& key, uint64_t absent) {
  return Integer<uint64_t>(obj, key, absent);
}

int64_t I64(const nlohmann::json& obj, const std::string& key, int64_t absent) {
  return Integer<int64_t>(obj, key, absent);
}

const nlohmann::json& Block(const nlohmann::json& obj, const std::string& key) {
  static const nlohmann::json kNull;
  if (!obj.is_object()) return kNull;
  auto it = obj.find(key);
  return it != obj.end() && it->is_object() ? *it : kNull;
}

}  // namespace ft::testing
