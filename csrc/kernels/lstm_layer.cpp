// The layer driver: threads the kernels over tasks and walks the time loop.
#include "lstm_layer.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <thread>

namespace qlstm {

namespace {

// The next n values of T from a buffer of 4-byte values; new[] aligns for each.
template <class T>
T* take(unsigned char*& at, int64_t n) {
  static_assert(sizeof(T) == 4, "every requantization array holds 4-byte values");
  T* p = reinterpret_cast<T*>(at);
  at += sizeof(T) * static_cast<size_t>(n);
  return p;
}

}  // namespace

LinearRequantStorage::LinearRequantStorage(const PackedMatrix& m, QParams input,
                                           const QParams output[kNumGates])
    : storage(new unsigned char[4 * static_cast<size_t>(3 * m.rows)]) {
  unsigned char* at = storage.get();
  r.offset = take<int32_t>(at, m.rows);
  r.bias_term = take<float>(at, m.rows);
  r.multiplier = take<float>(at, m.rows);
  prepare_linear_requant(m, input, output, &r);
}

Parallel serial_parallel() {
  return Parallel{1, [](int64_t n, int64_t, const std::function<void(int64_t, int64_t)>& task) {
                    task(0, n);
                  }};
}

namespace {

// Enough multiply-accumulates per task to pay for handing it to a thread.
constexpr int64_t kMinMacsPerTask = int64_t{1} << 17;
// A step's tasks meet once per step: each needs more work than a fork and
// join of the threads costs (about 3 us on 2 cores of a shared VM, where a
// batch-1 step of size 256, 262K multiply-accumulates, ran slower on 2 threads
// than on 1).
constexpr int64_t kMinMacsPerStepTask = int64_t{1} << 18;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Splits [0, n) into `parts` near-equal ranges; returns the i-th.
std::pair<int64_t, int64_t> part(int64_t n, int64_t parts, int64_t i) {
  return {n * i / parts, n * (i + 1) / parts};
}

// Runs f(row_begin, row_end, col_begin, col_end) over a rows x cols grid of
// independent work, split into tiles across the caller's threads: rows
// first, then columns when there are fewer row chunks than threads. Each
// output is computed by exactly one task, so any split gives the same result.
template <class F>
void parallel_grid(int64_t rows, int64_t row_chunk, int64_t cols, int64_t macs_per_row_col,
                   const F& f, const Parallel& par) {
  const int64_t threads = par.threads;
  const int64_t total_macs = rows * cols * macs_per_row_col;
  if (threads == 1 || total_macs < 2 * kMinMacsPerTask) {
    f(0, rows, 0, cols);
    return;
  }
  const int64_t row_parts = std::min(ceil_div(rows, row_chunk), threads * 4);
  const int64_t col_parts = std::min(cols, std::max<int64_t>(1, ceil_div(threads, row_parts)));
  const int64_t tasks = row_parts * col_parts;
  const int64_t grain = std::max<int64_t>(1, kMinMacsPerTask / std::max<int64_t>(1, total_macs / tasks));
  par.run(tasks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const auto [r0, r1] = part(rows, row_parts, t / col_parts);
      const auto [c0, c1] = part(cols, col_parts, t % col_parts);
      f(r0, r1, c0, c1);
    }
  });
}

// The tasks of parallel_step while there are no fewer blocks than threads.
int64_t step_tasks(int64_t rows, int64_t blocks, int64_t macs_per_row_block, const Parallel& par) {
  return std::min(par.threads, rows * blocks * macs_per_row_block / kMinMacsPerStepTask);
}

// Runs f(row_begin, row_end, block_begin, block_end) over one step's rows x
// unit blocks: the blocks split into one contiguous range per task, every row
// in each, and as many tasks as threads while each gets kMinMacsPerStepTask. Each
// block's weights are then read once per step, and a task's blocks are the
// same at every step, so that its share of W_hh can stay in its core's cache
// from step to step. With fewer blocks than threads, as parallel_grid.

template <class F>
void parallel_step(int64_t rows, int64_t blocks, int64_t macs_per_row_block, const F& f,
                   const Parallel& par) {
  if (blocks < par.threads) {
    parallel_grid(rows, /*row_chunk=*/8, blocks, macs_per_row_block, f, par);
    return;
  }
  const int64_t tasks = step_tasks(rows, blocks, macs_per_row_block, par);
  if (tasks < 2) {
    f(0, rows, 0, blocks);
    return;
  }
  par.run(tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const auto [b0, b1] = part(blocks, tasks, t);
      f(0, rows, b0, b1);
    }
  });
}

// run_linear over rows x panels with the kernel set's linear of that output type.
template <class Out, class Linear>
void run_linear_with(Linear linear, const PackedMatrix& m, const LinearRequant& r,
                     const uint8_t* x, int64_t rows, Out* out, const Parallel& par) {
  parallel_grid(rows, /*row_chunk=*/64, m.panels(), kPanelRows * m.K,
                [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
                  linear(m, r, x, r0, r1, c0, c1, out);
                }, par);
}

}  // namespace

void run_linear(const KernelSet& k, const PackedMatrix& m, const LinearRequant& r,
                const uint8_t* x, int64_t rows, uint8_t* out, const Parallel& par) {
  run_linear_with(k.linear, m, r, x, rows, out, par);
}

void run_linear(const KernelSet& k, const PackedMatrix& m, const LinearRequant& r,
                const uint8_t* x, int64_t rows, float* out, const Parallel& par) {
  run_linear_with(k.linear_float, m, r, x, rows, out, par);
}

void run_input_projection(const KernelSet& k, const PackedLayer& p, QParams x_q, const uint8_t* x,
                          int64_t rows, uint8_t* igates, const Parallel& par) {
  const LinearRequantStorage ih(p.ih, x_q, p.q.igates);
  run_linear(k, p.ih, ih.r, x, rows, igates, par);
}

int64_t igates_chunk_rows(int64_t B, int64_t N, int64_t value_bytes) {
  // About L2-sized (1 MB on Zen 4, 512 KB on Zen 2-3).
  constexpr int64_t kChunkBytes = int64_t{1} << 19;
  return std::max<int64_t>(B, kChunkBytes / (N * value_bytes));
}

namespace {

// The row where each step's rows begin, and at [T] the rows of all steps.
std::vector<int64_t> first_rows(const Steps& steps) {
  std::vector<int64_t> first(static_cast<size_t>(steps.T) + 1, 0);
  for (int64_t t = 0; t < steps.T; ++t) first[t + 1] = first[t] + steps.at(t);
  return first;
}

// A direction's inputs, x's rows of T steps in the time loop's direction, and
// their projection by W_ih into igates.
struct InputProjection {
  const KernelSet& k;
  const PackedMatrix& ih;
  const LinearRequant& r;
  const uint8_t* x;
  int64_t T;
  bool reverse;

  // igates rows [lo, lo + rows) into out.
  template <class Out>
  void project(int64_t lo, int64_t rows, Out* out, const Parallel& par) const {
    run_linear(k, ih, r, x + lo * ih.K, rows, out, par);
  }
};

// A direction's input projection, a chunk of consecutive steps at a time (one
// step at least), each projected when the time loop reaches a step outside
// the chunk before: the chunk stays in cache while its steps read it, and a
// long sequence needs no buffer of its own length. With rider_rows, each
// chunk is that many steps, and the steps of one compute the next beside
// their own products (StepRider), a share each.
template <class Out>
class IgatesChunks {
 public:
  IgatesChunks(const InputProjection& in, const Steps& steps, const Parallel& par,
               int64_t rider_rows = 0)
      : in_(in), N_(in.ih.rows), par_(par), first_row_(first_rows(steps)),
        rider_rows_(rider_rows),
        chunk_rows_(rider_rows > 0 ? rider_rows : igates_chunk_rows(steps.B, N_, sizeof(Out))) {
    buffer_.resize(static_cast<size_t>(std::min(first_row_[in_.T], chunk_rows_) * N_));
    if (rider_rows_ > 0) next_.resize(static_cast<size_t>(rider_rows_ * N_));
  }

  // The row of x (and of the output) where step t's rows begin.
  int64_t first_row(int64_t t) const { return first_row_[t]; }

  // Step t's igates rows, [steps.at(t)][ih.rows].
  const Out* at(int64_t t) {
    if (t < lo_ || t >= hi_) {
      if (next_ready_ && t >= next_lo_ && t < next_hi_) {
        buffer_.swap(next_);
        lo_ = next_lo_;
        hi_ = next_hi_;
        next_ready_ = false;
      } else {
        project_from(t);
      }
    }
    return buffer_.data() + rows_of(lo_, t) * N_;
  }

  // What step t, whose igates at(t) gave, computes of the next chunk: its
  // share, one rider_rows-th of the panels, or nullptr when there is no
  // whole next chunk or no riding. Each step of a whole chunk is asked once,
  // in the time loop's order.
  const StepRider* rider(int64_t t) {
    if (rider_rows_ == 0 || hi_ - lo_ != rider_rows_) return nullptr;
    const int64_t next_lo = in_.reverse ? lo_ - rider_rows_ : hi_;
    if (next_lo < 0 || next_lo + rider_rows_ > in_.T) return nullptr;
    const int64_t j = in_.reverse ? hi_ - 1 - t : t - lo_;  // t's place in the loop's order
    const int64_t panels = in_.ih.panels();
    job_ = StepRider{&in_.ih, &in_.r, in_.x + first_row_[next_lo] * in_.ih.K,
                     panels * j / rider_rows_, panels * (j + 1) / rider_rows_, next_.data()};
    if (j == rider_rows_ - 1) {
      next_lo_ = next_lo;
      next_hi_ = next_lo + rider_rows_;
      next_ready_ = true;
    }
    return &job_;
  }

 private:
  int64_t rows_of(int64_t lo, int64_t hi) const { return first_row_[hi] - first_row_[lo]; }

  // The chunk runs from t in the direction of the time loop.
  void project_from(int64_t t) {
    lo_ = t;
    hi_ = t + 1;
    if (in_.reverse) {
      while (lo_ > 0 && rows_of(lo_ - 1, hi_) <= chunk_rows_) --lo_;
    } else {
      while (hi_ < in_.T && rows_of(lo_, hi_ + 1) <= chunk_rows_) ++hi_;
    }
    in_.project(first_row_[lo_], rows_of(lo_, hi_), buffer_.data(), par_);
  }

  const InputProjection in_;
  const int64_t N_;  // igates per row
  const Parallel& par_;
  std::vector<int64_t> first_row_;
  const int64_t rider_rows_;  // steps (of one row each) per chunk when riding, else 0
  const int64_t chunk_rows_;
  std::vector<Out> buffer_;
  int64_t lo_ = 0, hi_ = 0;  // the steps whose igates the buffer holds
  std::vector<Out> next_;    // the next chunk, while its riders fill it
  int64_t next_lo_ = 0, next_hi_ = 0;
  bool next_ready_ = false;
  StepRider job_{};
};

// Steps of one row, igates projected by another thread ahead of the time
// loop: chunks of kChunkSteps steps into a buffer of every row, each
// claimed by whichever of the two threads reaches it first (the producer in
// loop order, the time loop when it overtakes), so that no order of running
// the two can wait forever: a claimed chunk is being projected by a running
// thread. The time loop's core then reads only W_hh, and the other core W_ih.
class IgatesAhead {
 public:
  static constexpr int64_t kChunkSteps = 8;

  explicit IgatesAhead(const InputProjection& in)
      : in_(in), N_(in.ih.rows), chunks_((in.T + kChunkSteps - 1) / kChunkSteps),
        state_(new std::atomic<int>[static_cast<size_t>(chunks_)]),
        buffer_(static_cast<size_t>(in.T * N_)) {
    for (int64_t c = 0; c < chunks_; ++c) state_[c].store(kFree, std::memory_order_relaxed);
  }

  int64_t first_row(int64_t t) const { return t; }
  const StepRider* rider(int64_t) const { return nullptr; }

  // Step t's igates row, once its chunk is projected.
  const uint8_t* at(int64_t t) {
    const int64_t c = (in_.reverse ? in_.T - 1 - t : t) / kChunkSteps;
    if (state_[c].load(std::memory_order_acquire) != kDone && !claim_and_project(c)) {
      while (state_[c].load(std::memory_order_acquire) != kDone) std::this_thread::yield();
    }
    return buffer_.data() + t * N_;
  }

  // Projects every chunk not claimed yet, in the time loop's order.
  void produce() {
    for (int64_t c = 0; c < chunks_; ++c) claim_and_project(c);
  }

 private:
  enum : int { kFree, kClaimed, kDone };

  bool claim_and_project(int64_t c) {
    int expected = kFree;
    if (!state_[c].compare_exchange_strong(expected, kClaimed, std::memory_order_acquire)) {
      return false;
    }
    // Chunk c of the loop's order, as rows [lo, hi) of x.
    const int64_t T = in_.T, a = c * kChunkSteps, b = std::min(T, a + kChunkSteps);
    const int64_t lo = in_.reverse ? T - b : a, hi = in_.reverse ? T - a : b;
    in_.project(lo, hi - lo, buffer_.data() + lo * N_, serial_parallel());
    state_[c].store(kDone, std::memory_order_release);
    return true;
  }

  const InputProjection in_;
  const int64_t N_;  // igates per row
  const int64_t chunks_;
  std::unique_ptr<std::atomic<int>[]> state_;
  std::vector<uint8_t> buffer_;
};

int64_t macs_per_row_block(const PackedLayer& p) { return 4 * kUnitBlock * p.hh.K; }

// Whether a direction's steps have one row each and run on one thread each.
bool single_row_steps_on_one_thread(const PackedLayer& p, const Steps& steps,
                                    const Parallel& par) {
  const bool single_rows = steps.B == 1 && steps.rows() == steps.T;
  const int64_t blocks = unit_blocks(p.hidden_size);
  return single_rows &&
         (par.threads == 1 ||
          (blocks >= par.threads && step_tasks(1, blocks, macs_per_row_block(p), par) < 2));
}

// The most bytes of igates IgatesAhead holds (every row of the direction).
constexpr int64_t kMaxAheadBytes = int64_t{16} << 20;

// Whether a direction projects its inputs on a second thread (IgatesAhead):
// steps of one row on one thread, while another thread is idle.
bool projects_ahead(const PackedLayer& p, const Steps& steps, const Parallel& par) {
  return par.threads >= 2 && steps.T >= 2 * IgatesAhead::kChunkSteps &&
         steps.T * p.ih.rows <= kMaxAheadBytes && single_row_steps_on_one_thread(p, steps, par);
}

// The rows of each step's StepRider in a direction of `steps`, or 0: the
// riders need steps of one row, each on one thread (split across threads,
// each core's share of W_hh stays in its L2 from step to step, which W_ih's
// panels streaming past would evict), a set that takes them, and two chunks.
int64_t rider_rows(const KernelSet& k, const PackedLayer& p, const Steps& steps,
                   const Parallel& par) {
  return single_row_steps_on_one_thread(p, steps, par) && steps.T >= 2 * k.rider_rows
             ? k.rider_rows
             : 0;
}

}  // namespace

void run_step(const KernelSet& k, const PackedLayer& p, const LinearRequant& hh,
              const CellConstants& cc, const uint8_t* igates, const StepState& s, int64_t batch,
              uint8_t* hidden, uint8_t* c_next, const Parallel& par) {
  parallel_step(batch, unit_blocks(p.hidden_size), macs_per_row_block(p),
                [&](int64_t b0, int64_t b1, int64_t u0, int64_t u1) {
                  k.lstm_step(p, hh, cc, igates, s, b0, b1, u0, u1, hidden, c_next);
                }, par);
}

namespace {

// One output qparams in every gate slot of LinearRequant: W_hr's rows are not
// gates and share the projection's; the accurate mode's float linears have
// scale 1, so that the multiplier is the input's scale times the weight's.
struct EveryGateOutput {
  QParams q[kNumGates];
  explicit EveryGateOutput(QParams output) {
    for (QParams& slot : q) slot = output;
  }
};

}  // namespace

Projection::Projection(const PackedLayer& p)
    : p_(p), hr_(p.hr, p.q.hidden, EveryGateOutput(p.q.projection).q) {}

void Projection::run(const KernelSet& k, const uint8_t* hidden, int64_t batch, uint8_t* h,
                     const Parallel& par) {
  const int64_t P = p_.proj_size, N = p_.hr.rows;
  out_.resize(static_cast<size_t>(batch * N));
  run_linear(k, p_.hr, hr_.r, hidden, batch, out_.data(), par);
  for (int64_t b = 0; b < batch; ++b) {
    std::copy(out_.begin() + b * N, out_.begin() + b * N + P, h + b * P);
  }
}

namespace {

// Elements per task of the conversions: enough to pay for handing it to a thread.
constexpr int64_t kConvertGrain = int64_t{1} << 16;

template <class F>
void parallel_chunks(int64_t n, const F& f, const Parallel& par) {
  if (par.threads == 1 || n < 2 * kConvertGrain) {
    f(0, n);
    return;
  }
  const int64_t chunks = (n + kConvertGrain - 1) / kConvertGrain;
  par.run(chunks, 1, [&](int64_t begin, int64_t end) {
    const int64_t lo = begin * kConvertGrain, hi = std::min(n, end * kConvertGrain);
    f(lo, hi);
  });
}

}  // namespace

void run_quantize(const KernelSet& k, const float* x, int64_t n, QParams q, uint8_t* out,
                  const Parallel& par) {
  parallel_chunks(n, [&](int64_t lo, int64_t hi) { k.quantize(x + lo, hi - lo, q, out + lo); }, par);
}

void run_dequantize(const KernelSet& k, const uint8_t* x, int64_t n, QParams q, float* out,
                    const Parallel& par) {
  parallel_chunks(n, [&](int64_t lo, int64_t hi) { k.dequantize(x + lo, hi - lo, q, out + lo); }, par);
}

RequantTable::RequantTable(QParams from, QParams to) : identity(from == to) {
  if (!identity) make_requantize_table(from, to, table);
}

int64_t Steps::rows() const {
  if (batch_sizes == nullptr) return T * B;
  int64_t n = 0;
  for (int64_t t = 0; t < T; ++t) n += batch_sizes[t];
  return n;
}

namespace {

// W_hh up to this size (about half of a core's L2 on Zen 2 to 4) is cheap
// enough for every thread to read in full at each step.
constexpr int64_t kMaxWeightsPerSequenceSplit = int64_t{1} << 19;
// Up to this size (sizes up to about 700), when each part has at least
// kMinSequencesPerLargePart sequences: each weight a part reads from L2 or L3
// then serves as many rows (on Zen 4, 2 threads: 512 x 50 x 8 1.10x faster
// than splitting each step, batch 32 and 64 within 1%, batch 4 0.88x).
constexpr int64_t kMaxWeightsPerLargeSequenceSplit = int64_t{1} << 21;
constexpr int64_t kMinSequencesPerLargePart = 4;

}  // namespace

int64_t sequence_parts(const PackedLayer& p, const Steps& steps, const Parallel& par) {
  const int64_t weights = p.hh.rows * p.hh.K;
  if (par.threads < 2 || steps.B < 2 || weights > kMaxWeightsPerLargeSequenceSplit) return 1;
  const int64_t macs = steps.rows() * p.ih.rows * (p.ih.K + p.hh.K);
  const int64_t parts =
      std::max<int64_t>(1, std::min({par.threads, steps.B, macs / kMinMacsPerStepTask}));
  if (weights > kMaxWeightsPerSequenceSplit && steps.B / parts < kMinSequencesPerLargePart) {
    return 1;
  }
  return parts;
}

namespace {

DirectionResult run_direction_in_parts(int64_t parts, const KernelSet& k, const PackedLayer& p,
                                       const uint8_t* x, QParams x_q, const Steps& steps,
                                       bool reverse, const InitialState& init, uint8_t* out,
                                       int64_t out_width, int64_t out_offset,
                                       const uint8_t* out_table, const Parallel& par) {
  const int64_t H = p.hidden_size, S = p.h_size(), K = p.ih.K, T = steps.T;
  const std::vector<int64_t> first_row = first_rows(steps);
  std::vector<DirectionResult> results(static_cast<size_t>(parts));
  par.run(parts, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      // Sequences [b0, b1): their rows of each step, gathered, run alone and scattered back.
      const auto [b0, b1] = part(steps.B, parts, i);
      std::vector<int64_t> sizes(static_cast<size_t>(T));
      int64_t rows = 0;
      for (int64_t t = 0; t < T; ++t) {
        sizes[t] = std::clamp<int64_t>(steps.at(t) - b0, 0, b1 - b0);
        rows += sizes[t];
      }
      std::vector<uint8_t> xs(static_cast<size_t>(rows * K)), outs(static_cast<size_t>(rows * S));
      for (int64_t t = 0, at = 0; t < T; at += sizes[t], ++t) {
        // A step without rows of this part may start past x's last row.
        if (sizes[t] > 0) std::copy_n(x + (first_row[t] + b0) * K, sizes[t] * K, xs.begin() + at * K);
      }
      const InitialState init_part{init.h ? init.h + b0 * S : nullptr, init.h_q,
                                   init.c ? init.c + b0 * H : nullptr, init.c_q};
      results[i] = run_direction(k, p, xs.data(), x_q, Steps{T, b1 - b0, sizes.data()}, reverse,
                                 init_part, outs.data(), S, 0, out_table, serial_parallel());
      for (int64_t t = 0, at = 0; t < T; at += sizes[t], ++t) {
        for (int64_t j = 0; j < sizes[t]; ++j) {
          std::copy_n(outs.begin() + (at + j) * S, S,
                      out + (first_row[t] + b0 + j) * out_width + out_offset);
        }
      }
    }
  });
  DirectionResult res{{}, {}, results[0].h_q, results[0].c_q};
  for (const DirectionResult& r : results) {
    res.h.insert(res.h.end(), r.h.begin(), r.h.end());
    res.c.insert(res.c.end(), r.c.begin(), r.c.end());
  }
  return res;
}

}  // namespace

DirectionResult run_direction(const KernelSet& k, const PackedLayer& p, const uint8_t* x,
                              QParams x_q, const Steps& steps, bool reverse,
                              const InitialState& init, uint8_t* out, int64_t out_width,
                              int64_t out_offset, const uint8_t* out_table, const Parallel& par) {
  if (const int64_t parts = sequence_parts(p, steps, par); parts > 1) {
    return run_direction_in_parts(parts, k, p, x, x_q, steps, reverse, init, out, out_width,
                                  out_offset, out_table, par);
  }
  const int64_t H = p.hidden_size, S = p.h_size(), T = steps.T, B = steps.B;
  DirectionResult res;
  const size_t h_bytes = static_cast<size_t>(B * S), c_bytes = static_cast<size_t>(B * H);
  auto initial = [](const uint8_t* s, size_t n, QParams q) {
    return s ? std::vector<uint8_t>(s, s + n)
             : std::vector<uint8_t>(n, static_cast<uint8_t>(q.zero_point));
  };
  res.h = initial(init.h, h_bytes, init.h_q);
  res.c = initial(init.c, c_bytes, init.c_q);
  res.h_q = init.h_q;
  res.c_q = init.c_q;
  std::vector<uint8_t> h_next(h_bytes), c_next(c_bytes);
  // With a projection the step's hidden goes through W_hr into h_next.
  std::optional<Projection> projection;
  std::vector<uint8_t> hidden;
  if (p.proj_size > 0) {
    projection.emplace(p);
    hidden.resize(c_bytes);
  }

  // Step 0 multiplies the initial h, later steps the layer's own h; the
  // constants differ only when their qparams do.
  const LinearRequantStorage hh_init(p.hh, init.h_q, p.q.hgates);
  const std::optional<LinearRequantStorage> hh_later =
      T > 1 && !(init.h_q == p.q.h())
          ? std::make_optional<LinearRequantStorage>(p.hh, p.q.h(), p.q.hgates)
          : std::nullopt;
  const LinearRequant& hh_steady = hh_later ? hh_later->r : hh_init.r;
  CellConstants cc;
  prepare_cell_constants(p, &cc);
  // The time loop, igates from IgatesChunks or IgatesAhead.
  auto walk = [&](auto& igates, const Parallel& step_par) {
    for (int64_t s = 0; s < T; ++s) {
      const int64_t t = reverse ? T - 1 - s : s;
      // The sequences with a step t are the first bt: the others keep their state.
      const int64_t bt = steps.at(t);
      const uint8_t* step_igates = igates.at(t);
      const StepState state{res.h.data(), res.c.data(), res.c_q, s % 2 == 1, igates.rider(t)};
      run_step(k, p, s == 0 ? hh_init.r : hh_steady, cc, step_igates, state, bt,
               projection ? hidden.data() : h_next.data(), c_next.data(), step_par);
      if (projection) projection->run(k, hidden.data(), bt, h_next.data(), step_par);
      std::copy(res.h.begin() + bt * S, res.h.end(), h_next.begin() + bt * S);
      std::copy(res.c.begin() + bt * H, res.c.end(), c_next.begin() + bt * H);
      res.h.swap(h_next);
      res.c.swap(c_next);
      res.h_q = p.q.h();
      res.c_q = p.q.cell;
      for (int64_t b = 0; b < bt; ++b) {
        map_bytes(out_table, res.h.data() + b * S, S,
                  out + (igates.first_row(t) + b) * out_width + out_offset);
      }
    }
  };
  // The projection of every row there is, padding none.
  const LinearRequantStorage ih(p.ih, x_q, p.q.igates);
  const InputProjection in{k, p.ih, ih.r, x, T, reverse};
  if (projects_ahead(p, steps, par)) {
    IgatesAhead igates(in);
    par.run(2, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        if (i == 0) {
          igates.produce();
        } else {
          walk(igates, serial_parallel());
        }
      }
    });
  } else {
    IgatesChunks<uint8_t> igates(in, steps, par, rider_rows(k, p, steps, par));
    walk(igates, par);
  }
  return res;
}

FloatDirectionResult run_direction_float(const KernelSet& k, const PackedLayer& p,
                                         const uint8_t* x, QParams x_q, const Steps& steps,
                                         bool reverse, const FloatInitialState& init, float* out,
                                         uint8_t* out_bytes, QParams out_q, int64_t out_width,
                                         int64_t out_offset, const Parallel& par) {
  const int64_t H = p.hidden_size, T = steps.T, B = steps.B;
  const QParams h_q = p.q.hidden;
  const EveryGateOutput unit(QParams{1.0f, 0});  // float outputs
  const LinearRequantStorage ih(p.ih, x_q, unit.q);
  IgatesChunks<float> igates(InputProjection{k, p.ih, ih.r, x, T, reverse}, steps, par);

  const size_t n = static_cast<size_t>(B * H);
  auto initial = [n](const float* s) {
    return s ? std::vector<float>(s, s + n) : std::vector<float>(n, 0.0f);
  };
  FloatDirectionResult res{initial(init.h), initial(init.c)};
  // A zero initial h multiplies to the same floats in any qparams of its
  // scale; with zero point 0 its bytes are 0, which the narrow products of a
  // kernel set take (lstm_tiled.h's tile_form).
  const QParams h0_q = init.h ? h_q : QParams{h_q.scale, 0};
  std::vector<uint8_t> h_bytes(n), h_bytes_next(n);
  k.quantize(res.h.data(), static_cast<int64_t>(n), h0_q, h_bytes.data());
  std::vector<float> h_next(n), c_next(n);
  const LinearRequantStorage hh(p.hh, h_q, unit.q);
  const std::optional<LinearRequantStorage> hh0 =
      h0_q == h_q ? std::nullopt : std::make_optional<LinearRequantStorage>(p.hh, h0_q, unit.q);
  for (int64_t s = 0; s < T; ++s) {
    const int64_t t = reverse ? T - 1 - s : s;
    const int64_t bt = steps.at(t);
    const float* ig = igates.at(t);
    const FloatStepState state{h_bytes.data(), res.c.data(), s % 2 == 1};
    parallel_step(bt, unit_blocks(p.hidden_size), macs_per_row_block(p),
                  [&](int64_t b0, int64_t b1, int64_t u0, int64_t u1) {
                    k.lstm_step_float(p, s == 0 && hh0 ? hh0->r : hh.r, h_q, ig, state, b0, b1,
                                      u0, u1, h_next.data(), h_bytes_next.data(), c_next.data());
                  }, par);
    std::copy(res.h.begin() + bt * H, res.h.end(), h_next.begin() + bt * H);
    std::copy(res.c.begin() + bt * H, res.c.end(), c_next.begin() + bt * H);
    if (s == 0 && hh0) {
      // Rows that wait (a PackedSequence's reverse direction) go on in h_q.
      k.quantize(res.h.data() + bt * H, (B - bt) * H, h_q, h_bytes_next.data() + bt * H);
    } else {
      std::copy(h_bytes.begin() + bt * H, h_bytes.end(), h_bytes_next.begin() + bt * H);
    }
    res.h.swap(h_next);
    res.c.swap(c_next);
    h_bytes.swap(h_bytes_next);
    for (int64_t b = 0; b < bt; ++b) {
      const int64_t at = (igates.first_row(t) + b) * out_width + out_offset;
      if (out) std::copy(res.h.begin() + b * H, res.h.begin() + (b + 1) * H, out + at);
      if (out_bytes) {
        if (out_q == h_q) {
          std::copy(h_bytes.begin() + b * H, h_bytes.begin() + (b + 1) * H, out_bytes + at);
        } else {
          k.quantize(res.h.data() + b * H, H, out_q, out_bytes + at);
        }
      }
    }
  }
  return res;
}

void stack_final_state(const uint8_t* state, QParams state_q, QParams layer_q, QParams out_q,
                       int64_t n, uint8_t* dst) {
  const RequantTable to_layer(state_q, layer_q), to_out(layer_q, out_q);
  map_bytes(to_layer.get(), state, n, dst);
  map_bytes(to_out.get(), dst, n, dst);
}

}  // namespace qlstm
