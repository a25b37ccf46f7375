#include "common/config/process.h"

#include <cstdlib>

#include "gtest/gtest.h"

extern "C" int MallocExtension_SetNumericProperty(const char* property, size_t value);

namespace stepflow::config {
namespace {

// This test links TCMalloc, as the binaries do.
TEST(ProcessTest, BoundsTheAllocatorThreadCaches) {
  unsetenv("TCMALLOC_MAX_TOTAL_THREAD_CACHE_BYTES");
  ASSERT_TRUE(AllocatorThreadCacheBytes().has_value()) << "TCMalloc is not linked";
  // The bound may be TCMalloc's default: start from another value.
  ASSERT_TRUE(MallocExtension_SetNumericProperty("tcmalloc.max_total_thread_cache_bytes",
                                                 kAllocatorThreadCacheBytes / 2));
  ASSERT_NE(*AllocatorThreadCacheBytes(), kAllocatorThreadCacheBytes);
  BoundAllocatorThreadCaches();
  EXPECT_EQ(AllocatorThreadCacheBytes(), kAllocatorThreadCacheBytes);
}

TEST(ProcessTest, LeavesAnOperatorsThreadCacheSettingAlone) {
  constexpr size_t kOperators = size_t{48} << 20;
  ASSERT_TRUE(MallocExtension_SetNumericProperty("tcmalloc.max_total_thread_cache_bytes",
                                                 kOperators));
  setenv("TCMALLOC_MAX_TOTAL_THREAD_CACHE_BYTES", "50331648", /*overwrite=*/1);
  BoundAllocatorThreadCaches();
  unsetenv("TCMALLOC_MAX_TOTAL_THREAD_CACHE_BYTES");
  EXPECT_EQ(AllocatorThreadCacheBytes(), kOperators);
}

}  // namespace
}  // namespace stepflow::config
