// Splitting elementwise / attention work over the cores. OpenMP when the compiler has it (Linux gcc),
// else a plain loop: results are identical either way because every iteration writes its own rows
// (no shared accumulators; reductions happen afterwards, in a fixed order).
#pragma once
#ifdef _OPENMP
#include <omp.h>
#endif

namespace sat {

// `work` estimates the total cost in flops-ish units; small loops stay serial because waking the
// other thread costs more than it saves (and much more when the machine is oversubscribed).
template <typename F>
inline void parallel_for(int n, F&& f, double work = 1e9) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > 1 && work >= 2e5)
  for (int i = 0; i < n; i++) f(i);
#else
  (void)work;
  for (int i = 0; i < n; i++) f(i);
#endif
}

inline void set_worker_threads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(n);
#else
  (void)n;
#endif
}
inline int get_worker_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace sat
