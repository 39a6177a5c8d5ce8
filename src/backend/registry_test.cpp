#include "backend/registry.h"

#include <gtest/gtest.h>

namespace keel::backend {
namespace {

TEST(BackendRegistry, TheCpuKindIsAlwaysFirstAndCreatesTheCpuBackend) {
  ASSERT_FALSE(kinds().empty());
  EXPECT_EQ(kinds().front().name, "cpu");
  EXPECT_FALSE(kinds().front().device);
  auto cpu = create("cpu");
  ASSERT_TRUE(cpu.ok()) << cpu.status().message();
  EXPECT_EQ((*cpu)->name(), "cpu");
  EXPECT_EQ(device_count("cpu"), 0);
}

TEST(BackendRegistry, AutoIsADeviceKindWithADeviceElseTheCpu) {
  auto kind = resolve("auto");
  ASSERT_TRUE(kind.ok()) << kind.status().message();
  bool any_device = false;
  for (const BackendKind& k : kinds()) any_device |= k.device && k.device_count() > 0;
  EXPECT_EQ((*kind)->device, any_device);
  if (!any_device) {
    EXPECT_EQ((*kind)->name, "cpu");
  }
}

TEST(BackendRegistry, AnUnknownNameIsRefusedNamingTheFlag) {
  auto kind = resolve("tpu");
  ASSERT_FALSE(kind.ok());
  EXPECT_EQ(kind.status().message(), "--backend tpu: expected auto, cpu or cuda");
  EXPECT_EQ(device_count("tpu"), 0);
}

TEST(BackendRegistry, CudaIsEitherBuiltInOrRefusedAsMissingFromThisBuild) {
  bool built = false;
  for (const BackendKind& k : kinds()) built |= k.name == "cuda";
  auto kind = resolve("cuda");
  if (built) {
    ASSERT_TRUE(kind.ok());
    EXPECT_TRUE((*kind)->device);
    EXPECT_TRUE((*kind)->memory && (*kind)->join_group && (*kind)->read_bandwidth && (*kind)->gemm_flops);
  } else {
    ASSERT_FALSE(kind.ok());
    EXPECT_EQ(kind.status().message(), "--backend cuda: this keel was built without CUDA (no nvcc at build time)");
  }
}

TEST(BackendRegistry, CudaWantsADevicePerRankEvenWhereItIsNotBuilt) {
  EXPECT_TRUE(wants_device("cuda"));  // a layout check then reports the GPUs missing, not an unknown backend
  EXPECT_FALSE(wants_device("cpu"));
  EXPECT_FALSE(wants_device("tpu"));
  EXPECT_EQ(wants_device("auto"), (*resolve("auto"))->device);
}

TEST(BackendRegistry, TheCpuBackendHasNoDeviceMemory) {
  auto cpu = create("cpu");
  ASSERT_TRUE(cpu.ok());
  auto memory = device_memory(**cpu);
  ASSERT_TRUE(memory.ok()) << memory.status().message();
  EXPECT_FALSE(memory->has_value());
}

}  // namespace
}  // namespace keel::backend
