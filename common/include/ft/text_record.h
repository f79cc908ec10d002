// Pieces of the line-based records ftd keeps on disk (claim records, the claim store's
// marker, the epoch record, docs/formats/): pure functions, no I/O.
#pragma once

#include <string_view>
#include <vector>

namespace ft {

// Lines without their '\n'; a last line without one is kept.
std::vector<std::string_view> SplitLines(std::string_view text);

// "key value" -> value; false if the line has another key.
bool RecordField(std::string_view line, std::string_view key, std::string_view* value);

}  // namespace ft
