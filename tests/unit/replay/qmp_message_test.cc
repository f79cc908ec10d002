#include "ft/replay/qmp_message.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ft::replay {
namespace {

using ::testing::HasSubstr;

TEST(QmpMessageTest, ParsesQemu72Greeting) {
  QmpMessage m = ParseQmpMessage(
      "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "
      "\"package\": \"Debian 1:7.2+dfsg-7\"}, \"capabilities\": [\"oob\"]}}\r\n");
  ASSERT_EQ(m.kind, QmpMessageKind::kGreeting) << m.problem;
  EXPECT_EQ(m.value["version"]["qemu"]["major"], 7);
  EXPECT_EQ(m.value["capabilities"], Json::array({"oob"}));
  EXPECT_TRUE(m.id.is_null());
}

TEST(QmpMessageTest, ParsesReturnWithId) {
  QmpMessage m = ParseQmpMessage(
      "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}, "
      "\"id\": 42}\r\n");
  ASSERT_EQ(m.kind, QmpMessageKind::kReturn) << m.problem;
  EXPECT_EQ(m.numeric_id(), 42u);
  EXPECT_EQ(m.value["status"], "running");
  EXPECT_EQ(m.value["running"], true);
}

TEST(QmpMessageTest, ParsesEmptyReturnWithoutId) {
  QmpMessage m = ParseQmpMessage("{\"return\": {}}");
  ASSERT_EQ(m.kind, QmpMessageKind::kReturn);
  EXPECT_EQ(m.value, Json::object());
  EXPECT_TRUE(m.id.is_null());
  EXPECT_EQ(m.numeric_id(), std::nullopt);
}

TEST(QmpMessageTest, ReturnValueNeedNotBeAnObject) {
  // query-* commands return arrays (query-block, query-chardev, ...).
  QmpMessage m = ParseQmpMessage("{\"return\": [{\"device\": \"vda\"}], \"id\": 3}\n");
  ASSERT_EQ(m.kind, QmpMessageKind::kReturn);
  ASSERT_TRUE(m.value.is_array());
  EXPECT_EQ(m.value[0]["device"], "vda");
}

TEST(QmpMessageTest, ParsesErrorWithClassDescAndId) {
  QmpMessage m = ParseQmpMessage(
      "{\"id\": 7, \"error\": {\"class\": \"GenericError\", \"desc\": \"Device 'vdb' not "
      "found\"}}\r\n");
  ASSERT_EQ(m.kind, QmpMessageKind::kError) << m.problem;
  EXPECT_EQ(m.numeric_id(), 7u);
  EXPECT_EQ(m.error_class, "GenericError");
  EXPECT_EQ(m.error_desc, "Device 'vdb' not found");
}

TEST(QmpMessageTest, NonNumericIdIsKeptButHasNoNumericId) {
  QmpMessage m = ParseQmpMessage("{\"return\": {}, \"id\": \"libvirt-12\"}");
  ASSERT_EQ(m.kind, QmpMessageKind::kReturn);
  EXPECT_EQ(m.id, "libvirt-12");
  EXPECT_EQ(m.numeric_id(), std::nullopt);
  EXPECT_EQ(ParseQmpMessage("{\"return\": {}, \"id\": -1}").numeric_id(), std::nullopt);
}

TEST(QmpMessageTest, ParsesEventWithDataAndTimestamp) {
  QmpMessage m = ParseQmpMessage(
      "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 123456}, "
      "\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": \"guest-shutdown\"}}\r\n");
  ASSERT_EQ(m.kind, QmpMessageKind::kEvent) << m.problem;
  EXPECT_EQ(m.event, "SHUTDOWN");
  EXPECT_EQ(m.value["reason"], "guest-shutdown");
  ASSERT_TRUE(m.timestamp.has_value());
  EXPECT_EQ(m.timestamp->seconds, 1700000000);
  EXPECT_EQ(m.timestamp->microseconds, 123456);
}

TEST(QmpMessageTest, EventWithoutDataGetsEmptyObject) {
  QmpMessage m = ParseQmpMessage(
      "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\n");
  ASSERT_EQ(m.kind, QmpMessageKind::kEvent);
  EXPECT_EQ(m.event, "STOP");
  EXPECT_EQ(m.value, Json::object());
}

TEST(QmpMessageTest, CrLfLfAndNoTerminatorParseAlike) {
  const std::string body = "{\"return\": {\"a\": 1}, \"id\": 5}";
  for (const std::string& line : {body, body + "\n", body + "\r\n"}) {
    QmpMessage m = ParseQmpMessage(line);
    ASSERT_EQ(m.kind, QmpMessageKind::kReturn) << line;
    EXPECT_EQ(m.numeric_id(), 5u);
    EXPECT_EQ(m.value["a"], 1);
  }
}

// fuzz/corpus/qmp_line/number-overflow: nlohmann throws out_of_range there, not parse_error.
TEST(QmpMessageTest, ANumberTooLargeForADoubleIsMalformedNotAnException) {
  QmpMessage m = ParseQmpMessage(R"({"return": 1e9999, "id": 1})");
  EXPECT_EQ(m.kind, QmpMessageKind::kMalformed);
  EXPECT_THAT(m.problem, HasSubstr("not JSON"));
  EXPECT_THAT(m.problem, HasSubstr("number overflow"));
}

TEST(QmpMessageTest, NotJsonIsMalformed) {
  QmpMessage m = ParseQmpMessage("\x01\x02garbage\r\n");
  ASSERT_EQ(m.kind, QmpMessageKind::kMalformed);
  EXPECT_THAT(m.problem, HasSubstr("not JSON"));
}

TEST(QmpMessageTest, TruncatedLineIsMalformed) {
  QmpMessage m = ParseQmpMessage("{\"return\": {\"status\": \"runn");
  ASSERT_EQ(m.kind, QmpMessageKind::kMalformed);
  EXPECT_THAT(m.problem, HasSubstr("not JSON"));
}

TEST(QmpMessageTest, HmpBannerIsMalformed) {
  QmpMessage m = ParseQmpMessage("QEMU 7.2.0 monitor - type 'help' for more information\r\n");
  ASSERT_EQ(m.kind, QmpMessageKind::kMalformed);
  EXPECT_THAT(m.problem, HasSubstr("not JSON"));
}

TEST(QmpMessageTest, NonObjectIsMalformed) {
  for (const char* line : {"[1, 2]", "42", "\"return\"", "null"}) {
    QmpMessage m = ParseQmpMessage(line);
    ASSERT_EQ(m.kind, QmpMessageKind::kMalformed) << line;
    EXPECT_THAT(m.problem, HasSubstr("not an object")) << line;
  }
}

TEST(QmpMessageTest, ObjectWithoutKnownKeyIsMalformed) {
  QmpMessage m = ParseQmpMessage("{\"hello\": \"world\", \"id\": 1}");
  ASSERT_EQ(m.kind, QmpMessageKind::kMalformed);
  EXPECT_EQ(m.problem, "no 'return', 'error', 'event' or 'QMP' key");
}

TEST(QmpMessageTest, ErrorWithoutClassOrDescIsMalformed) {
  EXPECT_THAT(ParseQmpMessage("{\"error\": \"boom\"}").problem, HasSubstr("'error'"));
  EXPECT_THAT(ParseQmpMessage("{\"error\": {\"desc\": \"x\"}}").problem, HasSubstr("'class'"));
  EXPECT_THAT(ParseQmpMessage("{\"error\": {\"class\": \"X\"}}").problem, HasSubstr("'desc'"));
}

TEST(QmpMessageTest, BadEventOrGreetingShapesAreMalformed) {
  EXPECT_EQ(ParseQmpMessage("{\"event\": 3}").kind, QmpMessageKind::kMalformed);
  EXPECT_EQ(ParseQmpMessage("{\"event\": \"STOP\", \"data\": [1]}").kind,
            QmpMessageKind::kMalformed);
  EXPECT_EQ(ParseQmpMessage("{\"QMP\": true}").kind, QmpMessageKind::kMalformed);
}

TEST(QmpMessageTest, EmptyLineIsMalformed) {
  EXPECT_EQ(ParseQmpMessage("").kind, QmpMessageKind::kMalformed);
  EXPECT_EQ(ParseQmpMessage("\r\n").problem, "empty line");
}

TEST(QmpMessageTest, SerializesCommandWithArgumentsAndId) {
  std::string line = SerializeQmpCommand("migrate", Json{{"uri", "unix:/run/ftd/db1.mig"}}, 17);
  ASSERT_GE(line.size(), 2u);
  EXPECT_EQ(line.substr(line.size() - 2), "\r\n");
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line only";
  Json parsed = Json::parse(line);
  EXPECT_EQ(parsed["execute"], "migrate");
  EXPECT_EQ(parsed["arguments"]["uri"], "unix:/run/ftd/db1.mig");
  EXPECT_EQ(parsed["id"], 17);
}

TEST(QmpMessageTest, SerializeOmitsNullOrEmptyArguments) {
  EXPECT_FALSE(Json::parse(SerializeQmpCommand("query-status", Json(), 1)).contains("arguments"));
  EXPECT_FALSE(Json::parse(SerializeQmpCommand("stop", Json::object(), 2)).contains("arguments"));
}

TEST(QmpMessageTest, SerializeEscapesNewlinesAndSurvivesInvalidUtf8) {
  std::string line =
      SerializeQmpCommand("human-monitor-command", Json{{"command-line", "info\nstatus\xff"}}, 3);
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  EXPECT_EQ(Json::parse(line)["id"], 3);
}

TEST(QmpMessageTest, RoundTripThroughParser) {
  // What the client sends, echoed as QEMU would echo the id, parses back to the same id.
  Json sent = Json::parse(SerializeQmpCommand("query-status", Json(), 99));
  Json reply = {{"return", {{"status", "running"}}}, {"id", sent["id"]}};
  QmpMessage m = ParseQmpMessage(reply.dump() + "\r\n");
  EXPECT_EQ(m.numeric_id(), 99u);
}

TEST(QmpMessageTest, AbbreviateEscapesControlBytesAndCuts) {
  EXPECT_EQ(AbbreviateQmpLine("\x01"
                              "ab\r\n"),
            "\\x01ab");
  EXPECT_EQ(AbbreviateQmpLine(std::string(300, 'x'), 10), "xxxxxxxxxx...");
}

}  // namespace
}  // namespace ft::replay
