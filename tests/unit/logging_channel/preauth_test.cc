// What the channel allows a peer before it has authenticated, as pure functions: its text made
// printable and bounded, and the checks on a Hello's strings.
#include "preauth.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ft/proto/channel.pb.h"
#include "handshake.h"

namespace ft::channel {
namespace {

using ::testing::HasSubstr;

TEST(PrintablePeerText, PlainTextAndUtf8PassUnchanged) {
  EXPECT_EQ(PrintablePeerText("hostA", 64), "hostA");
  EXPECT_EQ(PrintablePeerText("", 64), "");
  EXPECT_EQ(PrintablePeerText("web-1.prod_2", 64), "web-1.prod_2");
  // Identity refusals abbreviate digests with "…"; a reason must survive unchanged.
  EXPECT_EQ(PrintablePeerText("digest 3fa2c81d09e4… differs", 64), "digest 3fa2c81d09e4… differs");
  EXPECT_EQ(PrintablePeerText("Zürich 東京", 64), "Zürich 東京");
  EXPECT_TRUE(IsPrintablePeerText("hostA", 64));
  EXPECT_TRUE(IsPrintablePeerText("Zürich", 64));
}

TEST(PrintablePeerText, ControlCharactersAreEscaped) {
  EXPECT_EQ(PrintablePeerText(std::string("a\nb\rc\td\0e", 9), 64), "a\\x0ab\\x0dc\\x09d\\x00e");
  EXPECT_EQ(PrintablePeerText("\x1b[31mred\x7f", 64), "\\x1b[31mred\\x7f");
  // C1 controls (U+0085 NEL, U+009B CSI) in their UTF-8 form.
  EXPECT_EQ(PrintablePeerText("a\xc2\x85z\xc2\x9b", 64), "a\\xc2\\x85z\\xc2\\x9b");
  // Line separator and a right-to-left override: they make a line read as something else.
  EXPECT_EQ(PrintablePeerText("x\xe2\x80\xa8y\xe2\x80\xaez", 64),
            "x\\xe2\\x80\\xa8y\\xe2\\x80\\xaez");
  EXPECT_FALSE(IsPrintablePeerText("a\nb", 64));
  EXPECT_FALSE(IsPrintablePeerText("a\xc2\x85", 64));
}

TEST(PrintablePeerText, BytesThatAreNotUtf8AreEscaped) {
  EXPECT_EQ(PrintablePeerText("\xff\xfe", 64), "\\xff\\xfe");
  EXPECT_EQ(PrintablePeerText("ab\xc3", 64), "ab\\xc3");                // truncated sequence
  EXPECT_EQ(PrintablePeerText("\xc0\xaf", 64), "\\xc0\\xaf");           // overlong '/'
  EXPECT_EQ(PrintablePeerText("\xed\xa0\x80", 64), "\\xed\\xa0\\x80");  // a surrogate
  EXPECT_EQ(PrintablePeerText("\xf4\x90\x80\x80", 64), "\\xf4\\x90\\x80\\x80");  // > U+10FFFF
  EXPECT_FALSE(IsPrintablePeerText("\xff", 64));
}

TEST(PrintablePeerText, LongTextIsCutAtACharacterAndSaysHowLongItWas) {
  EXPECT_EQ(PrintablePeerText(std::string(100, 'x'), 10), "xxxxxxxxxx…(100 bytes)");
  EXPECT_EQ(PrintablePeerText(std::string(10, 'x'), 10), std::string(10, 'x'));
  // Not in the middle of an escape or of a multi-byte character.
  EXPECT_EQ(PrintablePeerText("abcdefgh\n", 10), "abcdefgh…(9 bytes)");
  EXPECT_EQ(PrintablePeerText("abcdefghi東", 10), "abcdefghi…(12 bytes)");
  EXPECT_FALSE(IsPrintablePeerText(std::string(65, 'n'), 64));
  // A peer's 4 KiB of text costs at most the bound.
  EXPECT_LE(PrintablePeerText(std::string(4096, '\n'), 64).size(), 64u + 20u);
}

TEST(Handshake, HelloStringsMustBePrintableAndBounded) {
  proto::Hello hello;
  hello.set_node("hostA");
  hello.set_vm("web1");
  hello.set_config_digest(std::string(64, 'a'));
  hello.set_replica_digest(std::string(64, 'b'));
  hello.set_store_id(std::string(32, 'c'));
  EXPECT_TRUE(CheckHelloText(hello).ok());
  hello.set_vm("");  // peer control
  EXPECT_TRUE(CheckHelloText(hello).ok());

  struct Case {
    const char* field;
    void (*set)(proto::Hello&);
    const char* shown;
  } cases[] = {
      {"node name", [](proto::Hello& h) { h.set_node("a\nb"); }, "'a\\x0ab'"},
      {"node name", [](proto::Hello& h) { h.set_node(std::string(65, 'n')); }, "…(65 bytes)'"},
      {"vm name", [](proto::Hello& h) { h.set_vm("\x1b]0;owned\x07"); }, "'\\x1b]0;owned\\x07'"},
      {"config digest", [](proto::Hello& h) { h.set_config_digest(std::string(129, 'd')); },
       "…(129 bytes)'"},
      {"replica digest", [](proto::Hello& h) { h.set_replica_digest("\xff"); }, "'\\xff'"},
      {"store id", [](proto::Hello& h) { h.set_store_id("id\r"); }, "'id\\x0d'"},
  };
  for (const auto& c : cases) {
    proto::Hello bad = hello;
    c.set(bad);
    Status s = CheckHelloText(bad);
    ASSERT_FALSE(s.ok()) << c.field;
    EXPECT_EQ(s.code(), StatusCode::kProtocol);
    EXPECT_THAT(s.message(), HasSubstr(std::string("sent a hello whose ") + c.field +
                                       " is not printable text of at most"));
    EXPECT_THAT(s.message(), HasSubstr(c.shown));
  }
}

}  // namespace
}  // namespace ft::channel
