// A small persistent thread pool: parallel_for over task indices.
//
// Each thread of a call owns a contiguous range of the tasks (the caller the first)
// and then steals the others' tasks one at a time from their back ends: the ops split
// their outputs into row tasks in order, so a thread keeps the rows it wrote in the
// layer before in its own core's cache.
//
// Workers are created on first use and kept; after a parallel section they spin
// for 0.5 ms (layers run back to back, and waking a sleeping thread costs tens
// of us and starts the section without it) and then sleep on a condition
// variable, so an idle engine stops using the CPU 0.5 ms after its last call.
// Calls from several Python threads at once are serialized.
//
// A helper is bound to one CPU at creation (other than the creating thread's)
// when ONEBIT_PIN_THREADS=1, or by default ("auto") when the call's threads are
// as many as the CPUs the process may run on; ONEBIT_PIN_THREADS=0 never binds.
#pragma once

#include <functional>

namespace onebit {

// Threads used when a call does not say: ONEBIT_NUM_THREADS if set, else the
// number of CPUs the process may run on.
int get_num_threads();
void set_num_threads(int n);  // n <= 0 restores the default

// Runs fn(task) for task in [0, ntasks) on up to nthreads threads (the caller
// included). Exceptions in fn terminate: kernels must not throw.
void parallel_for(int ntasks, int nthreads, const std::function<void(int)>& fn);

}  // namespace onebit
