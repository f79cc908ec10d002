// One line from QEMU's monitor (replay/src/qmp_message.cc): ParseQmpMessage never throws and
// classifies every line; a malformed one says why; an event has a name, an error a class.
// AbbreviateQmpLine keeps its bound. The line could come from a QEMU under a guest's
// influence (event data, chardev names), so it is outside bytes.
#include <string>

#include "ft/replay/qmp_message.h"
#include "fuzz_support.h"

using ft::replay::QmpMessageKind;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  ft::replay::QmpMessage m = ft::replay::ParseQmpMessage(line);
  switch (m.kind) {
    case QmpMessageKind::kMalformed:
      FT_FUZZ_CHECK(!m.problem.empty());
      break;
    case QmpMessageKind::kEvent:
      FT_FUZZ_CHECK(m.value.is_object());
      break;
    case QmpMessageKind::kReturn:
    case QmpMessageKind::kError:
    case QmpMessageKind::kGreeting:
      break;
  }
  (void)m.numeric_id();
  // What ftd logs about a line: bounded, whatever the line (a byte shown as \xNN at most).
  FT_FUZZ_CHECK(ft::replay::AbbreviateQmpLine(line, 80).size() <= 4 * 80 + 3);
  // A command built from the line's event name and value serializes (invalid UTF-8 replaced).
  std::string cmd = ft::replay::SerializeQmpCommand(
      m.event, m.value.is_object() ? m.value : ft::replay::Json(), 7);
  FT_FUZZ_CHECK(!cmd.empty() && cmd.back() == '\n');
  return 0;
}
