#include "format/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>

namespace keel::format {
namespace {

class Bytes final : public env::MappedFile {
 public:
  explicit Bytes(std::string bytes) : bytes_(std::move(bytes)) {}
  const uint8_t* data() const override { return reinterpret_cast<const uint8_t*>(bytes_.data()); }
  size_t size() const override { return bytes_.size(); }
  const std::string& path() const override { return path_; }

 private:
  std::string bytes_;
  std::string path_ = "t.safetensors";
};

// A file with `header` as its JSON header and `data_bytes` zero bytes of data.
Result<std::unique_ptr<SafetensorsFile>> parse(const std::string& header, size_t data_bytes) {
  std::string file(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(file.data(), &n, 8);
  file += header + std::string(data_bytes, '\0');
  return SafetensorsFile::parse(std::make_unique<Bytes>(file));
}

TEST(SafetensorsFile, TensorsAreViewsIntoTheData) {
  auto f = parse(R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"__metadata__":{}})", 16);
  ASSERT_TRUE(f.ok()) << f.status().message();
  ASSERT_EQ((*f)->tensors().size(), 1u);
  EXPECT_EQ((*f)->tensors().at("a").nbytes(), 16u);
}

// Found by fuzz/safetensors_header: the element count was multiplied in int64_t, so [2^62, 4] overflowed (UB),
// and [2^62 + 1, 4] of F32 wrapped to 16 bytes and passed for a 4-element tensor.
TEST(SafetensorsFile, ShapeWhoseSizeOverflowsIsCorruption) {
  for (const char* shape : {"[4611686018427387904,4]", "[4611686018427387905,4]", "[4294967296,4294967296,0]"}) {
    auto f = parse(fmt::format(R"({{"x":{{"dtype":"F32","shape":{},"data_offsets":[0,16]}}}})", shape), 16);
    ASSERT_FALSE(f.ok()) << shape;
    EXPECT_NE(f.status().message().find("more than 2^64 bytes"), std::string::npos) << f.status().message();
  }
}

TEST(SafetensorsFile, EmptyTensorNeedsNoData) {
  auto f = parse(R"({"e":{"dtype":"BF16","shape":[0,1000000],"data_offsets":[0,0]}})", 0);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ((*f)->tensors().at("e").nbytes(), 0u);
}

}  // namespace
}  // namespace keel::format
