// The engine's thread pool (csrc/runtime/threadpool.cc) under many callers at once:
// tests/csrc/test_threadpool_stress.py builds this under ThreadSanitizer (and AddressSanitizer)
// and runs it with ONEBIT_PIN_THREADS=auto, 0 and 1.
//
// Each caller thread runs parallel_for calls of random task and thread counts, some back
// to back and some after a pause longer than the helpers' spin (so they sleep, wake and,
// where bound, move off the caller's CPU). Every call checks that each of its tasks ran
// exactly once and that its writes are visible when parallel_for returns; TSan checks
// that those reads are ordered after the helpers' writes.
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "runtime/threadpool.h"

namespace {

std::atomic<int> g_failed{0};

void fail(const std::string& what) {
  if (g_failed.fetch_add(1) < 20) std::printf("FAIL %s\n", what.c_str());
}

void caller(int id, int calls) {
  std::mt19937 rng(1234u + static_cast<unsigned>(id));
  for (int c = 0; c < calls; ++c) {
    const int ntasks = 1 + static_cast<int>(rng() % 97);
    const int nthreads = 1 + static_cast<int>(rng() % 4);
    if (rng() % 8 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // helpers sleep
    std::vector<int> hits(static_cast<size_t>(ntasks), 0);    // plain ints: one writer each
    std::vector<long> value(static_cast<size_t>(ntasks), 0);
    onebit::parallel_for(ntasks, nthreads, [&](int t) {
      hits[t] += 1;
      long v = 0;
      for (int k = 0; k <= t % 7; ++k) v += static_cast<long>(t) * 1000 + k;  // a little work
      value[t] = v;
    });
    for (int t = 0; t < ntasks; ++t) {
      long want = 0;
      for (int k = 0; k <= t % 7; ++k) want += static_cast<long>(t) * 1000 + k;
      if (hits[t] != 1 || value[t] != want)
        fail("caller " + std::to_string(id) + " call " + std::to_string(c) + " task " + std::to_string(t) +
             ": ran " + std::to_string(hits[t]) + " times, value " + std::to_string(value[t]));
    }
  }
}

int test_callers(int ncallers, int calls) {
  std::vector<std::thread> ts;
  for (int i = 0; i < ncallers; ++i) ts.emplace_back(caller, i, calls);
  for (auto& t : ts) t.join();
  return ncallers * calls;
}

// A caller that moves between CPUs between calls (what a bound helper has to follow).
int test_moving_caller(int calls) {
  cpu_set_t all;
  if (sched_getaffinity(0, sizeof(all), &all) != 0) return 0;
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &all)) cpus.push_back(c);
  std::thread t([&] {
    for (int c = 0; c < calls; ++c) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpus[static_cast<size_t>(c) % cpus.size()], &one);
      sched_setaffinity(0, sizeof(one), &one);
      if (c % 3 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
      std::atomic<int> sum{0};
      onebit::parallel_for(16, 2, [&](int i) { sum.fetch_add(i + 1, std::memory_order_relaxed); });
      if (sum.load() != 16 * 17 / 2) fail("moving caller call " + std::to_string(c));
    }
  });
  t.join();
  return calls;
}

}  // namespace

int main(int argc, char** argv) {
  const int calls = argc > 1 ? std::atoi(argv[1]) : 300;
  int passed = 0;
  passed += test_callers(1, calls);
  passed += test_callers(4, calls);
  passed += test_moving_caller(calls / 3);
  const int failed = g_failed.load();
  std::printf("%d passed, %d failed\n", failed ? passed - failed : passed, failed);
  return failed ? 1 : 0;
}
