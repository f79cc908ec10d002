#include "rr_log_file.h"

#include <string_view>

#include <fmt/format.h>

#include "guest_client.h"

namespace ft::testing {

Result<RecordLogFile> ReadRecordLogFile(const std::string& path) {
  std::string bytes = ReadFile(path);
  if (bytes.size() < replay::rr::kFileHeaderSize) {
    return DataLoss(fmt::format("{}: {} bytes, not a record log", path, bytes.size()));
  }
  replay::RrLogParser parser;
  RecordLogFile log;
  FT_RETURN_IF_ERROR(
      parser.Feed(std::string_view(bytes).substr(replay::rr::kFileHeaderSize), &log.events));
  log.icount = parser.icount();
  log.ended = parser.ended();
  return log;
}

}  // namespace ft::testing
