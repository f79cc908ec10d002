// The one rule for names from outside ftd, and outside text made safe to log (ft/names.h).
#include "ft/names.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ft {
namespace {

using ::testing::HasSubstr;

TEST(IsValidName, AcceptsConfigStyleNames) {
  for (const char* n : {"web1", "a", "Web-1.prod_2", "0vm", "vm..x"}) {
    EXPECT_TRUE(IsValidName(n)) << n;
  }
  EXPECT_TRUE(IsValidName(std::string(64, 'v')));
}

TEST(IsValidName, RefusesAnythingThatCouldLeaveItsDirectory) {
  for (const char* n : {"", ".", "..", "../x", "/etc", "a/b", ".hidden", "-rf", "_x", "a b", "a\nb",
                        "a\\b", "\xc3\xa9t\xc3\xa9", "a:b", "a*"}) {
    EXPECT_FALSE(IsValidName(n)) << n;
  }
  EXPECT_FALSE(IsValidName(std::string("a\0b", 3)));
  EXPECT_FALSE(IsValidName(std::string(65, 'v')));
}

TEST(CheckName, NamesTheFieldAndShowsTheValuePrintable) {
  EXPECT_TRUE(CheckName("unprotect.vm", "web1").ok());
  Status s = CheckName("unprotect.vm", "../x\n# role: primary");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("field 'unprotect.vm'"));
  EXPECT_THAT(s.message(), HasSubstr("'../x\\x0a# role: primary'"));
  EXPECT_THAT(s.message(), HasSubstr("not a valid name"));
  // A huge value is cut in the message.
  EXPECT_LT(CheckName("vm", std::string(1 << 20, 'x')).message().size(), 300u);
}

TEST(FindControlCharacter, FindsTheFirstC0OrDel) {
  EXPECT_EQ(FindControlCharacter("console=ttyS0 quiet"), std::string_view::npos);
  EXPECT_EQ(FindControlCharacter("a\nb"), 1u);
  EXPECT_EQ(FindControlCharacter("ab\r"), 2u);
  EXPECT_EQ(FindControlCharacter("x\x7f"), 1u);
  EXPECT_EQ(FindControlCharacter("Z\xc3\xbcrich"), std::string_view::npos);
}

TEST(PrintableText, PlainTextAndUtf8PassUnchanged) {
  EXPECT_EQ(PrintableText("hostA", 64), "hostA");
  EXPECT_EQ(PrintableText("", 64), "");
  EXPECT_EQ(PrintableText("web-1.prod_2", 64), "web-1.prod_2");
  // Identity refusals abbreviate digests with "…"; a reason must survive unchanged.
  EXPECT_EQ(PrintableText("digest 3fa2c81d09e4… differs", 64), "digest 3fa2c81d09e4… differs");
  EXPECT_EQ(PrintableText("Zürich 東京", 64), "Zürich 東京");
  EXPECT_TRUE(IsPrintableText("hostA", 64));
  EXPECT_TRUE(IsPrintableText("Zürich", 64));
}

TEST(PrintableText, ControlCharactersAreEscaped) {
  EXPECT_EQ(PrintableText(std::string("a\nb\rc\td\0e", 9), 64), "a\\x0ab\\x0dc\\x09d\\x00e");
  EXPECT_EQ(PrintableText("\x1b[31mred\x7f", 64), "\\x1b[31mred\\x7f");
  // C1 controls (U+0085 NEL, U+009B CSI) in their UTF-8 form.
  EXPECT_EQ(PrintableText("a\xc2\x85z\xc2\x9b", 64), "a\\xc2\\x85z\\xc2\\x9b");
  // Line separator and a right-to-left override: they make a line read as something else.
  EXPECT_EQ(PrintableText("x\xe2\x80\xa8y\xe2\x80\xaez", 64), "x\\xe2\\x80\\xa8y\\xe2\\x80\\xaez");
  EXPECT_FALSE(IsPrintableText("a\nb", 64));
  EXPECT_FALSE(IsPrintableText("a\xc2\x85", 64));
}

TEST(PrintableText, BytesThatAreNotUtf8AreEscaped) {
  EXPECT_EQ(PrintableText("\xff\xfe", 64), "\\xff\\xfe");
  EXPECT_EQ(PrintableText("ab\xc3", 64), "ab\\xc3");                         // truncated sequence
  EXPECT_EQ(PrintableText("\xc0\xaf", 64), "\\xc0\\xaf");                    // overlong '/'
  EXPECT_EQ(PrintableText("\xed\xa0\x80", 64), "\\xed\\xa0\\x80");           // a surrogate
  EXPECT_EQ(PrintableText("\xf4\x90\x80\x80", 64), "\\xf4\\x90\\x80\\x80");  // > U+10FFFF
  EXPECT_FALSE(IsPrintableText("\xff", 64));
}

TEST(PrintableText, LongTextIsCutAtACharacterAndSaysHowLongItWas) {
  EXPECT_EQ(PrintableText(std::string(100, 'x'), 10), "xxxxxxxxxx…(100 bytes)");
  EXPECT_EQ(PrintableText(std::string(10, 'x'), 10), std::string(10, 'x'));
  // Not in the middle of an escape or of a multi-byte character.
  EXPECT_EQ(PrintableText("abcdefgh\n", 10), "abcdefgh…(9 bytes)");
  EXPECT_EQ(PrintableText("abcdefghi東", 10), "abcdefghi…(12 bytes)");
  EXPECT_FALSE(IsPrintableText(std::string(65, 'n'), 64));
  // A peer's 4 KiB of text costs at most the bound.
  EXPECT_LE(PrintableText(std::string(4096, '\n'), 64).size(), 64u + 20u);
}

}  // namespace
}  // namespace ft
