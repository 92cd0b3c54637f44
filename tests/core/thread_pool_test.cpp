#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "core/error.h"

namespace voxmamba {
namespace {

TEST(ThreadPool, CoversEveryIndexExactlyOnce) {
  ThreadPool pool(4);
  for (std::int64_t count : {0, 1, 7, 1000, 12345}) {
    std::vector<std::atomic<int>> hits(static_cast<std::size_t>(count));
    pool.parallel_for(count, 3, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) hits[i]++;
    });
    for (auto& h : hits) ASSERT_EQ(h.load(), 1);
  }
}

TEST(ThreadPool, RethrowsAnErrorFromABodyAndStaysUsable) {
  ThreadPool pool(3);
  EXPECT_THROW(pool.parallel_for(100, 1,
                                 [](std::int64_t begin, std::int64_t) {
                                   if (begin >= 50) throw Error("boom");
                                 }),
               Error);
  std::atomic<std::int64_t> sum{0};
  pool.parallel_for(100, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) sum += i;
  });
  EXPECT_EQ(sum.load(), 4950);
}

TEST(ThreadPool, RunsAParallelForInsideABodyOnThatBodysThread) {
  // Each outer range runs an inner parallel_for over 1000 indices; the inner loops must not
  // take over the pool from the outer one: every (outer, inner) pair is visited exactly once.
  ThreadPool pool(4);
  constexpr std::int64_t kOuter = 64, kInner = 1000;
  std::vector<std::atomic<int>> hits(kOuter * kInner);
  pool.parallel_for(kOuter, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t o = begin; o < end; ++o) {
      pool.parallel_for(kInner, 10, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t i = b; i < e; ++i) hits[o * kInner + i]++;
      });
    }
  });
  for (auto& h : hits) ASSERT_EQ(h.load(), 1);
  // And the pool still runs an ordinary job in parallel afterwards.
  std::atomic<std::int64_t> sum{0};
  pool.parallel_for(100, 1, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) sum += i;
  });
  EXPECT_EQ(sum.load(), 4950);
}

TEST(ThreadPool, ManySmallJobsInARow) {
  ThreadPool pool(2);
  std::atomic<std::int64_t> total{0};
  for (int job = 0; job < 2000; ++job) {
    pool.parallel_for(8, 1, [&](std::int64_t begin, std::int64_t end) { total += end - begin; });
  }
  EXPECT_EQ(total.load(), 16000);
}

// Two threads of the program (the segment job and the image reader or writer, say) each
// running parallel loops on the same pool: each loop still covers its own indices once.
TEST(ThreadPool, LoopsFromTwoThreadsEachCoverTheirOwnIndices) {
  ThreadPool pool(4);
  constexpr int kJobs = 300;
  constexpr std::int64_t kCount = 257;
  const auto run = [&pool](std::int64_t* covered) {
    for (int job = 0; job < kJobs; ++job) {
      std::vector<std::atomic<int>> hits(kCount);
      pool.parallel_for(kCount, 2, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) hits[i]++;
      });
      for (auto& h : hits) *covered += h.load() == 1;
    }
  };
  std::int64_t first = 0, second = 0;
  std::thread other(run, &second);
  run(&first);
  other.join();
  EXPECT_EQ(first, kJobs * kCount);
  EXPECT_EQ(second, kJobs * kCount);
}

}  // namespace
}  // namespace voxmamba
