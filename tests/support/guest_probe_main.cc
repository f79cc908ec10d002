// ftguest-probe: talks to the test guest's services from the host and checks what comes
// back (used by the README's main job and by hand).
//   ftguest-probe stream  --port P [--host H] [--lines N] [--echoes K] [--timeout-s S]
//   ftguest-probe records --port P [--host H] [--count N]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>

#include "guest_client.h"

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  CLI::App app{"ftguest-probe - check the test guest's services"};
  app.require_subcommand(1);
  std::string host = "127.0.0.1";
  int port = 0, lines = 100, echoes = 5, count = 20, timeout_s = 60;
  auto* stream = app.add_subcommand("stream", "read N checked stream lines and K echoes");
  stream->add_option("--host", host);
  stream->add_option("--port", port)->required();
  stream->add_option("--lines", lines);
  stream->add_option("--echoes", echoes);
  stream->add_option("--timeout-s", timeout_s, "for all the lines (the guest sends one per 20 ms)");
  auto* records = app.add_subcommand("records", "append N fsync'd records and verify them");
  records->add_option("--host", host);
  records->add_option("--port", port)->required();
  records->add_option("--count", count);
  CLI11_PARSE(app, argc, argv);

  auto t0 = std::chrono::steady_clock::now();
  auto ms = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 t0)
        .count();
  };
  if (*stream) {
    ft::testing::StreamClient c;
    ft::Status s = c.Connect(host, static_cast<uint16_t>(port), 60s);
    for (int i = 0; s.ok() && i < echoes; ++i) s = c.SendEcho("probe-echo-" + std::to_string(i));
    if (s.ok()) s = c.ReadStream(lines, std::chrono::seconds(timeout_s));
    if (s.ok()) s = c.AwaitEchoes(30s);
    if (!s.ok()) {
      std::fprintf(stderr, "stream: FAILED after %llu lines: %s\n",
                   static_cast<unsigned long long>(c.stream_lines()), s.ToString().c_str());
      return 1;
    }
    std::printf(
        "stream: %llu lines in sequence (last seq %llu), CRCs valid, %llu/%d echoes matched, %lld "
        "ms\n",
        static_cast<unsigned long long>(c.stream_lines()),
        static_cast<unsigned long long>(c.last_seq()),
        static_cast<unsigned long long>(c.echoes_matched()), echoes, static_cast<long long>(ms()));
    return 0;
  }
  ft::testing::RecordClient c;
  ft::Status s = c.Connect(host, static_cast<uint16_t>(port), 60s);
  auto before = s.ok() ? c.VerifyAll(10s) : ft::Result<ft::testing::RecordClient::Verify>(s);
  if (!before.ok()) {
    std::fprintf(stderr, "records: FAILED: %s\n", before.status().ToString().c_str());
    return 1;
  }
  uint64_t first = before->last + 1;
  for (int i = 0; i < count; ++i) {
    s = c.Append(first + static_cast<uint64_t>(i), "demo-record", 10s);
    if (!s.ok()) {
      std::fprintf(stderr, "records: FAILED at record %d: %s\n", i, s.ToString().c_str());
      return 1;
    }
  }
  auto after = c.VerifyAll(10s);
  if (!after.ok() || after->torn != 0) {
    std::fprintf(stderr, "records: FAILED verify: %s\n",
                 after.ok() ? "torn records" : after.status().ToString().c_str());
    return 1;
  }
  std::printf("records: %d appended and acknowledged after fsync, %llu on disk, 0 torn, %lld ms\n",
              count, static_cast<unsigned long long>(after->count), static_cast<long long>(ms()));
  return 0;
}
