#include "core/thread_pool.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>

namespace voxmamba {
namespace {
// Set while this thread runs a parallel_for body. A parallel_for called from inside one (a
// helper such as count_non_finite that parallelises itself, called from a parallel loop) runs
// on the calling thread: the pool holds one job at a time, and a second would overwrite the
// first's.
thread_local bool inside_body = false;
}  // namespace

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < std::max(1, threads); ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::run_chunks() {
  for (;;) {
    std::int64_t begin;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (next_ >= count_ || error_) return;
      begin = next_;
      next_ += chunk_;
    }
    const std::int64_t end = std::min(count_, begin + chunk_);
    try {
      inside_body = true;
      (*body_)(begin, end);
      inside_body = false;
    } catch (...) {
      inside_body = false;
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
}

void ThreadPool::worker_loop() {
  std::uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      ++active_;
    }
    run_chunks();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --active_;
    }
    done_.notify_all();
  }
}

void ThreadPool::parallel_for(std::int64_t count, std::int64_t grain,
                              const std::function<void(std::int64_t, std::int64_t)>& body) {
  if (count <= 0) return;
  grain = std::max<std::int64_t>(1, grain);
  if (workers_.empty() || count <= grain || inside_body) {
    body(0, count);
    return;
  }
  // The pool holds one job: a loop from another thread (a segment job's while an image is
  // written, say) would overwrite the one in flight, and both would hang.
  std::lock_guard<std::mutex> one_loop(one_loop_at_a_time_);
  // A few chunks per thread balance uneven work without much locking.
  const std::int64_t target_chunks = static_cast<std::int64_t>(size()) * 4;
  const std::int64_t chunk = std::max(grain, (count + target_chunks - 1) / target_chunks);
  std::exception_ptr error;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    body_ = &body;
    count_ = count;
    chunk_ = chunk;
    next_ = 0;
    error_ = nullptr;
    ++generation_;
  }
  wake_.notify_all();
  run_chunks();
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return active_ == 0 && (next_ >= count_ || error_); });
    // A worker that wakes late for this job finds no chunk left (or the error) and
    // returns without touching body_.
    next_ = count_;
    error = error_;
    body_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

namespace {
std::unique_ptr<ThreadPool>& global_pool() {
  static std::unique_ptr<ThreadPool> pool;
  return pool;
}
int default_thread_count() {
  if (const char* text = std::getenv("VOXMAMBA_NUM_THREADS")) {
    const int threads = std::atoi(text);
    if (threads > 0) return threads;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}
}  // namespace

ThreadPool& thread_pool() {
  std::unique_ptr<ThreadPool>& pool = global_pool();
  if (!pool) pool = std::make_unique<ThreadPool>(default_thread_count());
  return *pool;
}

void set_thread_count(int threads) { global_pool() = std::make_unique<ThreadPool>(threads); }

void parallel_for(std::int64_t count, std::int64_t grain,
                  const std::function<void(std::int64_t, std::int64_t)>& body) {
  thread_pool().parallel_for(count, grain, body);
}

}  // namespace voxmamba
