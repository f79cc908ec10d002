// Linked into every fuzz target: ftd's parsers log what they refuse, and a fuzzer refuses
// millions of inputs.
#include "fuzz_support.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ft::fuzz::QuietLogs();
  return 0;
}
