#include "ft/status.h"

#include <cerrno>

#include <gtest/gtest.h>

namespace ft {
namespace {

Result<int> Half(int x) {
  if (x % 2) return InvalidArgument("odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  FT_ASSIGN_OR_RETURN(int h, Half(x));
  FT_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

TEST(StatusTest, OkAndErrorsCarryCodeAndMessage) {
  EXPECT_TRUE(Status::Ok().ok());
  Status s = NotFound("kernel '/x' does not exist");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.ToString(), "not-found: kernel '/x' does not exist");
  EXPECT_EQ(s.WithContext("vm 'web1'").message(), "vm 'web1': kernel '/x' does not exist");
}

TEST(StatusTest, ResultPropagatesThroughAssignOrReturn) {
  EXPECT_EQ(*Quarter(8), 2);
  auto r = Quarter(6);  // 6 -> 3 -> odd
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "odd");
}

TEST(StatusTest, ErrnoStatusMapsCommonErrors) {
  EXPECT_EQ(ErrnoStatus("open 'a'", ENOENT).code(), StatusCode::kNotFound);
  EXPECT_EQ(ErrnoStatus("open 'a'", EACCES).code(), StatusCode::kPermissionDenied);
  EXPECT_NE(ErrnoStatus("open 'a'", ENOENT).message().find("No such file"), std::string::npos);
}

}  // namespace
}  // namespace ft

#include "ft/crc32.h"

namespace ft {
namespace {
TEST(Crc32Test, MatchesZlibCheckValue) {
  EXPECT_EQ(Crc32("123456789"), 0xCBF43926u);  // the standard check value
  EXPECT_EQ(Crc32(""), 0u);
  EXPECT_EQ(Crc32Extend(Crc32("12345"), "6789"), 0xCBF43926u);  // incremental
}
}  // namespace
}  // namespace ft
