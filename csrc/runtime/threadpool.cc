#include "runtime/threadpool.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ONEBIT_PAUSE() _mm_pause()
#else
#define ONEBIT_PAUSE() ((void)0)
#endif

namespace onebit {
namespace {

int default_threads() {
  if (const char* env = std::getenv("ONEBIT_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  unsigned n = std::thread::hardware_concurrency();
  return n ? static_cast<int>(n) : 1;
}

std::atomic<int> g_num_threads{0};

// How long a helper spins for the next parallel section before it sleeps.
constexpr int kSpinMicros = 500;

// ONEBIT_PIN_THREADS: whether a helper thread is bound to one CPU (on creation and on
// each wake-up from sleep).
//
// Measured on a 2-vCPU KVM guest (docs/performance.md, "Two threads"): after the engine
// had been idle for a while (150 ms between calls), the kernel woke the sleeping helper
// on the caller's own CPU, and the two threads took turns on one CPU for milliseconds:
// binary_resnet_e18 on 2 threads took 8.0-9.6 ms against 4.9-5.2 ms with the helper
// bound to the other CPU (and 7.6 ms on one thread). Binding is only safe when the
// engine is meant to have the CPUs to itself, so "auto" binds when a call's threads
// are as many as the CPUs the process may run on (taskset, a container's CPU set, a benchmark);
// on a larger machine shared by several processes, binding each process's helpers to
// the same CPUs would pile them up, and the helpers stay free; so do the helpers of a
// call with more threads than CPUs (binding would stack them on the CPUs but the caller's).
enum class PinMode { kAuto, kAlways, kNever };

PinMode pin_mode() {
  static const PinMode mode = [] {
    const char* env = std::getenv("ONEBIT_PIN_THREADS");
    if (!env || !*env || std::strcmp(env, "auto") == 0) return PinMode::kAuto;
    if (std::strcmp(env, "1") == 0) return PinMode::kAlways;
    if (std::strcmp(env, "0") == 0) return PinMode::kNever;
    std::fprintf(stderr, "onebit: ONEBIT_PIN_THREADS='%s' is not one of auto, 0, 1; using auto\n", env);
    return PinMode::kAuto;
  }();
  return mode;
}

// The CPUs a helper created now may be bound to (the creating thread's CPU set), or
// none: then it stays free.
std::vector<int> helper_cpus(int call_threads) {
  const PinMode mode = pin_mode();
  if (mode == PinMode::kNever) return {};
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return {};
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  if (cpus.size() < 2) return {};
  if (mode == PinMode::kAuto && static_cast<int>(cpus.size()) != call_threads) return {};
  return cpus;
}

// Helper `id`'s CPU when the caller runs on caller_cpu: the others in turn.
int pick_cpu(const std::vector<int>& cpus, int id, int caller_cpu) {
  std::vector<int> others;
  for (int c : cpus)
    if (c != caller_cpu) others.push_back(c);
  if (others.empty()) return -1;
  return others[static_cast<size_t>(id) % others.size()];
}

void bind_thread(pthread_t thread, int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(thread, sizeof(set), &set);  // best effort: a failure leaves it free
}

// Each thread of a call owns a slot: a contiguous range of the task indices, slot s
// holding [s * n / S, (s + 1) * n / S). A thread runs its own slot's tasks from the front
// and then steals the other slots' tasks one at a time from the back. Why ranges: the ops
// of a model split their outputs into tasks the same way (rows of pixels, in order), so
// with a fixed range per thread each core reads what it wrote in the op before, from its
// own L2; with one shared counter the tasks fell to the threads by turns and half of
// every layer's input came from the other core. Why stealing: a thread that is slowed or
// descheduled (a busy machine) keeps the caller from waiting on it; the caller steals
// the rest and returns.
//
// A slot is one 64-bit word (next | end), claimed by compare-and-swap; the caller waits
// for *completed tasks*, not for helpers to check in. A helper that wakes late finds every
// slot exhausted (a call returns only when each of its tasks is done, so all its slots are
// empty), or claims a genuinely unclaimed task of whatever call is current: the call's
// fn_ is written before its slots, and a claim (acquire) of a slot's new value sees it;
// a call cannot finish while one of its tasks is claimed and not done.
class Pool {
 public:
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      publish(0);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  void run(int ntasks, int nthreads, const std::function<void(int)>& fn) {
    std::lock_guard<std::mutex> call_lock(call_mu_);
    int want = nthreads - 1;
    if (want > 0xFFFF) want = 0xFFFF;
    if (want > ntasks - 1) want = ntasks - 1;
    if (want <= 0) {
      for (int i = 0; i < ntasks; ++i) fn(i);
      return;
    }
    caller_cpu_.store(sched_getcpu(), std::memory_order_relaxed);
    while (static_cast<int>(workers_.size()) < want) {
      int id = static_cast<int>(workers_.size());
      const uint64_t gen = state_.load() >> 16;  // before this call's publish
      std::vector<int> cpus = helper_cpus(want + 1);
      const int cpu = cpus.empty() ? -1 : pick_cpu(cpus, id, caller_cpu_.load(std::memory_order_relaxed));
      workers_.emplace_back([this, id, gen, cpu, cpus = std::move(cpus)] { worker(id, gen, cpus, cpu); });
      bind_thread(workers_.back().native_handle(), cpu);  // before it runs a task
    }
    fn_ = &fn;
    done_.store(0, std::memory_order_relaxed);
    const int nslots = want + 1 < kMaxSlots ? want + 1 : kMaxSlots;
    nslots_.store(nslots, std::memory_order_relaxed);
    for (int s = 0; s < nslots; ++s) {
      const uint64_t lo = static_cast<uint64_t>(ntasks) * s / nslots;
      const uint64_t hi = static_cast<uint64_t>(ntasks) * (s + 1) / nslots;
      slots_[s].word.store((lo << 32) | hi, std::memory_order_release);
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      publish(want);
    }
    cv_.notify_all();
    work(0);
    // Only tasks a helper is running remain; yield rather than spin against
    // a helper that is descheduled.
    for (int spin = 0; done_.load(std::memory_order_acquire) != ntasks; ++spin) {
      if (spin < 2000) ONEBIT_PAUSE();
      else sched_yield();
    }
  }

 private:
  // Claims one task of slot s: from the front (its owner) or from the back (a thief);
  // -1 when the slot is empty.
  int claim(int s, bool front) {
    std::atomic<uint64_t>& w = slots_[s].word;
    uint64_t v = w.load(std::memory_order_acquire);
    for (;;) {
      const uint64_t next = v >> 32, end = v & 0xFFFFFFFFu;
      if (next >= end) return -1;
      const uint64_t to = front ? v + (uint64_t{1} << 32) : v - 1;
      if (w.compare_exchange_weak(v, to, std::memory_order_acq_rel, std::memory_order_acquire))
        return static_cast<int>(front ? next : end - 1);
    }
  }

  void run_task(int idx) {
    (*fn_)(idx);
    done_.fetch_add(1, std::memory_order_acq_rel);
  }

  // Slot `own`'s tasks, then the others' (a helper past the last slot only steals).
  void work(int own) {
    const int n = nslots_.load(std::memory_order_relaxed);
    if (own < n)
      for (int idx; (idx = claim(own, true)) >= 0;) run_task(idx);
    for (int k = 1; k <= n; ++k) {
      const int s = (own + k) % n;
      if (s == own) continue;
      for (int idx; (idx = claim(s, false)) >= 0;) run_task(idx);
    }
  }

  // Wake-up word: generation and how many helpers the call wants.
  void publish(int active) {
    uint64_t gen = (state_.load() >> 16) + 1;
    state_.store((gen << 16) | static_cast<uint64_t>(active), std::memory_order_release);
  }

  // cpus: where the helper may be bound (empty: it stays free); bound: its CPU (-1: free).
  // It is bound on creation (by the creating thread) and again each time it wakes from sleep, to a CPU the caller is not on: binding it
  // once is not enough, since the caller (whose affinity is not ours to change) may have
  // moved onto the helper's CPU while both slept.
  void worker(int id, uint64_t seen, const std::vector<int>& cpus, int bound) {
    const auto rebind = [&] {
      if (cpus.empty()) return;
      const int cpu = pick_cpu(cpus, id, caller_cpu_.load(std::memory_order_relaxed));
      if (cpu != bound) bind_thread(pthread_self(), bound = cpu);
    };
    for (;;) {
      // Spin for the next call for kSpinMicros, then sleep. Layers run back to back, but
      // between two parallel sections an op may do serial work (a padded copy of its input,
      // a small pointwise op): with ~0.1 ms of spinning the helper fell asleep there and
      // every later section paid a futex wake-up and started without it
      // (binary_resnet_e18 ran 1.25x faster on 2 threads than on 1; with 0.5 ms, 1.6x).
      // Bounded in time, not in pause instructions (a pause is 40 to 140 cycles across
      // CPUs): an idle engine stops using the CPU 0.5 ms after its last call.
      uint64_t st = state_.load(std::memory_order_acquire);
      const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
      for (int spin = 0; (st >> 16) == seen; ++spin) {
        ONEBIT_PAUSE();
        st = state_.load(std::memory_order_acquire);
        if ((spin & 63) == 63 && std::chrono::steady_clock::now() >= spin_until) break;
      }
      if ((st >> 16) == seen) {
        {
          std::unique_lock<std::mutex> lk(mu_);
          cv_.wait(lk, [&] { return (state_.load() >> 16) != seen; });
          st = state_.load(std::memory_order_acquire);
        }
        rebind();
      }
      seen = st >> 16;
      if (stop_) return;
      if (id < static_cast<int>(st & 0xFFFF)) work(id + 1);
    }
  }

  std::mutex call_mu_, mu_;
  std::condition_variable cv_;
  std::vector<std::thread> workers_;
  // At most this many ranges; the helpers past them only steal.
  static constexpr int kMaxSlots = 64;
  struct alignas(64) Slot {
    std::atomic<uint64_t> word{0};  // next task << 32 | end; next >= end: empty
  };
  Slot slots_[kMaxSlots];
  std::atomic<uint64_t> state_{0};
  std::atomic<int> nslots_{1};
  alignas(64) std::atomic<int> done_{0};
  std::atomic<int> caller_cpu_{-1};  // sched_getcpu() of the thread that started the current call
  const std::function<void(int)>* fn_ = nullptr;
  bool stop_ = false;
};

// Never destroyed: workers may outlive static teardown. A forked child (e.g.
// a torch DataLoader worker) has none of the parent's threads and possibly a
// mutex locked mid-call, so it starts from a fresh pool (the old one leaks).
std::atomic<Pool*> g_pool{nullptr};

void reset_pool_in_child() { g_pool.store(new Pool()); }

Pool& pool() {
  Pool* p = g_pool.load();
  if (!p) {
    static std::once_flag once;
    std::call_once(once, [] {
      g_pool.store(new Pool());
      pthread_atfork(nullptr, nullptr, reset_pool_in_child);
    });
    p = g_pool.load();
  }
  return *p;
}

}  // namespace

int get_num_threads() {
  int n = g_num_threads.load();
  if (n <= 0) {
    n = default_threads();
    g_num_threads.store(n);
  }
  return n;
}

void set_num_threads(int n) { g_num_threads.store(n > 0 ? n : default_threads()); }

void parallel_for(int ntasks, int nthreads, const std::function<void(int)>& fn) {
  if (ntasks <= 0) return;
  if (nthreads <= 0) nthreads = get_num_threads();
  pool().run(ntasks, nthreads, fn);
}

}  // namespace onebit
