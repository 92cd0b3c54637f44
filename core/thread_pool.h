#pragma once
// A fixed pool of worker threads with a blocking parallel_for. The calling thread takes
// part, so a pool of N threads runs N-1 workers. Work is split into contiguous ranges so
// each task touches contiguous memory (channels-last rows, token ranges).
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace voxmamba {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls body(begin, end) on disjoint ranges covering [0, count), each at least `grain`
  // long (except the last). Exceptions from the body are rethrown on the caller. Callable
  // from any thread: the pool runs one loop at a time, and a second thread's loop waits for
  // it; a loop inside a body runs on that body's thread.
  void parallel_for(std::int64_t count, std::int64_t grain,
                    const std::function<void(std::int64_t, std::int64_t)>& body);

 private:
  void worker_loop();
  void run_chunks();

  std::vector<std::thread> workers_;
  std::mutex one_loop_at_a_time_;  // held by the thread whose loop the workers run
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  bool stopping_ = false;
  std::uint64_t generation_ = 0;

  // The job in flight.
  const std::function<void(std::int64_t, std::int64_t)>* body_ = nullptr;
  std::int64_t count_ = 0, chunk_ = 0, next_ = 0;
  int active_ = 0;
  std::exception_ptr error_;
};

// The process-wide pool: VOXMAMBA_NUM_THREADS if set, else the hardware's thread count.
ThreadPool& thread_pool();
void set_thread_count(int threads);  // replaces the global pool; call before any work

void parallel_for(std::int64_t count, std::int64_t grain,
                  const std::function<void(std::int64_t, std::int64_t)>& body);

}  // namespace voxmamba
