// Timers inside the training step, off unless switched on (setProfiling in the binding; `sat bench train
// --profile`): each named section accumulates its wall time, and the matrix products run inside it add to its
// matmul time, so the rest is the section's elementwise work. Sections nest; a section's time excludes the time
// of sections opened inside it. The state is per thread: set_profiling and take_profile act on the sections of the
// calling thread's steps only (a step is driven from one thread; its OpenMP workers open no sections), so model
// threads running steps at the same time neither race on it nor mix into each other's profile.
#pragma once
#include <chrono>
#include <ctime>
#include <new>
#include <string>
#include <vector>

namespace sat {

struct ProfileEntry {
  const char* name;
  double seconds = 0;         // wall time inside the section, less its nested sections
  double matmul_seconds = 0;  // of which in gemm / gemm_bf16
  // The same in CPU time of the calling thread: with one thread (setThreads(1, 1)) all the work runs on it, and
  // CPU time does not count the time the thread waited for a core, so it profiles a loaded machine reliably.
  double cpu_seconds = 0;
  double matmul_cpu_seconds = 0;
  long calls = 0;
};

namespace profile_detail {
inline thread_local bool enabled = false;
inline thread_local std::vector<ProfileEntry> entries;
inline thread_local int current = -1;  // index of the innermost open section
inline int index_of(const char* name) {
  for (size_t i = 0; i < entries.size(); i++)
    if (entries[i].name == name || std::string(entries[i].name) == name) return (int)i;
  entries.push_back(ProfileEntry{name});
  return (int)entries.size() - 1;
}
inline double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
inline double thread_cpu() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
}  // namespace profile_detail

inline void set_profiling(bool on) {
  profile_detail::enabled = on;
}
inline bool profiling() {
  return profile_detail::enabled;
}
// The accumulated sections in first-use order, then cleared.
inline std::vector<ProfileEntry> take_profile() {
  std::vector<ProfileEntry> out;
  out.swap(profile_detail::entries);
  profile_detail::current = -1;
  return out;
}

class ProfileSection {
 public:
  explicit ProfileSection(const char* name) {
    if (!profile_detail::enabled) return;
    index_ = profile_detail::index_of(name);
    parent_ = profile_detail::current;
    profile_detail::current = index_;
    t0_ = profile_detail::now();
    c0_ = profile_detail::thread_cpu();
  }
  ~ProfileSection() {
    if (index_ < 0) return;
    ProfileEntry& e = profile_detail::entries[index_];
    const double dt = profile_detail::now() - t0_, dc = profile_detail::thread_cpu() - c0_;
    e.seconds += dt;
    e.cpu_seconds += dc;
    e.calls++;
    if (parent_ >= 0) {
      profile_detail::entries[parent_].seconds -= dt;
      profile_detail::entries[parent_].cpu_seconds -= dc;
    }
    profile_detail::current = parent_;
  }
  ProfileSection(const ProfileSection&) = delete;
  ProfileSection& operator=(const ProfileSection&) = delete;

 private:
  int index_ = -1, parent_ = -1;
  double t0_ = 0, c0_ = 0;
};

// Consecutive sections of one function: next(name) closes the open one and opens `name`.
class ProfileSteps {
 public:
  void next(const char* name) {
    close();
    if (profile_detail::enabled) open_ = new (&storage_) ProfileSection(name);
  }
  ~ProfileSteps() { close(); }

 private:
  void close() {
    if (open_) open_->~ProfileSection();
    open_ = nullptr;
  }
  alignas(ProfileSection) unsigned char storage_[sizeof(ProfileSection)];
  ProfileSection* open_ = nullptr;
};

// Wraps one matrix product: its time is added to every open section's matmul time.
class ProfileMatmul {
 public:
  ProfileMatmul() {
    if (!profile_detail::enabled || profile_detail::current < 0) return;
    t0_ = profile_detail::now();
    c0_ = profile_detail::thread_cpu();
  }
  ~ProfileMatmul() {
    if (t0_ == 0) return;
    // Attributed to the innermost open section (the one whose own time contains it).
    ProfileEntry& e = profile_detail::entries[profile_detail::current];
    e.matmul_seconds += profile_detail::now() - t0_;
    e.matmul_cpu_seconds += profile_detail::thread_cpu() - c0_;
  }

 private:
  double t0_ = 0, c0_ = 0;
};

}  // namespace sat
